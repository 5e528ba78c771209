// SPDX-License-Identifier: Apache-2.0

/// `threshold-collapse`: one or two windows whose bandwidth fell below 25 % of the baseline, dragging
/// QEMU's switchover threshold down with it.
public final class ThresholdCollapseRule: AnomalyRule {
    public static let id = "threshold-collapse"
    public static let reportOrder = 40
    /// Needs the setup window, 3 baseline windows, the slow one and one after it.
    public static let minimumWindows = 6
    public static let firesWhen =
        "one or two windows below 25 % (`--collapse-percent`) of the baseline median: the threshold collapses with them"
    public static let knobs = "`avail-switchover-bandwidth` set to the real link speed"
    public static let severities: [Severity] = [.warning]
    public static let summary =
        "A single window (at most two) with bandwidth below 25 % of the baseline median: QEMU's switchover threshold collapsed with it."
    public static let remedy =
        "Set `avail-switchover-bandwidth` to the real link speed so one slow window cannot collapse the threshold, and find what slowed that window (see thread-stall)."

    private let fraction: Double
    private let baselineSize: Int
    private var baseline: RuleMath.SlidingMedian
    private var run: [AnalyzedWindow] = []

    public init(thresholds: RuleThresholds) {
        fraction = thresholds.collapseFraction
        baselineSize = thresholds.baselineWindows
        baseline = RuleMath.SlidingMedian(capacity: max(0, thresholds.baselineWindows))
    }

    public func observe(_ window: AnalyzedWindow, _ context: RuleContext) {
        guard window.index > 0 else { return }
        guard baseline.count >= 3 else {
            if window.transferred >= 4096 { baseline.append(window.bandwidth) }
            return
        }
        let base = baseline.median
        if window.bandwidth < base * fraction {
            run.append(window)
            // A sustained drop is a shift or no-progress, not a collapse. (The run keeps its storage: a
            // trace with slow windows reallocated it for each.)
            if run.count > 2 { run.removeAll(keepingCapacity: true) }
            return
        }
        if !run.isEmpty { flush(base, context) }  // nearly every window has no run: no call
        // Append, then drop the oldest once over size: one pass when both happen.
        if baseline.count >= baselineSize {
            baseline.replaceOldest(with: window.bandwidth)
        } else {
            baseline.append(window.bandwidth)
        }
    }

    public func finish(_ context: RuleContext) {
        // A drop in the very last windows is the end of the migration, not a collapse.
        run.removeAll()
    }

    private func flush(_ base: Double, _ context: RuleContext) {
        guard let first = run.first, let last = run.last else { return }
        let lowest = run.min { $0.bandwidth < $1.bandwidth }!
        // The baseline's threshold is only evidence: worked out only for a finding the per-rule cap keeps.
        func baseThreshold() -> UInt64 {
            let limit = lowest.rebuild.downtimeLimitMs ?? QEMUArithmetic.defaultDowntimeLimitMs
            return QEMUArithmetic.threshold(expectedPerMs: base, downtimeLimitMs: limit)
        }
        context.report(
            Self.self, .warning, from: first, to: last,
            "Window \(lowest.index) ran at \(RuleMath.rate(lowest.bandwidth)), \(NumberText.fixed(lowest.bandwidth / base * 100, 0)) % of the \(RuleMath.rate(base)) baseline; the threshold fell to \(lowest.thresholdTraced) bytes.",
            evidence: [
                .number("bandwidth_bytes_per_ms", lowest.bandwidth), .number("baseline_bytes_per_ms", base),
                .count("threshold_traced_bytes", lowest.thresholdTraced),
                .count("baseline_threshold_bytes", baseThreshold()),
            ])
        run.removeAll(keepingCapacity: true)
    }
}
