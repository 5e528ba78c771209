// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import MigtraceCore
@testable import MigtraceIO

/// The per-migration assessment on the real QEMU 7.2 and 10.0 fixtures, checked against their QMP facts.
@Suite struct ConvergenceTests {
    static func fixture(_ name: String) -> URL { Paths.qemuFixtures.appendingPathComponent(name) }

    /// The facts' final `query-migrate` (QMP).
    static func qmp(_ name: String) throws -> [String: Any] {
        let json = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: fixture("\(name).facts.json"))) as? [String: Any])
        return json["final_query_migrate"] as? [String: Any] ?? [:]
    }

    static func assessment(_ name: String) throws -> MigrationAssessment {
        let report = try #require(try analyze([fixture("\(name).log").path]).report)
        #expect(report.migrations.count == 1)
        let m = try #require(report.migrations.first)
        // The series summary carries the same assessment.
        #expect(report.series.first?.assessment == m)
        return m
    }

    /// Converging, with `-msg timestamp=on` (10.0) or the 7.2 prefix: downtime from the state timestamps
    /// matches QMP's `downtime` (an integer ms, measured from just before the VM stop) within 2 ms.
    @Test(arguments: [("7.2-converge-ts", 19, 9_113_600 as UInt64, 9_683_913 as UInt64), ("10.0-converge-ts", 21, 9_715_712, 10_243_638)])
    func convergingMigrationCompletesWithQMPDowntime(_ name: String, _ window: Int, _ pending: UInt64, _ threshold: UInt64) throws {
        let m = try Self.assessment(name)
        let q = try Self.qmp(name)
        #expect(m.outcome == .completed)
        #expect(m.verdict == .completed)
        let qmpDowntime = try #require((q["downtime"] as? NSNumber)?.doubleValue)
        let downtime = try #require(m.downtimeMs)
        #expect(abs(downtime - qmpDowntime) <= 2, "downtime \(downtime) ms vs QMP \(qmpDowntime) ms")
        #expect(m.downtimeLimitMs == 300)
        #expect(m.switchover?.window == window)
        #expect(m.switchover?.pendingBytes == pending)
        #expect(m.switchover?.thresholdBytes == threshold)
        #expect(m.switchover?.event == "migration_thread_low_pending")
        // Iterations are QMP's dirty-sync-count.
        let ram = q["ram"] as? [String: Any] ?? [:]
        #expect(m.iterations == (ram["dirty-sync-count"] as? NSNumber)?.intValue)
        // total-time within 5 ms (QMP starts its clock before the `setup` state).
        let total = try #require(m.totalTimeMs)
        #expect(abs(total - ((q["total-time"] as? NSNumber)?.doubleValue ?? 0)) <= 5)
    }

    /// Without timestamps there is no measured downtime, but the verdict, switchover and iteration count stand.
    @Test func untimedConvergingFixture() throws {
        let m = try Self.assessment("10.0-converge")
        #expect(m.verdict == .completed)
        #expect(m.downtimeMs == nil)
        #expect(m.switchover?.pendingBytes == 8_978_432)
        #expect(m.switchover?.thresholdBytes == 9_849_651)
        #expect(m.iterations == 4)
    }

    /// The non-converging runs (downtime-limit 20 ms at 16 MiB/s, 48 MiB dirtied): stalled at a 48 MiB floor.
    /// The facts hold no `expected-downtime` (the driver cancels and reads query-migrate afterwards), so the
    /// expected downtime is checked against the model's own inputs: floor / switchover bandwidth, as 11.1 computes it.
    @Test(arguments: ["7.2-nonconverge", "10.0-nonconverge"])
    func nonConvergingMigrationIsStalledWithAdvice(_ name: String) throws {
        let m = try Self.assessment(name)
        #expect(m.outcome == .cancelled)
        #expect(m.verdict == .stalled)
        #expect(m.pendingFloorBytes == 50_331_648)
        #expect(m.iterations == 5)
        #expect(m.downtimeLimitMs == 20)
        let sw = try #require(m.switchoverBytesPerSecond)
        let expected = try #require(m.expectedDowntimeMs)
        #expect(abs(expected - 50_331_648 / sw * 1000) < 1e-6)
        // 48 MiB at ~16.3–17.1 MB/s: about 3 s, 150 times the 20 ms limit.
        #expect(expected > 2900 && expected < 3200)
        let advice = try #require(m.advice)
        let limit = try #require(advice.downtimeLimitMs)
        let bw = try #require(m.bandwidthBytesPerSecond)
        // The advised limit makes the floor fit: floor / bandwidth ≤ limit, and one ms less does not.
        #expect(Double(50_331_648) / (bw / 1000) < Double(limit))
        #expect(Double(50_331_648) / (bw / 1000) >= Double(limit - 1))
        // The bandwidth that would do at 20 ms: floor over 20 ms.
        #expect(advice.bandwidthBytesPerSecond == 50_331_648 * 1000 / 20 + 51)
        #expect(m.etaSeconds == nil)
        #expect(m.switchover == nil)
    }

    /// downtime-limit lowered 300 → 100 ms at t+2 s: the migration still converges (the guest's working set
    /// falls below the lower threshold), so the verdict goes converging → completed, never stalled.
    @Test(arguments: [("7.2-downtime-change", 46), ("10.0-downtime-change", 51)])
    func downtimeChangeFixturesConvergeUnderTheLowerLimit(_ name: String, _ window: Int) throws {
        let m = try Self.assessment(name)
        #expect(m.downtimeLimitMs == 100)
        #expect(m.verdictChanges.map(\.verdict) == [.converging, .completed])
        #expect(m.verdictChanges.last?.window == window)
        #expect(m.switchover?.window == window)
        let expected = try #require(m.expectedDowntimeMs)
        #expect(expected < 100)
    }

    /// A migration that ends before its first 100 ms window (only states and pending) is a completed
    /// migration with its downtime. Built from the state lines of the real 7.2-converge-ts trace.
    @Test func migrationWithoutWindowsIsCompletedWithDowntime() throws {
        let text = """
            32057@1795793400.624016:migrate_set_state new state setup
            32081@1795793400.624833:migration_bitmap_sync_start 
            32081@1795793400.626912:migration_bitmap_sync_end dirty_pages 0
            32081@1795793400.627045:migrate_set_state new state active
            32081@1795793400.627051:migrate_pending pending size 1000000 max 0 (pre = 1000000 compat=0 post=0)
            32081@1795793400.680000:migration_thread_low_pending 900000
            32081@1795793400.691500:migrate_set_state new state completed

            """
        let sink = try analyze(text: text)
        let report = try #require(sink.report)
        #expect(report.windowCount == 0)
        let m = try #require(report.migrations.first)
        #expect(m.series == nil)
        #expect(m.outcome == .completed)
        #expect(m.verdict == .completed)
        #expect(abs((m.downtimeMs ?? 0) - 11.5) < 0.01)
        #expect(abs((m.totalTimeMs ?? 0) - 67.484) < 0.01)
        #expect(m.switchover?.pendingBytes == 900_000)
        // The text output answers instead of "no migrate_transferred events found".
        let out = MemoryOutput()
        TextSink(out: out, names: InputNames(["short.log"]), showWindows: false).finished(report)
        #expect(out.text.contains("converging? yes, completed"))
        #expect(out.text.contains("11.5 ms measured"))
        #expect(!out.text.contains("no migrate_transferred events found"))
    }

    /// `analyze --format json` has one `migrations` array with the documented fields.
    @Test func jsonHasMigrationsArray() throws {
        let out = MemoryOutput()
        let json = JSONSink(out: out, names: InputNames(["x"]), version: "test")
        let analyzer = MigrationAnalyzer(sink: json)
        let fd = open(Self.fixture("10.0-nonconverge.log").path, O_RDONLY)
        try #require(fd >= 0)
        defer { close(fd) }
        _ = try TraceReader.read(fd: fd, input: 0, into: analyzer)
        analyzer.finish()
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(out.bytes)) as? [String: Any])
        let migrations = try #require(doc["migrations"] as? [[String: Any]])
        #expect(migrations.count == 1)
        let m = migrations[0]
        for key in [
            "series", "outcome", "verdict", "eta_seconds", "eta_low_seconds", "eta_high_seconds", "expected_downtime_ms",
            "downtime_ms", "downtime_limit_ms", "switchover", "iterations", "dirty_rate_bytes_per_second",
            "pending_floor_bytes", "advice",
        ] {
            #expect(m[key] != nil, "missing \(key)")
        }
        #expect(m["verdict"] as? String == "stalled")
        #expect((m["pending_floor_bytes"] as? NSNumber)?.uint64Value == 50_331_648)
        let advice = try #require(m["advice"] as? [String: Any])
        #expect((advice["downtime_limit_ms"] as? NSNumber)?.uint64Value ?? 0 > 2900)
    }

    /// Real runs (QEMU 7.2 and 10.0, `-msg timestamp=on`) of an idle 32 MiB guest on an unthrottled link: done before
    /// the first window. Downtime (low_pending → completed) within 1 ms of QMP's integer `downtime`.
    @Test(arguments: ["7.2-idle-ts", "10.0-idle-ts"])
    func idleMigrationFinishesBeforeTheFirstWindow(_ name: String) throws {
        let url = Paths.qemuFixtures.appendingPathComponent("convergence/\(name).log")
        let report = try #require(try analyze([url.path]).report)
        #expect(report.windowCount == 0)
        let m = try #require(report.migrations.first)
        #expect(m.outcome == .completed && m.verdict == .completed && m.series == nil)
        let facts = try #require(
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: url.deletingPathExtension().appendingPathExtension("facts.json"))) as? [String: Any])
        let q = facts["final_query_migrate"] as? [String: Any] ?? [:]
        let qmpDowntime = try #require((q["downtime"] as? NSNumber)?.doubleValue)
        #expect(abs((m.downtimeMs ?? -100) - qmpDowntime) <= 1)
        #expect(m.iterations == 2)
        #expect(m.switchover?.pendingBytes == 0)
    }

    /// Real rescue runs: downtime-limit 20 ms, raised to 4000 ms at t+8 s. Stalled at the 48 MiB floor, then
    /// converging from the first window with the new limit, then completed; downtime within 2 ms of QMP's.
    @Test(arguments: [("7.2-rescue-ts", 59, 79), ("10.0-rescue-ts", 58, 80)])
    func rescuedMigrationFlipsFromStalledToCompleted(_ name: String, _ stalledAt: Int, _ switchAt: Int) throws {
        let url = Paths.qemuFixtures.appendingPathComponent("convergence/\(name).log")
        let report = try #require(try analyze([url.path]).report)
        let m = try #require(report.migrations.first)
        #expect(m.verdictChanges.map(\.verdict) == [.stalled, .converging, .completed])
        #expect(m.verdictChanges.map(\.window) == [stalledAt, switchAt, switchAt])
        #expect(m.downtimeLimitMs == 4000)
        #expect(m.switchover?.pendingBytes == 50_331_648)
        let facts = try #require(
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: url.deletingPathExtension().appendingPathExtension("facts.json"))) as? [String: Any])
        let q = facts["final_query_migrate"] as? [String: Any] ?? [:]
        let qmpDowntime = try #require((q["downtime"] as? NSNumber)?.doubleValue)
        #expect(abs((m.downtimeMs ?? -100) - qmpDowntime) <= 2)
    }
}

