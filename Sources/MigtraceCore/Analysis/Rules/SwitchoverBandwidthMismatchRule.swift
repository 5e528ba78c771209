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
    /// The run's latest pending, downtime limit and length of the series so far (windows), for the consequence.
    private var pending: UInt64?
    private var limitMs: UInt64?
    private var seriesWindows = 0
    /// The first window (setup), when it was already mismatched: a migration that lasted one window has no other.
    private var setupWindow: AnalyzedWindow?

    public init(thresholds: RuleThresholds) {
        ratio = thresholds.switchoverMismatchRatio
        minMs = thresholds.switchoverMismatchMinMs
    }

    public func observe(_ window: AnalyzedWindow, _ context: RuleContext) {
        let userSet = window.rebuild.basis == .userInteger || window.rebuild.basis == .userFloat
        seriesWindows = window.index + 1
        if window.index == 0, userSet, window.bandwidth > 0 { setupWindow = window }
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
        pending = window.pendingBytes
        limitMs = window.rebuild.downtimeLimitMs
    }

    public func finish(_ context: RuleContext) {
        // A migration over within its setup window: judged from that window, which is all there is.
        if seriesWindows == 1, let w = setupWindow, run.isEmpty {
            let r = w.rebuild.expectedPerMs / w.bandwidth
            if r >= ratio || r <= 1 / ratio {
                over = r >= ratio
                run.add(w)
                declared = w.rebuild.expectedPerMs
                measuredSum = w.bandwidth
                pending = w.pendingBytes
                limitMs = w.rebuild.downtimeLimitMs
            }
        }
        flush(context, atEnd: true)
    }

    private func flush(_ context: RuleContext, atEnd: Bool = false) {
        defer {
            measuredSum = 0
            pending = nil
        }
        guard let (first, last, runWindows, runMs) = run.take() else { return }
        // A run that lasts to the end of a short migration counts however short: there was no more to see.
        let wholeMigration = atEnd && (first.index <= 1) && runWindows >= 1
        guard (runMs >= minMs && runWindows >= 3) || wholeMigration else { return }
        let measured = measuredSum / Double(runWindows)
        var consequence = over ? "downtime will overshoot the limit" : "switchover is needlessly late"
        var evidence: [Evidence] = [
            .number("declared_bytes_per_ms", declared), .number("measured_bytes_per_ms", measured),
            .number("ratio", declared / measured), .count("duration_ms", runMs),
        ]
        if over, let pending, measured > 0 {
            // What QEMU's threshold let through, sent at the bandwidth the link really has.
            let downtime = Double(pending) / measured
            evidence.append(.number("expected_downtime_ms", downtime))
            consequence =
                "its threshold let \(RuleMath.bytes(Double(pending))) pending through, \(NumberText.fixed(downtime, 0)) ms at the measured bandwidth"
                + (limitMs.map { " against a \($0) ms limit" } ?? "")
        }
        let span =
            wholeMigration && runMs < minMs
            ? "the whole migration (\(runWindows) window\(runWindows == 1 ? "" : "s"))" : RuleMath.seconds(Double(runMs))
        let remedy =
            "Set `avail-switchover-bandwidth` to what the link sustains, ≈ \(NumberText.fixed(measured * 1000, 0)) B/s as measured here (migrate-set-parameters), or to 0 to let QEMU use its own measurement."
        context.report(
            Self.self, .warning, from: first.mark, to: last,
            "Declared switchover bandwidth \(RuleMath.rate(declared)) is \(NumberText.fixed(declared / measured, 2))× the measured \(RuleMath.rate(measured)) for \(span): \(consequence).",
            evidence: evidence, remedy: remedy)
    }
}
