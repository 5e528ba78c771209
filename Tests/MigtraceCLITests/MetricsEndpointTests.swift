// SPDX-License-Identifier: Apache-2.0
import Foundation
import MigtraceTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Loopback HTTP for the tests: a free port, and a GET answered with its status and body.
enum Loopback {
    /// A port nothing listens on now (bound to port 0, then released).
    static func freePort() -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return UInt16(bigEndian: sa.sin_port)
    }

    /// `GET path` on 127.0.0.1:port (HTTP/1.0, the server closes): status and body; nil when nothing listens.
    static func get(_ port: UInt16, _ path: String) -> (status: Int, body: String)? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        sa.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { return nil }
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let request = Array("GET \(path) HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var all: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            all += chunk[0..<n]
        }
        let text = String(decoding: all, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n"), let status = Int(text.dropFirst(9).prefix(3)) else { return nil }
        return (status, String(text[split.upperBound...]))
    }

    /// Samples of an exposition text keyed by `name{labels}`.
    static func samples(_ text: String) -> [String: Double] {
        var out: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            if let space = line.lastIndex(of: " ") { out[String(line[..<space])] = Double(line[line.index(after: space)...]) }
        }
        return out
    }
}

/// A migtrace run in the background, its standard output and error drained as they come (a full pipe would
/// block it).
final class BackgroundRun: @unchecked Sendable {
    let process = Process()
    private let out = Pipe()
    private let err = Pipe()
    private let drained = DispatchGroup()
    // SAFETY: written by the drain blocks only, read after `drained` has been waited for.
    private var outData = Data()
    private var errData = Data()

    init(_ args: [String]) throws {
        process.executableURL = URL(fileURLWithPath: CLI.binary)
        process.arguments = args
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        DispatchQueue.global().async(group: drained) { self.outData = self.out.fileHandleForReading.readDataToEndOfFile() }
        DispatchQueue.global().async(group: drained) { self.errData = self.err.fileHandleForReading.readDataToEndOfFile() }
    }

    /// Wait for the end: status, standard output, standard error.
    func finish() -> (status: Int32, stdout: String, stderr: String) {
        drained.wait()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
    }
}

/// `--metrics` on a live capture of the demo target (QEMU's USDT probes, a real QEMU 10.0 migration replayed at its
/// pace), scraped over loopback while it migrates: validated by promtool, and scraped by a real Prometheus server.
@Suite(.serialized) struct MetricsEndpointTests {
    /// The JSON Lines windows of a live run: (transferred bytes, bandwidth B/ms) in order.
    static func windows(_ stdout: String) -> [(bytes: Double, bandwidth: Double)] {
        stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            .filter { $0["type"] as? String == "window" }
            .compactMap { w in
                guard let b = (w["transferred_bytes"] as? NSNumber)?.doubleValue,
                    let bw = (w["bandwidth_bytes_per_ms"] as? NSNumber)?.doubleValue
                else { return nil }
                return (b, bw)
            }
    }

