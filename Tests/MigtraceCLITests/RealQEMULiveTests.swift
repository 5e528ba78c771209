// SPDX-License-Identifier: Apache-2.0
import Foundation
import MigtraceTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The two QEMUs with USDT probes that `scripts/build-qemu-usdt` builds from Debian's QEMU 10.0.13 source (the
/// dtrace, log and simple trace backends at once): `10.0` as is (era B) and `eraC` with QEMU 11.1's switchover
/// arithmetic patched in (Tests/qemu/patches).
enum USDTQEMU {
    static let builds = ["10.0", "eraC"]

    static func binary(_ build: String) -> String {
        CLI.repository.appendingPathComponent(".cache/qemu-usdt/\(build)/qemu-system-x86_64").path
    }

    /// The binary, or a failure that says how to build it (`make test` builds both before the tests run).
    static func require(_ build: String) throws -> String {
        let path = binary(build)
        try #require(
            access(path, X_OK) == 0,
            "\(path) is missing: `make test` builds it (scripts/build-qemu-usdt, as root); run that script, then the tests again")
        return path
    }
}

/// One migrate_transferred, pending or state line of QEMU's own log (`-trace enable=migrate*`, log backend), or
/// the same event as `migtrace attach --record` recorded it from the USDT probe.
struct ProbeFire: Equatable, CustomStringConvertible {
    var name: String
    var args: [UInt64]
    var state: String?

    var description: String { "\(name)\(args)\(state.map { " " + $0 } ?? "")" }

    static let compared: Set<String> = [
        "migrate_transferred", "migrate_pending_estimate", "migrate_pending_exact", "migrate_set_state",
    ]

    /// The compared events of a log file, in file order; the numbers are the integers of the line.
    static func fromLog(_ text: String) -> [ProbeFire] {
        text.split(separator: "\n").compactMap { line -> ProbeFire? in
            let words = line.split(separator: " ")
            guard let first = words.first, compared.contains(String(first)) else { return nil }
            let name = String(first)
            if name == "migrate_set_state" { return ProbeFire(name: name, args: [], state: words.last.map(String.init)) }
            let numbers = line.split(whereSeparator: { !$0.isNumber }).compactMap { UInt64($0) }
            return ProbeFire(name: name, args: numbers, state: nil)
        }
    }

    /// The compared events of a migtrace recording, in file order.
    static func fromRecording(_ lines: [String]) -> [ProbeFire] {
        JSONL.objects(lines).compactMap { o -> ProbeFire? in
            guard o["type"] as? String == "event", let name = o["probe"] as? String, compared.contains(name) else { return nil }
            if name == "migrate_set_state" { return ProbeFire(name: name, args: [], state: o["state"] as? String) }
            let args = (o["args"] as? [NSNumber] ?? []).map(\.uint64Value)
            return ProbeFire(name: name, args: args, state: nil)
        }
    }
}

/// Real migrations on loopback between two QEMUs built with USDT probes, with `migtrace attach` on the source
/// QEMU: what arrives live is compared, event by event, with what that same QEMU wrote to its own log.
@Suite(.serialized, .requiresRoot)
struct RealQEMULiveTests {
    /// One migration and its capture.
    struct Run {
        var build: String
        var scenario: String
        var log: [ProbeFire]
        var recorded: [ProbeFire]
        var recordingLines: [String]
        var live: [[String: Any]]
        var summary: [String: Any]
        var code: Int32
        var stderr: [String]
        var facts: [String: Any]
        var recordPath: String
        var logPath: String
        var windows: [[String: Any]] { JSONL.ofType(live, "window") }
    }

