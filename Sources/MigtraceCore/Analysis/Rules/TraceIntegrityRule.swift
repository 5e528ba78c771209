// SPDX-License-Identifier: Apache-2.0

/// `trace-integrity`: the trace contradicts itself: time going backwards, long gaps between windows,
/// the era changing inside a series, or values QEMU cannot produce.
///
/// Rejected lines (malformed, impossible) are summarised once for the whole trace (``traceFindings(_:)``).
public final class TraceIntegrityRule: AnomalyRule {
    public static let id = "trace-integrity"
    public static let reportOrder = 110
    /// Needs one window (two for time going backwards or a gap).
    public static let minimumWindows = 1
    public static let firesWhen =
        "time going backwards, a gap ≥ 10× the window and ≥ 1 s, the era changing inside a series, impossible values (> 100 GB/s, a wrapped counter, a window < 100 ms), or rejected lines"
    public static let knobs = "an unmodified, complete trace"
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

    public static func traceFindings(_ trace: TraceFacts) -> [Finding] {
        guard trace.rejected > 0 else { return [] }
        let first = trace.firstRejection
        return [
            Finding(
                rule: id, severity: .warning, series: -1, firstWindow: -1, lastWindow: -1, startTime: 0, endTime: 0,
                message:
                    "\(trace.rejected) line(s) or event(s) rejected; the first at input \(first?.input ?? 0) line \(first?.line ?? 0): \(first?.reason ?? "").",
                evidence: [.count("rejected", trace.rejected)], remedy: remedy)
        ]
    }

    public func observe(_ w: AnalyzedWindow, _ context: RuleContext) {
        let previous = self.previous
        self.previous = w.mark
        // The reports are out of line (`@inline(never)`): with their message building inline, this function
        // saved and restored registers and a stack guard for every window of every series.
        if let e = w.era {
            if let old = era, old != e { reportEraChange(w, from: old, to: e, context) }
            era = e
        }
        if w.bandwidth > impossibleBandwidth { reportImpossibleBandwidth(w, context) }
        if w.transferred >= 1 << 60 { reportWrappedCounter(w, context) }
        if w.timeSpentMs < QEMUArithmetic.bufferDelayMs { reportShortWindow(w, context) }
        guard context.series.timeBase != .relative, let prev = previous else { return }
        let prevEnd = prev.endTime
        let deltaMs = (w.endTime - prevEnd) * 1000
        if deltaMs < 0 {
            reportTimeGoingBackwards(w, after: prev, deltaMs, context)
            return
        }
        let gapMs = deltaMs - Double(w.timeSpentMs)
        if gapMs >= 1000 && gapMs >= gapFactor * Double(w.timeSpentMs) { reportGap(w, after: prev, gapMs, context) }
    }

    private func report(
        _ w: AnalyzedWindow, _ message: String, _ evidence: [Evidence], from: WindowMark? = nil,
        _ context: RuleContext
    ) {
        context.report(Self.self, .warning, from: from ?? w.mark, to: w.mark, message, evidence: evidence)
    }

    @inline(never) private func reportEraChange(
        _ w: AnalyzedWindow, from old: ProbeEra, to e: ProbeEra, _ context: RuleContext
    ) {
        report(
            w,
            "The probe era changed from \(old.rawValue) to \(e.rawValue) at window \(w.index) inside one series.",
            [.text("old_era", old.rawValue), .text("new_era", e.rawValue)], context)
    }

    @inline(never) private func reportImpossibleBandwidth(_ w: AnalyzedWindow, _ context: RuleContext) {
        report(
            w,
            "Window \(w.index) claims \(RuleMath.rate(w.bandwidth)), above the \(RuleMath.rate(impossibleBandwidth)) any host reaches.",
            [.count("transferred_bytes", w.transferred), .count("time_spent_ms", w.timeSpentMs)], context)
    }

    @inline(never) private func reportWrappedCounter(_ w: AnalyzedWindow, _ context: RuleContext) {
        report(
            w, "Window \(w.index) has transferred = \(w.transferred): a wrapped (negative) byte counter.",
            [.count("transferred_bytes", w.transferred)], context)
    }

    @inline(never) private func reportShortWindow(_ w: AnalyzedWindow, _ context: RuleContext) {
        report(
            w, "Window \(w.index) lasted \(w.timeSpentMs) ms; QEMU never traces windows shorter than 100 ms.",
            [.count("time_spent_ms", w.timeSpentMs)], context)
    }

    @inline(never) private func reportTimeGoingBackwards(
        _ w: AnalyzedWindow, after prev: WindowMark, _ deltaMs: Double, _ context: RuleContext
    ) {
        report(
            w, "Time goes backwards by \(NumberText.fixed(-deltaMs, 3)) ms between windows \(prev.index) and \(w.index).",
            [.number("delta_ms", deltaMs)], from: prev, context)
    }

    @inline(never) private func reportGap(
        _ w: AnalyzedWindow, after prev: WindowMark, _ gapMs: Double, _ context: RuleContext
    ) {
        report(
            w, "No window for \(RuleMath.seconds(gapMs)) between windows \(prev.index) and \(w.index).",
            [.number("gap_ms", gapMs), .count("time_spent_ms", w.timeSpentMs)], from: prev, context)
    }
}
