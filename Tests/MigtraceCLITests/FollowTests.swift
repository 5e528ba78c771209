// SPDX-License-Identifier: Apache-2.0
import Foundation
import MigtraceCore
import MigtraceTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `migtrace analyze --follow FILE`: a growing log analysed live, as `tail -F` follows it.
@Suite(.serialized) struct FollowTests {
    /// Appends `lines` (each with its newline) to `path` with one write(2), creating the file when needed.
    static func append(_ path: String, _ text: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        try #require(fd >= 0, "open \(path): \(String(cString: strerror(errno)))")
        defer { close(fd) }
        let bytes = Array(text.utf8)
        #expect(write(fd, bytes, bytes.count) == bytes.count)
    }

    static func joined(_ lines: ArraySlice<Substring>) -> String { lines.map { $0 + "\n" }.joined() }

    /// The windows of a live JSON Lines output.
    static func windows(_ lines: [String]) -> [[String: Any]] { JSONL.ofType(JSONL.objects(lines), "window") }

    /// Waits until the follower's output holds `count` windows.
    static func waitForWindows(_ m: Spawned, _ count: Int, timeout: Double = 10) -> Bool {
        m.stdout.wait(count: count, timeout: timeout) { $0.hasPrefix("{\"type\":\"window\"") }
    }

