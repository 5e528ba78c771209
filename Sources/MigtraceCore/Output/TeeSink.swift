// SPDX-License-Identifier: Apache-2.0

/// Passes every call to each of several sinks, in order (a live capture shown and recorded at once).
public final class TeeSink: AnalysisSink {
    private let sinks: [any AnalysisSink]

    /// A sink that is all of `sinks`.
    public init(_ sinks: [any AnalysisSink]) { self.sinks = sinks }

    public func seriesStarted(_ info: SeriesInfo) { for s in sinks { s.seriesStarted(info) } }
    public func window(_ window: AnalyzedWindow, in series: SeriesInfo) { for s in sinks { s.window(window, in: series) } }
    public func finding(_ finding: Finding) { for s in sinks { s.finding(finding) } }
    public func seriesEnded(_ summary: SeriesSummary) { for s in sinks { s.seriesEnded(summary) } }
    public func finished(_ report: AnalysisReport) { for s in sinks { s.finished(report) } }
    public func live(_ event: LiveEvent) { for s in sinks { s.live(event) } }
}
