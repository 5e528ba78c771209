// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import MigtraceCore

/// What the driver (Tests/qemu/migrate.py) did during a migration: its `--facts` sidecar.
struct MigrationFacts {
    var qemu: String
    var scenario: String
    var finalStatus: String
    var migrateTime: Double
    var ramTransferred: UInt64
    var msgTimestamp: Bool
    /// (wall time, downtime-limit) for every change, the initial value first.
    var downtimeLimits: [(Double, UInt64)]
    /// (wall time, max-bandwidth) changes after the migration started.
    var bandwidthChanges: [(Double, UInt64)]
    /// SIGSTOP and SIGCONT wall times.
    var stop: (Double, Double)?
    /// QMP's `expected-downtime` (ms) while the migration was active: (wall time, value, dirty-sync count).
    var expectedDowntimeSamples: [(time: Double, ms: Double, syncs: Int)] = []

    init(url: URL) throws {
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        qemu = json["qemu"] as? String ?? ""
        scenario = json["scenario"] as? String ?? ""
        finalStatus = json["final_status"] as? String ?? ""
        migrateTime = json["migrate_command_time"] as? Double ?? 0
        ramTransferred = (json["ram_transferred"] as? NSNumber)?.uint64Value ?? 0
        msgTimestamp = json["msg_timestamp"] as? Bool ?? false
        for s in json["expected_downtime_samples"] as? [[Any]] ?? [] where s.count >= 2 {
            if let t = (s[0] as? NSNumber)?.doubleValue, let v = (s[1] as? NSNumber)?.doubleValue {
                expectedDowntimeSamples.append((t, v, (s.count > 2 ? (s[2] as? NSNumber)?.intValue : nil) ?? 0))
            }
        }
        let initial = json["parameters_initial"] as? [String: Any] ?? [:]
        downtimeLimits = []
        bandwidthChanges = []
        var limit = (initial["downtime-limit"] as? NSNumber)?.uint64Value ?? 300
        for change in json["parameter_changes"] as? [[String: Any]] ?? [] {
            let params = change["params"] as? [String: Any] ?? [:]
            let t = change["time"] as? Double ?? 0
            let before = (change["when"] as? String) == "before-migrate"
            if let d = (params["downtime-limit"] as? NSNumber)?.uint64Value {
                if before { limit = d } else { downtimeLimits.append((t, d)) }
            }
            if !before, let b = (params["max-bandwidth"] as? NSNumber)?.uint64Value { bandwidthChanges.append((t, b)) }
        }
        downtimeLimits.insert((migrateTime, limit), at: 0)
        let signals = json["signals"] as? [[String: Any]] ?? []
        if let s = signals.first(where: { $0["signal"] as? String == "SIGSTOP" })?["time"] as? Double,
            let c = signals.first(where: { $0["signal"] as? String == "SIGCONT" })?["time"] as? Double
        {
            stop = (s, c)
        }
    }
}

/// The findings each scenario must produce, and the only others it may produce.
enum ScenarioExpectations {
    static let required: [String: [(String, Severity)]] = [
        "converge": [],
        "nonconverge": [("non-convergence", .warning)],
        "stall": [("thread-stall", .critical)],
        "bandwidth-change": [("bandwidth-shift", .warning)],
        "downtime-change": [("downtime-limit-changed", .info)],
        "switchover-bw": [("switchover-bandwidth-mismatch", .warning)],
        "demo": [("bandwidth-shift", .warning)],
    ]
    /// Besides the required ones. `rate-capped` is true of every run here (max-bandwidth is set low on
    /// purpose); a stall collapses the threshold of its window.
    static let allowed: [String: Set<String>] = [
        "stall": ["rate-capped", "threshold-collapse"],
        "demo": ["rate-capped"],
    ]

    /// The era a QEMU of the driver computes in: 7.2 is A, Debian's 10.0 (packaged or built with USDT probes) B,
    /// the usdt build with QEMU 11.1's switchover arithmetic C.
    static func era(of qemu: String) -> ProbeEra {
        switch qemu {
        case "7.2": .a
        case "usdt-eraC": .c
        default: .b
        }
    }