    /// Hand-made from the real `7.2-converge.log` (QEMU 7.2, 23 windows): its lines are written to a file in
    /// pieces while `--follow` reads it — appended (the last line in two writes), the file renamed away and
    /// appended to under its new name (the writer still has it open), a new file created under the old name,
    /// then that file truncated to nothing and written again. Every window arrives once, as `analyze` of the
    /// whole fixture gives it, and each change is said on stderr.
    @Test func appendRotationAndTruncationAreFollowed() throws {
        let fixture = CLI.fixture("7.2-converge.log")
        let lines = try String(contentsOfFile: fixture, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        try #require(lines.count == 62)
        let dir = CLI.temporaryPath("follow")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = dir + "/dom.log"
        try Self.append(log, Self.joined(lines[0..<20]))
        let m = try Spawned([CLI.binary, "analyze", "--follow", "--format", "json", log])
        try #require(m.stdout.wait(timeout: 10) { $0.hasPrefix("{\"type\":\"header\"") }, "no header: \(m.stderr.all)")
        let windowsIn = { (range: Range<Int>) in lines[range].filter { $0.hasPrefix("migrate_transferred") }.count }
        try #require(Self.waitForWindows(m, windowsIn(0..<20)), "the first windows did not arrive: \(m.stderr.all)")
        // A line in two writes: nothing of it is analysed before its newline.
        let split = String(lines[20])
        try Self.append(log, String(split.prefix(25)))
        usleep(300_000)
        try Self.append(log, String(split.dropFirst(25)) + "\n" + Self.joined(lines[21..<30]))
        try #require(Self.waitForWindows(m, windowsIn(0..<30)))
        // Rotation: renamed, written to under the new name, then a new file in its place.
        try #expect(rename(log, log + ".1") == 0)
        try Self.append(log + ".1", Self.joined(lines[30..<35]))
        try #require(m.stderr.wait(timeout: 5) { $0.contains("was removed or renamed") }, "\(m.stderr.all)")
        try Self.append(log, Self.joined(lines[35..<45]))
        try #require(m.stderr.wait(timeout: 5) { $0.contains("was replaced (rotated)") }, "\(m.stderr.all)")
        try #require(Self.waitForWindows(m, windowsIn(0..<45)))
        // Truncation in place (copytruncate), then the rest written from the start.
        try #require(truncate(log, 0) == 0)
        try #require(m.stderr.wait(timeout: 5) { $0.contains("was truncated") }, "\(m.stderr.all)")
        try Self.append(log, Self.joined(lines[45...]))
        try #require(Self.waitForWindows(m, windowsIn(0..<62)))
        m.signal(SIGINT)
        let status = try #require(m.wait(timeout: 10), "--follow did not end on SIGINT")
        #expect(Spawned.code(status) == 0, "\(m.stderr.all)")
        let out = m.stdout.waitEOF(timeout: 5) ?? m.stdout.all
        let live = Self.windows(out)
        let whole = try JSONL.analyze(fixture)
        #expect(live.count == 23)
        #expect(live.map(JSONL.strip) == whole.windows.map(JSONL.strip), "the followed windows differ from the file's")
        let summary = JSONL.ofType(JSONL.objects(out), "summary").last ?? [:]
        #expect(summary["end_reason"] as? String == "sigint")
        #expect(summary["events_received"] as? Int == 62)
        let s = summary["summary"] as? [String: Any] ?? [:]
        #expect(s["windows"] as? Int == 23)
        #expect(s["series"] as? Int == 1, "rotation and truncation do not split the migration's series")
        #expect(s["threshold_exact_windows"] as? Int == 23)
        #expect(s["rejected_lines"] as? Int == 0)
        let states = JSONL.ofType(JSONL.objects(out), "state").compactMap { $0["state"] as? String }
        #expect(states == ["setup", "active", "completed"])
        #expect(!JSONL.ofType(JSONL.objects(out), "migration").isEmpty)
        let err = m.stderr.waitEOF(timeout: 5) ?? []
        #expect(err.contains { $0.contains("was truncated") && $0.contains("→ 0 bytes") }, "\(err)")
    }

    /// Text output: the header, the windows as they come and the summary when SIGTERM ends it; a line cut by the
    /// truncation is reported, not parsed. Hand-made from the real `10.0-converge.log`.
    @Test func textFollowEndsWithSummaryOnSIGTERM() throws {
        let fixture = CLI.fixture("10.0-converge.log")
        let text = try String(contentsOfFile: fixture, encoding: .utf8)
        let dir = CLI.temporaryPath("follow-text")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = dir + "/mig.log"
        let m = try Spawned([CLI.binary, "analyze", "--follow", log])
        // Not there yet: waited for, and said so.
        try #require(m.stderr.wait(timeout: 10) { $0.contains("waiting for it to appear") }, "\(m.stderr.all)")
        try Self.append(log, "migrate_transferred transferred 34")
        usleep(300_000)
        try #require(truncate(log, 0) == 0)
        try #require(m.stderr.wait(timeout: 5) { $0.contains("was truncated (34 → 0 bytes)") }, "\(m.stderr.all)")
        try #require(
            m.stderr.wait(timeout: 5) { $0.contains("mig.log:1: incomplete line of 34 bytes when the file was truncated; skipped") },
            "\(m.stderr.all)")
        try Self.append(log, text)
        let windows = try CLI.windowLines("10.0-converge.log")
        try #require(m.stdout.wait(timeout: 10) { $0.hasPrefix("    \(windows - 1) ") || $0.hasPrefix("   \(windows - 1) ") })
        m.signal(SIGTERM)
        let status = try #require(m.wait(timeout: 10))
        #expect(Spawned.code(status) == 0)
        let out = (m.stdout.waitEOF(timeout: 5) ?? []).joined(separator: "\n")
        #expect(out.contains("following \(log)"))
        #expect(out.contains("summary: 1 series, \(windows) windows, thresholds exact in \(windows)/\(windows)"))
        #expect(out.contains("  · migration state: completed"))
        #expect(out.contains("  · migration: "))
        let err = m.stderr.waitEOF(timeout: 5) ?? []
        #expect(err.contains { $0.contains("until sigterm") && $0.contains("truncated 1×") }, "\(err)")
    }

