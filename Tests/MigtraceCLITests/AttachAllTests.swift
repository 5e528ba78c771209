// SPDX-License-Identifier: Apache-2.0
import Foundation
import MigtraceTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `attach --all` on several processes of one binary carrying QEMU's probes (fake_qemu, built like QEMU's dtrace
/// backend), one of them started after migtrace: each is captured, labelled with its pid and `-name`, closed with its
/// summary when it exits, and the event counts add up exactly.
@Suite(.serialized) struct AttachAllTests {
    @Test(.requiresRoot) func everyProcessIsCapturedLabelledAndClosedWithExactCounts() throws {
        // A binary of this test's own: other suites run the shared fake_qemu at the same time, and --all would
        // rightly capture their processes too.
        let dir = "/tmp/migtrace-attach-all-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let exe = try TestProgramBuilder.buildFakeQEMU(probes: "fake_qemu.d", into: dir)
        let port = Loopback.freePort()
        let args = ["--context", "--pace-us", "20000"]
        let a = try FaultTarget(count: 30, args + ["-name", "guest=vmA,debug-threads=on"], executable: exe)
        let b = try FaultTarget(count: 30, args + ["-name", "vmB"], executable: exe)
        let migtrace = try Spawned([CLI.binary, "attach", "--all", "--binary", exe, "--format", "json", "--metrics", "127.0.0.1:\(port)"])
        func listed(_ pid: pid_t) -> Bool { Loopback.get(port, "/metrics")?.body.contains("pid=\"\(pid)\"") ?? false }
        func waitFor(_ what: String, _ condition: () -> Bool) throws {
            let start = ContinuousClock.now
            while !condition() {
                try #require(ContinuousClock.now - start < .seconds(30), "\(what): \(migtrace.stderr.all)")
                usleep(50_000)
            }
        }
        try waitFor("both attached") { listed(a.pid) && listed(b.pid) }
        a.go()
        b.go()
        // Started after migtrace: found when the process list is read again.
        let c = try FaultTarget(count: 30, args + ["-name", "guest=vmC"], executable: exe)
        try waitFor("the late one attached") { listed(c.pid) }
        c.go()
        let fired = [try a.finish(), try b.finish(), try c.finish()]
        try waitFor("all three closed") {
            let m = Loopback.samples(Loopback.get(port, "/metrics")?.body ?? "")
            return [a.pid, b.pid, c.pid].allSatisfy { pid in
                m.first { $0.key.hasPrefix("migtrace_capture_up{") && $0.key.contains("pid=\"\(pid)\"") }?.value == 0
            }
        }
        migtrace.signal(SIGINT)
        let status = try #require(migtrace.wait(timeout: 30))
        #expect(Spawned.code(status) == 0, "\(migtrace.stderr.all)")
        let objects = JSONL.objects(migtrace.stdout.waitEOF(timeout: 10) ?? [])
        #expect(!objects.isEmpty && objects.allSatisfy { $0["pid"] is Int && $0["vm"] is String }, "every record names its process")
        for (target, name, f) in [(a, "vmA", fired[0]), (b, "vmB", fired[1]), (c, "vmC", fired[2])] {
            let mine = objects.filter { $0["pid"] as? Int == Int(target.pid) }
            #expect(mine.allSatisfy { $0["vm"] as? String == name })
            #expect(JSONL.ofType(mine, "header").count == 1)
            #expect(UInt64(JSONL.ofType(mine, "window").count) == f.transferred, "\(name)")
            #expect(f.transferred == 30)
            let summary = try #require(JSONL.ofType(mine, "summary").last, "\(name) closed with its summary")
            #expect(summary["end_reason"] as? String == "target-exited")
            #expect((summary["events_received"] as? NSNumber)?.uint64Value == f.fired, "\(name)")
            #expect(summary["kernel_drops"] as? Int == 0 && summary["consumer_drops"] as? Int == 0)
        }
        let total = fired.reduce(0) { $0 + $1.fired }
        #expect(
            migtrace.stderr.all.joined(separator: "\n").contains(
                "3 processes captured: \(total) events received; lost 0 events (kernel), 0 (consumer)"))
    }

    @Test(.requiresRoot) func processesComingAndGoingAreEachCapturedExactlyAndLeakNothing() throws {
        // Four waves of four processes, each firing as soon as it starts: before any /proc scan can have seen it, so
        // every event counted here came through the attach by binary. Their lifetimes overlap the next wave's start.
        let dir = "/tmp/migtrace-attach-churn-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let exe = try TestProgramBuilder.buildFakeQEMU(probes: "fake_qemu.d", into: dir)
        let migtrace = try Spawned([CLI.binary, "attach", "--all", "--binary", exe, "--format", "json"])
        #expect(migtrace.stderr.wait(timeout: 30) { $0.contains("watching every process of") }, "\(migtrace.stderr.all)")
        func count(_ what: String) -> Int {
            (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(migtrace.pid)/\(what)").count) ?? -1
        }
        var done: [(FaultTarget, String, (fired: UInt64, transferred: UInt64))] = []
        var running: [(FaultTarget, String)] = []
        func wave(_ wave: Int) throws {
            for i in 0..<4 {
                let name = "w\(wave)p\(i)"
                let t = try FaultTarget(
                    count: 10 + 5 * i, ["--context", "--pace-us", "10000", "--migrations", "2", "-name", name], executable: exe)
                t.go()
                running.append((t, name))
            }
        }
        func endOldest() throws {
            for (t, name) in running.prefix(4) { done.append((t, name, try t.finish())) }
            running.removeFirst(4)
        }
        // A first wave alone, then what migtrace holds once it has come and gone is the baseline.
        try wave(0)
        try endOldest()
        #expect(migtrace.stdout.wait(count: 4, timeout: 30) { $0.contains("\"type\":\"summary\"") })
        let fds = count("fd")
        let threads = count("task")
        for w in 1..<4 {
            try wave(w)
            // The previous wave ends while this one runs.
            if w > 1 { try endOldest() }
        }
        for (t, name) in running { done.append((t, name, try t.finish())) }
        #expect(
            migtrace.stdout.wait(count: 16, timeout: 30) { $0.contains("\"type\":\"summary\"") }, "every process closed with its summary")
        #expect(count("fd") == fds, "no file descriptor per process")
        // Dispatch's pool may start a worker of its own when busy; a thread per process would be 12 more.
        #expect(count("task") <= threads + 2, "no thread per process")
        migtrace.signal(SIGINT)
        let status = try #require(migtrace.wait(timeout: 30))
        #expect(Spawned.code(status) == 0, "\(migtrace.stderr.all)")
        let objects = JSONL.objects(migtrace.stdout.waitEOF(timeout: 10) ?? [])
        for (t, name, f) in done {
            let mine = objects.filter { $0["pid"] as? Int == Int(t.pid) }
            #expect(mine.allSatisfy { $0["vm"] as? String == name })
            #expect(JSONL.ofType(mine, "header").count == 1, "\(name)")
            #expect(UInt64(JSONL.ofType(mine, "window").count) == f.transferred, "\(name)")
            #expect(f.transferred == UInt64(2 * (10 + 5 * (Int(name.last!.asciiValue!) - 48))), "\(name): two migrations")
            let summary = try #require(JSONL.ofType(mine, "summary").last, "\(name) closed with its summary")
            #expect(summary["end_reason"] as? String == "target-exited", "\(name)")
            #expect((summary["events_received"] as? NSNumber)?.uint64Value == f.fired, "\(name)")
        }
        let total = done.reduce(0) { $0 + $1.2.fired }
        #expect(
            migtrace.stderr.all.joined(separator: "\n").contains(
                "16 processes captured: \(total) events received; lost 0 events (kernel), 0 (consumer)"), "\(migtrace.stderr.all)")
    }

    @Test(.requiresRoot) func textLinesCarryTheLabelWithTheNameEscaped() throws {
        let dir = "/tmp/migtrace-attach-text-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let exe = try TestProgramBuilder.buildFakeQEMU(probes: "fake_qemu.d", into: dir)
        let migtrace = try Spawned([CLI.binary, "attach", "--all", "--binary", exe])
        #expect(migtrace.stderr.wait(timeout: 30) { $0.contains("watching every process of") })
        // A VM name is input: its escape character must not reach the terminal.
        let t = try FaultTarget(count: 12, ["--context", "--pace-us", "5000", "-name", "guest=red\u{1b}[31mvm"], executable: exe)
        t.go()
        _ = try t.finish()
        #expect(
            migtrace.stdout.wait(timeout: 30) { $0.contains("target-exited") || $0.contains("target exited") }, "\(migtrace.stdout.all)")
        migtrace.signal(SIGINT)
        _ = try #require(migtrace.wait(timeout: 30))
        let lines = (migtrace.stdout.waitEOF(timeout: 10) ?? []).filter { !$0.isEmpty }
        let label = "[red\\x1b[31mvm \(t.pid)] "
        #expect(lines.count > 12, "a header, a line per window, a summary: \(lines)")
        #expect(lines.allSatisfy { $0.hasPrefix(label) }, "\(lines.prefix(3))")
        #expect(!lines.joined().contains("\u{1b}"))
    }

    @Test func allTakesNoPidAndBinaryNeedsAll() throws {
        let both = try CLI.run(["attach", "--all", "4242"])
        #expect(both.status == 64 && both.stderr.contains("Give a pid or --all, not both."))
        let binary = try CLI.run(["attach", "--binary", "/usr/bin/qemu-system-x86_64", "4242"])
        #expect(binary.status == 64 && binary.stderr.contains("--binary goes with --all"))
        let record = try CLI.run(["attach", "--all", "--record", "/tmp/x.rec"])
        #expect(record.status == 64 && record.stderr.contains("with --all, use --format json"))
    }

    @Test(.requiresRoot) func aBinaryWithoutTheProbeIsRefused() throws {
        let r = try CLI.run(["attach", "--all", "--binary", "/bin/true"])
        #expect(r.status == 6)
        #expect(r.stderr.contains("/usr/bin/true has no qemu:migrate_transferred probe"))
    }
}
