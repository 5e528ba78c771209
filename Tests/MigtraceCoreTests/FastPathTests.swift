// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import MigtraceCore
@testable import MigtraceIO

/// The log parser's fast path (SWAR digits, word-compared text, line splitting fused with parsing) against the
/// exact parser it must agree with, and the reader's packed batches.
@Suite struct FastPathTests {
    /// `text` followed by `QEMULogParser.fastPathReach` filler bytes, as the reader guarantees.
    static func padded(_ text: [UInt8], filler: UInt8 = 0) -> [UInt8] {
        text + [UInt8](repeating: filler, count: QEMULogParser.fastPathReach)
    }

    /// The scalar reference for `SWAR.number`: 1...19 leading digits and their value, else length 0.
    static func reference(_ bytes: [UInt8]) -> (value: UInt64, length: Int) {
        var v: UInt64 = 0
        var n = 0
        while n < bytes.count, bytes[n] &- 48 < 10 {
            v = v &* 10 &+ UInt64(bytes[n] &- 48)
            n += 1
        }
        return n >= 1 && n <= 19 ? (v, n) : (0, 0)
    }

    static func swar(_ bytes: [UInt8]) -> (value: UInt64, length: Int) {
        padded(bytes).withUnsafeBytes { SWAR.number($0.baseAddress!) }
    }

    @Test func swarNumberMatchesTheScalarReferenceOnEdgeValues() {
        let cases: [(String, UInt64, Int)] = [
            ("0", 0, 1), ("7 ", 7, 1), ("00000000", 0, 8), ("12345678", 12_345_678, 8), ("123456789", 123_456_789, 9),
            ("17179374598)", 17_179_374_598, 11), ("1234567890123456", 1_234_567_890_123_456, 16),
            ("12345678901234567", 12_345_678_901_234_567, 17),
            ("9999999999999999999", 9_999_999_999_999_999_999, 19),  // 19 digits: the largest always in range
            ("0000000000000000001", 1, 19),
            ("18446744073709551615", 0, 0),  // UInt64.max has 20 digits: left to the exact parser
            ("18446744073709551616", 0, 0),  // past UInt64.max
            ("00000000000000000001", 0, 0),  // 20 digits, even when small
            ("99999999999999999999999", 0, 0), ("", 0, 0), ("x1", 0, 0), ("-1", 0, 0),
        ]
        for (text, value, length) in cases {
            let got = Self.swar(Array(text.utf8))
            #expect(got.value == value && got.length == length, "\(text)")
            let ref = Self.reference(Array(text.utf8))
            #expect(got.value == ref.value && got.length == ref.length, "\(text)")
        }
    }

    @Test func swarNumberStopsAtANonDigitAtEveryPosition() {
        // Every byte value that is not a digit, at every position of a 24-digit run: bytes next to '0' and '9'
        // (/ and :), the ones whose +6 carries (0xFA...0xFF), NUL and the newline among them.
        let nonDigits = (0...255).map(UInt8.init).filter { $0 < 48 || $0 > 57 }
        let digits = Array("987654321098765432109876".utf8)
        var checked = 0
        for position in 0...digits.count {
            for b in nonDigits {
                var bytes = digits
                if position < bytes.count { bytes[position] = b } else { bytes.append(b) }
                let got = Self.swar(bytes)
                let ref = Self.reference(bytes)
                if got.value != ref.value || got.length != ref.length {
                    Issue.record("byte \(b) at \(position): \(got) vs \(ref)")
                }
                checked += 1
            }
        }
        #expect(checked == 25 * 246)
    }

    @Test func swarNumberMatchesTheReferenceOnPseudorandomRuns() {
        var rng = SplitMix64(seed: 42)  // RuleDispatchTests.swift
        for _ in 0..<20_000 {
            let length = Int(rng.next() % 24)
            var bytes = (0..<length).map { _ in UInt8(48 + rng.next() % 10) }
            bytes.append(UInt8(truncatingIfNeeded: rng.next()) | 0x80)  // a non-digit end
            let got = Self.swar(bytes)
            let ref = Self.reference(bytes)
            #expect(got.value == ref.value && got.length == ref.length, "\(bytes)")
        }
    }

