// SPDX-License-Identifier: Apache-2.0
//
// The metrics endpoint's HTTP server: one more thread of the model BatchPipe.swift describes. One worker thread
// (`WorkerThread.start`) owns the listening socket and every connection, multiplexed with poll(2); it shares
// nothing with the analysis but the text it asks `body` for (the caller's `Mutex`-guarded store) and the stop
// pipe. It speaks just enough HTTP/1.x for a scraper: one GET or HEAD per connection, answered and closed.
// Each connection has one deadline for its whole request (a slow sender cannot hold it open), a cap on the
// request head, and the server a cap on open connections, so a misbehaving client costs a bounded amount.

import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A minimal HTTP/1.x server for `/metrics` on its own thread (GET/HEAD; 400, 404, 405, 408, 431, 503 otherwise).
public final class MetricsServer: Sendable {
    /// Why the server could not start, as one sentence that says what to do.
    public struct StartError: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// Limits a client cannot exceed.
    public struct Limits: Sendable {
        /// Time a client has to send its whole request head, in milliseconds.
        public var requestDeadlineMs: Int = 5000
        /// Largest request head (request line and headers), bytes.
        public var maxHeadBytes: Int = 8192
        /// Connections open at once; more are answered 503 and closed.
        public var maxConnections: Int = 64
        /// Default limits.
        public init() {}
    }

    /// The address the server listens on, as `HOST:PORT` with the port actually bound (useful with port 0).
    public let address: String
    /// The port actually bound.
    public let port: UInt16
    private let listenFD: Int32
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let thread = Mutex<WorkerThread?>(nil)

    /// Listen on `address` (`IPv4:PORT`, `[IPv6]:PORT` or `localhost:PORT`) and serve `body()` at `/metrics`.
    public static func start(address: String, limits: Limits = Limits(), body: @escaping @Sendable () -> String) throws(StartError)
        -> MetricsServer
    {
        let (host, port) = try parse(address)
        let family = host.contains(":") ? AF_INET6 : AF_INET
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw StartError(description: "cannot open a socket for --metrics: \(errorText(errno))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var bound: Int32
        if family == AF_INET6 {
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = port.bigEndian
            _ = inet_pton(AF_INET6, host, &sa.sin6_addr)
            bound = withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        } else {
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = port.bigEndian
            _ = inet_pton(AF_INET, host, &sa.sin_addr)
            bound = withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        if bound == 0 { bound = listen(fd, 64) }
        guard bound == 0 else {
            let e = errno
            close(fd)
            let hint =
                e == EADDRINUSE
                ? " (another program uses it: pick another port)" : e == EADDRNOTAVAIL ? " (not an address of this host)" : ""
            throw StartError(description: "cannot listen on \(address) for --metrics: \(errorText(e))\(hint).")
        }
        var actual = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &actual) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        let boundPort: UInt16 =
            family == AF_INET6
            ? withUnsafePointer(to: &actual) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) }
            }
            : withUnsafePointer(to: &actual) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
            }
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            close(fd)
            throw StartError(description: "cannot create the metrics server's stop pipe: \(errorText(errno))")
        }
        for d in fds { _ = fcntl(d, F_SETFD, FD_CLOEXEC) }
        // Non-blocking, so that the accept loop stops when no connection is waiting.
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        let shown = family == AF_INET6 ? "[\(host)]:\(boundPort)" : "\(host):\(boundPort)"
        let server = MetricsServer(address: shown, port: boundPort, listenFD: fd, wakeRead: fds[0], wakeWrite: fds[1])
        let loop = ServerLoop(listenFD: fd, wakeFD: fds[0], limits: limits, body: body)
        switch WorkerThread.start({ loop.run() }) {
        case .success(let t): server.thread.withLock { $0 = t }
        case .failure(let e):
            server.closeDescriptors()
            throw StartError(description: "cannot start the metrics server's thread: \(errorText(e.errno))")
        }
        return server
    }

    private init(address: String, port: UInt16, listenFD: Int32, wakeRead: Int32, wakeWrite: Int32) {
        self.address = address
        self.port = port
        self.listenFD = listenFD
        self.wakeRead = wakeRead
        self.wakeWrite = wakeWrite
    }

    /// Stop serving: the thread closes every connection and ends; returns once it has (idempotent).
    public func stop() {
        guard
            let t = thread.withLock({ t in
                defer { t = nil }; return t
            })
        else { return }
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
        t.join()
        closeDescriptors()
    }

    private func closeDescriptors() {
        close(listenFD)
        close(wakeRead)
        close(wakeWrite)
    }

    /// `HOST:PORT` split and checked; HOST is an IP address or `localhost`, an IPv6 one in brackets.
    public static func parse(_ address: String) throws(StartError) -> (host: String, port: UInt16) {
        let bad = StartError(
            description:
                "--metrics wants HOST:PORT with HOST an IP address or localhost, e.g. 127.0.0.1:9464, 0.0.0.0:9464 or [::1]:9464; got \"\(address)\"."
        )
        guard let colon = address.lastIndex(of: ":"), let port = UInt16(address[address.index(after: colon)...]) else { throw bad }
        var host = String(address[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") {
            host = String(host.dropFirst().dropLast())
            var a6 = in6_addr()
            guard inet_pton(AF_INET6, host, &a6) == 1 else { throw bad }
            return (host, port)
        }
        if host == "localhost" { host = "127.0.0.1" }
        var a4 = in_addr()
        guard inet_pton(AF_INET, host, &a4) == 1 else { throw bad }
        return (host, port)
    }
}

