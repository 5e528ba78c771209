// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import MigtraceCore
@testable import MigtraceIO

/// PipelinedSink replays the analyzer's calls on a consumer thread: the wrapped sink must get exactly the calls,
/// in exactly the order, it gets when the analyzer calls it directly.
@Suite struct PipelinedSinkTests {
    /// Every call a sink received, and the thread each came on.
    final class CallRecorder: AnalysisSink {
        enum Call: Equatable {
            case started(SeriesInfo)
            case window(AnalyzedWindow, SeriesInfo)
            case finding(Finding)
            case ended(SeriesSummary)
            case finished(windows: Int, findings: Int)
        }
        var calls: [Call] = []
        var threads: [pthread_t] = []

        private func note(_ call: Call) {
            calls.append(call)
            threads.append(pthread_self())
        }
        func seriesStarted(_ info: SeriesInfo) { note(.started(info)) }
        func window(_ window: AnalyzedWindow, in series: SeriesInfo) { note(.window(window, series)) }
        func finding(_ finding: Finding) { note(.finding(finding)) }
        func seriesEnded(_ summary: SeriesSummary) { note(.ended(summary)) }
        func finished(_ r: AnalysisReport) { note(.finished(windows: r.windowCount, findings: r.findings.count)) }
    }

    /// Bytes written; once `limit` is reached the rest is dropped and `closed` set, like a reader going away.
    final class ClosingOutput: ByteOutput {
        let limit: Int
        var bytes: [UInt8] = []
        var closed = false
        init(limit: Int) { self.limit = limit }
        func write(_ b: [UInt8]) {
            guard !closed else { return }
            bytes += b.prefix(limit - bytes.count)
            if bytes.count == limit { closed = true }
        }
        func flush() {}
    }

    /// The QEMU 7.2 and 10.0 fixtures (not the usdt builds' ones: the counts below are of this set), `rounds` times
    /// over: 16 migrations and 812 windows per round, with findings and series ends among the windows.
    static func fixtures(rounds: Int) throws -> [UInt8] {
        let names = try FileManager.default.contentsOfDirectory(atPath: Paths.qemuFixtures.path)
            .filter { $0.hasSuffix(".log") && !$0.hasPrefix("usdt-") }.sorted()
        let one = try names.flatMap { Array(try Data(contentsOf: Paths.qemuFixtures.appendingPathComponent($0))) }
        return Array([[UInt8]](repeating: one, count: rounds).joined())
    }

    /// Analyse `inputs` (each written to a file, read by TraceReader as the CLI does) into `sink`.
    static func run(_ inputs: [[UInt8]], into sink: any AnalysisSink) throws {
        let analyzer = MigrationAnalyzer(sink: sink)
        for (i, bytes) in inputs.enumerated() {
            try ThreadedReaderTests.withFile(bytes) { fd in
                _ = try TraceReader.read(fd: fd, input: i, into: analyzer)
            }
            analyzer.endInput(i)
        }
        analyzer.finish()
    }

    @Test(.timeLimit(.minutes(1))) func replaysExactlyTheCallsTheSinkGetsDirectly() throws {
        let inputs = [try Self.fixtures(rounds: 20), try Self.fixtures(rounds: 3)]
        let direct = CallRecorder()
        try Self.run(inputs, into: direct)

        let wrapped = CallRecorder()
        let pipelined = PipelinedSink(wrapping: wrapped, batchCapacity: 100, startAfterWindows: 250)
        try Self.run(inputs, into: pipelined)

        #expect(pipelined.threadsStarted == 1)
        #expect(wrapped.calls == direct.calls)
        #expect(direct.calls.count == 19_758)
        #expect(direct.calls.last == .finished(windows: 18_676, findings: 345))
        // Series boundaries and findings fall inside batches, not only on their edges.
        var windowsBefore = 0
        var midBatch: Set<String> = []
        for call in direct.calls {
            switch call {
            case .window: windowsBefore += 1
            case .started where windowsBefore > 250 && windowsBefore % 100 != 0: midBatch.insert("started")
            case .finding where windowsBefore > 250 && windowsBefore % 100 != 0: midBatch.insert("finding")
            case .ended where windowsBefore > 250 && windowsBefore % 100 != 0: midBatch.insert("ended")
            default: break
            }
        }
        #expect(midBatch == ["started", "finding", "ended"])
    }

    @Test(.timeLimit(.minutes(1))) func theAnalyzersInlinedRecordingHandsOverAFullBatchEveryWindow() throws {
        // Batches of one window: the analyzer records each window itself (`record`) and hands the batch over at
        // once, so every finding and series boundary falls on a batch edge; the replay must still equal the calls
        // the sink gets directly.
        let inputs = [try Self.fixtures(rounds: 3)]
        let direct = CallRecorder()
        try Self.run(inputs, into: direct)
        let wrapped = CallRecorder()
        let pipelined = PipelinedSink(wrapping: wrapped, batchCapacity: 1, startAfterWindows: 5)
        try Self.run(inputs, into: pipelined)
        #expect(pipelined.threadsStarted == 1)
        #expect(wrapped.calls == direct.calls)
    }

