// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import Testing

@testable import MigtraceIO

/// A raw TCP client on loopback: what it sends is exactly what the test says, malformed or slow.
struct RawClient {
    let fd: Int32

    init(port: UInt16) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        sa.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        try #require(rc == 0, "connect: \(String(cString: strerror(errno)))")
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    func send(_ text: String) { send(Array(text.utf8)) }
    func send(_ bytes: [UInt8]) { _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } }

    /// Everything until the server closes (or 10 s pass), then close.
    func response() -> String {
        var all: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            all += chunk[0..<n]
        }
        close(fd)
        return String(decoding: all, as: UTF8.self)
    }

    /// One request, its whole response.
    static func exchange(_ port: UInt16, _ request: String) throws -> String {
        let c = try RawClient(port: port)
        c.send(request)
        return c.response()
    }
}

/// The metrics server against well-formed, malformed, slow and concurrent clients on loopback.
@Suite(.serialized) struct MetricsServerTests {
    static let body = "# TYPE x counter\nx_total 1\n"

    func withServer(_ limits: MetricsServer.Limits = MetricsServer.Limits(), _ test: (MetricsServer) throws -> Void) throws {
        let scrapes = Atomic<Int>(0)
        let server = try MetricsServer.start(address: "127.0.0.1:0", limits: limits) {
            scrapes.add(1, ordering: .relaxed)
            return Self.body
        }
        defer { server.stop() }
        #expect(server.port != 0)
        #expect(server.address == "127.0.0.1:\(server.port)")
        try test(server)
    }

