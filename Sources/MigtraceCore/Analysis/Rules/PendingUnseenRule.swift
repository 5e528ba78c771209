// SPDX-License-Identifier: Apache-2.0

/// `pending-unseen`: a series of windows without any pending-data event, so that convergence cannot be judged.
///
/// Without `migrate_pending*` (QEMU ≤ 11.0) or `qemu_savevm_query_pending` (11.1) in the trace, the verdict,
/// the ETA, the expected downtime and `non-convergence` have nothing to go on: say so once per series, with
/// the events that would fix it.
public final class PendingUnseenRule: AnomalyRule {
    public static let id = "pending-unseen"
    public static let reportOrder = 85
    /// One second of windows: a shorter migration may well end before its first pending event.
    public static let minimumWindows = 10
    public static let firesWhen = "a series of ≥ 10 windows without any pending-data event"
    public static let knobs = "the traced events (`-trace 'migrate_pending*'`, `-trace qemu_savevm_query_pending`)"
    public static let severities: [Severity] = [.info]
    public static let summary =
        "A series of at least 10 windows without any pending-data event: whether it converges, when it will be done and what downtime it will have cannot be told."
    public static let remedy = "Trace the pending data too: \(TracingRecipe.commandLine())."

    private var first: WindowMark?
    private var last: WindowMark?
    private var windows = 0
    private var sawPending = false

    public init(thresholds: RuleThresholds) {}

    public func observe(_ window: AnalyzedWindow, _ context: RuleContext) {
        if window.pendingBytes != nil { sawPending = true }
        if first == nil { first = window.mark }
        last = window.mark
        windows += 1
    }

    public func finish(_ context: RuleContext) {
        guard !sawPending, windows >= Self.minimumWindows, let first, let last else { return }
        context.report(
            Self.self, .info, from: first, to: last,
            "No pending-data event in \(windows) windows: the verdict, ETA and expected downtime of this migration cannot be computed, and non-convergence cannot be detected.",
            evidence: [.count("windows", UInt64(windows))])
    }
}
