// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import MigtraceCore
@testable import MigtraceIO

/// The live view's frames, fed a real QEMU 10.0 migration (the demo's fixture) through the analyzer as a live
/// capture feeds it: in-place redraws, sparklines, the verdict of the assessment, escaping, width.
@Suite struct LiveViewTests {
    /// Frames drawn for `fixture` on a `columns`×`rows` terminal, with the analyzer's live assessment.
    static func run(_ fixture: String, columns: Int = 100, rows: Int = 30) throws -> (output: String, sink: LiveViewSink) {
        let out = MemoryOutput()
        var tick: UInt64 = 0
        // Every call a redraw: a clock that moves a second per call.
        let view = LiveViewSink(
            out: out, names: InputNames(["live"]), size: { (columns, rows) },
            clock: {
                tick += 1_000_000_000; return tick
            })
        var configuration = AnalysisConfiguration()
        configuration.liveUpdates = true
        let analyzer = MigrationAnalyzer(configuration: configuration, sink: view)
        let path = Paths.qemuFixtures.appendingPathComponent(fixture).path
        let fd = open(path, O_RDONLY)
        try #require(fd >= 0)
        defer { close(fd) }
        _ = try TraceReader.read(fd: fd, input: 0, into: analyzer)
        analyzer.endInput(0)
        analyzer.finish()
        return (out.text, view)
    }

    /// The frames of the output: the text between one redraw's start (`\r`, cursor up) and the next.
    static func frames(_ text: String) -> [String] {
        text.components(separatedBy: "\r").dropFirst().map { String($0) }
    }

    static func count(_ needle: String, in text: String) -> Int { text.components(separatedBy: needle).count - 1 }

    /// `s` without the view's own escape sequences (CSI … A, 2K, J, m).
    static func plain(_ s: String) -> String {
        s.replacingOccurrences(of: "\u{1B}\\[[0-9;]*[AKJm]", with: "", options: .regularExpression)
    }

    @Test func demoMigrationDrawsInPlace() throws {
        let (text, _) = try Self.run("10.0-demo.log")
        let frames = Self.frames(text)
        // One frame per window at least (this clock never throttles), each but the first moving back up over
        // all the lines of the previous one and erasing each line it draws.
        #expect(frames.count >= 56)
        // The first frame comes with the `setup` state, before any window; the series' frames follow.
        #expect(frames[0].hasPrefix("\u{1B}[2K── live · state setup"))
        #expect(frames.contains { $0.contains("── live · series 0 · state active") })
        for (previous, f) in zip(frames, frames.dropFirst()) {
            let up = Self.count("\u{1B}[2K", in: previous)
            #expect(f.hasPrefix("\u{1B}[\(up)A\u{1B}[2K── live"), "\(f.prefix(40))")
            #expect(Self.count("\u{1B}[2K", in: f) == Self.count("\n", in: f.components(separatedBy: "\u{1B}[J")[0]))
        }
        #expect(Self.count("\u{1B}[2K", in: frames.last!) == 6)
        #expect(!text.contains("\u{1B}[?1049h"), "no alternate screen")
        let last = Self.plain(frames.last!)
        let lines = last.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines[0].hasPrefix("── live · series 0 · state completed · window 55 · 5.7 s · 137.2 MB sent ─"))
        #expect(lines[1].hasPrefix("bandwidth  ▄▄▄▄"))
        #expect(lines[1].hasSuffix("  68.00 MB/s (peak 68.29)"))
        // One block per window, the latest 55 (what 100 columns leave beside the label and the value).
        #expect(lines[1].count == 11 + 55 + "  68.00 MB/s (peak 68.29)".count)
        #expect(lines[2].hasSuffix("  20.9 MB above threshold"))
        #expect(lines[3].hasSuffix("  20.4 MB (log scale, as pending)"))
        // The final verdict is the report's: what `analyze` says of this migration.
        #expect(lines[4] == "verdict    completed · expected downtime 280 ms (limit 300 ms)")
        #expect(lines[5].hasPrefix("findings   ▲ WARNING bandwidth-shift [w 26–35]: Bandwidth fell 66 %"))
        // Below the last frame: the text summary, as `analyze` prints it.
        #expect(lines.contains("summary: 1 series, 56 windows, thresholds exact in 56/56; findings: 0 critical, 1 warning, 0 info"))
        #expect(lines.contains("migration · live · series 0 · completed after 4 dirty syncs"))
    }

    @Test func framesFitTheTerminal() throws {
        let (text, _) = try Self.run("7.2-stall.log", columns: 60, rows: 6)
        for f in Self.frames(text).dropLast() {
            let lines = Self.plain(f).split(separator: "\n")
            #expect(lines.count <= 5, "taller than the screen less one line")
            for l in lines { #expect(l.unicodeScalars.count <= 60, "\(l)") }
        }
    }

    @Test func inputIsEscaped() {
        let out = MemoryOutput()
        let view = LiveViewSink(out: out, names: InputNames(["live"]), size: { (100, 30) }, clock: { 0 })
        let binary = "/tmp/\u{1B}]0;owned\u{7}\u{1B}[2Jqemu\u{202E}gpj.exe"
        view.live(
            .attached(
                LiveAttachment(
                    migtraceVersion: "t", pid: 1, binary: binary, ringBufferBytes: 4096,
                    probes: [.init(name: "migrate_transferred", attached: true, argumentCount: 5, siteCount: 1, reason: nil)],
                    recordPath: nil)))
        view.live(.state("active\u{1B}[31m", timeNanoseconds: nil))
        #expect(out.text.contains("/tmp/\\x1B]0;owned\\x07\\x1B[2Jqemu\\u{202E}gpj.exe"))
        #expect(out.text.contains("state active\\x1B[31m"))
        // Every escape sequence left is the view's own.
        #expect(Self.plain(out.text).unicodeScalars.allSatisfy { $0.value >= 0x20 || $0 == "\n" || $0 == "\r" })
        #expect(!out.text.unicodeScalars.contains { $0.value == 0x202E })
    }
}

