// SPDX-License-Identifier: Apache-2.0
import Foundation
import MigtraceCore
import MigtraceTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Runs the built `migtrace` binary as a user would.
enum CLI {
    /// `migtrace` sits next to the test runner in the build products directory.
    static let binary: String = {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        var dir = URL(fileURLWithPath: String(decoding: buf[0..<max(n, 0)].map { UInt8(bitPattern: $0) }, as: UTF8.self))
            .deletingLastPathComponent()
        // The runner may be inside migtracePackageTests.xctest/…; walk up to the products directory.
        while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("migtrace").path) && dir.path != "/" {
            dir = dir.deletingLastPathComponent()
        }
        return dir.appendingPathComponent("migtrace").path
    }()

    /// A copy of `binary` in a world-readable directory, for runs as another user: the clone CI builds in
    /// may sit under a directory only root can enter (the Swift runtime is found through the absolute RUNPATH).
    static let binaryForAnyUser: String = {
        let dir = "/tmp/migtrace-cli-bin-\(getpid())"
        mkdir(dir, 0o755)
        chmod(dir, 0o755)
        let copy = dir + "/migtrace"
        unlink(copy)
        try? FileManager.default.copyItem(atPath: binary, toPath: copy)
        chmod(copy, 0o755)
        return copy
    }()

    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static func fixture(_ name: String) -> String {
        repository.appendingPathComponent("Tests/MigtraceCoreTests/Fixtures/qemu/\(name)").path
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Run migtrace (or, with `prefix`, a wrapper such as setpriv) and collect its output.
    static func run(_ args: [String], stdin: String? = nil, prefix: [String] = []) throws -> Result {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: prefix.first ?? binary)
        p.arguments = prefix.isEmpty ? args : Array(prefix.dropFirst()) + [binaryForAnyUser] + args
        let out = Pipe()
        let err = Pipe()
        p.standardOutput = out
        p.standardError = err
        let input = Pipe()
        p.standardInput = input
        try p.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    /// How many migrate_transferred lines a fixture has (counted independently of migtrace).
    static func windowLines(_ name: String) throws -> Int {
        try String(contentsOfFile: fixture(name), encoding: .utf8).split(separator: "\n").filter {
            $0.contains("migrate_transferred transferred")
        }.count
    }

    static func temporaryPath(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("migtrace-cli-\(UUID().uuidString)-\(name)").path
    }
}