    /// `copytruncate` under a writer that did not open the file with O_APPEND: its next write lands at its old
    /// offset, after a hole of NUL bytes, which the follower skips. Hand-made from the real `7.2-converge.log`.
    @Test func truncationUnderAWriterThatKeepsItsOffset() throws {
        let fixture = CLI.fixture("7.2-converge.log")
        let lines = try String(contentsOfFile: fixture, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        let dir = CLI.temporaryPath("follow-hole")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = dir + "/qemu.log"
        let fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        try #require(fd >= 0)
        defer { close(fd) }
        func put(_ text: String) { let b = Array(text.utf8); #expect(write(fd, b, b.count) == b.count) }
        put(Self.joined(lines[0..<30]))
        let m = try Spawned([CLI.binary, "analyze", "--follow", "--format", "json", log])
        let first = lines[0..<30].filter { $0.hasPrefix("migrate_transferred") }.count
        try #require(Self.waitForWindows(m, first), "\(m.stderr.all)")
        try #require(truncate(log, 0) == 0)
        try #require(m.stderr.wait(timeout: 5) { $0.contains("was truncated") }, "\(m.stderr.all)")
        put(Self.joined(lines[30...]))
        try #require(Self.waitForWindows(m, 23), "\(Self.windows(m.stdout.all).count) windows: \(m.stderr.all)")
        m.signal(SIGINT)
        _ = try #require(m.wait(timeout: 10))
        let out = m.stdout.waitEOF(timeout: 5) ?? m.stdout.all
        #expect(Self.windows(out).map(JSONL.strip) == (try JSONL.analyze(fixture)).windows.map(JSONL.strip))
        let summary = JSONL.ofType(JSONL.objects(out), "summary").last?["summary"] as? [String: Any] ?? [:]
        #expect(summary["rejected_lines"] as? Int == 0)
    }

    @Test func followTakesOneFile() throws {
        let two = try CLI.run(["analyze", "--follow", "a.log", "b.log"])
        #expect(two.status == 64)
        #expect(two.stderr.contains("--follow takes exactly one file, not standard input or several (got 2 inputs)"))
        let stdin = try CLI.run(["analyze", "--follow", "-"])
        #expect(stdin.status == 64)
        #expect(stdin.stderr.contains("(got -)"))
        let csv = try CLI.run(["analyze", "--follow", "--format", "csv", "a.log"])
        #expect(csv.status == 64)
        #expect(csv.stderr.contains("csv is for finished files"))
        let binary = try CLI.run(["analyze", "--follow", CLI.binary])
        #expect(binary.status == 1)
        #expect(binary.stderr.contains("not a trace but an ELF file"))
    }
}

/// A real QEMU 7.2 (Debian's, log backend only) migrating on loopback while `--follow` reads its `-D` log, and
/// `attach` on that QEMU naming the command.
@Suite(.serialized, .requiresRoot) struct RealQEMUFollowTests {
    /// `converge` starts QEMU with no `-trace` at all and turns the events on at run time with the QMP lines that
    /// `attach` printed for it, as a user would; `stall` starts it with `-trace` (migrate.py's default events).
    @Test(arguments: [("converge", true), ("stall", false)])
    func followsARealMigrationAsItRuns(_ scenario: String, _ turnedOnByAttachsLines: Bool) throws {
        let dir = CLI.temporaryPath("follow-qemu")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = dir + "/source.log"
        let go = dir + "/go"
        let commands = dir + "/qmp.jsonl"
        let driver = try Spawned(
            [
                "/usr/bin/env", "python3", CLI.repository.appendingPathComponent("Tests/qemu/migrate.py").path,
                "--qemu", "7.2", "--scenario", scenario, "--out", log, "--msg-timestamp", "--go-file", go, "--facts", dir + "/facts.json",
            ] + (turnedOnByAttachsLines ? ["--no-trace", "--qmp-after-go", commands] : []))
        try #require(driver.stdout.wait(timeout: 30) { $0.hasPrefix("source-pid ") }, "migrate.py did not start QEMU: \(driver.stderr.all)")
        let pid = try #require(driver.stdout.all.first { $0.hasPrefix("source-pid ") }.flatMap { Int32($0.dropFirst(11)) })
        // attach refuses Debian's QEMU and names the follow command on its -D file, and the events to turn on.
        let attach = try CLI.run(["attach", String(pid)])
        #expect(attach.status == 6)
        #expect(attach.stderr.contains("built without the dtrace trace backend"))
        #expect(attach.stderr.contains("its trace lines go to its -D file: migtrace analyze --follow \(log)"), "\(attach.stderr)")
        let qmp = attach.stderr.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter {
            $0.hasPrefix("{\"execute\":\"trace-event-set-state\"")
        }
        #expect(qmp == TracingRecipe.qmp, "\(attach.stderr)")
        #expect(qmp.contains("{\"execute\":\"trace-event-set-state\",\"arguments\":{\"name\":\"migrate_pending*\",\"enable\":true}}"))
        if turnedOnByAttachsLines {
            #expect(FileManager.default.createFile(atPath: commands, contents: Data(qmp.map { $0 + "\n" }.joined().utf8)))
        }
        let m = try Spawned([CLI.binary, "analyze", "--follow", "--format", "json", log])
        try #require(m.stdout.wait(timeout: 10) { $0.hasPrefix("{\"type\":\"header\"") }, "\(m.stderr.all)")
        #expect(FileManager.default.createFile(atPath: go, contents: nil))
        // Windows arrive while QEMU migrates.
        var seenWhileRunning = 0
        var driverStatus: Int32?
        while driverStatus == nil {
            driverStatus = driver.wait(timeout: 0.2)
            if driverStatus == nil { seenWhileRunning = FollowTests.windows(m.stdout.all).count }
        }
        let st = try #require(driverStatus ?? driver.wait(timeout: 90), "migrate.py did not end")
        #expect(Spawned.code(st) == 0, "migrate.py 7.2 \(scenario): \(driver.stderr.all)")
        let logged = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").filter { $0.contains(":migrate_transferred ") }
            .count
        try #require(logged >= 10, "only \(logged) windows logged")
        try #require(FollowTests.waitForWindows(m, logged), "\(FollowTests.windows(m.stdout.all).count) of \(logged) windows arrived")
        m.signal(SIGINT)
        let status = try #require(m.wait(timeout: 10))
        #expect(Spawned.code(status) == 0, "\(m.stderr.all)")
        let out = JSONL.objects(m.stdout.waitEOF(timeout: 5) ?? m.stdout.all)
        let live = JSONL.ofType(out, "window")
        #expect(seenWhileRunning > 0 && seenWhileRunning < logged + 1, "\(seenWhileRunning) windows before QEMU ended")
        // Every window QEMU wrote, with the values of a post-mortem analysis of the finished file.
        let whole = try JSONL.analyze(log)
        #expect(whole.windows.count == logged)
        #expect(live.map(JSONL.strip) == whole.windows.map(JSONL.strip), "followed windows differ from analyze of the file")
        let liveFindings = JSONL.ofType(out, "anomaly").map { "\($0["rule"] ?? "")/\($0["severity"] ?? "")" }
        let fileFindings = ((whole.doc["anomalies"] as? [[String: Any]]) ?? []).map { "\($0["rule"] ?? "")/\($0["severity"] ?? "")" }
        #expect(liveFindings == fileFindings)
        if scenario == "stall" { #expect(liveFindings.contains("thread-stall/critical"), "\(liveFindings)") }
        let summary = JSONL.ofType(out, "summary").last?["summary"] as? [String: Any] ?? [:]
        let fileSummary = whole.doc["summary"] as? [String: Any] ?? [:]
        for key in ["windows", "threshold_exact_windows", "worst_severity", "series"] {
            #expect("\(summary[key] ?? "nil")" == "\(fileSummary[key] ?? "nil")", "summary \(key)")
        }
        #expect(JSONL.ofType(out, "state").compactMap { $0["state"] as? String } == ["setup", "active", "completed"])
        if turnedOnByAttachsLines {
            // QEMU 7.2 took every line but 11.1's qemu_savevm_query_pending (the refusal says it may be unknown).
            let facts =
                try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/facts.json"))) as? [String: Any]
            let sent = facts?["qmp_after_go"] as? [[String: Any]] ?? []
            #expect(sent.count == TracingRecipe.qmp.count)
            let refused = sent.filter { $0["error"] != nil }.compactMap { ($0["arguments"] as? [String: Any])?["name"] as? String }
            #expect(refused == ["qemu_savevm_query_pending"], "\(sent)")
            // The lines turned on every event migtrace reads: windows, pending, states, low pending, syncs.
            let text = try String(contentsOfFile: log, encoding: .utf8)
            for event in [":migrate_pending ", ":migrate_set_state ", ":migration_thread_low_pending ", ":migration_bitmap_sync_end "] {
                #expect(text.contains(event), "\(event) not in the log")
            }
            #expect(!text.contains("migration_bitmap_sync_start"), "only the minimal set is on")
        }
        print(
            "7.2 \(scenario)\(turnedOnByAttachsLines ? " (events turned on with attach's QMP lines)" : ""): \(live.count) windows followed (\(seenWhileRunning) before QEMU ended), equal to analyze of the file"
        )
    }

    /// libvirt's way: QEMU's stderr is the domain log and `-name guest=DOM,…` names the domain.
    @Test func attachNamesTheDomainLogAndVirsh() throws {
        let dir = CLI.temporaryPath("follow-libvirt")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let domainLog = dir + "/vm1.log"
        #expect(FileManager.default.createFile(atPath: domainLog, contents: nil))
        let q = Process()
        q.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-system-x86_64")
        q.arguments = ["-name", "guest=vm1,debug-threads=on", "-machine", "none", "-nodefaults", "-display", "none", "-S"]
        q.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: domainLog))
        try q.run()
        defer { kill(q.processIdentifier, SIGKILL); q.waitUntilExit() }
        usleep(300_000)
        let r = try CLI.run(["attach", String(q.processIdentifier)])
        #expect(r.status == 6)
        #expect(
            r.stderr.contains(
                "for e in migrate_transferred 'migrate_pending*' qemu_savevm_query_pending migrate_set_state migration_thread_low_pending migration_bitmap_sync_end; do virsh qemu-monitor-command vm1 --hmp \"trace-event $e on\"; done"
            ), "\(r.stderr)")
        #expect(
            r.stderr.contains("its trace lines go to its standard error, a file: migtrace analyze --follow \(domainLog)"), "\(r.stderr)")
    }
}

