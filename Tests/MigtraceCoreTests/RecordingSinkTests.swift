// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import MigtraceCore

/// The recording output: a capture recorded through the sink protocol replays to the same analysis.
@Suite struct RecordingSinkTests {
    /// Records in memory, as the CLI's file writer would write them.
    final class MemoryStore: RecordStore {
        var records: [[UInt8]] = []
        var ended = false
        var failure: String?
        func append(_ record: [UInt8]) { if failure == nil { records.append(record) } }
        func finish(_ endRecord: [UInt8]) {
            records.append(endRecord)
            ended = true
        }
    }

    @Test func recordedCaptureReplaysToTheSameAnalysis() throws {
        // The events of a real QEMU 10.0 migration, fed as a live capture would feed them.
        let text = try String(contentsOf: Paths.qemuFixtures.appendingPathComponent("10.0-converge-ts.log"), encoding: .utf8)
        let parser = QEMULogParser(input: 0)
        let live = CollectingSink()
        let store = MemoryStore()
        let header = RecordingFormat.Header(
            migtraceVersion: "test", host: "h", kernel: "k", pid: 42, binary: "/q", buildID: "", clockOffsetNanoseconds: 0,
            startedAtNanoseconds: 1, probes: [("migrate_transferred", 5)])
        let analyzer = MigrationAnalyzer(sink: TeeSink([live, RecordingSink(store: store, header: header)]))
        analyzer.live(
            .attached(LiveAttachment(migtraceVersion: "test", pid: 42, binary: "/q", ringBufferBytes: 4096, probes: [], recordPath: "r")))
        var events = 0
        for (i, line) in text.split(separator: "\n").enumerated() {
            var bytes = Array(line.utf8)
            let parsed = bytes.withUnsafeMutableBufferPointer { parser.parse(UnsafeBufferPointer($0), line: UInt64(i + 1)) }
            guard case .event(let e) = parsed else { continue }
            analyzer.live(.captured(e, monotonicNanoseconds: 7))
            analyzer.consume(e)
            events += 1
        }
        analyzer.live(.lost(kernelDrops: 2, consumerDrops: 1))
        analyzer.live(.ended(CaptureEnd(reason: "sigint", eventsReceived: UInt64(events), kernelDrops: 2, consumerDrops: 1)))
        analyzer.finish()

        // Header, one record per event, the loss and the end.
        #expect(store.ended && store.records.count == events + 3)
        #expect(Array(store.records[0].prefix(RecordingFormat.magic.count)) == RecordingFormat.magic)
        let replay = try analyze(text: String(decoding: store.records.joined(), as: UTF8.self))
        #expect(live.windows.count == 22 && replay.windows.count == live.windows.count)
        #expect(replay.windows.map(\.rebuild.threshold) == live.windows.map(\.rebuild.threshold))
        #expect(replay.windows.map(\.thresholdTraced) == live.windows.map(\.thresholdTraced))
        #expect(replay.windows.map(\.endTime) == live.windows.map(\.endTime))
        #expect(replay.report?.findings.map(\.rule) == live.report?.findings.map(\.rule))
        #expect(replay.report?.series.first?.finalState == "completed")
    }
}