    @Test(.requiresRoot) func scrapedDuringAMigrationAndValidByPromtool() throws {
        let promtool = "/usr/bin/promtool"
        try #require(
            FileManager.default.isExecutableFile(atPath: promtool), "promtool is missing: run scripts/setup (Debian package prometheus)")
        let port = Loopback.freePort()
        let run = try BackgroundRun(["demo", "--speed", "2", "--format", "json", "--metrics", "127.0.0.1:\(port)"])
        var scrapes: [String] = []
        let start = ContinuousClock.now
        while run.process.isRunning && ContinuousClock.now - start < .seconds(60) {
            if let r = Loopback.get(port, "/metrics"), r.status == 200 { scrapes.append(r.body) }
            usleep(150_000)
        }
        let result = run.finish()
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("migtrace: metrics at http://127.0.0.1:\(port)/metrics"))
        let windows = Self.windows(result.stdout)
        #expect(windows.count == (try CLI.windowLines("10.0-demo.log")))
        // Scrapes taken while the migration was active, with windows analysed.
        let during = scrapes.map(Loopback.samples).enumerated().filter { _, m in
            m.first { $0.key.hasPrefix("migtrace_migration_state{") && $0.key.hasSuffix("state=\"active\"}") }?.value == 1
                && (m.first { $0.key.hasPrefix("migtrace_migration_windows_total{") }?.value ?? 0) > 0
        }
        #expect(during.count >= 5, "\(scrapes.count) scrapes, \(during.count) during the migration")
        for (index, m) in during {
            // Each scrape agrees with what migtrace printed: the bytes of its first N windows and the Nth bandwidth.
            let n = Int(try #require(m.first { $0.key.hasPrefix("migtrace_migration_windows_total{") }?.value))
            try #require(n <= windows.count)
            let bytes = m.first { $0.key.hasPrefix("migtrace_migration_data_processed_bytes_total{") }?.value
            #expect(bytes == windows.prefix(n).reduce(0) { $0 + $1.bytes }, "scrape \(index)")
            let rate = m.first { $0.key.hasPrefix("migtrace_migration_memory_transfer_rate_bytes{") }?.value
            #expect(rate == windows[n - 1].bandwidth * 1000, "scrape \(index)")
            #expect(m.first { $0.key.hasPrefix("migtrace_migration_downtime_limit_seconds{") }?.value == 0.3)
            #expect(m.first { $0.key.hasPrefix("migtrace_events_dropped_total{") && $0.key.contains("kernel") }?.value == 0)
        }
        // promtool checks format and naming of a scrape taken mid-migration.
        let file = CLI.temporaryPath("metrics.txt")
        defer { unlink(file) }
        try scrapes[try #require(during.last).offset].write(toFile: file, atomically: true, encoding: .utf8)
        let check = Process()
        check.executableURL = URL(fileURLWithPath: promtool)
        check.arguments = ["check", "metrics"]
        check.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: file))
        let said = Pipe()
        check.standardOutput = said
        check.standardError = said
        try check.run()
        let text = String(decoding: said.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        check.waitUntilExit()
        #expect(check.terminationStatus == 0 && text.isEmpty, "promtool: \(text)")
    }

    @Test(.requiresRoot) func aRealPrometheusScrapesItAndAnswersWithTheMigrationsBandwidth() throws {
        let prometheus = "/usr/bin/prometheus"
        try #require(FileManager.default.isExecutableFile(atPath: prometheus), "prometheus is missing: run scripts/setup")
        let metricsPort = Loopback.freePort()
        let promPort = Loopback.freePort()
        let dir = CLI.temporaryPath("prometheus")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try """
        global:
          scrape_interval: 200ms
          scrape_timeout: 150ms
        scrape_configs:
          - job_name: migtrace
            static_configs:
              - targets: ["127.0.0.1:\(metricsPort)"]
        """.write(toFile: dir + "/prometheus.yml", atomically: true, encoding: .utf8)
        let server = Process()
        server.executableURL = URL(fileURLWithPath: prometheus)
        server.arguments = [
            "--config.file=\(dir)/prometheus.yml", "--storage.tsdb.path=\(dir)/data", "--web.listen-address=127.0.0.1:\(promPort)",
            "--log.level=error",
        ]
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer {
            server.terminate()
            server.waitUntilExit()
        }
        let start = ContinuousClock.now
        while Loopback.get(promPort, "/-/ready")?.status != 200 {
            try #require(ContinuousClock.now - start < .seconds(60) && server.isRunning, "Prometheus did not become ready")
            usleep(100_000)
        }
        // Prometheus applies its targets a few seconds after it is ready: start the migration once it has tried
        // the endpoint (down until migtrace listens).
        while !(Loopback.get(promPort, "/api/v1/targets")?.body.contains("\"health\":\"down\"") ?? false) {
            try #require(ContinuousClock.now - start < .seconds(60), "Prometheus never tried the endpoint")
            usleep(100_000)
        }
        let run = try BackgroundRun(["demo", "--speed", "2", "--format", "json", "--metrics", "127.0.0.1:\(metricsPort)"])
        let result = run.finish()
        #expect(result.status == 0, "\(result.stderr)")
        let computed = Set(Self.windows(result.stdout).map { $0.bandwidth * 1000 })
        #expect(computed.count > 10)

        // Every bandwidth sample Prometheus scraped is one migtrace computed for a window of this migration.
        let query = "migtrace_migration_memory_transfer_rate_bytes%5B5m%5D"
        let answer = try #require(Loopback.get(promPort, "/api/v1/query?query=\(query)"))
        #expect(answer.status == 200, "\(answer.body)")
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any])
        #expect(doc["status"] as? String == "success")
        let data = try #require(doc["data"] as? [String: Any])
        #expect(data["resultType"] as? String == "matrix")
        let series = try #require(data["result"] as? [[String: Any]])
        #expect(series.count == 1)
        let labels = try #require(series.first?["metric"] as? [String: String])
        #expect(labels["job"] == "migtrace" && labels["pid"] != nil)
        let values = try #require(series.first?["values"] as? [[Any]]).compactMap { ($0.last as? String).flatMap(Double.init) }
        #expect(values.count >= 5, "\(values.count) samples")
        #expect(Set(values).count >= 2, "the bandwidth changed during the migration (it does in this trace)")
        for v in values { #expect(computed.contains(v), "\(v) is a window's bandwidth") }
    }
}