private func errorText(_ e: Int32) -> String { String(cString: strerror(e)) }

/// The server thread's state: touched by that thread only.
private final class ServerLoop: @unchecked Sendable {
    // SAFETY: @unchecked Sendable. Built on the starting thread, then used only by the server thread (the start
    // happens-before the thread's first access; nothing else keeps a reference).
    private struct Connection {
        var fd: Int32
        var head: [UInt8] = []
        var deadline: Int64
    }

    private let listenFD: Int32
    private let wakeFD: Int32
    private let limits: MetricsServer.Limits
    private let body: @Sendable () -> String
    private var connections: [Connection] = []

    init(listenFD: Int32, wakeFD: Int32, limits: MetricsServer.Limits, body: @escaping @Sendable () -> String) {
        self.listenFD = listenFD
        self.wakeFD = wakeFD
        self.limits = limits
        self.body = body
    }

    func run() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            var polled = [pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0), pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0)]
            for c in connections { polled.append(pollfd(fd: c.fd, events: Int16(POLLIN), revents: 0)) }
            let now = Self.nowMs()
            let timeout = connections.map { max(0, $0.deadline - now) }.min().map { Int32(min($0, 60_000)) } ?? -1
            let n = poll(&polled, nfds_t(polled.count), timeout)
            if n < 0 && errno != EINTR { break }
            if polled[0].revents != 0 { break }
            // Connections first (their indices match `polled` until one is removed), then new ones.
            var index = connections.count - 1
            while index >= 0 {
                let revents = polled[index + 2].revents
                if revents != 0 {
                    let got = buffer.withUnsafeMutableBytes { recv(connections[index].fd, $0.baseAddress, $0.count, 0) }
                    if got <= 0 {
                        if got == 0 || (errno != EAGAIN && errno != EINTR) { drop(index) }
                    } else {
                        connections[index].head.append(contentsOf: buffer[0..<got])
                        if let response = respond(to: connections[index].head) {
                            send(response, on: connections[index])
                            drop(index)
                        }
                    }
                } else if connections[index].deadline <= Self.nowMs() {
                    send(Self.status(408, "Request Timeout", "The request did not arrive in time.\n"), on: connections[index])
                    drop(index)
                }
                index -= 1
            }
            if polled[1].revents != 0 { accept() }
        }
        for c in connections { close(c.fd) }
        connections.removeAll()
    }

    private func accept() {
        while true {
            let fd = Glibc.accept(listenFD, nil, nil)
            guard fd >= 0 else { return }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            let connection = Connection(fd: fd, deadline: Self.nowMs() + Int64(limits.requestDeadlineMs))
            if connections.count >= limits.maxConnections {
                send(Self.status(503, "Service Unavailable", "Too many connections; retry.\n"), on: connection)
                close(fd)
            } else {
                connections.append(connection)
            }
        }
    }

    private func drop(_ index: Int) {
        close(connections[index].fd)
        connections.remove(at: index)
    }

    /// The response to a request head received so far; nil while it is incomplete.
    private func respond(to head: [UInt8]) -> [UInt8]? {
        guard let end = Self.headEnd(head) else {
            return head.count > limits.maxHeadBytes
                ? Self.status(431, "Request Header Fields Too Large", "The request head is too large.\n") : nil
        }
        guard end <= limits.maxHeadBytes else {
            return Self.status(431, "Request Header Fields Too Large", "The request head is too large.\n")
        }
        let lineEnd = head.firstIndex(of: UInt8(ascii: "\n"))!
        var line = head[..<lineEnd]
        if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
        let parts = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, parts[0].allSatisfy({ (0x41...0x5a).contains($0) }),
            parts[1].first == UInt8(ascii: "/"), parts[1].allSatisfy({ (0x21...0x7e).contains($0) }),
            parts[2].elementsEqual("HTTP/1.1".utf8) || parts[2].elementsEqual("HTTP/1.0".utf8)
        else { return Self.status(400, "Bad Request", "Malformed request line.\n") }
        let path = parts[1].prefix { $0 != UInt8(ascii: "?") }
        guard path.elementsEqual("/metrics".utf8) else { return Self.status(404, "Not Found", "Not found; the metrics are at /metrics.\n") }
        let isHead = parts[0].elementsEqual("HEAD".utf8)
        guard isHead || parts[0].elementsEqual("GET".utf8) else {
            return Self.status(405, "Method Not Allowed", "Only GET and HEAD.\n", extra: "Allow: GET, HEAD\r\n")
        }
        let text = Array(body().utf8)
        var response = Array(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: \(text.count)\r\nConnection: close\r\n\r\n"
                .utf8)
        if !isHead { response += text }
        return response
    }

    /// Index just past the blank line ending the head (`\r\n\r\n` or `\n\n`), if it is there.
    private static func headEnd(_ head: [UInt8]) -> Int? {
        var i = 0
        while i < head.count {
            if head[i] == UInt8(ascii: "\n") {
                if i + 1 < head.count && head[i + 1] == UInt8(ascii: "\n") { return i + 2 }
                if i + 2 < head.count && head[i + 1] == UInt8(ascii: "\r") && head[i + 2] == UInt8(ascii: "\n") { return i + 3 }
            }
            i += 1
        }
        return nil
    }

    private static func status(_ code: Int, _ reason: String, _ text: String, extra: String = "") -> [UInt8] {
        Array(
            "HTTP/1.1 \(code) \(reason)\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: \(text.utf8.count)\r\n\(extra)Connection: close\r\n\r\n\(text)"
                .utf8)
    }

    /// Write the whole response, waiting for a slow reader 2 s at most (the other connections wait meanwhile).
    private func send(_ bytes: [UInt8], on connection: Connection) {
        let deadline = Self.nowMs() + 2000
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes { Glibc.send(connection.fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if sent > 0 {
                offset += sent
                continue
            }
            guard sent < 0, errno == EAGAIN || errno == EINTR else { return }
            let left = deadline - Self.nowMs()
            guard left > 0 else { return }
            var p = pollfd(fd: connection.fd, events: Int16(POLLOUT), revents: 0)
            if poll(&p, 1, Int32(min(left, 1000))) < 0 && errno != EINTR { return }
        }
    }

    private static func nowMs() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}