    /// Check an analysed real migration against what the driver did.
    static func check(_ sink: CollectingSink, _ facts: MigrationFacts, file: String) throws {
        let report = try #require(sink.report)
        try #require(report.series.count == 1, "\(file): one migration, one series")
        let series = report.series[0]
        // 100 % bit-exact rebuild of QEMU's threshold and bandwidth.
        #expect(series.windows >= 10, "\(file)")
        #expect(series.exactThresholds == series.windows, "\(file): \(series.exactThresholds)/\(series.windows) exact")
        #expect(series.exactBandwidths == series.windows, "\(file)")
        #expect(report.rejectedCount == 0, "\(file)")
        #expect(series.info.era == era(of: facts.qemu), "\(file)")
        #expect(series.finalState == facts.finalStatus, "\(file)")
        // The sum of windows is what the migration thread counted before the last window; QEMU's own
        // ram.transferred also counts the final stop-and-copy. A cancelled migration has none, and the driver's last
        // query-migrate (status `cancelling`) can come before the migration thread's last window: that one may be
        // beyond it (seen twice with the machine loaded: the sum over by less than a window).
        let lastWindow = facts.finalStatus == "cancelled" ? (sink.windows.last?.transferred ?? 0) : 0
        #expect(
            series.totalBytes <= facts.ramTransferred + lastWindow && series.totalBytes * 10 >= facts.ramTransferred * 5,
            "\(file): windows \(series.totalBytes), ram.transferred \(facts.ramTransferred)")
        // The inferred downtime limits are exactly the ones the driver set, in order.
        #expect(series.downtimeLimits.map(\.limitMs) == facts.downtimeLimits.map(\.1), "\(file): \(series.downtimeLimits)")
        // Findings: every required one, nothing unexpected, nothing above info in a clean run.
        let required = Self.required[facts.scenario] ?? []
        let allowed = (Self.allowed[facts.scenario] ?? ["rate-capped"]).union(required.map(\.0))
        for (rule, severity) in required {
            #expect(sink.findings.contains { $0.rule == rule && $0.severity == severity }, "\(file): expected \(rule) \(severity)")
        }
        for f in sink.findings {
            #expect(allowed.contains(f.rule), "\(file): unexpected \(f.rule): \(f.message)")
        }
        if facts.scenario == "converge" {
            #expect(!sink.findings.contains { $0.severity >= .warning }, "\(file): a clean migration has no warning")
        }
        try checkTiming(sink, facts, file: file)
    }

    /// A migration that never converges: migtrace's expected downtime, and the downtime limit it advises, against
    /// the `expected-downtime` QEMU itself reported over QMP in the run's last seconds. QEMU recomputes it per
    /// window with that window's bandwidth (`dirty_bytes_last_sync / expected_bw_per_ms`), migtrace from the
    /// last post-sync pending over the last window's switchover rate: within 5 % (window bandwidths differ by
    /// a few % here, and the driver's last query may predate the last window).
    static func checkExpectedDowntime(_ sink: CollectingSink, _ facts: MigrationFacts, file: String) throws {
        let m = try #require(sink.report?.migrations.first, "\(file): a migration")
        let late = facts.expectedDowntimeSamples.suffix(10).map(\.ms)
        try #require(late.count >= 5, "\(file): QMP samples of expected-downtime during the run")
        let qmp = late.sorted()[late.count / 2]
        let ours = try #require(m.expectedDowntimeMs, "\(file): migtrace's expected downtime")
        #expect(abs(ours - qmp) / qmp < 0.05, "\(file): migtrace \(ours) ms, QMP \(qmp) ms (last samples \(late))")
        let advice = try #require(m.advice?.downtimeLimitMs, "\(file): advice")
        #expect(abs(Double(advice) - qmp) / qmp < 0.05, "\(file): advised limit \(advice) ms, QMP expected \(qmp) ms")
        print("\(file): expected downtime migtrace \(ours) ms, QMP \(qmp) ms; advised limit \(advice) ms")
    }

    /// Where the trace has no clock, window times are the running sum of time_spent from the migration start.
    static func wallTime(_ t: Double, _ sink: CollectingSink, _ facts: MigrationFacts) -> Double {
        sink.series[0].timeBase == .epoch ? t : facts.migrateTime + t
    }

    static func checkTiming(_ sink: CollectingSink, _ facts: MigrationFacts, file: String) throws {
        let tolerance = sink.series[0].timeBase == .epoch ? 0.25 : 0.6
        if let (stopped, continued) = facts.stop {
            let f = try #require(sink.findings.first { $0.rule == "thread-stall" && $0.severity == .critical })
            let w = sink.windows[f.firstWindow]
            #expect(w.timeSpentMs >= 1000, "\(file)")
            // The stalled window spans the SIGSTOP…SIGCONT interval.
            #expect(wallTime(w.startTime, sink, facts) <= stopped + tolerance, "\(file): window \(w.index) starts after SIGSTOP")
            #expect(wallTime(w.endTime, sink, facts) >= continued - tolerance, "\(file): window \(w.index) ends before SIGCONT")
            #expect(sink.findings.filter { $0.rule == "thread-stall" }.count == 1, "\(file)")
        }
        if facts.scenario == "bandwidth-change", let (t, newRate) = facts.bandwidthChanges.first {
            let f = try #require(sink.findings.first { $0.rule == "bandwidth-shift" })
            let w = sink.windows[f.firstWindow]
            #expect(abs(wallTime(w.startTime, sink, facts) - t) <= tolerance + 0.2, "\(file): shift starts at window \(w.index)")
            // The new level is the new max-bandwidth (bytes/s → bytes/ms), within 10 %.
            let level = sink.windows[f.firstWindow...f.lastWindow].map(\.bandwidth).sorted()[(f.lastWindow - f.firstWindow) / 2]
            #expect(abs(level - Double(newRate) / 1000) <= Double(newRate) / 1000 * 0.10, "\(file): new level \(level)")
        }
        if facts.downtimeLimits.count > 1 {
            let (t, newLimit) = facts.downtimeLimits[1]
            let f = try #require(sink.findings.first { $0.rule == "downtime-limit-changed" })
            let w = sink.windows[f.firstWindow]
            #expect(f.evidence.contains(.count("new_limit_ms", newLimit)), "\(file)")
            // The first window computed after the change.
            #expect(wallTime(w.endTime, sink, facts) >= t - tolerance, "\(file)")
            #expect(wallTime(w.endTime, sink, facts) <= t + Double(w.timeSpentMs) / 1000 + tolerance, "\(file)")
        }
    }
}