/// The verdict line as real migrations go: converging with an ETA, then completed with the measured downtime
/// (QEMU 10.0 built with USDT probes); stalled with the advice's numbers; stalled until the downtime limit was
/// raised over QMP at t+8 s, then completed.
@Suite struct LiveViewVerdictTests {
    static func verdictLines(_ fixture: String) throws -> (lines: [String], final: MigrationAssessment?) {
        let (text, view) = try LiveViewTests.run(fixture, columns: 160)
        let lines = LiveViewTests.plain(text).split(separator: "\n").map(String.init).filter {
            $0.hasPrefix("verdict ") || $0.hasPrefix("advice ")
        }
        return (lines, view.report?.migrations.last)
    }

    @Test func convergingShowsAnETAThenTheMeasuredDowntime() throws {
        let (lines, final) = try Self.verdictLines("10.0-downtime-change.log")
        let m = try #require(final)
        #expect(m.verdict == .completed)
        // "ETA 0.5 s (0.4–0.5 s)": the range holds the estimate.
        let converging = lines.filter { $0.hasPrefix("verdict    converging · ETA ") }
        try #require(!converging.isEmpty, "\(Set(lines))")
        for eta in converging {
            let numbers = eta.dropFirst("verdict    converging · ETA ".count).split(whereSeparator: { !"0123456789.".contains($0) })
                .compactMap { Double($0) }
            try #require(numbers.count >= 3, "\(eta)")
            #expect(numbers[1] <= numbers[0] && numbers[0] <= numbers[2], "\(eta)")
            #expect(eta.hasSuffix(" (limit 100 ms)"), "after the limit went from 300 to 100 ms")
        }
        #expect(lines.last?.hasPrefix("verdict    completed") == true)
        #expect(lines.last?.hasSuffix("(limit \(m.downtimeLimitMs ?? 0) ms)") == true)
    }

    @Test func convergingWithoutAnETASaysSo() throws {
        // Hand-made from a real assessment: converging, but with no ETA (the model gives none below two syncs).
        let (_, view) = try LiveViewTests.run("usdt-10.0-converge-ts.log")
        var m = try #require(view.report?.migrations.last)
        m.verdict = .converging
        m.etaSeconds = nil
        m.downtimeMs = nil
        m.expectedDowntimeMs = 420
        let line = view.frame(width: 120, assessment: m).first { $0.contains("verdict ") }
        #expect(line == "\u{1B}[32mverdict    converging · no ETA yet · expected downtime 420 ms (limit 300 ms)\u{1B}[0m")
    }

    @Test func rescuedMigrationIsStalledUntilTheLimitIsRaised() throws {
        let (lines, final) = try Self.verdictLines("convergence/10.0-rescue-ts.log")
        #expect(final?.verdict == .completed)
        #expect(
            lines.contains {
                $0.hasPrefix("verdict    stalled · no switchover at this rate · expected downtime ") && $0.hasSuffix("(limit 20 ms)")
            })
        #expect(lines.last?.hasPrefix("verdict    completed · downtime ") == true && lines.last?.hasSuffix("(limit 4000 ms)") == true)
    }

    @Test func stalledShowsTheAdvice() throws {
        let (lines, final) = try Self.verdictLines("10.0-nonconverge.log")
        let advice = try #require(final?.advice)
        #expect(final?.verdict == .stalled)
        let limit = try #require(advice.downtimeLimitMs)
        let bandwidth = try #require(advice.bandwidthBytesPerSecond)
        #expect(
            lines.suffix(2) == [
                "verdict    stalled · no switchover at this rate · expected downtime \(NumberText.fixed(final?.expectedDowntimeMs ?? 0, 0)) ms (limit 20 ms)",
                "advice     \(advice.reason); downtime-limit ≥ \(limit) ms or ≥ \(NumberText.fixed(Double(bandwidth) / 1e6, 2)) MB/s",
            ])
        #expect(limit == 2952)
    }
}
