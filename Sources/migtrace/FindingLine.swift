// SPDX-License-Identifier: Apache-2.0
import MigtraceCore

/// A finding as one line of standard error (`analyze --format csv`, whose standard output is the table): it names
/// the input and the series, since several files may be analysed at once.
enum FindingLine {
    /// `FILE: series N window(s) A–B: severity rule: message`; findings of no series (rejected lines) name none.
    static func text(_ f: Finding, report: AnalysisReport, names: InputNames) -> String {
        guard f.series >= 0, let s = report.series.first(where: { $0.info.index == f.series }) else {
            return "\(f.severity) \(f.rule): \(f.message)"
        }
        let windows = f.firstWindow == f.lastWindow ? "window \(f.firstWindow)" : "windows \(f.firstWindow)–\(f.lastWindow)"
        return "\(names[s.info.input]): series \(f.series) \(windows): \(f.severity) \(f.rule): \(f.message)"
    }
}
