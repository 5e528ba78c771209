// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Reliability of `migtrace attach` under faults, run against the built binary and fake_qemu: how a capture
/// ends (target exit or kill, signals, closed output, full disk, killed migtrace), drops, concurrent
/// sessions, consecutive migrations and least privilege. Each test prints the figures it saw.
@Suite(.serialized, .requiresRoot)
struct LiveFaultTests {
    /// A long-running paced migration (5 ms per window), for the tests that end the capture themselves.
    static let longRun = ["--context", "--pace-us", "5000"]

    func attach(_ target: FaultTarget, _ args: [String] = [], prefix: [String] = [], closeStdoutAfter: Int? = nil) throws -> Spawned {
        let m = try Spawned(prefix + [CLI.binary, "attach"] + args + [String(target.pid)], closeStdoutAfter: closeStdoutAfter)
        try #require(
            m.stdout.wait(timeout: 20) { $0.contains("\"type\":\"header\"") || $0.hasPrefix("waiting for") || $0.hasPrefix("migtrace ") },
            "migtrace did not attach: \(m.stderr.all)")
        return m
    }

    func windows(_ m: Spawned, atLeast n: Int) -> Bool {
        m.stdout.wait(count: n, timeout: 20) { $0.hasPrefix("{\"type\":\"window\"") }
    }

    /// What a finished JSON capture showed.
    struct Capture {
        var code: Int32
        var objects: [[String: Any]]
        var stderr: [String]
        var summary: [String: Any]
        var windows: [[String: Any]] { JSONL.ofType(objects, "window") }
        var received: Int { summary["events_received"] as? Int ?? -1 }
        var kernelDrops: Int { summary["kernel_drops"] as? Int ?? -1 }
        var endReason: String? { summary["end_reason"] as? String }
        var worst: String? { (summary["summary"] as? [String: Any])?["worst_severity"] as? String }
    }

    /// Waits for migtrace to end within `timeout` seconds and parses its output.
    func finished(_ m: Spawned, timeout: Double = 10) throws -> Capture {
        let st = try #require(m.wait(timeout: timeout), "migtrace did not end within \(timeout) s")
        let lines = m.stdout.waitEOF(timeout: 5) ?? m.stdout.all
        let objects = JSONL.objects(lines)
        let summary = JSONL.ofType(objects, "summary").last ?? [:]
        return Capture(code: Spawned.code(st), objects: objects, stderr: m.stderr.waitEOF(timeout: 5) ?? [], summary: summary)
    }

    /// The exit code `--fail-on gate` gives for a worst severity.
    func expectedCode(worst: String?, gate: String) -> Int32 {
        let rank = ["info": 1, "warning": 2, "critical": 3]
        guard let w = worst, let r = rank[w], let g = rank[gate] else { return 0 }
        return r >= g ? 2 : 0
    }

    /// The recording ends with an end record of `reason` whose counts match the summary, holds exactly the
    /// events received, and `analyze` on it gives exactly the live windows.
    func checkRecording(_ rec: String, _ c: Capture, reason: String) throws {
        let file = try JSONL.recording(rec)
        #expect(file.endsWithNewline)
        let last = try #require(JSONL.objects([file.lines.last ?? ""]).first)
        #expect(last["type"] as? String == "end")
        #expect(last["reason"] as? String == reason)
        #expect(last["kernel_drops"] as? Int == c.kernelDrops)
        #expect(file.lines.filter { $0.hasPrefix("{\"type\":\"event\"") }.count == c.received)
        let replay = try JSONL.analyze(rec)
        #expect(replay.status == 0, "\(replay.stderr)")
        #expect(replay.windows.count == c.windows.count)
        #expect(replay.windows.map(JSONL.strip) == c.windows.map(JSONL.strip))
        #expect(!replay.stderr.contains("no end record"))
    }

    // MARK: 1, 2: the target goes away

    @Test func targetExitsMidMigration() throws {
        let target = try FaultTarget(count: 1000, ["--context", "--pace-us", "2000", "--exit-after", "60"])
        let rec = CLI.temporaryPath("exit.rec")
        defer { unlink(rec) }
        let m = try attach(target, ["--format", "json", "--fail-on", "info", "--record", rec])
        target.go()
        let fired = try target.finish()
        let c = try finished(m)
        print(
            "target exit: fired \(fired.fired) (\(fired.transferred) windows), received \(c.received), windows \(c.windows.count), code \(c.code), worst \(c.worst ?? "none")"
        )
        #expect(fired.transferred == 60)
        #expect(c.endReason == "target-exited")
        #expect(c.received == Int(fired.fired))
        #expect(c.kernelDrops == 0)
        #expect(c.windows.count == 60)
        #expect(JSONL.ofType(c.objects, "state").compactMap { $0["state"] as? String } == ["setup", "active"])
        #expect(c.code == expectedCode(worst: c.worst, gate: "info"))
        try checkRecording(rec, c, reason: "target-exited")
    }

    @Test func untilCompleteStopsAtCompletionWhileTheTargetLivesOn() throws {
        // The target fires a whole migration (setup … completed) and then stays alive for 20 s.
        let target = try FaultTarget(count: 30, ["--context", "--pace-us", "2000", "--linger-ms", "20000"])
        defer { target.kill9() }
        let m = try attach(target, ["--format", "json", "--until-complete"])
        target.go()
        let c = try finished(m, timeout: 10)
        #expect(c.code == 0)
        #expect(c.endReason == "migration-completed")
        #expect(c.windows.count == 30)
        #expect(JSONL.ofType(c.objects, "state").compactMap { $0["state"] as? String }.last == "completed")
        #expect(kill(target.pid, 0) == 0, "the target must still be running: migtrace ended on completion, not on exit")
    }

    @Test func targetIsKilled() throws {
        let target = try FaultTarget(count: 100_000, Self.longRun)
        let rec = CLI.temporaryPath("killed-target.rec")
        defer { unlink(rec) }
        let m = try attach(target, ["--format", "json", "--fail-on", "warning", "--record", rec])
        target.go()
        #expect(windows(m, atLeast: 20))
        target.kill9()
        let c = try finished(m, timeout: 5)
        print("target SIGKILL: received \(c.received), windows \(c.windows.count), code \(c.code), worst \(c.worst ?? "none")")
        #expect(c.endReason == "target-exited")
        #expect(c.windows.count >= 20)
        #expect(c.kernelDrops == 0)
        #expect(c.code == expectedCode(worst: c.worst, gate: "warning"))
        try checkRecording(rec, c, reason: "target-exited")
    }

    // MARK: 3: signals to migtrace

    @Test(arguments: [(SIGINT, "sigint"), (SIGTERM, "sigterm"), (SIGHUP, "sighup")])
    func signalEndsWithSummaryAndCompleteRecording(signal: Int32, name: String) throws {
        let target = try FaultTarget(count: 100_000, Self.longRun)
        defer { target.kill9() }
        let rec = CLI.temporaryPath("\(name).rec")
        defer { unlink(rec) }
        let m = try attach(target, ["--format", "json", "--record", rec])
        target.go()
        #expect(windows(m, atLeast: 10))
        m.signal(signal)
        let c = try finished(m, timeout: 3)
        print("\(name): received \(c.received), windows \(c.windows.count), code \(c.code)")
        #expect(c.code == 0)
        #expect(c.endReason == name)
        #expect(c.windows.count >= 10)
        #expect(JSONL.ofType(c.objects, "summary").count == 1)
        try checkRecording(rec, c, reason: name)
    }

    // MARK: 4: migtrace is killed

    @Test func killedRecorderLeavesAReadableRecording() throws {
        let target = try FaultTarget(count: 100_000, Self.longRun)
        defer { target.kill9() }
        let rec = CLI.temporaryPath("killed.rec")
        defer { unlink(rec) }
        let m = try attach(target, ["--format", "json", "--record", rec])
        target.go()
        #expect(windows(m, atLeast: 10))
        m.signal(SIGKILL)
        let st = try #require(m.wait(timeout: 5))
        #expect(Spawned.code(st) == 128 + SIGKILL)
        let file = try JSONL.recording(rec)
        #expect(file.endsWithNewline)
        #expect(!(file.lines.last ?? "").contains("\"type\":\"end\""))
        let replay = try JSONL.analyze(rec)
        let rejected = (replay.doc["summary"] as? [String: Any])?["rejected_lines"] as? Int
        print(
            "migtrace SIGKILL: \(file.windows) complete window records, analyze found \(replay.windows.count), status \(replay.status), rejected \(rejected ?? -1)"
        )
        #expect(replay.status == 0)
        #expect(replay.windows.count == file.windows)
        #expect(file.windows >= 10)
        #expect(rejected == 0)
        #expect(replay.stderr.contains("recording has no end record"))

        // A record cut mid-line (a crash inside a write on another filesystem) is the only line lost.
        let cut = CLI.temporaryPath("cut.rec")
        defer { unlink(cut) }
        var data = try Data(contentsOf: URL(fileURLWithPath: rec))
        data.removeLast(20)
        try data.write(to: URL(fileURLWithPath: cut))
        let cutFile = try JSONL.recording(cut)
        let cutReplay = try JSONL.analyze(cut)
        print(
            "cut recording: \(cutFile.windows) complete windows, analyze found \(cutReplay.windows.count), status \(cutReplay.status), stderr \(cutReplay.stderr.prefix(200))"
        )
        #expect(cutReplay.status < 64)
        #expect(cutReplay.windows.count == cutFile.windows)
    }

    // MARK: 5: the reader of the output goes away

    @Test(arguments: [(["--format", "text"], 3, false), (["--format", "json"], 12, true)])
    func closedOutputEndsPromptly(format: [String], headLines: Int, firing: Bool) throws {
        let target = try FaultTarget(count: 100_000, Self.longRun)
        defer { target.kill9() }
        let rec = CLI.temporaryPath("head.rec")
        defer { unlink(rec) }
        let m = try Spawned([CLI.binary, "attach"] + format + ["--record", rec, String(target.pid)], closeStdoutAfter: headLines)
        if firing { target.go() }  // idle otherwise: nothing more is ever written, the pipe must still be noticed
        _ = m.stdout.waitEOF(timeout: 20)
        let closedAt = try #require(m.stdout.closedAt)
        let st = try #require(m.wait(timeout: 3), "migtrace still running 3 s after its reader closed")
        let seconds = Double(LineReader.now() - closedAt) / 1e9
        print("| head -\(headLines) (\(firing ? "firing" : "idle")): exit \(Spawned.code(st)) \(seconds) s after the reader closed")
        #expect(Spawned.code(st) == 0)
        #expect(seconds < 3)
        let file = try JSONL.recording(rec)
        let last = JSONL.objects([file.lines.last ?? ""]).first
        #expect(last?["type"] as? String == "end")
        #expect(last?["reason"] as? String == "output-closed")
        let replay = try JSONL.analyze(rec)
        // An idle capture recorded no migration: analyze says so with its "no migration found" code.
        #expect(replay.status == (firing ? 0 : 8))
        #expect(replay.windows.count == file.windows)
        if firing { #expect(file.windows > 0) }
    }

    // MARK: 6: the disk fills up

    @Test func fullDiskStopsRecordingCleanly() throws {
        let dir = "/tmp/migtrace-tmpfs-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FaultFixture.shell("/bin/mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", dir])
        defer {
            _ = try? FaultFixture.shell("/bin/umount", [dir])
            rmdir(dir)
        }
        let rec = dir + "/full.rec"
        let target = try FaultTarget(count: 3000, ["--context", "--pace-us", "200"])
        let m = try attach(target, ["--format", "json", "--record", rec])
        target.go()
        let fired = try target.finish()
        let c = try finished(m)
        let file = try JSONL.recording(rec)
        let size = (try? FileManager.default.attributesOfItem(atPath: rec)[.size] as? Int) ?? -1
        let replay = try JSONL.analyze(rec)
        let rejected = (replay.doc["summary"] as? [String: Any])?["rejected_lines"] as? Int
        print(
            "disk full: fired \(fired.fired), live received \(c.received), recording \(size) bytes, \(file.lines.count) lines, \(file.windows) windows; analyze \(replay.windows.count) windows, rejected \(rejected ?? -1); code \(c.code); stderr \(c.stderr)"
        )
        #expect(c.code == 7)
        let err = c.stderr.joined(separator: "\n")
        #expect(err.contains("recording to \(rec) stopped: No space left on device"))
        #expect(err.contains("the file is valid up to its last complete event"))
        #expect(err.contains("free space or record elsewhere"))
        // Live analysis went on after the recording stopped.
        #expect(c.received == Int(fired.fired))
        #expect(c.windows.count == 3000)
        #expect(c.endReason == "target-exited")
        // The file is whole records only, each one readable, and it still ends with its end record (written into
        // room kept allocated for it), which says the recording stopped early.
        #expect(file.endsWithNewline)
        #expect(file.windows > 0 && file.windows < 3000)
        #expect(replay.status == 0)
        #expect(rejected == 0)
        #expect(replay.windows.count == file.windows)
        let last = JSONL.objects([file.lines.last ?? ""]).first
        #expect(last?["type"] as? String == "end")
        #expect(last?["reason"] as? String == "recording-stopped")
        #expect(!replay.stderr.contains("no end record"))
        // The room kept past the end is given back.
        var st = stat()
        #expect(stat(rec, &st) == 0 && Int(st.st_blocks) * 512 <= (Int(st.st_size) + 4095) / 4096 * 4096)
    }

    // MARK: 7: ring-buffer overflow

    @Test func fullDiskOnStandardOutputIsReported() throws {
        // The capture's output (not a recording) cannot be written: an error with a message and exit 1, as for
        // `analyze`, never a silent exit 0.
        let target = try FaultTarget(count: 1000, ["--context", "--pace-us", "2000", "--exit-after", "20"])
        let m = try Spawned(
            ["/bin/sh", "-c", "exec \"$0\" \"$@\" > /dev/full", CLI.binary, "attach", "--format", "json", String(target.pid)])
        // Nothing reaches a pipe to say it attached: give it the time the other tests' attach takes.
        usleep(1_500_000)
        target.go()
        let fired = try target.finish()
        let st = try #require(m.wait(timeout: 20), "migtrace did not end")
        let stderr = m.stderr.waitEOF(timeout: 5) ?? m.stderr.all
        print("full disk on stdout: fired \(fired.fired), code \(Spawned.code(st)), stderr \(stderr)")
        #expect(Spawned.code(st) == 1)
        #expect(stderr.contains { $0.contains("writing the output failed: No space left on device") })
    }

    @Test func ringBufferOverflowIsCountedExactly() throws {
        let target = try FaultTarget(count: 20_000)
        let rec = CLI.temporaryPath("overflow.rec")
        defer { unlink(rec) }
        let m = try attach(target, ["--format", "json", "--ring-buffer-size", "4096", "--record", rec])
        target.go()
        let fired = try target.finish()
        let c = try finished(m)
        let lost = JSONL.ofType(c.objects, "lost").compactMap { $0["kernel_drops"] as? Int }
        print(
            "overflow: fired \(fired.fired), received \(c.received), dropped \(c.kernelDrops), lost reports \(lost.count) (last \(lost.last ?? 0))"
        )
        #expect(fired.fired == 20_000)
        #expect(c.kernelDrops > 0)
        #expect(c.received + c.kernelDrops == Int(fired.fired))
        #expect(c.windows.count == c.received)
        #expect(!lost.isEmpty && lost == lost.sorted() && lost.last! <= c.kernelDrops)
        #expect(c.summary["consumer_drops"] as? Int == 0)
        try checkRecording(rec, c, reason: "target-exited")
    }

    // MARK: 8: two sessions on one target

    @Test func twoSessionsEachReceiveEveryEvent() throws {
        let target = try FaultTarget(count: 500, ["--context", "--pace-us", "200"])
        let a = try attach(target, ["--format", "json"])
        let b = try attach(target, ["--format", "json"])
        target.go()
        let fired = try target.finish()
        let ca = try finished(a)
        let cb = try finished(b)
        print("two sessions: fired \(fired.fired); received \(ca.received) and \(cb.received); drops \(ca.kernelDrops), \(cb.kernelDrops)")
        for c in [ca, cb] {
            #expect(c.received == Int(fired.fired))
            #expect(c.kernelDrops == 0)
            #expect(c.windows.count == 500)
            #expect(c.endReason == "target-exited")
        }
        // Same windows; only the timestamps differ (each session's BPF program reads the clock itself).
        func values(_ w: [String: Any]) -> NSDictionary {
            var w = w
            for k in ["type", "series", "line", "start_time", "end_time"] { w.removeValue(forKey: k) }
            return w as NSDictionary
        }
        #expect(ca.windows.map(values) == cb.windows.map(values))
    }

    // MARK: 9: two migrations in a row

    @Test func twoConsecutiveMigrationsGiveTwoCompleteSeries() throws {
        let target = try FaultTarget(count: 40, ["--context", "--pace-us", "1000", "--migrations", "2"])
        let m = try attach(target, ["--format", "json"])
        target.go()
        let fired = try target.finish()
        let c = try finished(m)
        let ends = JSONL.ofType(c.objects, "series_end")
        print(
            "two migrations: fired \(fired.fired), received \(c.received), series \(ends.map { "\($0["windows"] ?? "?") windows, \($0["final_state"] ?? "?")" })"
        )
        #expect(c.received == Int(fired.fired))
        #expect((c.summary["summary"] as? [String: Any])?["series"] as? Int == 2)
        #expect(JSONL.ofType(c.objects, "series").count == 2)
        #expect(ends.count == 2)
        #expect(ends.map { $0["windows"] as? Int } == [40, 40])
        #expect(ends.map { $0["final_state"] as? String } == ["completed", "completed"])
        #expect(
            JSONL.ofType(c.objects, "state").compactMap { $0["state"] as? String }
                == ["setup", "active", "completed", "setup", "active", "completed"])
        #expect(Set(c.windows.compactMap { $0["series"] as? Int }).count == 2)
    }

    // MARK: 10: least privilege

    static func asNobody(_ caps: [String]) -> [String] {
        let list = (["-all"] + caps.map { "+" + $0 }).joined(separator: ",")
        return [
            "/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
            "--inh-caps=\(list)", "--ambient-caps=\(list)", "--bounding-set=\(list)",
        ]
    }

    /// Runs migtrace attach as nobody with exactly `caps` against a fake_qemu owned by root (or by nobody).
    func capture(caps: [String], targetAsNobody: Bool) throws -> (target: UInt64?, c: Capture) {
        let target = try FaultTarget(count: 30, ["--context", "--pace-us", "200"], prefix: targetAsNobody ? Self.asNobody([]) : [])
        defer { target.kill9() }
        let m = try Spawned(Self.asNobody(caps) + [CLI.binaryForAnyUser, "attach", "--format", "json", String(target.pid)])
        // Either it attaches (header) or it fails before.
        _ = m.stdout.wait(timeout: 20) { $0.contains("\"type\":\"header\"") }
        if m.stdout.all.contains(where: { $0.contains("\"type\":\"header\"") }) {
            target.go()
            let fired = try target.finish()
            return (fired.fired, try finished(m))
        }
        return (nil, try finished(m))
    }

    @Test func leastPrivilegeIsSysAdminPlusSysPtrace() throws {
        // Another user's QEMU (libvirt runs it as qemu / libvirt-qemu): CAP_SYS_ADMIN + CAP_SYS_PTRACE suffice.
        let ok = try capture(caps: ["sys_admin", "sys_ptrace"], targetAsNobody: false)
        print("caps sys_admin,sys_ptrace: code \(ok.c.code), fired \(ok.target ?? 0), received \(ok.c.received)")
        #expect(ok.c.code == 0, "\(ok.c.stderr)")
        #expect(ok.target.map(Int.init) == ok.c.received)
        #expect(ok.c.windows.count == 30)

        // Same user: CAP_SYS_ADMIN alone.
        let same = try capture(caps: ["sys_admin"], targetAsNobody: true)
        print("caps sys_admin, same user: code \(same.c.code), received \(same.c.received)")
        #expect(same.c.code == 0, "\(same.c.stderr)")
        #expect(same.target.map(Int.init) == same.c.received)

        // Without CAP_SYS_PTRACE, another user's /proc/<pid>/exe is closed: exit 4, naming the capability.
        let noPtrace = try capture(caps: ["sys_admin", "bpf", "perfmon"], targetAsNobody: false)
        print("caps sys_admin,bpf,perfmon: code \(noPtrace.c.code): \(noPtrace.c.stderr)")
        #expect(noPtrace.c.code == 4)
        #expect(noPtrace.c.stderr.joined().contains("needs CAP_SYS_PTRACE (missing)"))

        // CAP_BPF + CAP_PERFMON (+ CAP_SYS_PTRACE) no longer attach uprobes: exit 4, naming CAP_SYS_ADMIN.
        let noAdmin = try capture(caps: ["bpf", "perfmon", "sys_ptrace"], targetAsNobody: false)
        print("caps bpf,perfmon,sys_ptrace: code \(noAdmin.c.code): \(noAdmin.c.stderr.last ?? "")")
        #expect(noAdmin.c.code == 4)
        #expect(noAdmin.c.stderr.joined().contains("it needs CAP_SYS_ADMIN (missing"))
    }

    // MARK: recording files: never through a symlink, never over a file without --force, always 0600

    @Test func recordingFileSafety() throws {
        let target = try FaultTarget(count: 5)
        defer { target.kill9() }
        let victim = CLI.temporaryPath("victim")
        let link = CLI.temporaryPath("link.rec")
        try "precious\n".write(toFile: victim, atomically: false, encoding: .utf8)
        chmod(victim, 0o644)
        symlink(victim, link)
        defer { unlink(victim); unlink(link) }
        let pid = String(target.pid)
        let viaLink = try CLI.run(["attach", "--record", link, pid])
        #expect(viaLink.status == 7)
        #expect(viaLink.stderr.contains("is a symbolic link; migtrace never writes through one"))
        let viaLinkForced = try CLI.run(["attach", "--force", "--record", link, pid])
        #expect(viaLinkForced.status == 7)
        let existing = try CLI.run(["attach", "--record", victim, pid])
        #expect(existing.status == 7)
        #expect(existing.stderr.contains("already exists; choose another name or pass --force"))
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "precious\n")
        // --force overwrites a regular file and makes it 0600.
        let m = try attach(target, ["--format", "json", "--force", "--record", victim])
        target.go()
        _ = try target.finish()
        let c = try finished(m)
        var st = stat()
        #expect(stat(victim, &st) == 0 && st.st_mode & 0o777 == 0o600)
        #expect(c.code == 0)
        try checkRecording(victim, c, reason: "target-exited")
    }

    // MARK: 11: other processes stay out (in-kernel filter; see also MigtraceBPFTests.otherProcessesAreFiltered)

    @Test func otherProcessRunningTheSameBinaryIsNotTraced() throws {
        let target = try FaultTarget(count: 300)
        let other = try FaultTarget(count: 500)
        let m = try attach(target, ["--format", "json"])
        other.go()
        target.go()
        let o = try other.finish()
        let t = try target.finish()
        let c = try finished(m)
        print("filter: target fired \(t.fired), other fired \(o.fired), received \(c.received)")
        #expect(o.fired == 500)
        #expect(c.received == 300)
        #expect(c.windows.count == 300)
    }
}
