// SPDX-License-Identifier: Apache-2.0

/// Receives the analysis as it streams: series, windows, findings, and the final report.
public protocol AnalysisSink: AnyObject {
    /// A new series begins (its first window follows).
    func seriesStarted(_ info: SeriesInfo)
    /// The next window of a series.
    func window(_ window: AnalyzedWindow, in series: SeriesInfo)
    /// A finding, as soon as a rule is sure of it.
    func finding(_ finding: Finding)
    /// A series is complete.
    func seriesEnded(_ summary: SeriesSummary)
    /// Everything is done.
    func finished(_ report: AnalysisReport)
    /// A live capture's own event (probes attached, state change, events lost, capture end), in order with
    /// the analysis. Sinks that do not show live captures ignore it.
    func live(_ event: LiveEvent)
    /// The next window of a series, where it lies: the batch replay hands windows over by address, so that a
    /// sink that reads a few fields (CSV) is spared a copy of the whole window. Defaults to ``window(_:in:)``.
    func window(at window: UnsafePointer<AnalyzedWindow>, in series: SeriesInfo)
}

extension AnalysisSink {
    /// Post-mortem outputs have no live events.
    public func live(_ event: LiveEvent) {}
    /// The window passed on as a value.
    public func window(at window: UnsafePointer<AnalyzedWindow>, in series: SeriesInfo) {
        self.window(window.pointee, in: series)
    }
}
