// SPDX-License-Identifier: Apache-2.0

/// `trace-integrity`: the trace contradicts itself: time going backwards, long gaps between windows,
/// the era changing inside a series, or values QEMU cannot produce.
///
/// Rejected lines (malformed, impossible) are summarised by the analyzer under the same id.
public final class TraceIntegrityRule: AnomalyRule {
    public static let id = "trace-integrity"
    public static let severities: [Severity] = [.warning]
    public static let summary =
        "Time going backwards, a gap between windows ≥ 10× the window and ≥ 1 s, the era changing inside a series, impossible values (> 100 GB/s, a wrapped counter, a window < 100 ms), or rejected lines."
    public static let remedy =
        "Make sure the file is one unmodified QEMU log (`-trace migrate_transferred -D FILE`), not truncated or interleaved; a gap usually means the event was disabled (trace-event-set-state) or the log was rotated."

    private let impossibleBandwidth: Double
    private let gapFactor: Double
    private var era: ProbeEra?
    /// Where the series' previous window lies (the rule sees every window of its series).
    private var previous: WindowMark?

    public init(thresholds: RuleThresholds) {
        impossibleBandwidth = thresholds.impossibleBandwidth
        gapFactor = thresholds.gapFactor
    }

    public func observe(_ w: AnalyzedWindow, _ context: RuleContext) {
        let previous = self.previous
        self.previous = w.mark
        func report(_ message: String, _ evidence: [Evidence], from: WindowMark? = nil) {
            context.report(Self.self, .warning, from: from ?? w.mark, to: w.mark, message, evidence: evidence)
        }
        if let e = w.era {
            if let old = era, old != e {
                report(
                    "The probe era changed from \(old.rawValue) to \(e.rawValue) at window \(w.index) inside one series.",
                    [.text("old_era", old.rawValue), .text("new_era", e.rawValue)])
            }
            era = e
        }
        if w.bandwidth > impossibleBandwidth {
            report(
                "Window \(w.index) claims \(RuleMath.rate(w.bandwidth)), above the \(RuleMath.rate(impossibleBandwidth)) any host reaches.",
                [.count("transferred_bytes", w.transferred), .count("time_spent_ms", w.timeSpentMs)])
        }
        if w.transferred >= 1 << 60 {
            report(
                "Window \(w.index) has transferred = \(w.transferred): a wrapped (negative) byte counter.",
                [.count("transferred_bytes", w.transferred)])
        }
        if w.timeSpentMs < QEMUArithmetic.bufferDelayMs {
            report(
                "Window \(w.index) lasted \(w.timeSpentMs) ms; QEMU never traces windows shorter than 100 ms.",
                [.count("time_spent_ms", w.timeSpentMs)])
        }
        guard context.series.timeBase != .relative, let prev = previous else { return }
        let prevEnd = prev.endTime
        let deltaMs = (w.endTime - prevEnd) * 1000
        if deltaMs < 0 {
            report(
                "Time goes backwards by \(Format.fixed(-deltaMs, 3)) ms between windows \(prev.index) and \(w.index).",
                [.number("delta_ms", deltaMs)], from: prev)
            return
        }
        let gapMs = deltaMs - Double(w.timeSpentMs)
        if gapMs >= 1000 && gapMs >= gapFactor * Double(w.timeSpentMs) {
            report(
                "No window for \(RuleMath.seconds(gapMs)) between windows \(prev.index) and \(w.index).",
                [.number("gap_ms", gapMs), .count("time_spent_ms", w.timeSpentMs)], from: prev)
        }
    }
}
