// SPDX-License-Identifier: Apache-2.0

/// `downtime-limit-changed`: the downtime limit that reproduces QEMU's threshold changed mid-series.
public final class DowntimeLimitChangedRule: AnomalyRule {
    public static let id = "downtime-limit-changed"
    public static let severities: [Severity] = [.info]
    public static let summary =
        "The downtime limit that reproduces the traced threshold changed (someone ran migrate-set-parameters downtime-limit)."
    public static let remedy =
        "Confirm the change of `downtime-limit` was intended (query-migrate-parameters); a larger limit raises the threshold and lets the migration converge sooner at the cost of a longer pause."

    private var current: UInt64?

    public init(thresholds: RuleThresholds) {}

    public func observe(_ window: AnalyzedWindow, _ context: RuleContext) {
        guard window.rebuild.exact, let limit = window.rebuild.downtimeLimitMs, window.rebuild.expectedPerMs > 0 else {
            return
        }
        defer { current = limit }
        guard let old = current, old != limit else { return }
        context.report(
            Self.self, .info, from: window, to: window,
            "Downtime limit changed from \(old) ms to \(limit) ms at window \(window.index).",
            evidence: [.count("old_limit_ms", old), .count("new_limit_ms", limit)])
    }
}