/// The analysis of committed traces of real QEMU 7.2 and 10.0 migrations (made by Tests/qemu/make_fixtures.sh).
@Suite struct RealTraceFixtureTests {
    static let fixtures: [String] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: Paths.qemuFixtures.path)) ?? []
        return names.filter {
            $0.hasSuffix(".log")
                && FileManager.default.fileExists(
                    atPath: Paths.qemuFixtures.appendingPathComponent($0.replacingOccurrences(of: ".log", with: ".facts.json")).path)
        }.sorted()
    }()

    @Test func everyEraAndScenarioHasAFixture() {
        for qemu in ["7.2", "10.0"] {
            for scenario in ["converge", "converge-ts", "nonconverge", "stall", "bandwidth-change", "downtime-change", "demo"] {
                #expect(Self.fixtures.contains("\(qemu)-\(scenario).log"), "missing \(qemu)-\(scenario).log")
            }
        }
        #expect(Self.fixtures.contains("10.0-switchover-bw.log"))
        // The QEMUs scripts/build-qemu-usdt builds: Debian's 10.0.13 source (era B) and with 11.1's arithmetic (C).
        for qemu in ["usdt-10.0", "usdt-eraC"] {
            for scenario in ["converge", "converge-ts", "stall", "bandwidth-change", "downtime-change", "switchover-bw"] {
                #expect(Self.fixtures.contains("\(qemu)-\(scenario).log"), "missing \(qemu)-\(scenario).log")
            }
        }
    }

    @Test(arguments: fixtures)
    func fixtureMatchesWhatTheDriverDid(_ name: String) throws {
        let log = Paths.qemuFixtures.appendingPathComponent(name)
        let facts = try MigrationFacts(url: log.deletingPathExtension().appendingPathExtension("facts.json"))
        let sink = try analyze([log.path])
        try ScenarioExpectations.check(sink, facts, file: name)
        #expect(sink.series[0].timeBase == (facts.msgTimestamp ? .epoch : .relative))
        if facts.msgTimestamp { #expect(sink.series[0].threadID != nil) }
    }

    @Test(arguments: ["10.0-switchover-bw.log", "usdt-10.0-switchover-bw.log"])
    func switchoverBandwidthIsRebuiltFromTheUserValue(_ name: String) throws {
        let sink = try analyze([Paths.qemuFixtures.appendingPathComponent(name).path])
        #expect(sink.windows.allSatisfy { $0.rebuild.basis == .userInteger && $0.switchoverTraced! > 0 })
        #expect(sink.windows.allSatisfy { $0.rebuild.threshold == $0.switchoverTraced! * $0.rebuild.downtimeLimitMs! })
    }

    /// The era C build (Debian's 10.0.13 with QEMU 11.1's switchover helper): arg 3 is Mbit/s, arg 4 the switchover
    /// bytes/ms actually used, the estimate from mbps when the user set nothing and the float user value otherwise.
    @Test func eraCBuildIsRebuiltWithQEMU11_1Arithmetic() throws {
        for name in ["usdt-eraC-converge.log", "usdt-eraC-converge-ts.log", "usdt-eraC-stall.log"] {
            let sink = try analyze([Paths.qemuFixtures.appendingPathComponent(name).path])
            #expect(sink.windows.count >= 10, "\(name)")
            #expect(sink.windows.allSatisfy { $0.era == .c && $0.rebuild.basis == .estimated && $0.rebuild.exact }, "\(name)")
            #expect(sink.windows.allSatisfy { $0.bandwidthTraced == UInt64($0.mbps) }, "\(name)")
            #expect(
                sink.windows.allSatisfy { $0.switchoverTraced == UInt64(QEMUArithmetic.estimatedSwitchoverPerMs(mbps: $0.mbps)) }, "\(name)"
            )
        }
        let sink = try analyze([Paths.qemuFixtures.appendingPathComponent("usdt-eraC-switchover-bw.log").path])
        #expect(sink.windows.allSatisfy { $0.era == .c && $0.rebuild.basis == .userFloat && $0.rebuild.exact })
        // 16 MiB/s, then 64 MiB/s: arg 4 is the user value / 1000, no longer 0 or the integer quotient's product.
        #expect(Set(sink.windows.compactMap(\.switchoverTraced)) == [16777, 67108])
    }

    /// The simple backend's binary files (`*.simpletrace`) were written by the same QEMU runs as the `-converge.log`
    /// beside them. Read here with a minimal reader of the format (header v4, mapping and event records, reference
    /// §4c), independent of migtrace: every record of the file is an event of the log, with the same values in order.
    @Test(arguments: ["usdt-10.0", "usdt-eraC"])
    func simpletraceFilesHoldTheLoggedEvents(_ build: String) throws {
        let data = [UInt8](try Data(contentsOf: Paths.qemuFixtures.appendingPathComponent("\(build)-converge.simpletrace")))
        func u64(_ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(data[at + $1]) << (8 * UInt64($1)) } }
        func u32(_ at: Int) -> Int { Int(u64(at) & 0xffff_ffff) }
        try #require(data.count > 24 && u64(0) == .max && u64(8) == 0xf2b1_77cb_0aa4_29b4 && u64(16) == 4)
        var names: [UInt64: String] = [:]
        var events: [(String, [UInt64])] = []
        var at = 24
        while at < data.count {
            if u64(at) == 0 {  // mapping: id, name length, name
                let length = u32(at + 16)
                names[u64(at + 8)] = String(decoding: data[(at + 20)..<(at + 20 + length)], as: UTF8.self)
                at += 20 + length
            } else {  // event: id, timestamp, record length (from the id on), pid, arguments
                let length = u32(at + 24)
                let name = try #require(names[u64(at + 8)])
                let args = name == "migrate_set_state" ? [] : stride(from: at + 32, to: at + 8 + length, by: 8).map(u64)
                events.append((name, args))
                at += 8 + length
            }
        }
        #expect(at == data.count)
        let log = try String(contentsOf: Paths.qemuFixtures.appendingPathComponent("\(build)-converge.log"), encoding: .utf8)
        let logged = log.split(separator: "\n").map { line -> (String, [UInt64]) in
            let name = String(line.prefix { $0 != " " })
            let numbers = line.dropFirst(name.count).split(whereSeparator: { !$0.isNumber }).compactMap { UInt64($0) }
            return (name, name == "migrate_set_state" ? [] : numbers)
        }
        #expect(events.map(\.0) == logged.map(\.0))
        #expect(events.map(\.1) == logged.map(\.1))
        #expect(events.filter { $0.0 == "migrate_transferred" }.count == (build == "usdt-10.0" ? 32 : 27))
    }

    @Test func libvirtDomainLogWithCRLFAndNoise() throws {
        let sink = try analyze([Paths.qemuFixtures.appendingPathComponent("libvirt-domain.log").path])
        let report = try #require(sink.report)
        #expect(report.series.count == 1)
        #expect(report.rejectedCount == 0)
        #expect(report.exactCount == report.windowCount && report.windowCount >= 10)
    }

    @Test func twoFilesAreTwoSeries() throws {
        let a = Paths.qemuFixtures.appendingPathComponent("7.2-converge.log").path
        let b = Paths.qemuFixtures.appendingPathComponent("10.0-converge.log").path
        let sink = try analyze([a, b])
        let series = try #require(sink.report).series
        #expect(series.map(\.info.era) == [.a, .b])
        #expect(series.map(\.info.input) == [0, 1])
    }
}

