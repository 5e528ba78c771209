// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import MigtraceCore

/// What deserves `info`, and the fewest windows each rule needs (issue 15): a clean converging migration has no
/// finding at all, `rate-capped` speaks only of a migration held at its cap for ≥ 10 s, and the documented
/// minimum of a rule is where it starts to fire.
@Suite struct RuleMinimumTests {
    /// An era-A window line with QEMU's exact max_size for a 300 ms limit.
    static func window(_ transferred: UInt64, _ ms: UInt64 = 100) -> String {
        let bw = Double(transferred) / Double(ms)
        return "migrate_transferred transferred \(transferred) time_spent \(ms) bandwidth \(UInt64(bw)) max_size \(UInt64(bw * 300))"
    }

    static func rules(_ lines: [String]) throws -> [String] {
        try analyze(text: lines.joined(separator: "\n") + "\n", configuration: .handMade).findings.map(\.rule)
    }

    /// Hand-made series of constant 100 ms windows: 101 are one short of 10 s at the cap, 102 reach it.
    @Test func rateCappedNeedsTenSecondsAtTheCap() throws {
        let minimum = RateCappedRule.minimumWindows
        #expect(minimum == 102)
        #expect(try Self.rules(Array(repeating: Self.window(1_677_721), count: minimum - 1)) == [])
        let sink = try analyze(
            text: Array(repeating: Self.window(1_677_721), count: minimum).joined(separator: "\n"), configuration: .handMade)
        #expect(sink.findings.map(\.rule) == ["rate-capped"])
        #expect(sink.findings.first?.severity == .info)
        #expect(
            sink.findings.first?.message
                == "100 of 100 windows (10.00 s) sent 1.680 MB ± 2 %: max-bandwidth ≈ 16.8 MB/s sets the pace.")
        var shorter = AnalysisConfiguration.handMade
        shorter.thresholds.rateCapMinMs = 2_000
        #expect(
            try analyze(text: Array(repeating: Self.window(1_677_721), count: 22).joined(separator: "\n"), configuration: shorter)
                .findings.map(\.rule) == ["rate-capped"])
    }

    @Test func documentedMinimumsAreWhereRulesStartToFire() throws {
        // thread-stall: one window.
        #expect(ThreadStallRule.minimumWindows == 1)
        #expect(try Self.rules([Self.window(1_000_000, 1_200)]) == ["thread-stall"])
        // no-progress: windows of less than a page covering 1 s.
        #expect(NoProgressRule.minimumWindows == 10)
        #expect(try Self.rules(Array(repeating: Self.window(100), count: 9)) == [])
        #expect(try Self.rules(Array(repeating: Self.window(100), count: 10)) == ["no-progress"])
        // bandwidth-shift: setup, 3 baseline windows, 10 shifted windows (1 s).
        #expect(BandwidthShiftRule.minimumWindows == 14)
        let base = Array(repeating: Self.window(2_000_000), count: 4)
        #expect(try Self.rules(base + Array(repeating: Self.window(600_000), count: 9)) == [])
        #expect(try Self.rules(base + Array(repeating: Self.window(600_000), count: 10)) == ["bandwidth-shift"])
        // threshold-collapse: setup, 3 baseline windows, the slow one, one after it.
        #expect(ThresholdCollapseRule.minimumWindows == 6)
        #expect(try Self.rules(base + [Self.window(100_000)]) == [])
        #expect(try Self.rules(base + [Self.window(100_000), Self.window(2_000_000)]) == ["threshold-collapse"])
        // pending-unseen: a second of windows without any pending event (the only rule that sees these traces).
        #expect(PendingUnseenRule.minimumWindows == 10)
        let plain = Array(repeating: Self.window(2_000_000), count: 10)
        #expect(try analyze(text: plain.dropLast().joined(separator: "\n")).findings.map(\.rule) == [])
        let unseen = try analyze(text: plain.joined(separator: "\n")).findings
        #expect(unseen.map(\.rule) == ["pending-unseen"] && unseen.first?.severity == .info)
        #expect(unseen.first?.remedy == "Trace the pending data too: \(TracingRecipe.commandLine()).")
        // downtime-limit-changed: a window at each limit.
        #expect(DowntimeLimitChangedRule.minimumWindows == 2)
        let at100 = "migrate_transferred transferred 2000000 time_spent 100 bandwidth 20000 max_size 2000000"
        #expect(try Self.rules([Self.window(2_000_000), at100]) == ["downtime-limit-changed"])
    }

    /// Real QEMU 7.2 and 10.0 migrations: the converging ones (capped by the test driver's max-bandwidth, 2 s)
    /// have no finding; the non-converging ones (12 s at the cap) get `rate-capped` beside `non-convergence`.
    @Test func realMigrationsGetInfoOnlyWhenTheCapHoldsThemBack() throws {
        for name in ["7.2-converge.log", "10.0-converge.log", "7.2-converge-ts.log", "10.0-converge-ts.log", "libvirt-domain.log"] {
            let sink = try analyze([Paths.qemuFixtures.appendingPathComponent(name).path])
            #expect(sink.findings.map(\.rule) == [], "\(name)")
        }
        for name in ["7.2-nonconverge.log", "10.0-nonconverge.log"] {
            let sink = try analyze([Paths.qemuFixtures.appendingPathComponent(name).path])
            #expect(sink.findings.map(\.rule).sorted() == ["non-convergence", "rate-capped"], "\(name)")
        }
    }
}
