// SPDX-License-Identifier: Apache-2.0

/// `unknown-era`: a window whose bandwidth argument fits none of QEMU's known layouts.
public final class UnknownEraRule: AnomalyRule {
    public static let id = "unknown-era"
    public static let reportOrder = 100
    /// Needs one window.
    public static let minimumWindows = 1
    public static let firesWhen =
        "arg 3 is neither bytes/ms nor Mbit/s"
    public static let knobs = "identify the QEMU build"
    public static let severities: [Severity] = [.warning]
    public static let summary =
        "A window's bandwidth argument fits neither bytes/ms (eras A/B) nor Mbit/s (era C): an unknown QEMU patch or a corrupted trace."
    public static let remedy =
        "Check which QEMU build produced the trace and whether migration_update_counters() was patched; the threshold of such windows is not rebuilt."

    private var run = WindowRun()

    public init(thresholds: RuleThresholds) {}

    public func observe(_ window: AnalyzedWindow, _ context: RuleContext) {
        if window.era != nil {
            if !run.isEmpty { flush(context) }  // nearly every window has no run: no call
            return
        }
        run.add(window)
    }

    public func finish(_ context: RuleContext) { flush(context) }

    private func flush(_ context: RuleContext) {
        guard let (first, last, count, _) = run.take() else { return }
        let q = QEMUArithmetic.truncate(first.bandwidth)
        let m = QEMUArithmetic.truncate(first.mbps)
        context.report(
            Self.self, .warning, from: first.mark, to: last,
            "Window \(first.index): bandwidth argument \(first.bandwidthTraced) is neither \(q) bytes/ms nor \(m) Mbit/s; \(count) window(s) fit no era.",
            evidence: [
                .count("bandwidth_traced", first.bandwidthTraced), .count("bytes_per_ms", q), .count("mbps", m),
                .count("windows", count),
            ])
    }
}