@Suite struct AnalyzeCommandTests {
    @Test func exitCodesFollowFailOn() throws {
        #expect(try CLI.run(["analyze", CLI.fixture("7.2-stall.log")]).status == 0)
        #expect(try CLI.run(["analyze", "--fail-on", "critical", CLI.fixture("7.2-stall.log")]).status == 2)
        #expect(try CLI.run(["analyze", "--fail-on", "warning", CLI.fixture("7.2-converge.log")]).status == 0)
        // A clean converging migration has no info finding either (issue 15): --fail-on info passes it.
        #expect(try CLI.run(["analyze", "--fail-on", "info", CLI.fixture("7.2-converge.log")]).status == 0)
        #expect(try CLI.run(["analyze", "--fail-on", "info", CLI.fixture("7.2-downtime-change.log")]).status == 2)
        let missing = try CLI.run(["analyze", "/nonexistent/trace.log"])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("cannot open /nonexistent/trace.log: No such file or directory"))
        #expect(try CLI.run(["analyze"]).status == 64)
        #expect(try CLI.run(["analyze", "--fail-on", "loud", "x"]).status == 64)
    }

    @Test func jsonDocumentHasTheDocumentedNames() throws {
        let r = try CLI.run(["analyze", "--format", "json", CLI.fixture("10.0-stall.log")])
        #expect(r.status == 0)
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let series = try #require(doc["series"] as? [[String: Any]])
        #expect(series.count == 1)
        #expect(series[0]["era"] as? String == "B")
        let windows = try #require(series[0]["windows"] as? [[String: Any]])
        #expect(windows.count == (try CLI.windowLines("10.0-stall.log")))
        for key in [
            "index", "transferred_bytes", "time_spent_ms", "bandwidth_traced", "switchover_bw_traced",
            "threshold_traced_bytes", "bandwidth_bytes_per_ms", "mbps", "threshold_rebuilt_bytes",
            "downtime_limit_ms", "threshold_exact",
        ] {
            #expect(windows[0][key] != nil, "window field \(key)")
        }
        #expect(windows.allSatisfy { $0["threshold_exact"] as? Bool == true })
        let longest = try #require(windows.max { ($0["time_spent_ms"] as? Int ?? 0) < ($1["time_spent_ms"] as? Int ?? 0) })
        #expect(longest["time_spent_ms"] as? Int ?? 0 >= 1000)
        let anomalies = try #require(doc["anomalies"] as? [[String: Any]])
        let stall = try #require(anomalies.first { $0["rule"] as? String == "thread-stall" })
        for key in ["rule", "severity", "series", "first_window", "last_window", "start_time", "end_time", "message", "evidence", "remedy"]
        {
            #expect(stall[key] != nil, "anomaly field \(key)")
        }
        #expect(stall["severity"] as? String == "critical")
        #expect(stall["first_window"] as? Int == longest["index"] as? Int)
        #expect(doc["summary"] is [String: Any])
    }

    @Test func csvHasOneRowPerWindowAndStdinWorks() throws {
        let text = try String(contentsOfFile: CLI.fixture("7.2-converge.log"), encoding: .utf8)
        let r = try CLI.run(["analyze", "--format", "csv", "-"], stdin: text)
        #expect(r.status == 0)
        let rows = r.stdout.split(separator: "\n")
        #expect(rows.count == 1 + (try CLI.windowLines("7.2-converge.log")))
        #expect(rows[0].hasPrefix("series,index,line,era,"))
        #expect(rows.dropFirst().allSatisfy { $0.contains(",true,") })
    }

    @Test func malformedLineIsLocatedAndTheRestAnalysed() throws {
        var lines = try String(contentsOfFile: CLI.fixture("7.2-converge.log"), encoding: .utf8).split(
            separator: "\n", omittingEmptySubsequences: false
        ).map(String.init)
        let i = try #require(lines.firstIndex { $0.hasPrefix("migrate_transferred") })
        lines.insert("migrate_transferred transferred 12", at: i + 1)
        let path = CLI.temporaryPath("bad.log")
        try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        defer { unlink(path) }
        let r = try CLI.run(["analyze", "--no-windows", path])
        #expect(r.stderr.contains("\(path):\(i + 2): migrate_transferred: line ends where 'time_spent' was expected"))
        #expect(r.stdout.contains("\(try CLI.windowLines("7.2-converge.log")) windows"))
        #expect(r.stdout.contains("1 line(s) rejected"))
    }

    /// A full disk is an error with a message, never a silent exit 0 with half the output (a closed pipe, `| head`,
    /// is not an error).
    @Test func outputWriteFailureIsReported() throws {
        let fixture = CLI.fixture("7.2-converge.log")
        // 300 copies (6,900 windows, 1.4 MB): large enough for the parse and output threads to start.
        let large = CLI.temporaryPath("large.log")
        try String(repeating: try String(contentsOfFile: fixture, encoding: .utf8), count: 300)
            .write(toFile: large, atomically: false, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: large) }
        for input in [fixture, large] {
            for format in ["csv", "json", "text"] {
                let r = try CLI.run(["analyze", "--format", format, input], prefix: ["/bin/sh", "-c", "exec \"$0\" \"$@\" > /dev/full"])
                #expect(r.status == 1, "format \(format), \(input)")
                #expect(r.stderr.contains("migtrace: writing the output failed: No space left on device"), "format \(format), \(input)")
            }
        }
        let ok = try CLI.run(["analyze", "--format", "csv", fixture])
        #expect(ok.status == 0)
        #expect(!ok.stderr.contains("writing the output failed"))
    }

    @Test func fileWithoutEventsSaysSo() throws {
        let r = try CLI.run(["analyze", "-"], stdin: "qemu-system-x86_64: terminating on signal 15\n")
        #expect(r.status == 8)
        #expect(r.stdout.contains("no migrate_transferred events found"))
    }

    @Test func rulesAreListed() throws {
        let r = try CLI.run(["rules"])
        for id in [
            "thread-stall", "no-progress", "bandwidth-shift", "threshold-collapse", "downtime-limit-changed",
            "switchover-bandwidth-mismatch", "rate-capped", "non-convergence", "formula-mismatch", "trace-integrity",
        ] {
            #expect(r.stdout.contains("\(id) ("), "rule \(id)")
        }
    }
}