/// Real migrations run now, on loopback, with Debian's QEMU 7.2 and bookworm-backports' 10.0.
@Suite(.serialized) struct RealQEMUMigrationTests {
    static let scenarios: [(String, String, Bool)] = [
        ("7.2", "converge", false), ("10.0", "converge", false),
        ("7.2", "converge", true), ("10.0", "converge", true),
        ("7.2", "stall", true), ("10.0", "stall", true),
        ("7.2", "bandwidth-change", true), ("10.0", "bandwidth-change", true),
        ("7.2", "downtime-change", true), ("10.0", "downtime-change", true),
        ("10.0", "switchover-bw", true),
        ("7.2", "nonconverge", true), ("10.0", "nonconverge", false),
    ]

    @Test(arguments: 0..<scenarios.count)
    func migrateAndAnalyse(_ i: Int) throws {
        let (qemu, scenario, timestamps) = Self.scenarios[i]
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("migtrace-qemu-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let trace = dir.appendingPathComponent("trace.log")
        let factsURL = dir.appendingPathComponent("facts.json")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments =
            [
                "python3", Paths.repository.appendingPathComponent("Tests/qemu/migrate.py").path, "--qemu", qemu,
                "--scenario", scenario, "--out", trace.path, "--facts", factsURL.path,
            ] + (timestamps ? ["--msg-timestamp"] : [])
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "migrate.py \(qemu) \(scenario) failed; run `scripts/setup` first if QEMU 10.0 is missing")
        let facts = try MigrationFacts(url: factsURL)
        let sink = try analyze([trace.path])
        try ScenarioExpectations.check(sink, facts, file: "\(qemu)-\(scenario)\(timestamps ? "-ts" : "")")
        // Run now, so the driver sampled QMP's expected-downtime during it (the committed fixtures predate that).
        if scenario == "nonconverge" {
            try ScenarioExpectations.checkExpectedDowntime(sink, facts, file: "\(qemu)-\(scenario)\(timestamps ? "-ts" : "")")
        }
    }
}