/// `--follow` on a real terminal (tmux, as ``LiveViewTmuxTests``): the live view of `attach`, redrawn in place as
/// the log grows, and the summary below it after Ctrl-C. Hand-made from the real `10.0-demo.log` (56 windows),
/// written in two halves.
@Suite(.serialized) struct FollowLiveViewTests {
    @Test func followDrawsTheLiveViewAndCtrlCLeavesTheSummary() throws {
        let fixture = CLI.fixture("10.0-demo.log")
        let lines = try String(contentsOfFile: fixture, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        let dir = CLI.temporaryPath("follow-view")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = dir + "/demo.log"
        let half = lines.count / 2
        try FollowTests.append(log, FollowTests.joined(lines[0..<half]))
        let term = try LiveViewTmuxTests.Terminal("\(CLI.binary) analyze --follow \(log); echo migtrace-exit=$?; sleep 120")
        defer { term.close() }
        let firstWindows = lines[0..<half].filter { $0.hasPrefix("migrate_transferred") }.count
        let (before, _) = try term.wait(30) { s in s.contains { $0.contains("state active · window \(firstWindows - 1) ") } }
        try #require(before.contains { $0.hasPrefix("── live · series 0 · state active · window \(firstWindows - 1) ") }, "\(before)")
        try FollowTests.append(log, FollowTests.joined(lines[half...]))
        let (after, _) = try term.wait(30) { s in s.contains { $0.hasPrefix("── live · series 0 · state completed · window 55 ") } }
        let frames = after.indices.filter { after[$0].hasPrefix("── live") }
        #expect(frames.count == 1, "one frame, redrawn in place: \(after)")
        #expect(!after.contains { $0.hasPrefix("   win    t(s)") }, "no line-per-window table")
        try term.tmux(["send-keys", "-t", "t", "C-c"])
        let (screen, _) = try term.wait(30) { $0.contains { $0.hasPrefix("migtrace-exit=") } }
        #expect(screen.contains("migtrace-exit=0"), "\(screen.joined(separator: "\n"))")
        let frame = try #require(screen.firstIndex { $0.hasPrefix("── live · series 0 · state completed · window 55 · ") })
        #expect(screen[frame].contains(" · 137.2 MB sent ─"))
        let summary = try #require(screen.firstIndex { $0.hasPrefix("summary: 1 series, 56 windows, thresholds exact in 56/56") })
        #expect(summary > frame)
        #expect(screen.contains { $0.contains("followed \(log) until sigint") })
    }
}
