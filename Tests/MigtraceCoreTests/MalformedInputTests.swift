// SPDX-License-Identifier: Apache-2.0
import Foundation
import MigtraceIO
import Testing

@testable import MigtraceCore

/// Malformed input through the whole read path (TraceReader → MigrationAnalyzer → rules): every bad line
/// is reported at its line with its reason, nothing crashes, and the good lines around it are still analysed.
@Suite struct MalformedInputTests {
    /// Collects what the analysis of one malformed input produced (the suite-wide collecting sink).
    typealias Sink = CollectingSink

    /// The essentials of a window: its line, series and traced values.
    struct W: Equatable, CustomStringConvertible {
        var line: UInt64
        var series: Int
        var transferred: UInt64
        var timeSpent: UInt64
        var bandwidth: UInt64
        var switchover: UInt64? = nil
        var threshold: UInt64
        var description: String {
            "W(line: \(line), series: \(series), transferred: \(transferred), timeSpent: \(timeSpent), bandwidth: \(bandwidth)\(switchover.map { ", switchover: \($0)" } ?? ""), threshold: \(threshold))"
        }
    }

    /// A diagnostic as (line, reason).
    struct D: Equatable, CustomStringConvertible {
        var line: UInt64
        var reason: String
        init(_ line: UInt64, _ reason: String) {
            self.line = line
            self.reason = reason
        }
        var description: String { "D(\(line), \"\(reason)\")" }
    }

    struct Result {
        var sink: Sink
        var stats: InputStatistics
        var report: AnalysisReport { sink.report! }
        var diagnostics: [D] { report.diagnostics.map { D($0.line, $0.reason) } }
        var windows: [W] {
            sink.windows.map {
                W(
                    line: $0.origin.line, series: $0.series, transferred: $0.transferred, timeSpent: $0.timeSpentMs,
                    bandwidth: $0.bandwidthTraced, switchover: $0.switchoverTraced, threshold: $0.thresholdTraced)
            }
        }
    }

