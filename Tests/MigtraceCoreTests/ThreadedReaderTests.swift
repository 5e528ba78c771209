// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import MigtraceCore
@testable import MigtraceIO

/// TraceReader on inputs larger than one read chunk, where a producer thread reads and parses while the
/// calling thread analyses: the results must be exactly those of feeding the same lines one by one.
@Suite struct ThreadedReaderTests {
    /// Everything one analysis produced, comparable as a whole.
    struct Outcome: Equatable {
        var series: [SeriesInfo]
        var windows: [AnalyzedWindow]
        var findings: [Finding]
        var summaries: [SeriesSummary]
        var diagnostics: [Diagnostic]
        var rejectedCount: UInt64
        var eventCounts: [ProbeKind: UInt64]

        init(_ sink: CollectingSink) {
            series = sink.series
            windows = sink.windows
            findings = sink.findings
            summaries = sink.summaries
            let report = sink.report!
            diagnostics = report.diagnostics
            rejectedCount = report.rejectedCount
            eventCounts = report.eventCounts
        }
    }

    /// The reference: split `bytes` into lines here and give each one to the parser and the analyzer, in order,
    /// the way TraceReader is specified to (over-long lines rejected, a last line without newline parsed).
    static func lineByLine(_ bytes: [UInt8]) -> (Outcome, lines: UInt64, events: UInt64, rejected: UInt64) {
        let sink = CollectingSink()
        let analyzer = MigrationAnalyzer(sink: sink)
        let parser = QEMULogParser(input: 0)
        var lines: UInt64 = 0
        var events: UInt64 = 0
        var rejected: UInt64 = 0
        var pieces = bytes.split(separator: 10, omittingEmptySubsequences: false)
        if pieces.last?.isEmpty == true { pieces.removeLast() }
        for piece in pieces {
            lines += 1
            if piece.count > TraceReader.maxLineLength {
                rejected += 1
                analyzer.reject(
                    Diagnostic(
                        input: 0, line: lines,
                        reason: "line of \(piece.count) bytes exceeds \(TraceReader.maxLineLength) bytes; skipped"))
                continue
            }
            let result = Array(piece).withUnsafeBufferPointer { parser.parse($0, line: lines) }
            switch result {
            case .event(let e):
                events += 1
                analyzer.consume(e)
            case .ignored:
                break
            case .malformed(let reason):
                rejected += 1
                analyzer.reject(Diagnostic(input: 0, line: lines, reason: reason))
            case .device(let d):
                events += 1
                analyzer.consume(d)
            }
        }
        analyzer.endInput(0)
        analyzer.finish()
        return (Outcome(sink), lines, events, rejected)
    }

    /// What reading one file gave: the analysis, how the read went, and how far into the file it got.
    struct Reading {
        var outcome: Outcome
        var run: TraceReader.Run
        var offset: Int
    }

    /// Write `bytes` to a temporary file and read it with TraceReader (`tuning` as given).
    static func read(_ bytes: [UInt8], tuning: TraceReader.Tuning = TraceReader.Tuning()) throws -> Reading {
        try withFile(bytes) { fd in
            let sink = CollectingSink()
            let analyzer = MigrationAnalyzer(sink: sink)
            let run = try TraceReader.run(fd: fd, input: 0, into: analyzer, tuning: tuning)
            analyzer.endInput(0)
            analyzer.finish()
            return Reading(outcome: Outcome(sink), run: run, offset: lseek(fd, 0, SEEK_CUR))
        }
    }

    /// Write `bytes` to a temporary file and give `body` a descriptor open on it.
    static func withFile<T>(_ bytes: [UInt8], _ body: (Int32) throws -> T) throws -> T {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("migtrace-threaded-\(UUID().uuidString).log")
        try Data(bytes).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let fd = open(url.path, O_RDONLY)
        try #require(fd >= 0)
        defer { close(fd) }
        return try body(fd)
    }

