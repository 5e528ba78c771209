// SPDX-License-Identifier: Apache-2.0

/// `formula-mismatch`: no downtime limit reproduces the traced threshold with QEMU's formulas.
public final class FormulaMismatchRule: AnomalyRule {
    public static let id = "formula-mismatch"
    public static let reportOrder = 90
    /// Needs one window.
    public static let minimumWindows = 1
    public static let firesWhen =
        "no downtime limit (or not the given `--downtime-limit`) reproduces the traced threshold"
    public static let knobs = "patched QEMU, corrupted trace, wrong limit"
    public static let severities: [Severity] = [.warning]
    public static let summary =
        "No downtime limit (or, with --downtime-limit, not the given one) reproduces the traced max_size with QEMU's arithmetic: a patched QEMU, a corrupted trace or a wrong --downtime-limit."
    public static let remedy =
        "Check the QEMU build (patches to migration_update_counters), the trace's integrity, and `downtime-limit` in query-migrate-parameters."

    private var run = WindowRun()

    public init(thresholds: RuleThresholds) {}

    public func observe(_ window: AnalyzedWindow, _ context: RuleContext) {
        guard window.era != nil else { return }
        if window.rebuild.exact {
            if !run.isEmpty { flush(context) }  // most windows have no run: no call
            return
        }
        run.add(window)
    }

    public func finish(_ context: RuleContext) { flush(context) }

    private func flush(_ context: RuleContext) {
        guard let (first, last, count, _) = run.take() else { return }
        let limit = first.rebuild.downtimeLimitMs.map { "\($0) ms" } ?? "no limit"
        context.report(
            Self.self, .warning, from: first.mark, to: last,
            "Window \(first.index): traced max_size \(first.thresholdTraced) but QEMU's formula gives \(first.rebuild.threshold) (\(limit)); \(count) window(s) mismatch.",
            evidence: [
                .count("threshold_traced_bytes", first.thresholdTraced),
                .count("threshold_rebuilt_bytes", first.rebuild.threshold),
                .text("basis", first.rebuild.basis.rawValue), .count("windows", count),
            ])
    }
}
