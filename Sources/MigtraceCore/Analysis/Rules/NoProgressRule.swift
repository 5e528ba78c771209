// SPDX-License-Identifier: Apache-2.0

/// `no-progress`: consecutive windows that sent less than one page, covering at least a second.
public final class NoProgressRule: AnomalyRule {
    public static let id = "no-progress"
    public static let reportOrder = 20
    /// Needs two windows covering 1 s.
    public static let minimumWindows = 10
    public static let firesWhen =
        "consecutive windows sending < 1 page for ≥ 1 s (`--no-progress-ms`)"
    public static let knobs = "channel/destination health, `max-bandwidth`, `migrate_cancel`"
    public static let severities: [Severity] = [.warning]
    public static let summary =
        "Consecutive windows sending less than one 4 KiB page cover ≥ 1 s: the migration is running but not moving data."
    public static let remedy =
        "Check the migration channel (destination alive, network, `max-bandwidth` not near 0) and `query-migrate` status; cancel with `migrate_cancel` if the destination is gone."

    private let minBytes: UInt64
    private let minMs: UInt64
    private var run = WindowRun()

    public init(thresholds: RuleThresholds) {
        minBytes = thresholds.noProgressBytes
        minMs = thresholds.noProgressMinMs
    }

    public func observe(_ window: AnalyzedWindow, _ context: RuleContext) {
        if window.transferred < minBytes {
            run.add(window)
        } else if !run.isEmpty {
            flush(context)  // only when a run ends: no call for every window that moved data
        }
    }

    public func finish(_ context: RuleContext) { flush(context) }

    private func flush(_ context: RuleContext) {
        guard let r = run.take(), r.durationMs >= minMs, r.windows >= 2 else { return }
        context.report(
            Self.self, .warning, from: r.first.mark, to: r.last,
            "Windows \(r.first.index)–\(r.last.index) (\(RuleMath.seconds(Double(r.durationMs)))) each sent less than one page.",
            evidence: [.count("windows", r.windows), .count("duration_ms", r.durationMs), .count("min_bytes", minBytes)])
    }
}