    /// Pump `bytes` through one LineSource with batches of `capacity` items, on this thread: each event
    /// (`e<line>`) and diagnostic (`d<line>`) in the order the batches replay them, how many batches held more
    /// than `capacity` items, the source's statistics and how the pump ended.
    static func replayInBatches(_ bytes: [UInt8], capacity: Int) throws -> (
        replayed: [String], overfull: Int, stats: InputStatistics, outcome: LineSource.Outcome
    ) {
        try withFile(bytes) { fd in
            let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: TraceReader.chunkSize + TraceReader.maxLineLength)
            defer { buffer.deallocate() }
            var source = LineSource(fd: fd, input: 0, buffer: buffer, batchCapacity: capacity)
            var replayed: [String] = []
            var overfull = 0
            func replay(_ batch: inout TraceBatch) -> Bool {
                if batch.count > capacity { overfull += 1 }
                batch.inLineOrder({ replayed.append("e\($0.origin.line)") }, { replayed.append("d\($0.line)") })
                batch.removeAll()
                return true
            }
            let outcome = source.pump(pausing: false, replay)
            _ = replay(&source.batch)
            return (replayed, overfull, source.stats, outcome)
        }
    }

    /// `read(_:tuning:)` for the analysis and the run alone.
    static func analyse(_ bytes: [UInt8]) throws -> (Outcome, TraceReader.Run) {
        let r = try read(bytes)
        return (r.outcome, r.run)
    }

    static func fixture(_ name: String) throws -> [UInt8] {
        Array(try Data(contentsOf: Paths.qemuFixtures.appendingPathComponent(name)))
    }

    /// A migrate_transferred line whose values depend on `i` (so that every window differs).
    static func transferred(_ i: Int) -> String {
        let bytes = 1_000_000 + i % 977
        return "migrate_transferred transferred \(bytes) time_spent 100 bandwidth \(bytes / 100) max_size \(bytes * 3)\n"
    }

    @Test func largeLogGivesWhatLineByLineFeedingGives() throws {
        // 160 migrations of the QEMU 7.2 non-converging fixture (3.4 MB, several read chunks), with a malformed
        // line, an over-long line and CRLF lines among them, and a last line without newline.
        let migration = try Self.fixture("7.2-nonconverge.log")
        var bytes: [UInt8] = []
        for i in 0..<160 {
            bytes += migration
            if i == 40 { bytes += Array("migrate_transferred transferred 12 time_spent\n".utf8) }
            if i == 90 { bytes += [UInt8](repeating: UInt8(ascii: "x"), count: 100_000) + [10] }
            if i == 120 { bytes += Array(Self.transferred(7).dropLast().utf8) + [13, 10] }
        }
        bytes += Array(Self.transferred(3).dropLast().utf8)
        #expect(bytes.count > 3 * TraceReader.chunkSize)

        let (expected, lines, events, rejected) = Self.lineByLine(bytes)
        #expect(lines == 160 * 265 + 4)
        #expect(rejected == 2)
        for capacity in [TraceReader.batchCapacity, 7] {
            let r = try Self.read(bytes, tuning: TraceReader.Tuning(batchCapacity: capacity))
            let (outcome, run) = (r.outcome, r.run)
            #expect(run.threaded && !run.stopped)
            #expect(outcome == expected)
            #expect(run.statistics.lines == lines && run.statistics.events == events && run.statistics.rejected == rejected)
            #expect(run.statistics.bytes == UInt64(bytes.count) && run.statistics.format == .qemuLog)
        }
        #expect(expected.windows.count == 160 * 123 + 2)
        #expect(expected.series.count == 160)
        #expect(
            expected.diagnostics.map { "\($0.line): \($0.reason)" } == [
                "10866: migrate_transferred: line ends before the value of 'time_spent'",
                "24117: line of 100000 bytes exceeds 65536 bytes; skipped",
            ])
    }

    @Test func batchesKeepEventsAndDiagnosticsInLineOrder() throws {
        // Every 10th line malformed, every 1000th (+500) not a migration event: batches of 7 items put
        // diagnostics at every position of a batch, and the replay must follow the lines exactly.
        var text = ""
        var expected: [String] = []
        for i in 1...30_000 {
            if i % 1000 == 500 {
                text += "qemu_vfio_region_info region 0\n"
            } else if i % 10 == 0 {
                text += "migrate_transferred transferred 1 time_spent\n"
                expected.append("d\(i)")
            } else {
                text += Self.transferred(i)
                expected.append("e\(i)")
            }
        }
        let (replayed, overfull, _, outcome) = try Self.replayInBatches(Array(text.utf8), capacity: 7)
        #expect(outcome == .finished && overfull == 0)
        #expect(replayed.count == 29_970 && expected.count == 29_970)
        let misplaced = zip(replayed, expected).filter { $0 != $1 }.prefix(3).map { "\($0) where \($1) belongs" }
        #expect(misplaced == [])
    }

    @Test func malformedLineDeepInALargeInputKeepsItsLineNumber() throws {
        var text = ""
        for i in 1...40_000 {
            text += i == 31_337 ? "migrate_transferred transferred 1048576 time_spent x bandwidth 1 max_size 1\n" : Self.transferred(i)
        }
        let (outcome, run) = try Self.analyse(Array(text.utf8))
        #expect(run.threaded)
        #expect(outcome.diagnostics.map(\.line) == [31_337])
        #expect(outcome.diagnostics.map(\.reason) == ["migrate_transferred: expected a number after 'time_spent'"])
        #expect(outcome.windows.count == 39_999)
        #expect(outcome.windows.first?.origin.line == 1)
        #expect(outcome.windows[31_335].origin.line == 31_336 && outcome.windows[31_336].origin.line == 31_338)
        #expect(outcome.windows.last?.origin.line == 40_000)
        #expect(run.statistics.lines == 40_000 && run.statistics.events == 39_999 && run.statistics.rejected == 1)
    }

    @Test func largeRecordingKeepsHeaderLossAndEndInItsStatistics() throws {
        let header = RecordingFormat.Header(
            migtraceVersion: "0.9.0", host: "src-host", kernel: "6.1.0", pid: 4242, binary: "/usr/bin/qemu-system-x86_64",
            buildID: "abcd", clockOffsetNanoseconds: 17, startedAtNanoseconds: 1_000,
            probes: [(name: "migrate_transferred", args: 5)])
        var bytes = RecordingFormat.headerLine(header)
        for i in 0..<30_000 {
            let b = UInt64(1_000_000 + i)
            let e = TraceEvent(
                kind: .migrateTransferred, arguments: ProbeArguments(count: 4, b, 100, b / 100, b * 3),
                timestampNanoseconds: UInt64(i) * 100_000_000, clock: .monotonic, threadID: 9, processID: 4242,
                origin: EventOrigin(input: 0, line: 0))
            bytes += RecordingFormat.eventLine(e, monotonicNanoseconds: UInt64(i) * 100_000_000)
            if i == 20_000 { bytes += RecordingFormat.lostLine(kernelDrops: 2, consumerDrops: 1) }
        }
        bytes += RecordingFormat.endLine(reason: "sigint", kernelDrops: 3, consumerDrops: 1)
        #expect(bytes.count > 2 * TraceReader.chunkSize)

        let (outcome, run) = try Self.analyse(bytes)
        #expect(run.threaded)
        #expect(run.statistics.format == .recording)
        #expect(run.statistics.header == header)
        #expect(run.statistics.endReason == "sigint")
        #expect(run.statistics.kernelDrops == 3 && run.statistics.consumerDrops == 1)
        #expect(run.statistics.lines == 30_003 && run.statistics.events == 30_000 && run.statistics.rejected == 0)
        #expect(outcome.windows.count == 30_000)
        #expect(outcome.windows.last?.origin.line == 30_002)

        // The same recording cut in its last event record: reported, everything before it analysed.
        let cut = Array(bytes.prefix(bytes.count - RecordingFormat.endLine(reason: "sigint", kernelDrops: 3, consumerDrops: 1).count - 20))
        let (cutOutcome, cutRun) = try Self.analyse(cut)
        #expect(cutRun.threaded)
        #expect(
            cutOutcome.diagnostics.map { "\($0.line): \($0.reason)" } == [
                "30002: incomplete last record (the recorder was stopped mid-write); everything before it is analysed"
            ])
        #expect(cutRun.statistics.endReason == nil)
        #expect(cutOutcome.windows.count == 29_999)
    }

    @Test func smallInputStaysOnTheCallingThread() throws {
        let (outcome, run) = try Self.analyse(try Self.fixture("7.2-nonconverge.log"))
        #expect(!run.threaded)
        #expect(outcome.windows.count == 123)
    }

    @Test func consumerStoppingEarlyLetsTheProducerGo() throws {
        // 16 MB: the producer, stopped after the second batch, must neither hang nor read the input to its end.
        var text = ""
        for i in 1...180_000 { text += Self.transferred(i) }
        let bytes = Array(text.utf8)
        let r = try Self.read(bytes, tuning: TraceReader.Tuning(batchCapacity: 1000, stopAfterBatches: 2))
        #expect(r.run.threaded && r.run.stopped)
        #expect(r.outcome.windows.count == 2000)
        #expect(r.outcome.windows.last?.origin.line == 2000)
        #expect(r.offset >= TraceReader.chunkSize && r.offset < bytes.count / 2)
    }

    @Test func readErrorAfterTheProducerStartedIsThrownAfterEveryEarlierLine() throws {
        // A non-blocking pipe holding more than a chunk: the reader goes threaded, then read(2) fails with EAGAIN
        // on the producer thread; the error must reach the caller after the analyzer has had every complete line.
        var fds: [Int32] = [0, 0]
        try #require(pipe(&fds) == 0)
        defer {
            close(fds[0])
            close(fds[1])
        }
        let setPipeSize: Int32 = 1031  // F_SETPIPE_SZ, which Glibc's module leaves out (_GNU_SOURCE)
        if fcntl(fds[1], setPipeSize, 2 << 20) < 0 { _ = fcntl(fds[1], setPipeSize, 1 << 20) }
        _ = fcntl(fds[0], F_SETFL, O_NONBLOCK)
        _ = fcntl(fds[1], F_SETFL, O_NONBLOCK)
        var text = ""
        for i in 1...20_000 { text += Self.transferred(i) }
        let bytes = Array(text.utf8)
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { write(fds[1], $0.baseAddress! + written, bytes.count - written) }
            if n <= 0 { break }
            written += n
        }
        try #require(written >= TraceReader.chunkSize, "the pipe took only \(written) bytes")
        let completeLines = bytes.prefix(written).filter { $0 == 10 }.count

        let sink = CollectingSink()
        let analyzer = MigrationAnalyzer(sink: sink)
        var thrown: TraceReader.ReadError?
        do {
            _ = try TraceReader.read(fd: fds[0], input: 0, into: analyzer)
        } catch {
            thrown = error
        }
        #expect(thrown?.errno == EAGAIN)
        analyzer.finish()
        #expect(sink.windows.count == completeLines)
        #expect(sink.windows.last?.origin.line == UInt64(completeLines))
    }

    /// A `tid@sec.usec:` line as QEMU's log backend writes it (the reader's fast path reads these).
    static func prefixed(_ thread: Int, _ i: Int, _ body: String) -> String {
        "\(thread)@\(1_700_000_000 + i / 10).\(String(format: "%06d", (i % 10) * 100_000 + 7)):\(body)\n"
    }

    /// A QEMU 7.2 `migrate_pending` line: `size` below `max` proves a bitmap sync (an exact estimate).
    static func pending(size: Int, max: Int) -> String {
        "migrate_pending pending size \(size) max \(max) (pre = \(size) compat=0 post=0)"
    }

    @Test func runsOfPendingEstimatesFoldedByTheReaderGiveWhatLineByLineFeedingGives() throws {
        // Runs of estimates from two threads, cut by a malformed line, a state change and the other thread's
        // estimates; the reader folds each run into its last estimate, and the analysis, the counts and every
        // window's pending bytes must be those of feeding each line.
        var text = ""
        var pendingLines: UInt64 = 0
        var malformedLines: UInt64 = 0
        var stateLines: UInt64 = 0
        var lastOfThread100 = 0
        var lastOfThread200 = 0
        var expectedPending: [UInt64] = []
        for i in 0..<12_000 {
            let run = 1 + i % 6
            for k in 0..<run {
                let size = 5_000_000_000 - i * 1_000 - k
                text += Self.prefixed(100, i, Self.pending(size: size, max: k == run - 1 && i % 2 == 0 ? size + 1 : 40_000_000))
                pendingLines += 1
                lastOfThread100 = size
                if k == 1 && i % 7 == 0 {
                    text += Self.prefixed(100, i, "migrate_pending pending size 12 max")
                    malformedLines += 1
                }
                if k == 2 && i % 11 == 0 {
                    text += Self.prefixed(200, i, Self.pending(size: 77_000 + i, max: 0))
                    pendingLines += 1
                    lastOfThread200 = 77_000 + i
                }
                if k == 0 && i % 500 == 250 {
                    text += Self.prefixed(100, i, "migrate_set_state new state active")
                    stateLines += 1
                }
            }
            let bytes = 1_000_000 + i
            text += Self.prefixed(
                100, i, "migrate_transferred transferred \(bytes) time_spent 100 bandwidth \(bytes / 100) max_size 40000000")
            expectedPending.append(UInt64(lastOfThread100))
        }
        text += Self.prefixed(200, 12_000, "migrate_transferred transferred 5000 time_spent 100 bandwidth 50 max_size 15000")
        let bytes = Array(text.utf8)
        #expect(bytes.count > 3 * TraceReader.chunkSize)

        let (expected, _, _, rejected) = Self.lineByLine(bytes)
        #expect(rejected == malformedLines && malformedLines > 1000 && stateLines == 24)
        #expect(expected.eventCounts[.migratePending] == pendingLines)
        #expect(expected.windows.count == 12_001)
        #expect(expected.windows.prefix(12_000).map { $0.pendingBytes } == expectedPending)
        #expect(expected.windows.prefix(12_000).map { $0.pendingExact } == (0..<12_000).map { $0 % 2 == 0 })
        #expect(expected.windows.last?.pendingBytes == UInt64(lastOfThread200))
        for capacity in [TraceReader.batchCapacity, 7] {
            let r = try Self.read(bytes, tuning: TraceReader.Tuning(batchCapacity: capacity))
            #expect(r.run.threaded)
            #expect(r.outcome == expected)
            #expect(r.run.statistics.events == pendingLines + 12_001 + stateLines)
            #expect(r.run.statistics.rejected == malformedLines)
        }
    }

    @Test func batchFoldsOnlyAnUninterruptedRunOfOneThreadsEstimates() throws {
        func fast(_ line: String) throws -> FastLine {
            try #require(FastPathTests.padded(Array(line.utf8)).withUnsafeBytes { QEMULogParser.fastLine($0.baseAddress!) })
        }
        var batch = TraceBatch(capacity: 64)
        var number: UInt64 = 0
        func add(_ line: String) throws {
            number += 1
            batch.append(try fast(line), lineNumber: number, input: 0)
        }
        try add(Self.prefixed(100, 0, Self.pending(size: 30, max: 0)))
        try add(Self.prefixed(100, 1, Self.pending(size: 20, max: 0)))  // folds into line 1
        try add(Self.prefixed(100, 2, Self.pending(size: 10, max: 0)))  // and again
        try add(Self.prefixed(200, 3, Self.pending(size: 9, max: 0)))  // another thread: kept
        try add(Self.prefixed(100, 4, Self.pending(size: 8, max: 0)))  // kept: thread 200 came between
        batch.reject(Diagnostic(input: 0, line: 6, reason: "r"))
        number += 1
        try add(Self.prefixed(100, 7, Self.pending(size: 7, max: 0)))  // kept: a diagnostic came between
        try add(Self.prefixed(100, 8, "migrate_transferred transferred 5 time_spent 100 bandwidth 0 max_size 7"))
        try add(Self.prefixed(100, 9, "migrate_transferred transferred 5 time_spent 100 bandwidth 0 max_size 7"))  // never folded
        #expect(batch.events.map { $0.origin.line } == [3, 4, 5, 7, 8, 9])
        #expect(batch.events.map { $0.repeats } == [2, 0, 0, 0, 0, 0])
        #expect(batch.events.map { $0.arguments.a0 } == [10, 9, 8, 7, 5, 5])
        #expect(MemoryLayout<TraceEvent>.stride == 96)
        #expect(MemoryLayout<ProbeArguments>.size == 57)
    }
}
