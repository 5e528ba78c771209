// SPDX-License-Identifier: Apache-2.0

/// `no-progress`: consecutive windows that sent less than one page, covering at least a second.
public final class NoProgressRule: AnomalyRule {
    public static let id = "no-progress"
    public static let severities: [Severity] = [.warning]
    public static let summary =
        "Consecutive windows sending less than one 4 KiB page cover ≥ 1 s: the migration is running but not moving data."
    public static let remedy =
        "Check the migration channel (destination alive, network, `max-bandwidth` not near 0) and `query-migrate` status; cancel with `migrate_cancel` if the destination is gone."

    private let minBytes: UInt64
    private let minMs: UInt64
    private var first: AnalyzedWindow?
    private var last: AnalyzedWindow?
    private var runMs: UInt64 = 0
    private var runWindows: UInt64 = 0

    public init(thresholds: RuleThresholds) {
        minBytes = thresholds.noProgressBytes
        minMs = thresholds.noProgressMinMs
    }

    public func observe(_ window: AnalyzedWindow, _ context: RuleContext) {
        if window.transferred < minBytes {
            if first == nil { first = window }
            last = window
            // Saturating: time_spent is whatever the trace says, and a sum of huge values must not trap.
            let (ms, overflow) = runMs.addingReportingOverflow(window.timeSpentMs)
            runMs = overflow ? .max : ms
            runWindows += 1
        } else {
            flush(context)
        }
    }

    public func finish(_ context: RuleContext) { flush(context) }

    private func flush(_ context: RuleContext) {
        defer {
            first = nil
            last = nil
            runMs = 0
            runWindows = 0
        }
        guard let first, let last, runMs >= minMs, runWindows >= 2 else { return }
        context.report(
            Self.self, .warning, from: first, to: last,
            "Windows \(first.index)–\(last.index) (\(RuleMath.seconds(Double(runMs)))) each sent less than one page.",
            evidence: [.count("windows", runWindows), .count("duration_ms", runMs), .count("min_bytes", minBytes)])
    }
}
