// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import MigtraceCore
@testable import MigtraceIO

/// Series splitting, pending bookkeeping and time bases of the analyzer, on small hand-written logs.
@Suite struct AnalyzerTests {
    /// An era-A window line with QEMU's exact max_size for a 300 ms limit.
    func window(_ transferred: UInt64, _ ms: UInt64, prefix: String = "") -> String {
        let bw = Double(transferred) / Double(ms)
        return
            "\(prefix)migrate_transferred transferred \(transferred) time_spent \(ms) bandwidth \(UInt64(bw)) max_size \(UInt64(bw * 300))"
    }

    @Test func setupStateStartsANewSeriesAndFinalStatesAreKept() throws {
        let log = [
            "10@1700000000.000000:migrate_set_state new state setup",
            window(1_000_000, 100, prefix: "11@1700000000.100000:"),
            window(1_000_000, 100, prefix: "11@1700000000.200000:"),
            "11@1700000000.250000:migrate_set_state new state completed",
            "10@1700000005.000000:migrate_set_state new state setup",
            window(2_000_000, 100, prefix: "12@1700000005.100000:"),
            "12@1700000005.150000:migrate_set_state new state cancelled",
        ].joined(separator: "\n")
        let sink = try analyze(text: log)
        let report = try #require(sink.report)
        #expect(report.series.map(\.windows) == [2, 1])
        #expect(report.series.map(\.finalState) == ["completed", "cancelled"])
        #expect(report.series.map(\.info.threadID) == [11, 12])
        #expect(report.series.allSatisfy { $0.info.timeBase == .epoch && $0.exactThresholds == $0.windows })
        #expect(abs(sink.windows[1].startTime - 1_700_000_000.1) < 1e-6)
        #expect(sink.windows[1].endTime == 1_700_000_000.2)
        #expect(sink.windows[1].cumulativeBytes == 2_000_000)
    }

    @Test func withoutPrefixTimesAreTheSumOfTimeSpent() throws {
        let sink = try analyze(text: [window(500_000, 100), window(500_000, 250), window(500_000, 100)].joined(separator: "\n"))
        #expect(sink.series.map(\.timeBase) == [.relative])
        #expect(sink.windows.map(\.endTime) == [0.1, 0.35, 0.45])
        #expect(sink.windows.map(\.startTime) == [0, 0.1, 0.35])
    }

    @Test func pendingIsTheLastValueOfTheWindowAndPre80ExactnessFollowsMax() throws {
        let log = [
            "migrate_pending pending size 9000000 max 3000000 (pre = 9000000 compat=0 post=0)",
            window(1_000_000, 100),
            "migrate_pending pending size 5000000 max 3000000 (pre = 5000000 compat=0 post=0)",
            "migrate_pending pending size 2000000 max 3000000 (pre = 2000000 compat=0 post=0)",
            window(1_000_000, 100),
            "migrate_pending_estimate estimate pending size 4000000 (pre = 4000000 post=0)",
            window(1_000_000, 100),
            "migrate_pending_exact exact pending size 6000000 (pre = 6000000 post=0)",
            window(1_000_000, 100),
        ].joined(separator: "\n")
        let sink = try analyze(text: log)
        #expect(sink.windows.map(\.pendingBytes) == [9_000_000, 2_000_000, 4_000_000, 6_000_000])
        #expect(sink.windows.map(\.pendingExact) == [false, true, false, true])
    }

    @Test func windowsOfTwoThreadsAreTwoSeries() throws {
        let log = [
            window(1_000_000, 100, prefix: "21@1700000000.100000:"),
            window(3_000_000, 100, prefix: "22@1700000000.150000:"),
            window(1_000_000, 100, prefix: "21@1700000000.200000:"),
        ].joined(separator: "\n")
        let sink = try analyze(text: log)
        let report = try #require(sink.report)
        #expect(report.series.map(\.windows) == [2, 1])
        #expect(report.series.map(\.totalBytes) == [2_000_000, 3_000_000])
    }

    @Test func givenDowntimeLimitThatDoesNotFitIsAFormulaMismatch() throws {
        var config = AnalysisConfiguration(downtimeLimitMs: 100)
        config.disabledRules = ["rate-capped"]
        let sink = try analyze(text: [window(1_000_000, 100), window(1_000_000, 100)].joined(separator: "\n"), configuration: config)
        #expect(sink.windows.allSatisfy { !$0.rebuild.exact && $0.rebuild.threshold == 1_000_000 && $0.thresholdTraced == 3_000_000 })
        let f = try #require(sink.findings.first { $0.rule == "formula-mismatch" })
        #expect(f.firstWindow == 0 && f.lastWindow == 1)
        #expect(f.evidence.contains(.count("windows", 2)))
    }

    @Test func disabledRulesDoNotRun() throws {
        var config = AnalysisConfiguration()
        config.disabledRules = ["thread-stall"]
        let sink = try analyze(text: window(1_000_000, 1500), configuration: config)
        #expect(!sink.findings.contains { $0.rule == "thread-stall" })
        let enabled = try analyze(text: window(1_000_000, 1500))
        #expect(enabled.findings.filter { $0.rule == "thread-stall" }.map(\.severity) == [.critical])
    }
}

