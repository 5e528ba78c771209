// SPDX-License-Identifier: Apache-2.0

/// `non-convergence`: pending data stays above the threshold for ≥ 10 s and the RAM dirty syncs in that
/// time do not bring it down, or (QEMU 11.1) the device stop-copy data in it is above the threshold on its own.
///
/// Needs the pending events in the trace (`-trace 'migrate_pending*'`). Pending falls as pages are sent
/// and jumps back up at each bitmap sync; the level it jumps back to is what tells convergence. The
/// rule keeps the first and the latest post-sync level of the episode, so its state is constant.
public final class NonConvergenceRule: AnomalyRule {
    public static let id = "non-convergence"
    public static let reportOrder = 80
    /// Needs pending events, and 10 s of windows above the threshold spanning 2 dirty syncs.
    public static let minimumWindows = 100
    public static let firesWhen =
        "with pending events: pending above the threshold ≥ 10 s (`--non-convergence-ms`) and, across ≥ 2 dirty syncs, the post-sync pending does not fall by 10 % or (11.1) its device stop-copy part alone exceeds the threshold"
    public static let knobs = "`max-bandwidth`, `downtime-limit`, `auto-converge`/`dirty-limit`, postcopy"
    public static let severities: [Severity] = [.warning]
    public static let summary =
        "With pending events in the trace: pending stays above the threshold for ≥ 10 s and, over at least two RAM dirty syncs, the post-sync pending does not fall by 10 %: the guest dirties memory as fast as it is sent."
    public static let remedy =
        "Raise `max-bandwidth` or `downtime-limit`, enable the `auto-converge` or `dirty-limit` capability, or switch to postcopy (`postcopy-ram` + migrate-start-postcopy)."

    private let minMs: Double
    private var start: WindowMark?
    /// The episode's latest window, with the values the finding quotes.
    private var last: (mark: WindowMark, pending: UInt64, threshold: UInt64, switchoverPerMs: Double, limitMs: UInt64?)?
    private var previousPending: UInt64?
    private var firstLevel: UInt64?
    private var latestLevel: UInt64?
    private var levels = 0
    private var reported = false
    /// The latest window's device stop-copy bytes, when the pending query gives them (QEMU 11.1).
    private var stopCopy: UInt64?

    public init(thresholds: RuleThresholds) {
        minMs = Double(thresholds.nonConvergenceMs)
    }

    public func observe(_ window: AnalyzedWindow, _ context: RuleContext) {
        guard let pending = window.pendingBytes else { return }
        defer { previousPending = pending }
        guard pending > window.thresholdTraced else {
            // Without an episode every field is already reset: no call.
            if start != nil { flush(context) }
            return
        }
        if start == nil { start = window.mark }
        last = (window.mark, pending, window.thresholdTraced, window.rebuild.expectedPerMs, window.rebuild.downtimeLimitMs)
        stopCopy = window.pendingSplit?.stopcopy
        if let before = previousPending, pending > before {
            // Pending rose: a bitmap sync found newly dirtied pages; this is the post-sync level.
            if firstLevel == nil { firstLevel = pending }
            latestLevel = pending
            levels += 1
        }
        let elapsedMs = (window.endTime - start!.startTime) * 1000
        guard !reported, elapsedMs >= minMs, levels >= 2, let first = firstLevel, let latest = latestLevel else { return }
        // Data only a stopped VM can send, above the threshold by itself: no iteration can make it fit.
        if Double(latest) >= 0.9 * Double(first) || (stopCopy ?? 0) > window.thresholdTraced { reported = true }
    }

    public func finish(_ context: RuleContext) { flush(context) }

    private func flush(_ context: RuleContext) {
        defer {
            start = nil
            last = nil
            firstLevel = nil
            latestLevel = nil
            levels = 0
            reported = false
            stopCopy = nil
        }
        guard reported, let start, let (last, pending, threshold, switchoverPerMs, limit) = last else { return }
        let durationMs = (last.endTime - start.startTime) * 1000
        let floor = Double(latestLevel ?? pending)
        var message =
            "Pending data stayed above the threshold for \(RuleMath.seconds(durationMs)) (windows \(start.index)–\(last.index)); after \(levels) dirty syncs it is back at \(latestLevel ?? 0) bytes (first post-sync level \(firstLevel ?? 0)) against a \(threshold)-byte threshold."
        var evidence: [Evidence] = [
            .count("first_post_sync_pending_bytes", firstLevel ?? 0), .count("latest_post_sync_pending_bytes", latestLevel ?? 0),
            .count("syncs", UInt64(levels)), .count("pending_end_bytes", pending),
            .count("threshold_bytes", threshold), .number("duration_ms", durationMs),
        ]
        if let sc = stopCopy, sc > 0 {
            message +=
                " \(sc) bytes of it are device stop-copy data, which only moves while the VM is stopped\(sc > threshold ? " and alone exceeds the threshold: iterating cannot make it fit" : "")."
            evidence.append(.count("stop_copy_bytes", sc))
        }
        // QEMU switches over once pending ≤ switchover bandwidth × limit: the post-sync level says what would do.
        let deviceBound = (stopCopy ?? 0) > threshold
        var neededLimit: Double?
        var neededPerMs: Double?
        if switchoverPerMs > 0 {
            neededLimit = (floor / switchoverPerMs).rounded(.up)
            evidence.append(.number("advised_downtime_limit_ms", neededLimit!))
            if let limit, limit > 0 {
                neededPerMs = floor / Double(limit)
                evidence.append(.number("advised_bandwidth_bytes_per_second", (neededPerMs! * 1000).rounded(.up)))
            }
        }
        var remedy: String?
        if deviceBound {
            // Device data no iteration moves: only a threshold that holds it helps.
            remedy =
                "Raise `downtime-limit` until the threshold holds the devices' stop-copy data"
                + (neededLimit.map { ": ≥ \(NumberText.fixed($0, 0)) ms at the measured \(RuleMath.rate(switchoverPerMs))" } ?? "")
                + " (or set `avail-switchover-bandwidth` when the link is faster than the measured bandwidth); auto-converge, dirty-limit or more iterations cannot shrink it."
        } else if let neededLimit {
            remedy =
                "The guest re-dirties \(RuleMath.bytes(floor)) per sync: at the measured \(RuleMath.rate(switchoverPerMs)) a `downtime-limit` of ≥ \(NumberText.fixed(neededLimit, 0)) ms would let it converge"
                + (neededPerMs.map {
                    ", or ≥ \(RuleMath.rate($0)) of bandwidth at the current \(limit ?? 0) ms (`max-bandwidth`, the link)"
                } ?? "")
                + "; otherwise enable `auto-converge` or `dirty-limit`, or switch to postcopy."
        }
        context.report(Self.self, .warning, from: start, to: last, message, evidence: evidence, remedy: remedy)
    }
}
