// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import MigtraceCore

/// The findings of the rules whose per-window work was made cheaper, on a trace where they fire often: the
/// messages as the earlier binary wrote them, and the threshold-collapse count against a plain re-statement of
/// the rule (a sorted copy per window for the median), which also counts the findings beyond the per-rule cap.
@Suite struct RuleFindingsTests {
    /// 3000 windows of thread 11: a level that moves now and then, slow single windows, runs of windows
    /// without progress, a few very long windows.
    static func busyTrace() -> [String] {
        var rng = SplitMix64(seed: 41)
        var lines: [String] = []
        var micros: UInt64 = 1_700_000_000_000_000
        var level: UInt64 = 12_000_000
        var stalled = 0
        for _ in 0..<3_000 {
            let ms: UInt64 = rng.next() % 50 == 0 ? 100 + rng.next() % 3_000 : 100 + rng.next() % 3
            if rng.next() % 100 == 0 { level = level * (4 + rng.next() % 12) / 8 + 100_000 }
            if rng.next() % 200 == 0 { stalled = 5 + Int(rng.next() % 20) }
            let transferred: UInt64
            switch rng.next() % 100 {
            case _ where stalled > 0:
                stalled -= 1
                transferred = rng.next() % 4_000  // no progress
            case 0..<5: transferred = level / (8 + rng.next() % 40)  // a collapse
            default: transferred = level - level / 50 + rng.next() % (level / 25)  // ± 2 %
            }
            micros += ms * 1000
            lines.append(RuleTraces.line(micros: micros, transferred: transferred, ms: ms))
        }
        return lines
    }

    /// threshold-collapse as it was stated before the sliding median: how many findings it makes in all.
    static func plainCollapseCount(_ windows: [AnalyzedWindow], _ thresholds: RuleThresholds) -> Int {
        var baseline: [Double] = []
        var run = 0
        var findings = 0
        for w in windows where w.index > 0 {
            guard baseline.count >= 3 else {
                if w.transferred >= 4096 { baseline.append(w.bandwidth) }
                continue
            }
            let base = RuleMath.median(baseline)
            if w.bandwidth < base * thresholds.collapseFraction {
                run += 1
                if run > 2 { run = 0 }
                continue
            }
            if run > 0 { findings += 1 }
            run = 0
            baseline.append(w.bandwidth)
            if baseline.count > thresholds.baselineWindows { baseline.removeFirst() }
        }
        return findings
    }

    @Test func collapsesBeyondTheCapAreCountedAsSuppressed() throws {
        let sink = try analyze(text: Self.busyTrace().joined(separator: "\n"), configuration: .handMade)
        let report = try #require(sink.report)
        let all = Self.plainCollapseCount(sink.windows, RuleThresholds())
        #expect(all > 100)
        #expect(sink.findings.filter { $0.rule == "threshold-collapse" }.count == 100)
        #expect(report.suppressedFindings["threshold-collapse"] == all - 100)
        // Only rules over the cap are listed.
        for (id, n) in report.suppressedFindings {
            #expect(n > 0 && sink.findings.filter { $0.rule == id }.count == 100)
        }
    }

