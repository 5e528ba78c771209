// SPDX-License-Identifier: Apache-2.0
import Testing

@testable import MigtraceCore
@testable import MigtraceIO

/// TraceBatch's own event storage: growing past its capacity, emptying for reuse, and where folding may start.
@Suite struct ReaderBatchTests {
    static func fast(_ line: String) throws -> FastLine {
        try #require(FastPathTests.padded(Array(line.utf8)).withUnsafeBytes { QEMULogParser.fastLine($0.baseAddress!) })
    }

    static func estimate(thread: Int, _ i: Int, size: Int) -> String {
        ThreadedReaderTests.prefixed(
            thread, i, "migrate_pending_estimate estimate pending size \(size) (pre = \(size) post=0)")
    }

    @Test func batchGrowsPastItsCapacityKeepingEveryEvent() throws {
        // A batch made without capacity (as the pipeline's placeholders are) and one made too small.
        for var batch in [TraceBatch(), TraceBatch(capacity: 3)] {
            for i in 1...100 {
                // Alternating threads: nothing folds.
                batch.append(try Self.fast(Self.estimate(thread: 100 + i % 2, i, size: i)), lineNumber: UInt64(i), input: 0)
                if i % 10 == 0 {
                    batch.append(
                        TraceEvent(
                            kind: .migrateSetState, arguments: ProbeArguments(count: 0), state: MigrationState.allCases[i / 10],
                            origin: EventOrigin(input: 0, line: UInt64(1000 + i))))
                }
            }
            #expect(batch.eventCount == 110 && batch.count == 110)
            #expect(batch.events.filter { $0.kind == .migratePendingEstimate }.map { $0.arguments.a0 } == Array(1...100))
            var states: [MigrationState] = []
            batch.inLineOrder({ if let s = $0.state { states.append(s) } }, { _ in })
            #expect(states == Array(MigrationState.allCases[1...10]))
        }
    }

    @Test func emptiedBatchFoldsFromItsFirstEventAgain() throws {
        var batch = TraceBatch(capacity: 8)
        batch.append(try Self.fast(Self.estimate(thread: 100, 1, size: 1)), lineNumber: 1, input: 0)
        batch.reject(Diagnostic(input: 0, line: 2, reason: "r"))
        batch.removeAll()
        #expect(batch.count == 0 && batch.events.isEmpty)
        // The diagnostic went with the rest: the second estimate folds into the first.
        batch.append(try Self.fast(Self.estimate(thread: 100, 3, size: 3)), lineNumber: 3, input: 0)
        batch.append(try Self.fast(Self.estimate(thread: 100, 4, size: 4)), lineNumber: 4, input: 0)
        #expect(batch.events.map { $0.origin.line } == [4] && batch.events.map { $0.repeats } == [1])
        // A diagnostic after it stops folding; one before the batch's first event does not stop the next run.
        batch.reject(Diagnostic(input: 0, line: 5, reason: "r"))
        batch.append(try Self.fast(Self.estimate(thread: 100, 6, size: 6)), lineNumber: 6, input: 0)
        batch.append(try Self.fast(Self.estimate(thread: 100, 7, size: 7)), lineNumber: 7, input: 0)
        #expect(batch.events.map { $0.origin.line } == [4, 7] && batch.events.map { $0.repeats } == [1, 1])
        var empty = TraceBatch(capacity: 8)
        empty.reject(Diagnostic(input: 0, line: 1, reason: "r"))
        empty.append(try Self.fast(Self.estimate(thread: 100, 2, size: 2)), lineNumber: 2, input: 0)
        empty.append(try Self.fast(Self.estimate(thread: 100, 3, size: 3)), lineNumber: 3, input: 0)
        #expect(empty.events.map { $0.origin.line } == [3] && empty.count == 2)
    }

    @Test func fastLinesAreCountedAcrossHandOffsAndDiagnostics() throws {
        // Fast lines counted per run must add up with the exact path's lines, whatever the batch size.
        var text = ""
        var lines: UInt64 = 0
        var events: UInt64 = 0
        for i in 1...30_000 {
            if i % 997 == 0 {
                text += "migrate_transferred transferred x\n"  // malformed: a diagnostic mid-run
            } else if i % 101 == 0 {
                text += "unrelated line\n"
            } else {
                text += Self.estimate(thread: 100 + i % 3, i, size: i)
                events += 1
            }
            lines += 1
        }
        for capacity in [TraceReader.batchCapacity, 5, 1] {
            let r = try ThreadedReaderTests.read(Array(text.utf8), tuning: TraceReader.Tuning(batchCapacity: capacity))
            #expect(r.run.threaded)
            #expect(r.run.statistics.lines == lines && r.run.statistics.events == events)
            #expect(r.run.statistics.rejected == 30)
        }
    }
    @Test func fastLinesBetweenDiagnosticsFillNoBatchPastItsCapacity() throws {
        // Prefixed lines (the fast path) with every 10th malformed: batches of 7 items put diagnostics at every
        // position of a batch; none may hold more than 7, and the replay must follow the lines exactly.
        var text = ""
        var expected: [String] = []
        for i in 1...30_000 {
            if i % 10 == 0 {
                text += ThreadedReaderTests.prefixed(100, i, "migrate_transferred transferred 1 time_spent x")
                expected.append("d\(i)")
            } else {
                text += ThreadedReaderTests.prefixed(
                    100, i, "migrate_transferred transferred \(i) time_spent 100 bandwidth 1 max_size 1")
                expected.append("e\(i)")
            }
        }
        let (replayed, overfull, stats, outcome) = try ThreadedReaderTests.replayInBatches(Array(text.utf8), capacity: 7)
        #expect(outcome == .finished)
        #expect(overfull == 0)
        #expect(stats.lines == 30_000 && stats.events == 27_000 && stats.rejected == 3_000)
        #expect(replayed == expected)
    }
    @Test func foldedEventIsTheEventTheLineMakes() throws {
        // Folding stores only the fields that differ: the result must equal the event the last line makes,
        // even over an event that came another way (another clock) with the same kind, thread and flags.
        var batch = TraceBatch(capacity: 4)
        batch.append(
            TraceEvent(
                kind: .migratePendingEstimate, arguments: ProbeArguments(count: 3, 1, 1, 0), timestampNanoseconds: 5,
                clock: .monotonic, threadID: 100, origin: EventOrigin(input: 0, line: 1)))
        let line = try Self.fast(Self.estimate(thread: 100, 2, size: 2))
        batch.append(line, lineNumber: 2, input: 0)
        var alone = TraceBatch(capacity: 4)
        alone.append(line, lineNumber: 2, input: 0)
        var folded: [TraceEvent] = []
        var expected: [TraceEvent] = []
        batch.inLineOrder({ folded.append($0) }, { _ in })
        alone.inLineOrder({ expected.append($0) }, { _ in })
        // The fold counts the event it absorbed; apart from that count the two are the same event.
        #expect(folded.count == 1 && expected.count == 1)
        #expect(folded.map { $0.repeats } == [1] && expected.map { $0.repeats } == [0])
        var unfolded = folded
        unfolded[0].repeats = 0
        #expect(unfolded == expected)
        #expect(batch.events.map { $0.repeats } == [1] && batch.events.map { $0.clock } == [.wall])
    }
}