@Suite(.serialized) struct LiveCommandTests {
    @Test(.requiresRoot) func demoRecordsAndReplaysIdentically() throws {
        let rec = CLI.temporaryPath("demo.rec")
        defer { unlink(rec) }
        let live = try CLI.run(["demo", "--speed", "8", "--format", "json", "--record", rec])
        #expect(live.status == 0, "\(live.stderr)")
        let objects = live.stdout.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        #expect(objects.first?["type"] as? String == "header")
        let summary = try #require(objects.last)
        #expect(summary["type"] as? String == "summary")
        #expect(summary["end_reason"] as? String == "target-exited")
        #expect(summary["kernel_drops"] as? Int == 0)
        let liveWindows = objects.filter { $0["type"] as? String == "window" }
        #expect(liveWindows.count == (try CLI.windowLines("10.0-demo.log")))  // the trace scripts/embed-demo-trace embeds
        #expect(liveWindows.allSatisfy { $0["threshold_exact"] as? Bool == true })
        // The recording is 0600 and replays to the same windows and anomalies.
        var st = stat()
        #expect(stat(rec, &st) == 0 && st.st_mode & 0o777 == 0o600)
        let replay = try CLI.run(["analyze", "--format", "json", rec])
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(replay.stdout.utf8)) as? [String: Any])
        let replayWindows = ((doc["series"] as? [[String: Any]])?.first?["windows"] as? [[String: Any]]) ?? []
        func strip(_ w: [String: Any]) -> NSDictionary {
            var w = w
            for k in ["type", "series", "line"] { w.removeValue(forKey: k) }
            return w as NSDictionary
        }
        #expect(replayWindows.map(strip) == liveWindows.map(strip))
        let liveAnomalies = objects.filter { $0["type"] as? String == "anomaly" }.map(strip)
        #expect(((doc["anomalies"] as? [[String: Any]]) ?? []).map(strip) == liveAnomalies)
        // Never over an existing file without --force.
        let again = try CLI.run(["demo", "--speed", "50", "--record", rec])
        #expect(again.status == 7)
        #expect(again.stderr.contains("already exists; choose another name or pass --force"))
    }

    @Test(.requiresRoot) func attachErrorsAreClearWithDistinctCodes() throws {
        let none = try CLI.run(["attach", "999999"])
        #expect(none.status == 3)
        #expect(none.stderr.contains("no process with pid 999999"))
        let notQEMU = try CLI.run(["attach", String(getpid())])
        #expect(notQEMU.status == 6)
        #expect(notQEMU.stderr.contains("is not a QEMU"))
        let unprivileged = try CLI.run(
            ["attach", "1"], prefix: ["/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        #expect(unprivileged.status == 4)
        #expect(unprivileged.stderr.contains("missing CAP_BPF, CAP_PERFMON"))
    }

    @Test(.requiresRoot) func debianQEMUWithoutDtraceBackendIsExplained() throws {
        let q = Process()
        q.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-system-x86_64")
        q.arguments = ["-machine", "none", "-nodefaults", "-display", "none", "-S"]
        // Its stderr is no file: the way forward is a restart with -D.
        q.standardError = FileHandle.nullDevice
        try q.run()
        defer { kill(q.processIdentifier, SIGKILL); q.waitUntilExit() }
        usleep(300_000)
        let r = try CLI.run(["attach", String(q.processIdentifier)])
        #expect(r.status == 6)
        #expect(r.stderr.contains("built without the dtrace trace backend"))
        #expect(
            r.stderr.contains(
                "which is no file (a terminal, pipe or socket): start QEMU with `\(TracingRecipe.commandLine())`, then `migtrace analyze --follow FILE`"
            ))
        for line in TracingRecipe.qmp { #expect(r.stderr.contains("     \(line)\n")) }
        let probes = try CLI.run(["probes", "/usr/bin/qemu-system-x86_64"])
        #expect(probes.status == 6)
        #expect(probes.stdout.contains("0 with provider qemu"))
    }
}
