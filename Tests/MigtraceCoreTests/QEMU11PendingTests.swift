// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import MigtraceCore
@testable import MigtraceIO

/// QEMU 11.1's `qemu_savevm_query_pending`, which replaced `migrate_pending_estimate`/`_exact`: parsed, fed to pending
/// like them, its parts kept apart in windows and outputs, its exact queries counted as iterations.
///
/// No QEMU built here is 11.1, so the 11.1 traces are HAND-MADE: `Fixtures/qemu11/11.1-converge-iso.log` is the real
/// era-C recording `qemu/usdt-eraC-converge-ts.log` rewritten by `Fixtures/qemu11/derive-11.1-converge.py` the way
/// 11.1 prints it (ISO-8601 prefix, the pending query in place of the removed events), and the lines below are
/// written from the format string in the reference (§7.3).
@Suite struct QEMU11PendingTests {
    static let fixtures = Paths.fixtures.appendingPathComponent("qemu11")
    static let converge = fixtures.appendingPathComponent("11.1-converge-iso.log").path
    static let original = Paths.qemuFixtures.appendingPathComponent("usdt-eraC-converge-ts.log").path

    func parse(_ s: String) -> LineResult {
        var bytes = Array(s.utf8)
        return bytes.withUnsafeMutableBufferPointer { QEMULogParser(input: 0).parse(UnsafeBufferPointer($0), line: 3) }
    }

    static func query(_ body: String) -> String { "qemu_savevm_query_pending " + body }
    static let valid =
        "exact=1, final=0, precopy=31608832, stopcopy=67108864, postcopy=4096, total=98721792, collected switchover ack pending=1, total switchover ack pending=2"

    /// Analyse `path` into `sink` as the CLI does.
    static func run(_ path: String, _ sink: any AnalysisSink) throws -> MigrationAnalyzer {
        let analyzer = MigrationAnalyzer(sink: sink)
        let fd = open(path, O_RDONLY)
        try #require(fd >= 0)
        defer { close(fd) }
        _ = try TraceReader.read(fd: fd, input: 0, into: analyzer)
        analyzer.endInput(0)
        analyzer.finish()
        return analyzer
    }

    @Test func theLineParsesIntoEightArguments() throws {
        guard case .event(let e) = parse("2026-08-21T18:43:28Z " + Self.query(Self.valid)) else {
            Issue.record("not an event")
            return
        }
        #expect(e.kind == .qemuSavevmQueryPending)
        #expect(e.arguments == ProbeArguments(count: 8, 1, 0, 31_608_832, 67_108_864, 4096, 98_721_792, 1, 2))
        #expect(e.timestampNanoseconds == 1_787_337_808_000_000_000)
        let q = QueryPending(e.arguments)
        #expect(q.exact && !q.final && q.total == 98_721_792 && q.split.stopcopy == 67_108_864)
        #expect(q.ackPending == 1 && q.totalAckPending == 2)
    }

    @Test(arguments: [
        (
            "exact=2, final=0, precopy=1, stopcopy=0, postcopy=0, total=1, collected switchover ack pending=0, total switchover ack pending=0",
            "qemu_savevm_query_pending: 'exact' is 2; QEMU prints this flag as 0 or 1"
        ),
        (
            "exact=0, final=0, precopy=-1, stopcopy=0, postcopy=0, total=1, collected switchover ack pending=0, total switchover ack pending=0",
            "qemu_savevm_query_pending: negative value for unsigned 'precopy'"
        ),
        (
            "exact=0, final=0, precopy=1, stopcopy=0, postcopy=0, total=1, collected switchover ack pending=4294967296, total switchover ack pending=0",
            "qemu_savevm_query_pending: value of 'collected switchover ack pending' does not fit in 32 bits"
        ),
        (
            "exact=0, final=0, precopy=1, stopcopy=0, total=1, collected switchover ack pending=0, total switchover ack pending=0",
            "qemu_savevm_query_pending: expected 'postcopy=' at column 68"
        ),
        (
            "exact=0, final=0, precopy=1, stopcopy=0, postcopy=0, total=1, collected switchover ack pending=0, total switchover ack pending=0 x",
            "qemu_savevm_query_pending: unexpected character after the value of 'total switchover ack pending' at column 155"
        ),
        (
            "exact=0, final=0, precopy=1x, stopcopy=0, postcopy=0, total=1, collected switchover ack pending=0, total switchover ack pending=0",
            "qemu_savevm_query_pending: unexpected character after the value of 'precopy' at column 54"
        ),
    ])
    func malformedLinesSayWhy(body: String, reason: String) {
        #expect(parse(Self.query(body)) == .malformed(reason))
    }