/// The ETA a live capture shows, against what the migration then did (real rescue runs of QEMU 7.2 and 10.0).
@Suite struct LiveETATests {
    /// Keeps the live assessments with the end time of the window each followed.
    final class Assessments: AnalysisSink {
        var lastEnd: Double?
        var updates: [(windowEnd: Double?, assessment: MigrationAssessment)] = []
        func seriesStarted(_ info: SeriesInfo) {}
        func window(_ w: AnalyzedWindow, in series: SeriesInfo) { lastEnd = w.endTime }
        func finding(_ f: Finding) {}
        func seriesEnded(_ s: SeriesSummary) {}
        func finished(_ r: AnalysisReport) {}
        func live(_ e: LiveEvent) { if case .migration(let m) = e { updates.append((lastEnd, m)) } }
    }

    @Test(arguments: ["7.2-rescue-ts", "10.0-rescue-ts"])
    func switchoverFallsInTheETARangeGivenOnceConverging(_ name: String) throws {
        let url = Paths.qemuFixtures.appendingPathComponent("convergence/\(name).log")
        let sink = Assessments()
        var configuration = AnalysisConfiguration()
        configuration.liveUpdates = true
        let analyzer = MigrationAnalyzer(configuration: configuration, sink: sink)
        let fd = open(url.path, O_RDONLY)
        try #require(fd >= 0)
        defer { close(fd) }
        _ = try TraceReader.read(fd: fd, input: 0, into: analyzer)
        let report = analyzer.finish()
        let switchover = try #require(report.migrations.first?.switchover?.time)
        // The first live assessment that says converging, after the limit was raised.
        let first = try #require(sink.updates.first { $0.assessment.verdict == .converging })
        let end = try #require(first.windowEnd)
        let low = try #require(first.assessment.etaLowSeconds)
        let high = try #require(first.assessment.etaHighSeconds)
        let eta = try #require(first.assessment.etaSeconds)
        #expect(low <= eta && eta <= high)
        // The analyzer sees time window by window: the switchover may come up to one window (100 ms) after the
        // moment the ETA names.
        #expect(
            switchover - end >= low - 1e-6 && switchover - end <= high + 0.1, "switchover \(switchover - end) s after, ETA \(low)…\(high)")
        // Stalled before (no ETA then), completed after.
        #expect(sink.updates.contains { $0.assessment.verdict == .stalled && $0.assessment.etaSeconds == nil })
        #expect(sink.updates.last?.assessment.verdict == .completed)
    }
}
