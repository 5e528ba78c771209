// SPDX-License-Identifier: Apache-2.0

/// `thread-stall`: a window far longer than QEMU's 100 ms, i.e. the migration thread was blocked.
public final class ThreadStallRule: AnomalyRule {
    public static let id = "thread-stall"
    public static let reportOrder = 10
    /// Needs one window.
    public static let minimumWindows = 1
    public static let firesWhen =
        "a window ≥ 300 ms (`--stall-warning-ms`) / ≥ 1000 ms (`--stall-critical-ms`)"
    public static let knobs =
        "what blocks the migration thread (bitmap sync under the BQL, stopped/starved QEMU); `dirty-limit`, `auto-converge`"
    public static let severities: [Severity] = [.warning, .critical]
    public static let summary =
        "A window lasted ≥ 300 ms (warning) or ≥ 1000 ms (critical): the migration thread was blocked (BQL, bitmap sync, a stopped or starved process)."
    public static let remedy =
        "Find what blocks the migration thread: a long RAM bitmap sync under the BQL (large guests; `dirty-limit` or `auto-converge` shrink the dirty set), or a stopped or CPU-starved QEMU (cgroup CPU quota); raising `downtime-limit` cannot compensate."

    private let warningMs: UInt64
    private let criticalMs: UInt64

    public init(thresholds: RuleThresholds) {
        warningMs = thresholds.stallWarningMs
        criticalMs = thresholds.stallCriticalMs
    }

    public func observe(_ window: AnalyzedWindow, _ context: RuleContext) {
        guard window.timeSpentMs >= warningMs else { return }
        let severity: Severity = window.timeSpentMs >= criticalMs ? .critical : .warning
        let setup = window.index == 0 ? " (the first window also covers migration setup)" : ""
        context.report(
            Self.self, severity, from: window, to: window,
            "Window \(window.index) lasted \(window.timeSpentMs) ms instead of ~100 ms\(setup): the migration thread was blocked.",
            evidence: [
                .count("time_spent_ms", window.timeSpentMs), .count("transferred_bytes", window.transferred),
                .count("threshold_ms", severity == .critical ? criticalMs : warningMs),
            ])
    }
}
