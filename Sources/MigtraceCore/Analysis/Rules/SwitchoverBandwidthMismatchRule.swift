// SPDX-License-Identifier: Apache-2.0

/// `switchover-bandwidth-mismatch`: a user-declared switchover bandwidth far from the measured one, sustained.
public final class SwitchoverBandwidthMismatchRule: AnomalyRule {
    public static let id = "switchover-bandwidth-mismatch"
    public static let reportOrder = 60
    /// Needs the setup window, then 3 mismatched ones covering 1 s.
    public static let minimumWindows = 11
    public static let firesWhen =
        "declared switchover bandwidth ≥ 2× (overshoot) or ≤ 0.5× (late) the measured one (`--switchover-ratio`) for ≥ 1 s"
    public static let knobs = "`avail-switchover-bandwidth`"
    public static let severities: [Severity] = [.warning]
    public static let summary =
        "avail-switchover-bandwidth is ≥ 2× the measured bandwidth (downtime will overshoot) or ≤ 0.5× (switchover needlessly late) for ≥ 1 s."
    public static let remedy =
        "Set `avail-switchover-bandwidth` to the bandwidth the link really sustains during switchover (or 0 to let QEMU use the measured bandwidth)."

    private let ratio: Double
    private let minMs: UInt64
    private var run = WindowRun()
    private var over = false
    private var declared: Double = 0
    private var measuredSum: Double = 0

    public init(thresholds: RuleThresholds) {
        ratio = thresholds.switchoverMismatchRatio
        minMs = thresholds.switchoverMismatchMinMs
    }

    public func observe(_ window: AnalyzedWindow, _ context: RuleContext) {
        let userSet = window.rebuild.basis == .userInteger || window.rebuild.basis == .userFloat
        guard userSet, window.index > 0, window.bandwidth > 0 else {
            // Nearly every window has no run (and then `measuredSum` is 0): no call.
            if !run.isEmpty { flush(context) }
            return
        }
        let r = window.rebuild.expectedPerMs / window.bandwidth
        let isOver = r >= ratio
        let isUnder = r <= 1 / ratio
        if (!isOver && !isUnder) || (!run.isEmpty && isOver != over) { flush(context) }
        guard isOver || isUnder else { return }
        if run.isEmpty { over = isOver }
        run.add(window)
        declared = window.rebuild.expectedPerMs
        measuredSum += window.bandwidth
    }

    public func finish(_ context: RuleContext) { flush(context) }

    private func flush(_ context: RuleContext) {
        defer { measuredSum = 0 }
        guard let (first, last, runWindows, runMs) = run.take(), runMs >= minMs, runWindows >= 3 else { return }
        let measured = measuredSum / Double(runWindows)
        let consequence = over ? "downtime will overshoot the limit" : "switchover is needlessly late"
        context.report(
            Self.self, .warning, from: first.mark, to: last,
            "Declared switchover bandwidth \(RuleMath.rate(declared)) is \(NumberText.fixed(declared / measured, 2))× the measured \(RuleMath.rate(measured)) for \(RuleMath.seconds(Double(runMs))): \(consequence).",
            evidence: [
                .number("declared_bytes_per_ms", declared), .number("measured_bytes_per_ms", measured),
                .number("ratio", declared / measured), .count("duration_ms", runMs),
            ])
    }
}
