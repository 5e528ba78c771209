// SPDX-License-Identifier: Apache-2.0

/// `switchover-bandwidth-mismatch`: a user-declared switchover bandwidth far from the measured one, sustained.
public final class SwitchoverBandwidthMismatchRule: AnomalyRule {
    public static let id = "switchover-bandwidth-mismatch"
    public static let severities: [Severity] = [.warning]
    public static let summary =
        "avail-switchover-bandwidth is ≥ 2× the measured bandwidth (downtime will overshoot) or ≤ 0.5× (switchover needlessly late) for ≥ 1 s."
    public static let remedy =
        "Set `avail-switchover-bandwidth` to the bandwidth the link really sustains during switchover (or 0 to let QEMU use the measured bandwidth)."

    private let ratio: Double
    private let minMs: UInt64
    private var first: AnalyzedWindow?
    private var last: AnalyzedWindow?
    private var over = false
    private var runMs: UInt64 = 0
    private var runWindows: UInt64 = 0
    private var declared: Double = 0
    private var measuredSum: Double = 0

    public init(thresholds: RuleThresholds) {
        ratio = thresholds.switchoverMismatchRatio
        minMs = thresholds.switchoverMismatchMinMs
    }

    public func observe(_ window: AnalyzedWindow, _ context: RuleContext) {
        let userSet = window.rebuild.basis == .userInteger || window.rebuild.basis == .userFloat
        guard userSet, window.index > 0, window.bandwidth > 0 else {
            flush(context)
            return
        }
        let r = window.rebuild.expectedPerMs / window.bandwidth
        let isOver = r >= ratio
        let isUnder = r <= 1 / ratio
        if (!isOver && !isUnder) || (first != nil && isOver != over) { flush(context) }
        guard isOver || isUnder else { return }
        if first == nil {
            first = window
            over = isOver
        }
        last = window
        // Saturating: time_spent is whatever the trace says, and a sum of huge values must not trap.
        let (ms, overflow) = runMs.addingReportingOverflow(window.timeSpentMs)
        runMs = overflow ? .max : ms
        runWindows += 1
        declared = window.rebuild.expectedPerMs
        measuredSum += window.bandwidth
    }

    public func finish(_ context: RuleContext) { flush(context) }

    private func flush(_ context: RuleContext) {
        defer {
            first = nil
            last = nil
            runMs = 0
            runWindows = 0
            measuredSum = 0
        }
        guard let first, let last, runMs >= minMs, runWindows >= 3 else { return }
        let measured = measuredSum / Double(runWindows)
        let consequence = over ? "downtime will overshoot the limit" : "switchover is needlessly late"
        context.report(
            Self.self, .warning, from: first, to: last,
            "Declared switchover bandwidth \(RuleMath.rate(declared)) is \(Format.fixed(declared / measured, 2))× the measured \(RuleMath.rate(measured)) for \(RuleMath.seconds(Double(runMs))): \(consequence).",
            evidence: [
                .number("declared_bytes_per_ms", declared), .number("measured_bytes_per_ms", measured),
                .number("ratio", declared / measured), .count("duration_ms", runMs),
            ])
    }
}
