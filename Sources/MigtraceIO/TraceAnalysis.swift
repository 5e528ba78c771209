// SPDX-License-Identifier: Apache-2.0
import MigtraceCore

/// A post-mortem analysis of trace files: the reader, the analyzer and its output stage, wired once, so that
/// the command line deals in inputs and a report, never in threads.
public final class TraceAnalysis {
    private let analyzer: MigrationAnalyzer
    private let output: PipelinedSink

    /// An analysis that reports to `sink`: formatting and writing move to a thread of their own once the
    /// input proves large (``PipelinedSink``); the sink sees the same calls in the same order either way.
    public init(configuration: AnalysisConfiguration = AnalysisConfiguration(), sink: any AnalysisSink) {
        output = PipelinedSink(wrapping: sink)
        analyzer = MigrationAnalyzer(configuration: configuration, sink: output)
    }

    /// Read input number `input` from `fd` to its end. Returns (or throws) once the sink has everything of this
    /// input, so that the caller may write elsewhere (stderr) in order with it.
    public func read(fd: Int32, input: Int) throws(TraceReader.ReadError) -> InputStatistics {
        defer {
            analyzer.endInput(input)
            output.drain()
        }
        return try TraceReader.read(fd: fd, input: input, into: analyzer)
    }

    /// End of every input: close what is open and deliver the report (the sink's `finished` has run when this
    /// returns, on this thread).
    @discardableResult
    public func finish() -> AnalysisReport {
        analyzer.finish()
    }
}