    @Test func getServesTheBodyAndHeadOnlyTheHeaders() throws {
        try withServer { s in
            let get = try RawClient.exchange(s.port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(get.hasPrefix("HTTP/1.1 200 OK\r\n"))
            #expect(get.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"))
            #expect(get.contains("Content-Length: \(Self.body.utf8.count)\r\n"))
            #expect(get.hasSuffix("\r\n\r\n" + Self.body))
            let query = try RawClient.exchange(s.port, "GET /metrics?x=1 HTTP/1.0\n\n")
            #expect(query.hasSuffix(Self.body))
            let head = try RawClient.exchange(s.port, "HEAD /metrics HTTP/1.1\r\n\r\n")
            #expect(head.hasPrefix("HTTP/1.1 200 OK\r\n") && head.hasSuffix("\r\n\r\n"))
        }
    }

    @Test func malformedRequestsGetTheirStatus() throws {
        try withServer { s in
            for bad in [
                "GARBAGE\r\n\r\n", "GET /metrics\r\n\r\n", "GET /metrics HTTP/2.0\r\n\r\n", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
                "get /metrics HTTP/1.1\r\n\r\n", "GET  /metrics HTTP/1.1\r\n\r\n", "GET metrics HTTP/1.1\r\n\r\n",
                "GET /met\u{1}rics HTTP/1.1\r\n\r\n", "\r\n\r\n",
            ] {
                let r = try RawClient.exchange(s.port, bad)
                #expect(r.hasPrefix("HTTP/1.1 400 Bad Request\r\n"), "\(bad.debugDescription) → \(r.prefix(40))")
            }
            #expect(try RawClient.exchange(s.port, "GET / HTTP/1.1\r\n\r\n").hasPrefix("HTTP/1.1 404 Not Found\r\n"))
            #expect(try RawClient.exchange(s.port, "GET /metricsx HTTP/1.1\r\n\r\n").hasPrefix("HTTP/1.1 404 "))
            for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
                let r = try RawClient.exchange(s.port, "\(method) /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
                #expect(r.hasPrefix("HTTP/1.1 405 Method Not Allowed\r\n") && r.contains("Allow: GET, HEAD\r\n"), "\(method)")
            }
            // A head larger than the limit, with or without its end, is refused without waiting.
            let huge = "GET /metrics HTTP/1.1\r\nX-Big: " + String(repeating: "a", count: 20000) + "\r\n\r\n"
            #expect(try RawClient.exchange(s.port, huge).hasPrefix("HTTP/1.1 431 "))
            let endless = try RawClient(port: s.port)
            endless.send("GET /metrics HTTP/1.1\r\n" + String(repeating: "X-A: b\r\n", count: 2000))
            #expect(endless.response().hasPrefix("HTTP/1.1 431 "))
            // A client that connects and closes without a word costs nothing.
            close(try RawClient(port: s.port).fd)
            #expect(try RawClient.exchange(s.port, "GET /metrics HTTP/1.1\r\n\r\n").hasSuffix(Self.body))
        }
    }

    @Test func aSlowClientIsCutAtItsDeadlineAndDoesNotBlockOthers() throws {
        var limits = MetricsServer.Limits()
        limits.requestDeadlineMs = 600
        try withServer(limits) { s in
            // Slowloris: a byte every 100 ms never finishes the head; the deadline is for the whole request.
            let slow = try RawClient(port: s.port)
            let start = ContinuousClock.now
            for b in "GET /metrics HTTP/1.1\r\nX: ".utf8.prefix(5) {
                slow.send([b])
                // Meanwhile a normal scrape is answered at once.
                #expect(try RawClient.exchange(s.port, "GET /metrics HTTP/1.1\r\n\r\n").hasSuffix(Self.body))
                usleep(100_000)
            }
            let r = slow.response()
            let took = ContinuousClock.now - start
            #expect(r.hasPrefix("HTTP/1.1 408 Request Timeout\r\n"))
            #expect(took >= .milliseconds(550) && took < .seconds(3), "\(took)")
        }
    }

    @Test func concurrentScrapesAllGetTheWholeBodyAndExtraConnectionsA503() throws {
        var limits = MetricsServer.Limits()
        limits.maxConnections = 4
        try withServer(limits) { s in
            let ok = Atomic<Int>(0)
            DispatchQueue.concurrentPerform(iterations: 32) { _ in
                if let r = try? RawClient.exchange(s.port, "GET /metrics HTTP/1.1\r\n\r\n"),
                    r.hasPrefix("HTTP/1.1 200 OK\r\n") && r.hasSuffix(Self.body) || r.hasPrefix("HTTP/1.1 503 ")
                {
                    ok.add(1, ordering: .relaxed)
                }
            }
            #expect(ok.load(ordering: .relaxed) == 32)
            // Four idle connections fill the server: the fifth is told to retry, the idle ones are kept.
            let idle = try (0..<4).map { _ in try RawClient(port: s.port) }
            usleep(100_000)
            #expect(try RawClient.exchange(s.port, "GET /metrics HTTP/1.1\r\n\r\n").hasPrefix("HTTP/1.1 503 Service Unavailable\r\n"))
            idle[0].send("GET /metrics HTTP/1.1\r\n\r\n")
            #expect(idle[0].response().hasSuffix(Self.body))
            for c in idle.dropFirst() { close(c.fd) }
        }
    }

    @Test func stopEndsTheThreadWithConnectionsOpenAndFreesThePort() throws {
        let server = try MetricsServer.start(address: "127.0.0.1:0") { "" }
        let port = server.port
        let open = try RawClient(port: port)
        open.send("GET /met")
        server.stop()
        server.stop()
        #expect(open.response() == "")
        // The port can be bound again right away.
        let again = try MetricsServer.start(address: "127.0.0.1:\(port)") { "" }
        again.stop()
    }

    @Test func addressesAreCheckedWithAMessageThatSaysWhatToGive() throws {
        #expect(try MetricsServer.parse("127.0.0.1:9464") == ("127.0.0.1", 9464))
        #expect(try MetricsServer.parse("localhost:1") == ("127.0.0.1", 1))
        #expect(try MetricsServer.parse("[::1]:9464") == ("::1", 9464))
        for bad in ["9464", "host.example:9464", "127.0.0.1:99999", "127.0.0.1:", ":9464", "::1:9464", "127.0.0.1:-1"] {
            #expect(throws: MetricsServer.StartError.self, "\(bad)") { try MetricsServer.parse(bad) }
        }
        do {
            _ = try MetricsServer.parse("nope")
        } catch {
            #expect(error.description.contains("e.g. 127.0.0.1:9464"))
        }
        let held = try MetricsServer.start(address: "127.0.0.1:0") { "" }
        defer { held.stop() }
        do {
            let second = try MetricsServer.start(address: "127.0.0.1:\(held.port)") { "" }
            second.stop()
            Issue.record("a second server bound the same port")
        } catch {
            #expect(error.description.contains("Address already in use (another program uses it: pick another port)"))
        }
        let v6 = try MetricsServer.start(address: "[::1]:0") { "v6\n" }
        defer { v6.stop() }
        #expect(v6.address == "[::1]:\(v6.port)")
    }
}