    /// A query whose total is not the sum of its parts, or with a flag that is no bool, is refused by the analyzer
    /// (a recording or live event can carry one) with its line; the rest is analysed.
    @Test func inconsistentQueriesAreRejectedWithTheirLine() throws {
        let sink = CollectingSink()
        let analyzer = MigrationAnalyzer(sink: sink)
        func query(_ a: [UInt64], line: UInt64) -> TraceEvent {
            TraceEvent(kind: .qemuSavevmQueryPending, arguments: ProbeArguments(a), origin: EventOrigin(input: 0, line: line))
        }
        analyzer.consume(query([0, 0, 10, 5, 1, 17, 0, 0], line: 4))
        analyzer.consume(query([0, 3, 10, 5, 1, 16, 0, 0], line: 5))
        analyzer.consume(query([0, 0, 10, 5, 1], line: 6))
        analyzer.consume(query([0, 0, 10, 5, 1, 16, 0, 0], line: 7))
        let report = analyzer.finish()
        #expect(
            report.diagnostics.map(\.reason) == [
                "qemu_savevm_query_pending: total 17 is not precopy + stopcopy + postcopy (10 + 5 + 1); QEMU traces their sum",
                "qemu_savevm_query_pending: exact=0, final=3; QEMU traces each flag as 0 or 1",
                "qemu_savevm_query_pending: 5 arguments; QEMU traces 8",
            ])
        #expect(report.diagnostics.map(\.line) == [4, 5, 6])
        #expect(report.eventCounts[.qemuSavevmQueryPending] == 1)
    }

    /// The hand-made 11.1 trace gives the same windows and the same pending series as the recording it was made from,
    /// with the parts of each pending apart.
    @Test func pendingFeedsWindowsAsThePendingEventsDid() throws {
        let new = try analyze([Self.converge])
        let old = try analyze([Self.original])
        #expect(new.windows.count == 36)
        #expect(new.windows.map(\.pendingBytes) == old.windows.map(\.pendingBytes))
        #expect(new.windows.map(\.pendingExact) == old.windows.map(\.pendingExact))
        #expect(new.windows.map(\.thresholdTraced) == old.windows.map(\.thresholdTraced))
        #expect(new.windows.map(\.endTime) == old.windows.map(\.endTime))
        #expect(old.windows.allSatisfy { $0.pendingSplit == nil })
        #expect(new.windows.first?.pendingBytes == 134_750_208)
        #expect(new.windows.first?.pendingSplit == PendingSplit(precopy: 134_750_208, stopcopy: 0, postcopy: 0))
        #expect(new.windows.last?.pendingBytes == 10_919_936)
        #expect(new.windows.last?.pendingExact == true)
        #expect(new.windows.allSatisfy { $0.era == .c && $0.rebuild.exact })
        #expect(new.report?.eventCounts[.qemuSavevmQueryPending] == 45)  // 44 from the pending events, the final query
        #expect(new.report?.eventCounts[.migratePendingEstimate] == nil)
    }

    /// 11.1 counts iterations in its core loop: the 6 exact queries, not the 8 bitmap syncs (the setup sync and the
    /// final one at switchover are none), and not the final query.
    @Test func exactQueriesAreTheIterations() throws {
        let m = try #require(try analyze([Self.converge]).report?.migrations.first)
        let old = try #require(try analyze([Self.original]).report?.migrations.first)
        #expect(old.iterations == 8)
        #expect(m.iterations == 6)
        #expect(m.iterationsAreQueries)
        #expect(m.postSyncPending == [31_608_832, 22_708_224, 16_146_432, 13_754_368, 10_919_936, 9_383_936])
        #expect(m.outcome == .completed && m.verdict == .completed)
        #expect(m.switchover?.window == 35 && m.switchover?.pendingBytes == 9_383_936)
        #expect(m.stopCopyBytes == 0)
        #expect(m.downtimeMs == old.downtimeMs)
    }

    /// JSON windows carry the parts and the total; CSV has a column for each part.
    @Test func outputsCarryTheParts() throws {
        let json = MemoryOutput()
        _ = try Self.run(Self.converge, JSONSink(out: json, names: InputNames(["t"]), version: "test"))
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(json.bytes)) as? [String: Any])
        let series = try #require((doc["series"] as? [[String: Any]])?.first)
        let windows = try #require(series["windows"] as? [[String: Any]])
        let w0 = windows[0]
        #expect((w0["pending_bytes"] as? NSNumber)?.uint64Value == 134_750_208)
        #expect((w0["pending_precopy_bytes"] as? NSNumber)?.uint64Value == 134_750_208)
        #expect((w0["pending_stopcopy_bytes"] as? NSNumber)?.uint64Value == 0)
        #expect((w0["pending_postcopy_bytes"] as? NSNumber)?.uint64Value == 0)
        let migration = try #require((doc["migrations"] as? [[String: Any]])?.first)
        #expect((migration["iterations"] as? NSNumber)?.intValue == 6)
        #expect((migration["stop_copy_bytes"] as? NSNumber)?.uint64Value == 0)

        let csv = MemoryOutput()
        _ = try Self.run(Self.converge, CSVSink(out: csv))
        let rows = csv.text.split(separator: "\n")
        #expect(rows[0].hasSuffix(",pending_bytes,pending_precopy_bytes,pending_stopcopy_bytes,pending_postcopy_bytes"))
        #expect(rows[1].hasSuffix(",134750208,134750208,0,0"))
        // A trace with the older events has the columns, empty.
        let oldCSV = MemoryOutput()
        _ = try Self.run(Self.original, CSVSink(out: oldCSV))
        #expect(oldCSV.text.split(separator: "\n")[1].hasSuffix(",134750208,,,"))
    }

    /// A recording carries the 8 arguments; more than 8, or a value over 32 bits in argument 7 or 8, is refused.
    @Test func recordingsCarryEightArguments() throws {
        func parse(_ s: [UInt8]) -> Result<RecordingFormat.Line, RecordingFormat.ParseFailure> {
            var b = s
            if b.last == 10 { b.removeLast() }
            return b.withUnsafeBufferPointer { RecordingFormat.parse($0, input: 0, line: 2) }
        }
        let e = TraceEvent(
            kind: .qemuSavevmQueryPending, arguments: ProbeArguments(count: 8, 1, 1, 5, 6, 7, 18, 4_294_967_295, 3),
            timestampNanoseconds: 9, clock: .wall, threadID: 3, processID: 2, origin: EventOrigin(input: 0, line: 2))
        let line = RecordingFormat.eventLine(e, monotonicNanoseconds: 1)
        #expect(
            String(decoding: line, as: UTF8.self)
                == #"{"type":"event","probe":"qemu_savevm_query_pending","ts_ns":9,"mono_ns":1,"pid":2,"tid":3,"args":[1,1,5,6,7,18,4294967295,3]}"#
                + "\n")
        #expect(try parse(line).get() == .event(e))
        let nine = Array(#"{"type":"event","probe":"qemu_savevm_query_pending","args":[1,1,5,6,7,18,0,3,4]}"#.utf8)
        #expect(parse(nine) == .failure(RecordingFormat.ParseFailure(reason: "missing \"args\" or more than eight")))
        let wide = Array(#"{"type":"event","probe":"qemu_savevm_query_pending","args":[1,1,5,6,7,18,4294967296,3]}"#.utf8)
        #expect(
            parse(wide)
                == .failure(
                    RecordingFormat.ParseFailure(
                        reason: "qemu_savevm_query_pending argument 7 is 4294967296; it is a 32-bit value (at most 4294967295)")))
    }

    /// Device stop-copy data stays in every level: the model's floor is at least that, and the advice says iterating
    /// cannot reduce it (hand-made events: RAM converging, a device with 40 MB it can only send while stopped).
    @Test func stopCopyDataIsAFloor() throws {
        var lines = ["migrate_set_state new state setup", "migrate_set_state new state active"]
        var ram: UInt64 = 60_000_000
        for i in 0..<12 {
            // 100 ms windows at 100,000 B/ms, a 300 ms limit: threshold 30,000,000 bytes (era B, measured).
            lines.append(
                "migrate_transferred transferred 10000000 time_spent 100 bandwidth 100000 switchover_bw 0 max_size 30000000")
            let exact = i % 3 == 2
            lines.append(
                Self.query(
                    "exact=\(exact ? 1 : 0), final=0, precopy=\(ram), stopcopy=40000000, postcopy=0, total=\(ram + 40_000_000), collected switchover ack pending=0, total switchover ack pending=0"
                ))
            if exact { ram /= 4 }
        }
        let sink = try analyze(text: lines.joined(separator: "\n") + "\n")
        let m = try #require(sink.report?.migrations.first)
        #expect(m.iterations == 4)
        #expect(m.postSyncPending == [100_000_000, 55_000_000, 43_750_000, 40_937_500])
        #expect(m.stopCopyBytes == 40_000_000)
        #expect(m.verdict == .stalled)
        #expect((m.pendingFloorBytes ?? 0) >= 40_000_000)
        let reason = try #require(m.advice?.reason)
        #expect(reason.contains("the floor is device data (stop-copy, 40000000 bytes)"))
        #expect(reason.contains("iterating cannot shrink it"))
        // The advised limit lets the threshold at 100,000 B/ms hold the floor.
        let limit = try #require(m.advice?.downtimeLimitMs)
        #expect(limit * 100_000 > m.pendingFloorBytes ?? 0)
        #expect(sink.windows.last?.pendingSplit == PendingSplit(precopy: 937_500, stopcopy: 40_000_000, postcopy: 0))
    }
}