    /// The messages `migtrace analyze` of the same trace printed before the cheaper rules.
    @Test func findingsOfABusyTraceAreUnchanged() throws {
        let sink = try analyze(text: Self.busyTrace().joined(separator: "\n"), configuration: .handMade)
        var counts: [String: Int] = [:]
        for f in sink.findings { counts[f.rule, default: 0] += 1 }
        #expect(
            counts == [
                "formula-mismatch": 57, "threshold-collapse": 100, "thread-stall": 60, "downtime-limit-changed": 44,
                "no-progress": 15, "bandwidth-shift": 18,
            ])
        let shifts = RuleTraces.render(sink.findings, rule: "bandwidth-shift")
        #expect(
            shifts.prefix(3) == [
                "bandwidth-shift 183–192: Bandwidth rose 38 % from 120.65 MB/s to 166.48 MB/s at window 183 and held for 1.00 s.",
                "bandwidth-shift 517–519: Bandwidth fell 91 % from 164.97 MB/s to 15.04 MB/s at window 517 and held for 3.38 s.",
                "bandwidth-shift 520–529: Bandwidth rose 999 % from 15.04 MB/s to 165.17 MB/s at window 520 and held for 1.01 s.",
            ])
        let collapses = RuleTraces.render(sink.findings, rule: "threshold-collapse")
        #expect(
            collapses.prefix(3) == [
                "threshold-collapse 16–16: Window 16 ran at 3.64 MB/s, 3 % of the 119.12 MB/s baseline; the threshold fell to 1090800 bytes.",
                "threshold-collapse 26–26: Window 26 ran at 13.07 MB/s, 11 % of the 119.76 MB/s baseline; the threshold fell to 3921300 bytes.",
                "threshold-collapse 29–29: Window 29 ran at 7.80 MB/s, 7 % of the 119.35 MB/s baseline; the threshold fell to 2341200 bytes.",
            ])
        #expect(
            RuleTraces.render(sink.findings, rule: "no-progress").prefix(3) == [
                "no-progress 86–101: Windows 86–101 (1.61 s) each sent less than one page.",
                "no-progress 438–456: Windows 438–456 (3.64 s) each sent less than one page.",
                "no-progress 571–592: Windows 571–592 (3.91 s) each sent less than one page.",
            ])
        // Every finding of the trace, as the earlier binary printed them (its JSON, hashed the same way).
        #expect(RuleTraces.digest(sink.findings) == 13_311_052_857_192_859_210)
    }

    /// Runs that ordinary windows end, again and again: the rules that now skip their flush when no run is
    /// open must still report each run when it ends.
    @Test func runsEndedByOrdinaryWindowsAreReported() throws {
        var lines: [String] = []
        var micros: UInt64 = 1_700_000_000_000_000
        for i: UInt64 in 0..<400 {
            let ms = 100 + i % 3
            let transferred = 1_700_000 + (i * 7919) % 20_000
            let bandwidth = transferred / ms
            let block = (i / 25) % 4
            // A declared switchover bandwidth 4× the measured one for 25 windows in 100; in another 25, three
            // windows whose bandwidth argument fits no era.
            let switchover = block == 1 ? bandwidth * 4 : bandwidth
            let argument = block == 3 && i % 25 < 3 ? 123 : bandwidth
            micros += ms * 1000
            lines.append(
                "\(RuleTraces.prefix(micros: micros)):migrate_transferred transferred \(transferred) time_spent \(ms) bandwidth \(argument) switchover_bw \(switchover) max_size \(switchover * 300)"
            )
        }
        let sink = try analyze(text: lines.joined(separator: "\n"), configuration: .handMade)
        #expect(
            sink.findings.map { "\($0.rule) \($0.firstWindow)–\($0.lastWindow): \($0.message)" } == [
                "switchover-bandwidth-mismatch 25–49: Declared switchover bandwidth 67.64 MB/s is 4.00× the measured 16.92 MB/s for 2.53 s: downtime will overshoot the limit.",
                "unknown-era 75–77: Window 75: bandwidth argument 123 is neither 17139 bytes/ms nor 137 Mbit/s; 3 window(s) fit no era.",
                "switchover-bandwidth-mismatch 125–149: Declared switchover bandwidth 67.45 MB/s is 3.99× the measured 16.92 MB/s for 2.53 s: downtime will overshoot the limit.",
                "unknown-era 175–177: Window 175: bandwidth argument 123 is neither 16889 bytes/ms nor 135 Mbit/s; 3 window(s) fit no era.",
                "switchover-bandwidth-mismatch 225–249: Declared switchover bandwidth 68.47 MB/s is 4.05× the measured 16.93 MB/s for 2.52 s: downtime will overshoot the limit.",
                "unknown-era 275–277: Window 275: bandwidth argument 123 is neither 16840 bytes/ms nor 134 Mbit/s; 3 window(s) fit no era.",
                "switchover-bandwidth-mismatch 325–349: Declared switchover bandwidth 67.47 MB/s is 3.99× the measured 16.93 MB/s for 2.53 s: downtime will overshoot the limit.",
                "unknown-era 375–377: Window 375: bandwidth argument 123 is neither 17096 bytes/ms nor 136 Mbit/s; 3 window(s) fit no era.",
                "rate-capped 1–398: 398 of 398 windows (40.20 s) sent 1.697 MB ± 2 %: max-bandwidth ≈ 17.0 MB/s sets the pace.",
            ])
    }

    /// Every kind of trace-integrity finding, each reported out of line from the per-window checks.
    @Test func traceIntegrityFindingsAreUnchanged() throws {
        var lines: [String] = []
        var micros: UInt64 = 1_700_000_000_000_000
        for i: UInt64 in 0..<40 {
            let ms: UInt64 = i == 5 ? 50 : 100  // too short
            let transferred: UInt64 =
                switch i {
                case 9: (1 << 60) + 5  // a wrapped counter
                case 13: 20_000_000_000_000  // an impossible bandwidth
                default: 1_000_000 + i * 1000
                }
            switch i {
            case 17: micros -= 300_000  // time going backwards
            case 21: micros += 30_000_000  // a gap
            default: micros += ms * 1000
            }
            let bandwidth = transferred / ms
            // From window 30 on, era B (a switchover argument): the era changes inside the series.
            let switchover = i >= 30 ? " switchover_bw \(bandwidth)" : ""
            lines.append(
                "\(RuleTraces.prefix(micros: micros)):migrate_transferred transferred \(transferred) time_spent \(ms) bandwidth \(bandwidth)\(switchover) max_size \(bandwidth * 300)"
            )
        }
        let sink = try analyze(text: lines.joined(separator: "\n"), configuration: .handMade)
        #expect(
            RuleTraces.render(sink.findings, rule: "trace-integrity") == [
                "trace-integrity 5–5: Window 5 lasted 50 ms; QEMU never traces windows shorter than 100 ms.",
                "trace-integrity 9–9: Window 9 claims 11529215046068.47 MB/s, above the 100000.00 MB/s any host reaches.",
                "trace-integrity 9–9: Window 9 has transferred = 1152921504606846981: a wrapped (negative) byte counter.",
                "trace-integrity 13–13: Window 13 claims 200000000.00 MB/s, above the 100000.00 MB/s any host reaches.",
                "trace-integrity 16–17: Time goes backwards by 300.000 ms between windows 16 and 17.",
                "trace-integrity 20–21: No window for 29.90 s between windows 20 and 21.",
                "trace-integrity 30–30: The probe era changed from A to B at window 30 inside one series.",
            ])
    }
}

extension RuleTraces {
    /// FNV-1a over every finding's `rule first–last: message` line (each followed by a newline).
    static func digest(_ findings: [Finding]) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for f in findings {
            for byte in "\(f.rule) \(f.firstWindow)–\(f.lastWindow): \(f.message)\n".utf8 {
                hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
            }
        }
        return hash
    }
}