    @Test(.timeLimit(.minutes(1))) func recordTakesAWindowOnlyWhileTheThreadRuns() throws {
        let wrapped = CallRecorder()
        let pipelined = PipelinedSink(wrapping: wrapped, batchCapacity: 4, startAfterWindows: 2)
        let direct = CallRecorder()
        try Self.run([try Self.fixtures(rounds: 1)], into: direct)
        let windows = direct.calls.compactMap { call -> (AnalyzedWindow, SeriesInfo)? in
            if case .window(let w, let s) = call { return (w, s) }
            return nil
        }
        try #require(windows.count >= 8)
        // Inline: not recorded; the caller passes it on with window(_:in:), which starts the thread after two.
        #expect(!pipelined.record(windows[0].0, in: windows[0].1))
        pipelined.window(windows[0].0, in: windows[0].1)
        pipelined.window(windows[1].0, in: windows[1].1)
        for (w, s) in windows[2..<8] { #expect(pipelined.record(w, in: s)) }
        pipelined.finished(
            AnalysisReport(
                series: [], findings: [], diagnostics: [], rejectedCount: 0, eventCounts: [:], suppressedFindings: [:]))
        let replayed = wrapped.calls.compactMap { call -> AnalyzedWindow? in
            if case .window(let w, _) = call { return w }
            return nil
        }
        #expect(replayed == windows.prefix(8).map(\.0))
    }

    @Test(.timeLimit(.minutes(1))) func callsAfterTheFirstWindowsRunOnAnotherThread() throws {
        let wrapped = CallRecorder()
        let pipelined = PipelinedSink(wrapping: wrapped, batchCapacity: 64, startAfterWindows: 100)
        try Self.run([try Self.fixtures(rounds: 2)], into: pipelined)

        let me = pthread_self()
        let windowThreads = zip(wrapped.calls, wrapped.threads).compactMap { call, thread -> pthread_t? in
            if case .window = call { return thread }
            return nil
        }
        #expect(windowThreads.count == 1_624)
        // The first 100 windows inline, every later one on the consumer thread, which is not this one.
        #expect(windowThreads.prefix(100).allSatisfy { pthread_equal($0, me) != 0 })
        let consumer = windowThreads[100]
        #expect(pthread_equal(consumer, me) == 0)
        #expect(windowThreads.dropFirst(100).allSatisfy { pthread_equal($0, consumer) != 0 })
        // `finished` comes on the calling thread, after the consumer was joined.
        #expect(pthread_equal(wrapped.threads.last!, me) != 0)
        #expect(pipelined.threadsStarted == 1)
    }

    @Test func smallInputStaysInline() throws {
        let wrapped = CallRecorder()
        let pipelined = PipelinedSink(wrapping: wrapped)
        try Self.run([try Self.fixtures(rounds: 1)], into: pipelined)
        #expect(pipelined.threadsStarted == 0)
        #expect(wrapped.calls.count == 860)
        #expect(wrapped.threads.allSatisfy { pthread_equal($0, pthread_self()) != 0 })
    }

    @Test(.timeLimit(.minutes(1))) func drainDeliversEverythingSoFarWhileTheThreadRuns() throws {
        let wrapped = CallRecorder()
        let pipelined = PipelinedSink(wrapping: wrapped, batchCapacity: 50, startAfterWindows: 10)
        let analyzer = MigrationAnalyzer(sink: pipelined)
        let inputs = [try Self.fixtures(rounds: 1), try Self.fixtures(rounds: 1)]
        var seen: [Int] = []
        for (i, bytes) in inputs.enumerated() {
            try ThreadedReaderTests.withFile(bytes) { fd in
                _ = try TraceReader.read(fd: fd, input: i, into: analyzer)
            }
            analyzer.endInput(i)
            pipelined.drain()
            seen.append(wrapped.calls.count)
        }
        analyzer.finish()
        #expect(pipelined.threadsStarted == 1)
        #expect(seen == [859, 1_718])
        #expect(wrapped.calls.count == 1_719)
    }

    @Test(.timeLimit(.minutes(1))) func csvOutputClosingEarlyNeitherHangsNorChangesAByte() throws {
        let bytes = try Self.fixtures(rounds: 30)
        let full = ClosingOutput(limit: .max)
        try Self.run([bytes], into: CSVSink(out: full))
        #expect(full.bytes.count == 3_874_025)  // with the three pending_*copy columns (empty before 11.1)

        // The reader leaves after 300 kB: everything up to there is the same, and finish() returns.
        let direct = ClosingOutput(limit: 300_000)
        try Self.run([bytes], into: CSVSink(out: direct))
        let early = ClosingOutput(limit: 300_000)
        let pipelined = PipelinedSink(wrapping: CSVSink(out: early), batchCapacity: 128, startAfterWindows: 200)
        try Self.run([bytes], into: pipelined)
        #expect(pipelined.threadsStarted == 1)
        #expect(early.closed && direct.closed)
        #expect(early.bytes == direct.bytes)
        #expect(early.bytes[...] == full.bytes.prefix(300_000))

        let whole = ClosingOutput(limit: .max)
        try Self.run([bytes], into: PipelinedSink(wrapping: CSVSink(out: whole), batchCapacity: 128, startAfterWindows: 200))
        #expect(whole.bytes == full.bytes)
    }
}
