// SPDX-License-Identifier: Apache-2.0

/// `downtime-limit-changed`: the downtime limit that reproduces QEMU's threshold changed mid-series.
public final class DowntimeLimitChangedRule: AnomalyRule {
    public static let id = "downtime-limit-changed"
    public static let reportOrder = 50
    /// Needs one window per limit.
    public static let minimumWindows = 2
    public static let firesWhen =
        "the limit that reproduces the threshold changed"
    public static let knobs = "`downtime-limit`"
    public static let severities: [Severity] = [.info]
    public static let summary =
        "The downtime limit that reproduces the traced threshold changed (someone ran migrate-set-parameters downtime-limit)."
    public static let remedy =
        "Confirm the change of `downtime-limit` was intended (query-migrate-parameters); a larger limit raises the threshold and lets the migration converge sooner at the cost of a longer pause."

    private var current: UInt64?

    public init(thresholds: RuleThresholds) {}

    // Not inlined into the analyzer: there it made the caller big enough that `BuiltinRules.observe` was no
    // longer inlined, and each window was copied to call it.
    @inline(never) public func observe(_ window: AnalyzedWindow, _ context: RuleContext) {
        // Whether the window tells the limit varies from window to window: computed as a value and the state
        // updated with a select, where three early returns mispredicted about once per window.
        let rebuild = window.rebuild
        let tells = rebuild.exact && rebuild.downtimeLimitMs != nil && rebuild.expectedPerMs > 0
        let limit = rebuild.downtimeLimitMs ?? 0
        let old = current
        current = tells ? limit : old
        if tells, let old, old != limit { reportChange(window, from: old, to: limit, context) }
    }

    @inline(never) private func reportChange(
        _ window: AnalyzedWindow, from old: UInt64, to limit: UInt64, _ context: RuleContext
    ) {
        context.report(
            Self.self, .info, from: window, to: window,
            "Downtime limit changed from \(old) ms to \(limit) ms at window \(window.index).",
            evidence: [.count("old_limit_ms", old), .count("new_limit_ms", limit)])
    }
}