    @Test func fastPathWordsSpellTheirText() {
        func word(_ s: String) -> UInt64 {
            Array(s.utf8).enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        }
        typealias W = FastPathWords
        let words: [(UInt64, String)] = [
            (W.migrate, "migrate_"), (W.pendingSpace, "pending "), (W.ngSize, "ng size "), (W.max, " max "),
            (W.pre, " (pre = "), (W.compat, " compat="), (W.post, " post="), (W.transfer, "transfer"),
            (W.redTran, "red tran"), (W.sferred, "sferred "), (W.timeSp, " time_sp"), (W.ent, "ent "),
            (W.bandwid, " bandwid"), (W.ndwidth, "ndwidth "), (W.maxSiz, " max_siz"), (W.e, "e "),
            (W.switcho, " switcho"), (W.overBw, "over_bw "), (W.pendingUnderscore, "pending_"), (W.estimate, "estimate"),
            (W.spaceEstimat, " estimat"), (W.ePendin, "e pendin"), (W.exactEx, "exact ex"), (W.actPend, "act pend"),
            (W.ingSize, "ing size"),
        ]
        for (value, text) in words { #expect(value == word(text), "\(text)") }
        #expect("migrate_pending pending size ".utf8.count == 29 && " switchover_bw ".utf8.count == 15)
        #expect("migrate_pending_estimate estimate pending size ".utf8.count == 47)
        #expect("migrate_pending_exact exact pending size ".utf8.count == 41)
    }

    /// The fast path's reading of `line` (newline included) or nil.
    static func fast(_ line: String) -> FastLine? {
        padded(Array(line.utf8)).withUnsafeBytes { QEMULogParser.fastLine($0.baseAddress!) }
    }

    /// The exact parser's reading of `line` without its newline, at line 1.
    static func exact(_ line: String) -> LineResult {
        var bytes = Array(line.utf8)
        if bytes.last == 10 { bytes.removeLast() }
        return bytes.withUnsafeBufferPointer { QEMULogParser(input: 0).parse($0, line: 1) }
    }

    /// Whether the fast path, where it reads `line` at all, reads what the exact parser reads.
    static func agree(_ line: String) -> Bool {
        guard let f = fast(line) else { return true }
        guard case .event(let e) = exact(line), f.length == line.utf8.count else { return false }
        return e
            == TraceEvent(
                kind: f.kind, arguments: f.arguments, timestampNanoseconds: f.timestamp, clock: .wall, threadID: f.thread,
                origin: EventOrigin(input: 0, line: 1))
    }

    static let pending = "41873@1700000000.164457:migrate_pending pending size 17179374598 max 0 (pre = 17179374598 compat=0 post=0)\n"
    static let transferred =
        "41873@1700000000.268646:migrate_transferred transferred 8035333 time_spent 124 bandwidth 64801 max_size 19440321\n"
    static let switchover =
        "7@1700000000.1:migrate_transferred transferred 5 time_spent 100 bandwidth 0 switchover_bw 125000 max_size 37500000\n"
    static let estimate =
        "41873@1700000000.164457:migrate_pending_estimate estimate pending size 17179374598 (pre = 17179374590 post=8)\n"
    static let exactPending = "9@1700000000.205789:migrate_pending_exact exact pending size 4096 (pre = 0 post=4096)\n"
    /// Without postcopy: `pre` repeats the size.
    static let estimateWithoutPostcopy =
        "41873@1700000000.164457:migrate_pending_estimate estimate pending size 17179374598 (pre = 17179374598 post=0)\n"

    @Test func fastPathReadsTheCommonLinesWithTheirValues() throws {
        let p = try #require(Self.fast(Self.pending))
        #expect(p.kind == .migratePending && p.thread == 41873 && p.timestamp == 1_700_000_000_164_457_000)
        #expect(p.arguments == ProbeArguments(count: 5, 17_179_374_598, 0, 17_179_374_598, 0, 0))
        #expect(p.length == Self.pending.utf8.count)
        let t = try #require(Self.fast(Self.transferred))
        #expect(t.kind == .migrateTransferred && t.timestamp == 1_700_000_000_268_646_000)
        #expect(t.arguments == ProbeArguments(count: 4, 8_035_333, 124, 64801, 19_440_321))
        let s = try #require(Self.fast(Self.switchover))  // a 1-digit fraction: the general prefix path
        #expect(s.thread == 7 && s.timestamp == 1_700_000_000_100_000_000)
        #expect(s.arguments == ProbeArguments(count: 5, 5, 100, 0, 125_000, 37_500_000))
        let crlf = try #require(Self.fast(String(Self.transferred.dropLast()) + "\r\n"))
        #expect(crlf.length == Self.transferred.utf8.count + 1 && crlf.arguments == t.arguments)
        let e = try #require(Self.fast(Self.estimate))
        #expect(e.kind == .migratePendingEstimate && e.thread == 41873 && e.timestamp == 1_700_000_000_164_457_000)
        #expect(e.arguments == ProbeArguments(count: 3, 17_179_374_598, 17_179_374_590, 8))
        #expect(e.length == Self.estimate.utf8.count)
        let x = try #require(Self.fast(Self.exactPending))
        #expect(x.kind == .migratePendingExact && x.thread == 9 && x.timestamp == 1_700_000_000_205_789_000)
        #expect(x.arguments == ProbeArguments(count: 3, 4096, 0, 4096))
        #expect(x.length == Self.exactPending.utf8.count)
        for line in [Self.pending, Self.transferred, Self.switchover, Self.estimate, Self.exactPending, Self.estimateWithoutPostcopy] {
            #expect(Self.agree(line))
        }
    }

    @Test func fastPathDeclinesWhatItCannotVouchFor() {
        let declined: [String] = [
            "migrate_transferred transferred 1 time_spent 100 bandwidth 0 max_size 0\n",  // no prefix
            String(Self.transferred.dropLast()) + " \n",  // trailing space: the exact parser trims it
            String(Self.transferred.dropLast()) + "\r\r\n",
            String(Self.transferred.dropLast()),  // no newline
            Self.transferred.replacingOccurrences(of: "19440321", with: "9223372036854775808"),  // > Int64.max
            Self.transferred.replacingOccurrences(of: "8035333", with: "18446744073709551615"),  // 20 digits
            Self.pending.replacingOccurrences(of: "max 0", with: "max  0"),
            Self.pending.replacingOccurrences(of: ".164457:", with: ".1644570001:"),  // 10-digit fraction
            Self.pending.replacingOccurrences(of: "migrate_pending pending", with: "migrate_pending_exact exact pending"),
            Self.estimate.replacingOccurrences(of: "estimate pending", with: "exact pending"),  // name and word differ
            Self.exactPending.replacingOccurrences(of: "exact pending", with: "estimate pending"),
            Self.estimate.replacingOccurrences(of: "post=8)", with: "post=8) "),
            Self.estimate.replacingOccurrences(of: "(pre = ", with: "(pre =  "),
            Self.exactPending.replacingOccurrences(of: "size 4096", with: "size 18446744073709551615"),  // 20 digits
            "41873@1700000000.143791:migrate_set_state new state active\n",
        ]
        for line in declined {
            #expect(Self.fast(line) == nil, "\(line)")
        }
    }

    @Test func fastPathAgreesWithTheExactParserOnEveryOneByteChange() {
        // Each common line with each byte replaced by each of a set of bytes, and cut at each position: wherever
        // the fast path accepts the result it must give the exact parser's event.
        let replacements = Array("0 9/:.@)(\r\nm_-xe".utf8) + [0, 0xFA, 0xFF]
        var accepted = 0
        var disagreements: [String] = []
        for line in [Self.pending, Self.transferred, Self.switchover, Self.estimate, Self.exactPending, Self.estimateWithoutPostcopy] {
            let bytes = Array(line.utf8)
            var variants: [[UInt8]] = []
            for i in bytes.indices {
                for r in replacements where r != bytes[i] {
                    var v = bytes
                    v[i] = r
                    variants.append(v)
                }
                variants.append(Array(bytes[..<i]) + [10])
                variants.append(Array(bytes[..<i]) + Array(bytes[(i + 1)...]))
            }
            for v in variants {
                // The reader hands the fast path what follows the line too: cut after the first newline.
                let cut = v.firstIndex(of: 10).map { Array(v[...$0]) } ?? v
                let text = String(decoding: cut, as: UTF8.self)
                guard Array(text.utf8) == cut else { continue }  // not UTF-8: checked through the bytes below
                if Self.fast(text) != nil { accepted += 1 }
                if !Self.agree(text) { disagreements.append(text) }
            }
        }
        #expect(disagreements == [])
        #expect(accepted > 100)
    }

    @Test func preRepeatingTheSizeIsReadAsTheExactParserReadsIt() throws {
        // pre equal to the size (read by comparing digits), differing in each digit, one digit longer or shorter,
        // for sizes of 1...19 digits, in all three pending shapes.
        var accepted = 0
        var disagreements: [String] = []
        for length in 1...19 {
            let size = String((0..<length).map { Character(String(($0 * 7 + 3) % 10)) })
            var pres = [size, size + "7", String(size.dropLast()), "0" + size]
            for d in 0..<length {
                var digits = Array(size)
                digits[d] = digits[d] == "9" ? "0" : Character(String(digits[d].wholeNumberValue! + 1))
                pres.append(String(digits))
            }
            for pre in pres where !pre.isEmpty {
                for line in [
                    "5@1700000000.164457:migrate_pending_estimate estimate pending size \(size) (pre = \(pre) post=0)\n",
                    "5@1700000000.164457:migrate_pending_exact exact pending size \(size) (pre = \(pre) post=0)\n",
                    "5@1700000000.164457:migrate_pending pending size \(size) max 0 (pre = \(pre) compat=0 post=0)\n",
                ] {
                    if Self.fast(line) != nil {
                        accepted += 1
                    } else if pre == size {
                        disagreements.append("declined: " + line)
                    }
                    if !Self.agree(line) { disagreements.append(line) }
                }
            }
        }
        #expect(disagreements == [])
        #expect(accepted > 19 * 3 * 3)
    }

    @Test func memoOfEarlierLinesChangesNoReading() throws {
        // Lines in an order that reuses and then breaks each remembered word: the same thread with more digits
        // (8 digits fill the first word: the 9th decides), other seconds, the general timestamp layout.
        let body = "migrate_pending_estimate estimate pending size 7 (pre = 7 post=0)\n"
        let lines = [
            "41873@1700000000.164457:", "41873@1700000000.185123:", "41873@1700000100.185123:", "4187@1700000100.1:",
            "12345678@1700000100.185123:", "123456789@1700000100.185123:", "12345678@1700000100.185123:",
            "1234567@1800000100.185123:", "1234567@1700000100.185123:", "1234567@17.185123:", "1234567@1700000100.185123:",
            "9@1:", "9@0.0:", "@1700000000.164457:", "0@1700000000.000000:", "123456789012345678901@1700000000.164457:",
        ].map { $0 + body }
        var memo = FastLineMemo()
        var differing: [String] = []
        for line in lines + lines.reversed() {
            let alone = Self.fast(line)
            let remembered = Self.padded(Array(line.utf8)).withUnsafeBytes {
                QEMULogParser.fastLine($0.baseAddress!, memo: &memo)
            }
            if alone?.thread != remembered?.thread || alone?.timestamp != remembered?.timestamp
                || alone?.length != remembered?.length || alone?.arguments != remembered?.arguments
            {
                differing.append(line)
            }
        }
        #expect(differing == [])
        #expect(lines.filter { Self.fast($0) != nil }.count >= 10)
    }

    @Test func packedBatchGivesBackTheSameEvents() {
        let events = [
            TraceEvent(
                kind: .migrateSetState, arguments: ProbeArguments(count: 0), timestampNanoseconds: 5, clock: .monotonic,
                threadID: 3, processID: 4, state: .active, origin: EventOrigin(input: 2, line: 9)),
            TraceEvent(kind: .migratePending, arguments: ProbeArguments(count: 5, 1, 2, 3, 4, 5), origin: EventOrigin(input: 2, line: 10)),
            TraceEvent(
                kind: .migrateSetState, arguments: ProbeArguments(count: 0), state: .completed, origin: EventOrigin(input: 2, line: 11)),
            TraceEvent(
                kind: .migrateTransferred, arguments: ProbeArguments(count: 4, .max, 0, 1, 2), timestampNanoseconds: 0,
                processID: 0, origin: EventOrigin(input: 2, line: .max)),
        ]
        var batch = TraceBatch(capacity: 4)
        for e in events { batch.append(e) }
        batch.reject(Diagnostic(input: 2, line: 12, reason: "r"))
        var replayed: [TraceEvent] = []
        var diagnostics: [UInt64] = []
        batch.inLineOrder({ replayed.append($0) }, { diagnostics.append($0.line) })
        #expect(replayed == events && diagnostics == [12])
        batch.removeAll()
        #expect(batch.count == 0 && batch.events.isEmpty)
    }

    /// Read `bytes` through TraceReader from a regular file and from a pipe.
    static func readBoth(_ bytes: [UInt8]) throws -> (file: ThreadedReaderTests.Reading, pipe: ThreadedReaderTests.Outcome) {
        let file = try ThreadedReaderTests.read(bytes)
        var fds: [Int32] = [0, 0]
        try #require(pipe(&fds) == 0)
        let writeEnd = fds[1]
        let writer = Thread {
            bytes.withUnsafeBytes { raw in
                var done = 0
                while done < raw.count {
                    let n = write(writeEnd, raw.baseAddress! + done, raw.count - done)
                    if n <= 0 { break }
                    done += n
                }
            }
            close(writeEnd)
        }
        writer.start()
        defer { close(fds[0]) }
        let sink = CollectingSink()
        let analyzer = MigrationAnalyzer(sink: sink)
        _ = try TraceReader.read(fd: fds[0], input: 0, into: analyzer)
        analyzer.endInput(0)
        analyzer.finish()
        return (file, ThreadedReaderTests.Outcome(sink))
    }

    @Test func fastAndExactPathsAgreeOnAWholeMixedTrace() throws {
        // Common lines (both fast layouts, CRLF), lines only the exact parser reads, malformed ones and one over the
        // line limit, over several read chunks so that lines straddle chunk ends, and a last line without newline.
        var text = ""
        var i = 0
        while text.utf8.count < 3 * TraceReader.chunkSize + 12345 {
            i += 1
            let us = String(100_000 + i % 900_000)
            switch i % 50 {
            case 7: text += "41873@1700000000.\(us):migrate_transferred transferred \(i) time_spent 100 bandwidth 9 max_size 77\r\n"
            case 13: text += "migrate_pending pending size \(i) max 3 (pre = \(i) compat=0 post=0)\n"  // no prefix
            case 17: text += "41873@1700000000.\(us):migrate_pending pending size \(i) max x (pre = 1 compat=0 post=0)\n"
            case 23: text += "41873@1700000000.\(us):migration_bitmap_sync_end dirty_pages \(i)\n"
            case 29: text += "41873@1700000000.\(us):migrate_set_state new state active\n"
            case 31:
                text += "41873@1700000000.\(us):migrate_transferred transferred \(i) time_spent 1 bandwidth 2 switchover_bw 3 max_size 4\n"
            case 32...36:
                text +=
                    "41873@1700000000.\(us):migrate_pending_estimate estimate pending size \(90_000_000 - i) (pre = \(i) post=\(i % 7))\n"
            case 37:
                text += "41873@1700000000.\(us):migrate_pending_exact exact pending size \(i) (pre = \(i) post=0)\n"
            case 38: text += "41873@1700000000.\(us):migrate_pending_estimate estimate pending size \(i) (pre = x post=0)\n"
            default:
                text += "41873@1700000000.\(us):migrate_pending pending size \(17_179_374_598 - i) max \(i) (pre = \(i) compat=0 post=0)\n"
                if i == 20_000 { text += String(repeating: "x", count: 70_000) + "\n" }
            }
        }
        text += "41873@1700000001.000000:migrate_transferred transferred 1 time_spent 100 bandwidth 10 max_size 30"
        let bytes = Array(text.utf8)
        let (expected, lines, events, rejected) = ThreadedReaderTests.lineByLine(bytes)
        #expect(rejected > 0 && events > 25_000)
        let (file, piped) = try Self.readBoth(bytes)
        #expect(file.run.threaded)
        #expect(file.outcome == expected)
        #expect(piped == expected)
        #expect(file.run.statistics.lines == lines && file.run.statistics.events == events)
        #expect(file.run.statistics.rejected == rejected && file.run.statistics.bytes == UInt64(bytes.count))
        #expect(expected.windows.last?.origin.line == lines)  // the last line, without newline, is read
    }

    @Test func fileWithoutFinalNewlineEndsWithItsLastEvent() throws {
        var text = ""
        for k in 0..<10 { text += Self.pending.replacingOccurrences(of: "max 0", with: "max \(k)") }
        text += Self.transferred.dropLast()
        let r = try ThreadedReaderTests.read(Array(text.utf8))
        #expect(r.run.statistics.lines == 11 && r.run.statistics.events == 11 && r.run.statistics.rejected == 0)
        #expect(r.outcome.windows.map(\.origin.line) == [11])
        #expect(r.outcome == ThreadedReaderTests.lineByLine(Array(text.utf8)).0)
    }
}