    /// Runs `scenario` with Tests/qemu/migrate.py on a usdt build, traced with `-trace enable=migrate*` into its log
    /// while `migtrace attach --format json --record` is attached to the source before `migrate`. migtrace ends when
    /// the source QEMU exits.
    func migrate(_ build: String, _ scenario: String, in dir: String) throws -> Run {
        _ = try USDTQEMU.require(build)
        let log = dir + "/source.log"
        let facts = dir + "/facts.json"
        let go = dir + "/go"
        let rec = dir + "/capture.rec"
        let driver = try Spawned([
            "/usr/bin/env", "python3", CLI.repository.appendingPathComponent("Tests/qemu/migrate.py").path,
            "--qemu", "usdt-\(build)", "--scenario", scenario, "--out", log, "--facts", facts,
            "--trace-glob", "migrate*", "--go-file", go,
        ])
        try #require(
            driver.stdout.wait(timeout: 30) { $0.hasPrefix("source-pid ") }, "migrate.py did not start QEMU: \(driver.stderr.all)")
        let pid = try #require(driver.stdout.all.first { $0.hasPrefix("source-pid ") }.flatMap { Int32($0.dropFirst(11)) })
        let m = try Spawned([CLI.binary, "attach", "--format", "json", "--record", rec, String(pid)])
        try #require(
            m.stdout.wait(timeout: 20) { $0.hasPrefix("{\"type\":\"header\"") }, "migtrace did not attach: \(m.stderr.all)")
        #expect(FileManager.default.createFile(atPath: go, contents: nil))
        let driverStatus = try #require(driver.wait(timeout: 90), "migrate.py did not end")
        #expect(Spawned.code(driverStatus) == 0, "migrate.py \(build) \(scenario): \(driver.stderr.waitEOF(timeout: 5) ?? [])")
        let st = try #require(m.wait(timeout: 20), "migtrace attach did not end after QEMU exited")
        let lines = m.stdout.waitEOF(timeout: 5) ?? m.stdout.all
        let objects = JSONL.objects(lines)
        let recording = try JSONL.recording(rec)
        return Run(
            build: build, scenario: scenario, log: ProbeFire.fromLog(try String(contentsOfFile: log, encoding: .utf8)),
            recorded: ProbeFire.fromRecording(recording.lines), recordingLines: recording.lines, live: objects,
            summary: JSONL.ofType(objects, "summary").last ?? [:], code: Spawned.code(st),
            stderr: m.stderr.waitEOF(timeout: 5) ?? [],
            facts: (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: facts))) as? [String: Any])
                ?? [:],
            recordPath: rec, logPath: log)
    }

    /// The five traced values of a live window, as QEMU passed them to the probe.
    static func traced(_ w: [String: Any]) -> [UInt64] {
        ["transferred_bytes", "time_spent_ms", "bandwidth_traced", "switchover_bw_traced", "threshold_traced_bytes"].map {
            (w[$0] as? NSNumber)?.uint64Value ?? .max
        }
    }

    /// Every check of one live migration; returns the number of windows seen.
    @discardableResult
    func check(_ r: Run) throws -> Int {
        let what = "\(r.build) \(r.scenario)"
        #expect(r.code == 0, "\(what): migtrace attach exited \(r.code): \(r.stderr)")
        #expect(r.summary["end_reason"] as? String == "target-exited", "\(what)")
        // Zero drops, and every event handed over was recorded.
        #expect(r.summary["kernel_drops"] as? Int == 0, "\(what)")
        #expect(r.summary["consumer_drops"] as? Int == 0, "\(what)")
        #expect(
            r.summary["events_received"] as? Int == r.recordingLines.filter { $0.hasPrefix("{\"type\":\"event\"") }.count,
            "\(what)")
        // Every window, pending query and state change QEMU logged arrived through the probes with identical
        // values, in the same order, and nothing else did.
        let logWindows = r.log.filter { $0.name == "migrate_transferred" }
        try #require(logWindows.count >= 10, "\(what): only \(logWindows.count) windows in QEMU's log")
        #expect(r.recorded.count == r.log.count, "\(what): \(r.recorded.count) recorded, \(r.log.count) logged")
        for (i, (got, want)) in zip(r.recorded, r.log).enumerated() where got != want {
            Issue.record("\(what): event \(i) recorded as \(got), logged as \(want)")
            break
        }
        #expect(r.recorded.filter { $0.name == "migrate_pending_estimate" }.count >= 5, "\(what)")
        #expect(r.recorded.contains { $0.name == "migrate_pending_exact" }, "\(what)")
        #expect(
            r.recorded.compactMap(\.state).suffix(3) == ["active", "device", "completed"], "\(what): \(r.recorded.compactMap(\.state))")
        // The live windows (attach's own output, as they arrived) are QEMU's logged windows.
        #expect(r.windows.map(Self.traced) == logWindows.map(\.args), "\(what)")
        #expect(r.windows.map { $0["index"] as? Int ?? -1 } == Array(0..<r.windows.count), "\(what)")
        // Pending reached the windows live: every window after the first pending query carries one.
        #expect(r.windows.dropFirst().allSatisfy { $0["pending_bytes"] as? NSNumber != nil }, "\(what)")
        // The arithmetic of the build: era B for Debian's source, era C (11.1) for the patched one, all exact.
        let era = r.build == "eraC" ? "C" : "B"
        #expect(r.windows.allSatisfy { $0["era"] as? String == era }, "\(what): era \(era)")
        #expect(r.windows.allSatisfy { $0["threshold_exact"] as? Bool == true }, "\(what)")
        #expect(r.windows.allSatisfy { $0["bandwidth_exact"] as? Bool == true }, "\(what)")
        try checkArithmetic(r, logWindows.map(\.args))
        // The recording replays to the same analysis: the same windows, findings and summary.
        let replay = try JSONL.analyze(r.recordPath)
        #expect(replay.status == 0, "\(what): \(replay.stderr)")
        #expect(replay.windows.map(JSONL.strip) == r.windows.map(JSONL.strip), "\(what): replayed windows differ")
        let liveFindings = JSONL.ofType(r.live, "anomaly").map { "\($0["rule"] ?? "")/\($0["severity"] ?? "")" }
        let replayFindings = ((replay.doc["anomalies"] as? [[String: Any]]) ?? []).map { "\($0["rule"] ?? "")/\($0["severity"] ?? "")" }
        #expect(liveFindings.sorted() == replayFindings.sorted(), "\(what)")
        if r.scenario == "stall" {
            // The stopped source's window arrived live, once it ran again, and was called out as it came.
            #expect(r.windows.contains { ($0["time_spent_ms"] as? Int ?? 0) >= 1400 }, "\(what)")
            #expect(liveFindings.contains("thread-stall/critical"), "\(what): \(liveFindings)")
        }
        let liveSummary = r.summary["summary"] as? [String: Any] ?? [:]
        let replaySummary = replay.doc["summary"] as? [String: Any] ?? [:]
        for key in ["windows", "threshold_exact_windows", "worst_severity"] {
            #expect("\(liveSummary[key] ?? "nil")" == "\(replaySummary[key] ?? "nil")", "\(what): summary \(key)")
        }
        // And QEMU's own log gives the same analysis, window for window (its times are relative: not compared).
        let fromLog = try JSONL.analyze(r.logPath)
        let analysed = ["transferred_bytes", "bandwidth_traced", "threshold_rebuilt_bytes", "downtime_limit_ms", "era", "switchover_basis"]
        #expect(
            fromLog.windows.map { w in analysed.map { "\(w[$0] ?? "nil")" } }
                == r.windows.map { w in analysed.map { "\(w[$0] ?? "nil")" } },
            "\(what): the log's analysis differs")
        print("\(what): \(r.windows.count) windows, \(r.recorded.count) events compared, 0 drops")
        return r.windows.count
    }

    /// The traced values follow the build's arithmetic, recomputed here from transferred and time_spent with the
    /// downtime limit and the avail-switchover-bandwidth values the driver set (reference §1.2, §1.5).
    func checkArithmetic(_ r: Run, _ windows: [[UInt64]]) throws {
        let initial = r.facts["parameters_initial"] as? [String: Any] ?? [:]
        let limit = Double((initial["downtime-limit"] as? NSNumber)?.uint64Value ?? 300)
        // The values avail-switchover-bandwidth took, in order (0 = unset).
        var avail: [UInt64] = [(initial["avail-switchover-bandwidth"] as? NSNumber)?.uint64Value ?? 0]
        for change in r.facts["parameter_changes"] as? [[String: Any]] ?? [] {
            if let v = ((change["params"] as? [String: Any])?["avail-switchover-bandwidth"] as? NSNumber)?.uint64Value,
                change["when"] as? String != "before-migrate"
            {
                avail.append(v)
            }
        }
        var phase = 0
        for (i, w) in windows.enumerated() {
            let (t, ms) = (Double(w[0]), Double(w[1]))
            func expected(_ user: UInt64) -> [UInt64] {
                if r.build == "eraC" {
                    let mbps = ((t * 8.0) / (ms / 1000.0)) / 1000.0 / 1000.0
                    let perMs = user != 0 ? Double(user) / 1000 : (mbps / 8 * 1000 * 1000) / 1000
                    return [w[0], w[1], UInt64(mbps), UInt64(perMs), UInt64(perMs * limit)]
                }
                let bandwidth = t / ms
                let perMs = user != 0 ? Double(user / 1000) : bandwidth
                return [w[0], w[1], UInt64(bandwidth), user / 1000, UInt64(perMs * limit)]
            }
            // A parameter change takes effect at the first window computed after it, and only once.
            if phase + 1 < avail.count, w == expected(avail[phase + 1]), w != expected(avail[phase]) { phase += 1 }
            #expect(w == expected(avail[phase]), "\(r.build) \(r.scenario): window \(i) \(w) is not \(expected(avail[phase]))")
        }
        #expect(phase == avail.count - 1, "\(r.build) \(r.scenario): every avail-switchover-bandwidth value was seen")
    }

    /// converge (estimated switchover bandwidth), switchover-bw (the user's, 16 then 64 MiB/s) on both builds, and
    /// stall (the source SIGSTOPped for 1.5 s while attached) on the era C one.
    static let runs: [(String, String)] = [
        ("10.0", "converge"), ("eraC", "converge"), ("10.0", "switchover-bw"), ("eraC", "switchover-bw"), ("eraC", "stall"),
    ]

    @Test(arguments: 0..<runs.count)
    func liveWindowsAreQEMUsOwn(_ i: Int) throws {
        let (build, scenario) = Self.runs[i]
        let dir = CLI.temporaryPath("usdt-\(build)-\(scenario)")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try check(try migrate(build, scenario, in: dir))
    }

    /// `attach --all` on the real binary, started before either QEMU: the source and the destination of a real
    /// migration are both captured from their first event (the probes are attached to the file, and QEMU starts after
    /// migtrace), each labelled and closed with its summary; the source's windows are the ones QEMU logged.
    @Test func attachAllFollowsTheSourceAndTheDestination() throws {
        let qemu = try USDTQEMU.require("10.0")
        let dir = CLI.temporaryPath("usdt-all")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let m = try Spawned([CLI.binary, "attach", "--all", "--binary", qemu, "--format", "json"])
        try #require(m.stderr.wait(timeout: 20) { $0.contains("watching every process of") }, "\(m.stderr.all)")
        let log = dir + "/source.log"
        let facts = dir + "/facts.json"
        let go = dir + "/go"
        let driver = try Spawned([
            "/usr/bin/env", "python3", CLI.repository.appendingPathComponent("Tests/qemu/migrate.py").path,
            "--qemu", "usdt-10.0", "--scenario", "converge", "--out", log, "--facts", facts, "--trace-glob", "migrate*",
            "--go-file", go,
        ])
        try #require(driver.stdout.wait(timeout: 30) { $0.hasPrefix("source-pid ") }, "\(driver.stderr.all)")
        #expect(FileManager.default.createFile(atPath: go, contents: nil))
        let driverStatus = try #require(driver.wait(timeout: 90), "migrate.py did not end")
        #expect(Spawned.code(driverStatus) == 0, "migrate.py: \(driver.stderr.waitEOF(timeout: 5) ?? [])")
        let f = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: facts))) as? [String: Any])
        let source = try #require(f["source_pid"] as? Int)
        let destination = try #require(f["destination_pid"] as? Int)
        #expect(m.stdout.wait(count: 2, timeout: 30) { $0.contains("\"type\":\"summary\"") }, "both closed when they exit")
        m.signal(SIGINT)
        let st = try #require(m.wait(timeout: 30))
        #expect(Spawned.code(st) == 0, "\(m.stderr.all)")
        let objects = JSONL.objects(m.stdout.waitEOF(timeout: 10) ?? [])
        let src = objects.filter { $0["pid"] as? Int == source }
        let dst = objects.filter { $0["pid"] as? Int == destination }
        #expect(Set(objects.compactMap { $0["pid"] as? Int }) == [source, destination], "nothing else runs this binary")
        for (who, mine) in [("source", src), ("destination", dst)] {
            #expect(JSONL.ofType(mine, "header").count == 1, "\(who)")
            let summary = try #require(JSONL.ofType(mine, "summary").last, "\(who)")
            #expect(summary["end_reason"] as? String == "target-exited", "\(who)")
            #expect(summary["kernel_drops"] as? Int == 0, "\(who)")
        }
        // The source's windows, live, are QEMU's logged ones, from the first.
        let logged = ProbeFire.fromLog(try String(contentsOfFile: log, encoding: .utf8)).filter { $0.name == "migrate_transferred" }
        try #require(logged.count >= 10)
        #expect(JSONL.ofType(src, "window").map(Self.traced) == logged.map(\.args))
        #expect(JSONL.ofType(src, "state").compactMap { $0["state"] as? String }.suffix(3) == ["active", "device", "completed"])
        // The destination sends nothing; its own states say it received the migration.
        #expect(JSONL.ofType(dst, "window").isEmpty)
        #expect(JSONL.ofType(dst, "state").compactMap { $0["state"] as? String }.last == "completed", "\(dst)")
        print("attach --all: source \(JSONL.ofType(src, "window").count) windows, destination \(JSONL.ofType(dst, "state").count) states")
    }

    /// `migtrace probes` lists every migration probe site of the real binary (pc, semaphore, argument string) as
    /// binutils' readelf reads the ELF notes, and counts all of the binary's sites.
    @Test(arguments: USDTQEMU.builds)
    func probesListsTheRealBinarysSites(_ build: String) throws {
        let binary = try USDTQEMU.require(build)
        let r = try CLI.run(["probes", binary])
        #expect(r.status == 0, "\(r.stderr)")
        // "  qemu:NAME  N args  pc 0x…  semaphore 0x…  [ARGS]"
        var listed: [String: [String]] = [:]
        for line in r.stdout.split(separator: "\n") where line.hasPrefix("  qemu:") {
            let f = line.split(separator: " ")
            let name = String(f[0].dropFirst(5))
            let pc = f.firstIndex(of: "pc").map { String(f[$0 + 1]) } ?? "?"
            let sem = f.firstIndex(of: "semaphore").map { String(f[$0 + 1]) } ?? "none"
            let args = line.split(separator: "[", maxSplits: 1).last.map { String($0.dropLast()) } ?? ""
            listed[name, default: []].append("\(pc) \(sem) [\(args)]")
        }
        // readelf -n: "Provider: qemu", "Name: …", "Location: 0x…, Base: 0x…, Semaphore: 0x…", "Arguments: …".
        let notes = try TestProgramBuilder.run("/usr/bin/readelf", ["-n", binary])
        func hex(_ s: Substring) -> String { "0x" + String(String(s.dropFirst(2)).drop { $0 == "0" }) }
        var sites: [String: [String]] = [:]
        var names: [String] = []
        var provider = ""
        var name = ""
        var location = ""
        for raw in notes.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if let p = line.range(of: "Provider: ") { provider = String(line[p.upperBound...]) }
            if line.hasPrefix("Name: ") {
                name = String(line.dropFirst(6))
                if provider == "qemu" { names.append(name) }
            }
            if line.hasPrefix("Location: ") {
                // "Location: 0x…, Base: 0x…, Semaphore: 0x…"
                let parts = line.split(separator: ",").map { $0.split(separator: " ").last ?? "" }
                location = "\(hex(parts[0])) \(hex(parts[2]))"
            }
            if line.hasPrefix("Arguments:"), provider == "qemu", ProbeFire.migrationProbes.contains(name) {
                let args = line.dropFirst(10).trimmingCharacters(in: .whitespaces)
                sites[name, default: []].append("\(location) [\(args)]")
            }
        }
        #expect(Set(sites.keys) == ProbeFire.migrationProbes, "\(build): \(sites.keys.sorted())")
        for (probe, found) in sites {
            #expect(listed[probe]?.sorted() == found.sorted(), "\(build): \(probe) listed \(listed[probe] ?? []), notes \(found)")
        }
        #expect(r.stdout.hasPrefix("\(binary): \(names.count) USDT probe sites, \(names.count) with provider qemu"), "\(build)")
        #expect(names.count > 1000, "\(build): \(names.count) sites")
        #expect(r.stdout.contains("qemu:migrate_transferred is present"))
        let multi = Dictionary(grouping: names, by: { $0 }).filter { $0.value.count > 1 }
        print(
            "\(build): \(names.count) USDT sites, \(Set(names).count) probes (\(multi.count) with several sites); "
                + sites.map { "\($0.key) \($0.value.count)" }.sorted().joined(separator: ", "))
    }
}

extension ProbeFire {
    /// The migration probes QEMU 10.0 has and `migtrace attach` attaches.
    static let migrationProbes: Set<String> = [
        "migrate_transferred", "migrate_pending_estimate", "migrate_pending_exact", "migration_thread_low_pending",
        "migration_bitmap_sync_start", "migration_bitmap_sync_end", "migrate_set_state",
    ]
}
