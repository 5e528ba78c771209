// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import MigtraceCore
@testable import MigtraceIO

/// QEMU's simple trace backend decoded (issue 15 item 8): the real files written by the project's QEMU 10.0 builds
/// with `--enable-trace-backends=dtrace,log,simple` give exactly the windows of the log backend's output of the same
/// run; cut files keep what came before; hand-made files (built here from the format, and so marked) cover what
/// the real runs did not produce: dropped-event records, damaged records, other versions.
@Suite struct SimpletraceTests {
    static func fixture(_ name: String) -> String { Paths.qemuFixtures.appendingPathComponent(name).path }

    /// Read `bytes` through TraceReader (as `migtrace analyze` does) and collect what the analysis produced.
    static func decode(bytes: [UInt8]) throws -> (sink: CollectingSink, stats: InputStatistics) {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("migtrace-st-\(UUID().uuidString)")
        try Data(bytes).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let sink = CollectingSink()
        let analyzer = MigrationAnalyzer(sink: sink)
        let fd = open(url.path, O_RDONLY)
        defer { close(fd) }
        let stats = try TraceReader.read(fd: fd, input: 0, into: analyzer)
        analyzer.endInput(0)
        analyzer.finish()
        return (sink, stats)
    }

    @Test(arguments: ["usdt-10.0-converge", "usdt-eraC-converge"])
    func realFilesGiveTheLogBackendsWindows(_ name: String) throws {
        let log = try analyze([Self.fixture("\(name).log")])
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: Self.fixture("\(name).simpletrace"))))
        let (sink, stats) = try Self.decode(bytes: bytes)
        let report = try #require(sink.report)
        #expect(stats.format == .simpletrace && stats.rejected == 0 && stats.lostEvents == 0)
        #expect(stats.bytes == UInt64(bytes.count))
        #expect(report.diagnostics.isEmpty)
        #expect(sink.windows.count == log.windows.count && sink.windows.count > 20)
        #expect(report.exactCount == sink.windows.count)
        #expect(sink.windows.map(\.transferred) == log.windows.map(\.transferred))
        #expect(sink.windows.map(\.timeSpentMs) == log.windows.map(\.timeSpentMs))
        #expect(sink.windows.map(\.thresholdTraced) == log.windows.map(\.thresholdTraced))
        #expect(sink.windows.map(\.pendingBytes) == log.windows.map(\.pendingBytes))
        #expect(sink.windows.map(\.era) == log.windows.map(\.era))
        #expect(report.series.map(\.finalState) == ["completed"])
        #expect(sink.series.first?.timeBase == .monotonic)
        #expect(sink.series.first?.processID != nil)
        #expect(sink.findings.map(\.rule) == log.findings.map(\.rule))
    }

    /// The real file cut inside each of its last records: the windows before the cut are kept, exactly, and the
    /// cut is one diagnostic saying where.
    @Test func cutFileKeepsWhatCameBefore() throws {
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: Self.fixture("usdt-10.0-converge.simpletrace"))))
        let full = try Self.decode(bytes: bytes)
        let windows = full.sink.windows.count
        // The last migrate_transferred record: 8 (type) + 64 bytes; cut 40 bytes into it (its length is read).
        var last = 0
        var pos = 24
        var record = 0
        var lastRecord = 0
        var names: [UInt64: String] = [:]
        func u64(_ p: Int) -> UInt64 { (0..<8).reversed().reduce(0) { $0 << 8 | UInt64(bytes[p + $1]) } }
        func u32(_ p: Int) -> Int { (0..<4).reversed().reduce(0) { $0 << 8 | Int(bytes[p + $1]) } }
        while pos < bytes.count {
            record += 1
            if u64(pos) == 0 {
                names[u64(pos + 8)] = String(decoding: bytes[(pos + 20)..<(pos + 20 + u32(pos + 16))], as: UTF8.self)
                pos += 20 + u32(pos + 16)
            } else {
                if names[u64(pos + 8)] == "migrate_transferred" {
                    last = pos
                    lastRecord = record
                }
                pos += 8 + u32(pos + 24)
            }
        }
        let cut = try Self.decode(bytes: Array(bytes[0..<(last + 40)]))
        #expect(cut.sink.windows.count == windows - 1)
        #expect(cut.sink.windows.map(\.transferred) == full.sink.windows.dropLast().map(\.transferred))
        #expect(
            cut.sink.report?.diagnostics == [
                Diagnostic(
                    input: 0, line: UInt64(lastRecord),
                    reason:
                        "simpletrace record \(lastRecord) at byte \(last) is cut short: the file ends after 40 of its 72 bytes (QEMU was stopped before flushing its trace buffer, or the copy is incomplete); everything before it is analysed"
                )
            ])
        // Cut before its length field, inside its type word, and inside the file header.
        let early = try Self.decode(bytes: Array(bytes[0..<(last + 10)]))
        #expect(early.sink.windows.count == windows - 1)
        #expect(
            early.sink.report?.diagnostics.first?.reason.hasPrefix(
                "simpletrace record \(lastRecord) at byte \(last) is cut short: the file ends after 10 bytes (") == true)
        let word = try Self.decode(bytes: Array(bytes[0..<(last + 3)]))
        #expect(word.sink.windows.count == windows - 1)
        #expect(
            word.sink.report?.diagnostics.first?.reason.hasPrefix(
                "simpletrace record \(lastRecord) at byte \(last) is cut short: the file ends after 3 bytes") == true)
        let header = try Self.decode(bytes: Array(bytes[0..<20]))
        #expect(header.sink.report?.diagnostics.map(\.reason) == ["simpletrace header is cut short (20 of 24 bytes)"])
    }

    /// The real file with bytes overwritten at random (a fixed seed), and cut at random lengths: never a crash, never
    /// more windows than the file has, and the damage, when it is seen, reported.
    @Test func damagedCopiesOfTheRealFileNeverCrash() throws {
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: Self.fixture("usdt-10.0-converge.simpletrace"))))
        var rng = SplitMix64(seed: 15)
        for round in 0..<300 {
            var copy = Array(bytes[0..<(24 + Int(rng.next() % UInt64(bytes.count - 24)))])
            for _ in 0..<(1 + rng.next() % 8) {
                let at = 24 + Int(rng.next() % UInt64(copy.count - 24))
                copy[at] = UInt8(truncatingIfNeeded: rng.next())
            }
            let (sink, _) = try Self.decode(bytes: copy)
            #expect(sink.windows.count <= 32, "round \(round)")
        }
    }

    /// A file built here from the format (hand-made, not written by QEMU).
    struct HandMade {
        var bytes: [UInt8] = []
        mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        init(version: UInt64 = 4) {
            u64(~0)
            u64(0xf2b1_77cb_0aa4_29b4)
            u64(version)
        }
        mutating func mapping(_ id: UInt64, _ name: String) {
            u64(0)
            u64(id)
            u32(UInt32(name.utf8.count))
            bytes += Array(name.utf8)
        }
        mutating func event(_ id: UInt64, ns: UInt64, pid: UInt32 = 4242, _ args: [UInt64]) {
            u64(1)
            u64(id)
            u64(ns)
            u32(UInt32(24 + 8 * args.count))
            u32(pid)
            for a in args { u64(a) }
        }
        mutating func state(_ id: UInt64, ns: UInt64, _ text: [UInt8]) {
            u64(1)
            u64(id)
            u64(ns)
            u32(UInt32(24 + 4 + text.count))
            u32(4242)
            u32(UInt32(text.count))
            bytes += text
        }
    }

    @Test func handMadeFileWithDroppedEventsAndDamage() throws {
        var f = HandMade()
        // Ids as QEMU assigns them at run time: not the ones of any events file.
        f.mapping(7, "migrate_set_state")
        f.mapping(3, "migrate_transferred")
        f.mapping(9, "vcpu_dirty_limit")
        f.mapping(4, "migrate_pending_exact")
        f.state(7, ns: 1_000, Array("setup".utf8))
        f.event(9, ns: 1_500, [1, 2])  // not a migration event: skipped
        f.event(4, ns: 2_000, [50_000_000, 50_000_000, 0])
        f.event(3, ns: 100_000_000, [1_000_000, 100, 10_000, 0, 3_000_000])
        f.event(~0 - 1, ns: 150_000_000, [37])  // dropped-events record
        f.event(3, ns: 200_000_000, [1_000_000, 100, 10_000, 0, 3_000_000])
        f.event(3, ns: 300_000_000, [1_000_000, 100, 10_000])  // 3 arguments: refused
        f.state(7, ns: 300_000_001, Array("completed".utf8) + [0x1b, 0x5b, 0x33, 0x31, 0x6d])  // not a QEMU state
        f.state(7, ns: 300_000_002, Array("completed".utf8))
        let (sink, stats) = try Self.decode(bytes: f.bytes)
        #expect(sink.windows.map(\.transferred) == [1_000_000, 1_000_000])
        #expect(sink.windows.allSatisfy { $0.rebuild.exact })
        #expect(sink.windows.first?.pendingBytes == 50_000_000)
        #expect(stats.droppedByTracer == 37 && stats.lostEvents == 37)
        #expect(stats.events == 5 && stats.rejected == 3 && stats.lines == 13)
        #expect(
            sink.report?.diagnostics.map { "\($0.line): \($0.reason)" } == [
                "9: QEMU dropped 37 trace event(s) here (its simple-backend trace buffer was full): windows may be missing",
                "11: migrate_transferred: 24 bytes of arguments; this event has 32 or 40",
                #"12: migrate_set_state: new state "completed\x1b[31m" is not a QEMU migration state (MigrationStatus)"#,
            ])
        #expect(sink.report?.series.first?.finalState == "completed")
        #expect(sink.series.first?.processID == 4242)
        #expect(sink.findings.map(\.rule) == ["trace-integrity"])
    }

    @Test func handMadeFilesThatCannotBeDecoded() throws {
        let v3 = try Self.decode(bytes: HandMade(version: 3).bytes)
        #expect(
            v3.sink.report?.diagnostics.map(\.reason) == [
                "simpletrace header version 3: migtrace decodes version 4, what current QEMU writes; decode this file with the scripts/simpletrace.py of the QEMU that wrote it"
            ])
        var bad = HandMade()
        bad.mapping(3, "migrate_transferred")
        bad.event(3, ns: 1, [1_000_000, 100, 10_000, 3_000_000])
        bad.u64(5)
        bad.u64(0)
        var badLength = HandMade()
        badLength.u64(1)
        badLength.u64(3)
        badLength.u64(0)
        badLength.u32(12)
        badLength.u32(1)
        let damaged = try Self.decode(bytes: bad.bytes)
        #expect(damaged.sink.windows.count == 1)
        #expect(
            damaged.sink.report?.diagnostics.map(\.reason) == [
                "simpletrace record at byte 127 has type 5 (0 mapping or 1 event expected): the file is damaged; everything before it is analysed"
            ])
        #expect(
            try Self.decode(bytes: badLength.bytes).sink.report?.diagnostics.map(\.reason) == [
                "simpletrace event record at byte 24 has length 12, which no event has: the file is damaged; everything before it is analysed"
            ])
    }
}
