// SPDX-License-Identifier: Apache-2.0

/// `non-convergence`: pending data stays above the threshold, with no downward trend, for ≥ 10 s.
///
/// Needs the pending events in the trace (`-trace 'migrate_pending*'`). Keeps the minimum pending of
/// each second of the current episode, only as many seconds as the rule looks back.
public final class NonConvergenceRule: AnomalyRule {
    public static let id = "non-convergence"
    public static let severities: [Severity] = [.warning]
    public static let summary =
        "With pending events in the trace: pending data stays above the threshold with no downward trend for ≥ 10 s; the guest dirties memory faster than it is sent."
    public static let remedy =
        "Raise `max-bandwidth` or `downtime-limit`, enable the `auto-converge` or `dirty-limit` capability, or switch to postcopy (`postcopy-ram` + migrate-start-postcopy)."

    private let minMs: Double
    private var start: AnalyzedWindow?
    private var last: AnalyzedWindow?
    private var reported = false
    /// (second index since episode start, minimum pending in that second)
    private var seconds: [(second: Int, min: UInt64)] = []
    private var startPending: UInt64 = 0

    public init(thresholds: RuleThresholds) {
        minMs = Double(thresholds.nonConvergenceMs)
    }

    public func observe(_ window: AnalyzedWindow, _ context: RuleContext) {
        guard let pending = window.pendingBytes else { return }
        guard pending > window.thresholdTraced else {
            flush(context)
            return
        }
        if start == nil {
            start = window
            startPending = pending
            seconds.removeAll()
        }
        last = window
        let elapsedMs = (window.endTime - start!.startTime) * 1000
        let second = Int(elapsedMs / 1000)
        if let tail = seconds.last, tail.second == second {
            seconds[seconds.count - 1].min = min(tail.min, pending)
        } else {
            seconds.append((second, pending))
            let keep = Int(minMs / 1000) + 1
            if seconds.count > keep { seconds.removeFirst(seconds.count - keep) }
        }
        guard !reported, elapsedMs >= minMs, seconds.count >= 4 else { return }
        // Downward trend: the recent half's minimum is clearly below the older half's.
        let half = seconds.count / 2
        let older = seconds[..<half].map(\.min).min()!
        let recent = seconds[half...].map(\.min).min()!
        if Double(recent) < 0.9 * Double(older) { return }
        reported = true
    }

    public func finish(_ context: RuleContext) { flush(context) }

    private func flush(_ context: RuleContext) {
        defer {
            start = nil
            last = nil
            reported = false
            seconds.removeAll()
        }
        guard reported, let start, let last, let pending = last.pendingBytes else { return }
        let durationMs = (last.endTime - start.startTime) * 1000
        context.report(
            Self.self, .warning, from: start, to: last,
            "Pending data stayed above the threshold for \(RuleMath.seconds(durationMs)) (windows \(start.index)–\(last.index)) without falling: \(pending) bytes pending against a \(last.thresholdTraced)-byte threshold.",
            evidence: [
                .count("pending_start_bytes", startPending), .count("pending_end_bytes", pending),
                .count("threshold_bytes", last.thresholdTraced), .number("duration_ms", durationMs),
            ])
    }
}