    static func fixture(_ name: String) throws -> String {
        let url = try #require(
            Bundle.module.url(forResource: "Fixtures/malformed/\(name)", withExtension: nil),
            "fixture Fixtures/malformed/\(name) is not in the test bundle")
        return url.path
    }

    /// Read `path` with TraceReader into an analyzer and finish it.
    static func analyze(path: String) throws -> Result {
        let fd = open(path, O_RDONLY)
        try #require(fd >= 0, "cannot open \(path)")
        defer { close(fd) }
        let sink = Sink()
        let analyzer = MigrationAnalyzer(sink: sink)
        let stats = try TraceReader.read(fd: fd, input: 0, into: analyzer)
        analyzer.finish()
        return Result(sink: sink, stats: stats)
    }

    static func analyze(fixture name: String) throws -> Result { try analyze(path: try fixture(name)) }

    /// Write `bytes` to a temporary file, analyse it, remove it.
    static func analyze(bytes: [UInt8]) throws -> Result {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("migtrace-malformed-\(UUID().uuidString).log")
        try Data(bytes).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        return try analyze(path: url.path)
    }

    static let w1 = W(line: 1, series: 0, transferred: 1_048_576, timeSpent: 100, bandwidth: 10485, threshold: 3_145_728)
    static func w2(line: UInt64) -> W {
        W(line: line, series: 0, transferred: 2_097_152, timeSpent: 100, bandwidth: 20971, threshold: 6_291_456)
    }
    static let integrity = TraceIntegrityRule.id

    /// The summary finding that trace-integrity makes for rejected lines.
    static func rejectedFinding(_ r: Result) -> [String] {
        r.sink.findings.filter { $0.rule == integrity && $0.message.contains("rejected") }.map(\.message)
    }

    @Test func truncatedFile() throws {
        let r = try Self.analyze(fixture: "truncated.log")
        #expect(r.diagnostics == [D(3, "migrate_transferred: expected 'time_spent' at column 40")])
        #expect(r.windows == [Self.w1, Self.w2(line: 2)])
        #expect(r.stats.lines == 3 && r.stats.events == 2 && r.stats.rejected == 1)
        #expect(
            Self.rejectedFinding(r) == [
                "1 line(s) or event(s) rejected; the first at input 0 line 3: migrate_transferred: expected 'time_spent' at column 40."
            ])
    }

    @Test func lineCutMidNumber() throws {
        let r = try Self.analyze(fixture: "cut-mid-number.log")
        #expect(r.diagnostics == [D(2, "migrate_transferred: line ends where 'max_size' was expected")])
        #expect(r.windows == [Self.w1])
        #expect(r.report.series.map(\.windows) == [1])
    }

    @Test func lastLineCutInsideItsLastNumberIsIndistinguishable() throws {
        // Known limit: a log's last line without newline is parsed as it is, so a cut inside max_size (the last
        // field) yields a window with the shortened value. QEMU writes whole lines, so this needs a copy taken
        // mid-write; the formula-mismatch rule then reports the window.
        var bytes = Array("migrate_transferred transferred 1048576 time_spent 100 bandwidth 10485 max_size 3145728\n".utf8)
        bytes += Array("migrate_transferred transferred 1048576 time_spent 100 bandwidth 10485 max_size 314".utf8)
        let r = try Self.analyze(bytes: bytes)
        #expect(r.diagnostics == [])
        #expect(r.windows.map(\.threshold) == [3_145_728, 314])
    }

    @Test func binaryGarbage() throws {
        let r = try Self.analyze(fixture: "binary-garbage.log")
        // Line 2 (random bytes) and line 4 (an ELF header) are not migration events; line 3 has a NUL before a number.
        #expect(r.diagnostics == [D(3, "migrate_transferred: expected a number after 'time_spent'")])
        #expect(r.windows == [Self.w1, Self.w2(line: 5)])
        #expect(r.stats.lines == 5 && r.stats.format == .qemuLog)
    }

    @Test func numbersThatOverflow64Bits() throws {
        let r = try Self.analyze(fixture: "overflow.log")
        #expect(
            r.diagnostics == [
                D(2, "migrate_transferred: value of 'transferred' does not fit in 64 bits"),
                D(3, "migrate_transferred: value of 'time_spent' does not fit in 64 bits"),
                D(4, "migrate_transferred: value of 'max_size' does not fit in a signed 64-bit integer"),
            ])
        // UInt64.max itself fits (and is flagged as a wrapped counter); Int64.max fits max_size.
        #expect(
            r.windows == [
                W(line: 1, series: 0, transferred: UInt64.max, timeSpent: 100, bandwidth: 184_467_440_737_095_516, threshold: 0),
                W(line: 5, series: 0, transferred: 1_048_576, timeSpent: 100, bandwidth: 10485, threshold: UInt64(Int64.max)),
            ])
        #expect(
            r.sink.findings.contains {
                $0.rule == Self.integrity
                    && $0.message == "Window 0 has transferred = 18446744073709551615: a wrapped (negative) byte counter."
            })
    }

    @Test func negativeNumbers() throws {
        let r = try Self.analyze(fixture: "negative.log")
        #expect(
            r.diagnostics == [
                D(1, "migrate_transferred: negative value for unsigned 'transferred'"),
                D(2, "migrate_transferred: negative value for unsigned 'time_spent'"),
                D(3, "migrate_transferred: negative value for 'max_size'"),
                D(4, "migrate_transferred: negative value for unsigned 'switchover_bw'"),
            ])
        #expect(r.windows == [W(line: 5, series: 0, transferred: 1_048_576, timeSpent: 100, bandwidth: 10485, threshold: 3_145_728)])
    }

    @Test func timeSpentZero() throws {
        let r = try Self.analyze(fixture: "time-spent-zero.log")
        let reason = "time_spent is 0; QEMU never traces a window shorter than 100 ms"
        #expect(r.diagnostics == [D(2, reason), D(3, reason)])
        #expect(r.windows == [Self.w1, Self.w2(line: 4)])
        // Parsed fine, rejected by the analyzer: the reader's count is of unparsable lines only.
        #expect(r.stats.events == 4 && r.stats.rejected == 0 && r.report.rejectedCount == 2)
    }

    @Test func missingFields() throws {
        let r = try Self.analyze(fixture: "missing-fields.log")
        #expect(
            r.diagnostics == [
                D(1, "migrate_transferred: expected 'bandwidth' at column 56"),
                D(2, "migrate_transferred: expected 'time_spent' at column 41"),
                D(3, "migrate_transferred: expected 'transferred' at column 21"),
                D(4, "migrate_transferred: line ends where 'max_size' was expected"),
                D(5, "migrate_transferred: line ends where 'transferred' was expected"),
                D(6, "migrate_transferred: expected a number after 'transferred'"),
                D(7, "migrate_pending_exact: expected ' post=' at column 54"),
                D(8, "migrate_set_state: missing the new state"),
                D(9, "migration_bitmap_sync_end: line ends before the value of 'dirty_pages'"),
            ])
        #expect(r.windows == [W(line: 10, series: 0, transferred: 1_048_576, timeSpent: 100, bandwidth: 10485, threshold: 3_145_728)])
    }

    @Test func fourAndFiveArgumentLinesMixed() throws {
        let r = try Self.analyze(fixture: "mixed-4-5-args.log")
        #expect(r.diagnostics == [])
        #expect(
            r.windows == [
                Self.w1,
                W(line: 2, series: 0, transferred: 2_097_152, timeSpent: 100, bandwidth: 20971, switchover: 125_000, threshold: 37_500_000),
                W(line: 3, series: 0, transferred: 524_288, timeSpent: 100, bandwidth: 5242, threshold: 1_572_864),
                W(line: 4, series: 0, transferred: 1_048_576, timeSpent: 200, bandwidth: 5242, switchover: 0, threshold: 1_572_864),
            ])
        #expect(
            r.sink.findings.filter { $0.rule == Self.integrity }.map(\.message) == [
                "The probe era changed from A to B at window 1 inside one series.",
                "The probe era changed from B to A at window 2 inside one series.",
                "The probe era changed from A to B at window 3 inside one series.",
            ])
    }

    @Test func timestampsGoingBackwards() throws {
        let r = try Self.analyze(fixture: "backwards-timestamps.log")
        #expect(r.diagnostics == [])
        #expect(r.windows.count == 4)
        #expect(r.windows.map(\.line) == [1, 2, 3, 4])
        #expect(r.sink.windows.map(\.endTime) == [1_700_000_000.3, 1_700_000_000.2, 1_600_000_000, 1_700_000_000.4])
        #expect(
            r.sink.findings.filter { $0.rule == Self.integrity }.map(\.message) == [
                "Time goes backwards by 100.000 ms between windows 0 and 1.",
                "Time goes backwards by 100000000200.000 ms between windows 1 and 2.",
                "No window for 100000000.30 s between windows 2 and 3.",
            ])
    }

    @Test func emptyFile() throws {
        let r = try Self.analyze(fixture: "empty.log")
        #expect(r.stats.lines == 0 && r.stats.bytes == 0 && r.stats.format == .qemuLog)
        #expect(r.diagnostics == [] && r.windows == [] && r.sink.findings == [] && r.report.series.isEmpty)
    }

    @Test func tenMegabyteLine() throws {
        // Generated here rather than committed: a valid line, a 10 MiB line, a valid line, lines at and just over
        // the limit, a 100 kB event line that lies whole inside one read, and a valid last line without newline.
        var bytes = Array("migrate_transferred transferred 1048576 time_spent 100 bandwidth 10485 max_size 3145728\n".utf8)
        var long = Array("migrate_transferred transferred 1 time_spent 100 bandwidth 0 max_size ".utf8)
        long += [UInt8](repeating: UInt8(ascii: "9"), count: 10 * 1024 * 1024 - long.count)
        bytes += long + [10]
        bytes += Array("migrate_transferred transferred 2097152 time_spent 100 bandwidth 20971 max_size 6291456\n".utf8)
        bytes += [UInt8](repeating: UInt8(ascii: "x"), count: TraceReader.maxLineLength) + [10]
        bytes += [UInt8](repeating: UInt8(ascii: "x"), count: TraceReader.maxLineLength + 1) + [10]
        bytes +=
            Array("migrate_transferred transferred 1 time_spent 100 bandwidth 0 max_size 0".utf8)
            + [UInt8](repeating: UInt8(ascii: " "), count: 100_000) + [10]
        bytes += Array("migrate_transferred transferred 2097152 time_spent 100 bandwidth 20971 max_size 6291456".utf8)
        let r = try Self.analyze(bytes: bytes)
        #expect(
            r.diagnostics == [
                D(2, "line of 10485760 bytes exceeds 65536 bytes; skipped"),
                D(5, "line of 65537 bytes exceeds 65536 bytes; skipped"),
                D(6, "line of 100071 bytes exceeds 65536 bytes; skipped"),
            ])
        #expect(r.windows == [Self.w1, Self.w2(line: 3), Self.w2(line: 7)])
        #expect(r.stats.lines == 7 && r.stats.bytes == UInt64(bytes.count))
    }

    @Test func overLongLinesAreSkippedWhereverTheyFallInTheReadBuffer() throws {
        // Regression: a line over the limit was parsed when it lay whole inside one 1 MiB read and skipped
        // when it crossed a read boundary, so the same line gave different results at different offsets.
        let line =
            Array("migrate_transferred transferred 1 time_spent 100 bandwidth 0 max_size 0".utf8)
            + [UInt8](repeating: UInt8(ascii: " "), count: TraceReader.maxLineLength) + [10]
        for lead in [0, 1000, (1 << 20) - 30_000] {
            let r = try Self.analyze(bytes: [UInt8](repeating: 10, count: lead) + line)
            #expect(r.diagnostics == [D(UInt64(lead) + 1, "line of 65607 bytes exceeds 65536 bytes; skipped")], "after \(lead) newlines")
            #expect(r.windows == [], "after \(lead) newlines")
        }
    }

    @Test func bytesThatAreNotUTF8() throws {
        let r = try Self.analyze(fixture: "non-utf8.log")
        #expect(
            r.diagnostics == [
                D(2, #"migrate_set_state: new state "act\xe9ve" is not a QEMU migration state (MigrationStatus)"#),
                D(3, "migrate_transferred: unexpected text after the last field at column 89"),
                D(4, "migrate_transferred: unexpected character after the value of 'transferred'"),
            ])
        // Line 1: invalid bytes in a syslog prefix; the body is found after them.
        #expect(r.windows == [Self.w1, Self.w2(line: 5)])
        // Line 2: a state with an invalid byte is not one of QEMU's states: refused, its byte shown escaped.
        #expect(r.report.series.first?.finalState == nil)
    }

    @Test func crlfLineEnds() throws {
        let r = try Self.analyze(fixture: "crlf.log")
        // The \r before each \n is ignored; a \r inside a line is not.
        #expect(r.diagnostics == [D(3, "migrate_transferred: unexpected character after the value of 'time_spent'")])
        #expect(r.windows == [Self.w1, Self.w2(line: 2)])
        #expect(r.report.series.first?.finalState == "completed")
        #expect(r.sink.windows.map(\.endTime) == [1_700_000_000.1, 1_700_000_000.2])
    }

    @Test func cutRecording() throws {
        // As after SIGKILL: the last record has no newline and stops inside "args".
        let r = try Self.analyze(fixture: "cut-recording.jsonl")
        #expect(r.stats.format == .recording && r.stats.endReason == nil && r.stats.header?.pid == 4242)
        #expect(
            r.diagnostics == [
                D(6, "incomplete last record (the recorder was stopped mid-write); everything before it is analysed")
            ])
        #expect(
            r.windows == [
                W(line: 3, series: 0, transferred: 1_048_576, timeSpent: 100, bandwidth: 10485, switchover: 125_000, threshold: 37_500_000),
                W(line: 4, series: 0, transferred: 2_097_152, timeSpent: 100, bandwidth: 20971, switchover: 125_000, threshold: 37_500_000),
                W(line: 5, series: 0, transferred: 524_288, timeSpent: 100, bandwidth: 5242, switchover: 125_000, threshold: 37_500_000),
            ])
        #expect(r.stats.lines == 6 && r.stats.events == 4 && r.stats.rejected == 1)
    }

    @Test func cutRecordingAtEveryByte() throws {
        // Every prefix of a recording: never a crash, and always analysed up to the last complete event.
        let full = Array(try Data(contentsOf: URL(fileURLWithPath: try Self.fixture("cut-recording.jsonl"))))
        let newlines = full.indices.filter { full[$0] == 10 }
        for cut in stride(from: RecordingFormat.magic.count, through: full.count, by: 7) {
            let r = try Self.analyze(bytes: Array(full[..<cut]))
            let complete = newlines.filter { $0 < cut }.count
            // Records 3, 4, 5 (lines) are windows; a cut one is reported, not analysed.
            #expect(r.windows.count == max(0, min(3, complete - 2)), "cut at \(cut)")
            #expect(r.diagnostics.count <= 1, "cut at \(cut)")
        }
    }

    // MARK: - Regressions found by fuzz/run

    @Test func isoTimestampBeyond2554DoesNotTrap() throws {
        // qemu_log / trace_file crash: ns since the epoch overflowed 64 bits in Cursor.isoTimestamp().
        var line = Array(
            "6026-11-27T15:10:50.250000Z [guest1] qemu-system-x72_64(777:live_migration): migrate_set_state new state active".utf8)
        let result = line.withUnsafeMutableBufferPointer { QEMULogParser(input: 0).parse(UnsafeBufferPointer($0), line: 1) }
        #expect(result == .ignored)
        // The fall-back still finds a migrate_transferred body, without a timestamp.
        line = Array("9999-12-31T23:59:59.999999Z migrate_transferred transferred 1 time_spent 100 bandwidth 0 max_size 0".utf8)
        let e = line.withUnsafeMutableBufferPointer { QEMULogParser(input: 0).parse(UnsafeBufferPointer($0), line: 1) }
        guard case .event(let event) = e else {
            Issue.record("not an event: \(e)")
            return
        }
        #expect(event.timestampNanoseconds == nil && event.arguments == ProbeArguments(count: 4, 1, 100, 0, 0))
        // The last instant that fits still parses.
        line = Array("2554-07-21T23:34:33.709551Z migrate_transferred transferred 1 time_spent 100 bandwidth 0 max_size 0".utf8)
        let last = line.withUnsafeMutableBufferPointer { QEMULogParser(input: 0).parse(UnsafeBufferPointer($0), line: 1) }
        guard case .event(let ev) = last else {
            Issue.record("not an event: \(last)")
            return
        }
        #expect(ev.timestampNanoseconds == 18_446_744_073_709_551_000)
    }

    @Test func recordingHeaderWithProbeArgumentCountOver64BitIntDoesNotTrap() throws {
        // recording target crash: Int(UInt64) of a header's probe_args entry trapped above Int.max.
        let bytes = Array(
            #"{"format":"migtrace-recording","version":1,"probes":["migrate_transferred"],"probe_args":[18446744073709551615]}"#.utf8)
        let line = bytes.withUnsafeBufferPointer { RecordingFormat.parse($0, input: 0, line: 1) }
        guard case .success(.header(let h)) = line else {
            Issue.record("not a header: \(line)")
            return
        }
        #expect(h.probes.map(\.name) == ["migrate_transferred"] && h.probes.map(\.args) == [Int.max])
    }

    @Test func recordedThresholdNear2To64DoesNotTrap() throws {
        // trace_file crash: ThresholdRebuild converted traced / (S / 1000) ≥ 2^64 to UInt64 (a recording carries
        // max_size as u64, so a negative max_size arrives as 2^64 − n).
        var text = #"{"format":"migtrace-recording","version":1}"# + "\n"
        for a2 in [0, 83, 10485] {
            text += #"{"type":"event","probe":"migrate_transferred","args":[1048576,100,\#(a2),1,18446744073709551614]}"# + "\n"
        }
        let r = try Self.analyze(bytes: Array(text.utf8))
        #expect(r.diagnostics == [])
        #expect(r.windows.map(\.line) == [2, 3, 4])
        #expect(r.windows.map(\.threshold) == [18_446_744_073_709_551_614, 18_446_744_073_709_551_614, 18_446_744_073_709_551_614])
    }

    @Test func usdtArgumentSizeOfIntMinDoesNotTrap() {
        // Found by review while fuzzing usdt_notes: abs(Int.min) trapped on a size of -2^63.
        let args = USDTNotes.parseArguments("-9223372036854775808@%rax -4@$5 99999999999999999999@%rbx 8@-8(%rbp)")
        #expect(
            args == [
                .init(size: 8, isSigned: false, isFloat: false, location: "%rax"),
                .init(size: 4, isSigned: true, isFloat: false, location: "$5"),
                .init(size: 8, isSigned: false, isFloat: false, location: "%rbx"),
                .init(size: 8, isSigned: false, isFloat: false, location: "-8(%rbp)"),
            ])
    }

    @Test func usdtSectionOffsetNear2To64DoesNotTrap() throws {
        // A section whose sh_offset is near 2^64 holding the probe's pc: address − sh_addr + sh_offset overflowed.
        var elf = Array(try Data(contentsOf: URL(fileURLWithPath: try Self.fixture("stapsdt-static.elf"))))
        let probes = try USDTNotes.parse(bytes: elf)
        #expect(probes.map(\.name) == ["migrate_transferred"] && probes.first?.pcFileOffset == 0xba)
        // Section headers start at 4512, 64 bytes each; .text is [1], .probes (the semaphore) is [3].
        for header in [1, 3] { for k in 0..<8 { elf[4512 + 64 * header + 24 + k] = 0xff } }
        let broken = try USDTNotes.parse(bytes: elf)
        #expect(broken.map(\.name) == ["migrate_transferred"])
        // pc is 0xa into .text: the sum overflows, so no file offset; the semaphore is at .probes' start: 0 + 2^64 − 1.
        #expect(broken.first?.pcFileOffset == nil && broken.first?.semaphoreFileOffset == UInt64.max)
        #expect(broken.first?.arguments.count == 5)
    }

    @Test func hugeTimeSpentSumsDoNotTrapInRules() throws {
        // trace_file crash: NoProgressRule summed time_spent with a trapping +=; BandwidthShiftRule and
        // SwitchoverBandwidthMismatchRule had the same sum. 10^19 ms twice exceeds 2^64.
        var text = ""
        for (t, b) in [(0, 0), (1, 0), (4095, 0), (2, 0)] {
            text += "migrate_transferred transferred \(t) time_spent 10000000000000000000 bandwidth \(b) switchover_bw 125000 max_size 0\n"
        }
        let r = try Self.analyze(bytes: Array(text.utf8))
        #expect(r.diagnostics == [])
        #expect(r.windows.map(\.transferred) == [0, 1, 4095, 2])
        #expect(r.windows.allSatisfy { $0.timeSpent == 10_000_000_000_000_000_000 })
        #expect(r.sink.findings.contains { $0.rule == NoProgressRule.id && $0.firstWindow == 0 && $0.lastWindow == 3 })
    }
}
