// SPDX-License-Identifier: Apache-2.0

/// `bandwidth-shift`: the bandwidth moved to a new level (≥ 30 %) and stayed there for ≥ 1 s.
///
/// The baseline is the median of the last windows of the current level; windows that deviate in the same
/// direction form a candidate run, which becomes a shift once it lasts long enough. One finding per shift.
public final class BandwidthShiftRule: AnomalyRule {
    public static let id = "bandwidth-shift"
    public static let reportOrder = 30
    /// Needs the setup window, 3 baseline windows, then 3 shifted ones covering 1 s.
    public static let minimumWindows = 14
    public static let firesWhen =
        "bandwidth moves ≥ 30 % (`--shift-percent`) from the median of the preceding windows and holds ≥ 1 s (`--shift-min-ms`); one finding per shift"
    public static let knobs = "`max-bandwidth`, competing traffic, `avail-switchover-bandwidth`"
    public static let severities: [Severity] = [.warning]
    public static let summary =
        "The bandwidth changed by ≥ 30 % against the median of the preceding windows and stayed there ≥ 1 s (one finding per shift)."
    public static let remedy =
        "If the change was not intended, check `max-bandwidth` (query-migrate-parameters) and competing traffic on the migration network; QEMU's threshold follows the measured bandwidth unless `avail-switchover-bandwidth` is set."

    private let fraction: Double
    private let minMs: UInt64
    private let baselineSize: Int
    private var baseline: RuleMath.SlidingMedian
    /// The candidate run's bandwidths (at most 512: the median of its first 512 windows is its level) and where
    /// its first window lies.
    private var run: [Double] = []
    private static let maxRun = 512
    private var runStart = WindowMark(index: 0, startTime: 0, endTime: 0)
    private var runMs: UInt64 = 0
    private var runUp = false

    public init(thresholds: RuleThresholds) {
        fraction = thresholds.shiftFraction
        minMs = thresholds.shiftMinMs
        baselineSize = thresholds.baselineWindows
        baseline = RuleMath.SlidingMedian(capacity: max(0, thresholds.baselineWindows))
    }

    public func observe(_ window: AnalyzedWindow, _ context: RuleContext) {
        // The first window includes setup; a no-progress window says nothing about the link.
        guard window.index > 0, window.transferred >= 4096 else { return }
        let bw = window.bandwidth
        guard baseline.count >= 3 else {
            baseline.append(bw)
            return
        }
        let base = baseline.median
        let up = bw >= base * (1 + fraction)
        let down = bw <= base * (1 - fraction)
        guard up || down else {
            // Back at the baseline: an earlier excursion was transient.
            run.removeAll(keepingCapacity: true)
            runMs = 0
            push(bw)
            return
        }
        if !run.isEmpty && up != runUp {
            run.removeAll(keepingCapacity: true)
            runMs = 0
        }
        runUp = up
        if run.isEmpty { runStart = window.mark }
        if run.count < Self.maxRun { run.append(bw) }
        // Saturating: time_spent is whatever the trace says, and a sum of huge values must not trap.
        let (ms, overflow) = runMs.addingReportingOverflow(window.timeSpentMs)
        runMs = overflow ? .max : ms
        if run.count >= 3 && runMs >= minMs { reportShift(up: up, from: base, at: window.mark, context) }
    }

    /// The run became a shift: report it, and the new level is the baseline. Out of line (`@inline(never)`):
    /// with the message building inline, `observe` saved and restored registers for every window.
    @inline(never) private func reportShift(up: Bool, from base: Double, at mark: WindowMark, _ context: RuleContext) {
        let newLevel = RuleMath.median(run)
        let change = (newLevel - base) / base
        context.report(
            Self.self, .warning, from: runStart, to: mark,
            "Bandwidth \(up ? "rose" : "fell") \(NumberText.fixed(abs(change) * 100, 0)) % from \(RuleMath.rate(base)) to \(RuleMath.rate(newLevel)) at window \(runStart.index) and held for \(RuleMath.seconds(Double(runMs))).",
            evidence: [
                .number("baseline_bytes_per_ms", base), .number("new_bytes_per_ms", newLevel),
                .number("change_fraction", change), .count("duration_ms", runMs),
            ])
        baseline.reset(run.suffix(baselineSize))
        run.removeAll(keepingCapacity: true)
        runMs = 0
    }

    private func push(_ bw: Double) {
        if baseline.count == baselineSize {
            baseline.replaceOldest(with: bw)  // the steady state: append, then drop the oldest
            return
        }
        baseline.append(bw)
        if baseline.count > baselineSize { baseline.removeOldest(baseline.count - baselineSize) }
    }
}
