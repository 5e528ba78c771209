// SPDX-License-Identifier: Apache-2.0

/// Where a recording's records go: a file that may fill up (the CLI's recording writer), or memory in tests.
public protocol RecordStore: AnyObject {
    /// Append one record (a complete line); ignored once writing has failed.
    func append(_ record: [UInt8])
    /// Append the closing record, using room kept for it if writing failed, and close.
    func finish(_ endRecord: [UInt8])
    /// Why writing stopped, if it did (the file is valid up to its last complete record).
    var failure: String? { get }
}

/// The recording output: every captured event, loss report and the capture's end, as migtrace's recording
/// format (JSON Lines), from which `analyze` replays the same analysis.
public final class RecordingSink: AnalysisSink {
    private let store: any RecordStore
    private let header: RecordingFormat.Header

    /// A recording into `store` that starts with `header` once the capture is attached.
    public init(store: any RecordStore, header: RecordingFormat.Header) {
        self.store = store
        self.header = header
    }

    public func live(_ event: LiveEvent) {
        switch event {
        case .attached: store.append(RecordingFormat.headerLine(header))
        case .captured(let e, let monotonic): store.append(RecordingFormat.eventLine(e, monotonicNanoseconds: monotonic))
        case .lost(let kernel, let consumer): store.append(RecordingFormat.lostLine(kernelDrops: kernel, consumerDrops: consumer))
        case .state, .migration: break
        case .ended(let end):
            // A recording stopped early (disk full) says so in its end record.
            store.finish(
                RecordingFormat.endLine(
                    reason: store.failure == nil ? end.reason : "recording-stopped", kernelDrops: end.kernelDrops,
                    consumerDrops: end.consumerDrops))
        }
    }

    // The recording holds the events themselves: the analysis is made again when it is replayed.
    public func seriesStarted(_ info: SeriesInfo) {}
    public func window(_ window: AnalyzedWindow, in series: SeriesInfo) {}
    public func finding(_ finding: Finding) {}
    public func seriesEnded(_ summary: SeriesSummary) {}
    public func finished(_ report: AnalysisReport) {}
}