/// Hostile input cannot make the analyzer hold unbounded state.
@Suite struct AnalyzerBoundsTests {
    @Test func manyConcurrentThreadIdsKeepAtMost64SeriesOpen() throws {
        let sink = CollectingSink()
        let analyzer = MigrationAnalyzer(sink: sink)
        var maxOpen = 0
        for i in 0..<5000 {
            let e = TraceEvent(
                kind: .migrateTransferred, arguments: ProbeArguments(count: 4, 1_000_000, 100, 10_000, 3_000_000),
                timestampNanoseconds: UInt64(1_700_000_000 + i) * 1_000_000_000, threadID: UInt32(i % 1000),
                origin: EventOrigin(input: 0, line: UInt64(i + 1)))
            analyzer.consume(e)
            maxOpen = max(maxOpen, analyzer.openSeriesCount)
        }
        let report = analyzer.finish()
        #expect(maxOpen == MigrationAnalyzer.maxOpenSeries)
        // Every window is still analysed, exactly; thread ids cycling through 1000 values reopen series.
        #expect(report.windowCount == 5000)
        #expect(report.exactCount == 5000)
        #expect(report.series.count == 5000)
    }
}

/// What the first bytes say an input is: binary inputs are named, and text with stray control bytes or garbage
/// lines after a text first line stays text (its lines are then parsed, escaped and skipped one by one).
@Suite struct InputKindTests {
    static func kind(_ bytes: [UInt8]) -> InputKind {
        bytes.withUnsafeBufferPointer { InputKind.classify($0) }
    }

    @Test func binaryKindsAreNamed() {
        var simpletrace: [UInt8] = Array(repeating: 0xff, count: 8)
        withUnsafeBytes(of: UInt64(0xf2b1_77cb_0aa4_29b4).littleEndian) { simpletrace.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt64(4).littleEndian) { simpletrace.append(contentsOf: $0) }
        #expect(Self.kind(simpletrace) == .simpletrace)
        #expect(Self.kind([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]) == .elf)
        #expect(Self.kind([0x1f, 0x8b, 8, 0]) == .compressed(format: "gzip", decompress: "zcat"))
        #expect(Self.kind([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0]) == .compressed(format: "xz", decompress: "xzcat"))
        #expect(Self.kind([0x28, 0xb5, 0x2f, 0xfd, 0]) == .compressed(format: "zstd", decompress: "zstdcat"))
        #expect(Self.kind(Array("BZh91AY&SY".utf8)) == .compressed(format: "bzip2", decompress: "bzcat"))
        // simpletrace.py --no-header input: records from the first byte (type 1, then the event id).
        #expect(Self.kind([1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 10]) == .binary)
        #expect(Self.kind(Array(RecordingFormat.magic) + Array(",\"version\":1}\n".utf8)) == .recording)
        #expect(InputKind.elf.name == "elf" && InputKind.binary.name == "binary" && InputKind.text.name == "qemu-log")
    }

    @Test func textWithStrayControlBytesStaysText() {
        // The crafted state line of issue 15 as the very first line: one NUL and one ESC in 50 bytes.
        #expect(Self.kind(Array("migrate_set_state new state completed\u{0}\u{1b}[31mred\n".utf8)) == .text)
        // UTF-8 text (a guest name) and a libvirt log's first line.
        #expect(
            Self.kind(Array("2026-01-01 10:00:00.000+0000: starting up libvirt version: 9.0.0, qemu version: 7.2.0, Gäst\n".utf8)) == .text)
        // Garbage after a text first line: the lines are judged one by one later.
        #expect(
            Self.kind(
                Array("migrate_transferred transferred 1 time_spent 100 bandwidth 0 max_size 0\n".utf8) + [0, 0, 0, 0xff, 0xfe, 1, 2, 3])
                == .text)
        #expect(Self.kind([]) == .text)
        // A first line that is mostly control bytes or invalid UTF-8 is binary.
        #expect(Self.kind([0, 1, 2, 3, 0x41, 0x42, 10]) == .binary)
        #expect(Self.kind([0xc3, 0x28, 0xa0, 0xa1, 0xff, 0xfe, 0x41, 0x42]) == .binary)
    }

    /// A simpletrace file is recognised and decoded (the header alone: no event), not read as a log.
    @Test func simpletraceHeaderIsRecognised() throws {
        var bytes: [UInt8] = Array(repeating: 0xff, count: 8)
        withUnsafeBytes(of: UInt64(0xf2b1_77cb_0aa4_29b4).littleEndian) { bytes.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt64(4).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: Array(repeating: 0, count: 64))
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("migtrace-simpletrace-\(UUID().uuidString)")
        try Data(bytes).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let fd = open(url.path, O_RDONLY)
        defer { close(fd) }
        let stats = try TraceReader.read(fd: fd, input: 0, into: MigrationAnalyzer(sink: CollectingSink()))
        #expect(stats.refused == nil && stats.format == .simpletrace)
    }
}

/// Text from input made safe for a terminal.
@Suite struct TerminalTextTests {
    @Test func controlCharactersAreEscaped() {
        #expect(TerminalText.escaped("plain/ünïcode name.log") == "plain/ünïcode name.log")
        #expect(TerminalText.escaped("a\u{1b}[2Jb\u{0}c\u{7f}d\u{9b}e\r\n\t") == #"a\x1b[2Jb\x00c\x7fd\x9be\x0d\x0a\x09"#)
        // Bidirectional overrides and isolates reorder what follows: escaped as well.
        #expect(TerminalText.escaped("x\u{202e}y\u{2066}z") == #"x\u{202e}y\u{2066}z"#)
    }

    @Test func jsonEscapesC1AndDelete() {
        var o = JSONWriter()
        o.string("a\u{7f}b\u{85}c\u{e9}\u{1b}")
        #expect(String(decoding: o.bytes, as: UTF8.self) == #""a\u007fb\u0085cé\u001b""#)
    }
}
