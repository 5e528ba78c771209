// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import MigtraceCore
@testable import MigtraceIO

/// The HTML report's data and markup, without a browser (ReportBrowserTests looks at it in chromium): every
/// window of a short real trace drawn as it is, a long trace downsampled with its extremes kept, input escaped.
@Suite struct ReportSinkTests {
    /// The page for `paths` (named `names`, default the paths), and the windows the analysis made.
    static func report(_ paths: [String], names: [String]? = nil) throws -> (html: String, windows: [AnalyzedWindow]) {
        let out = MemoryOutput()
        let sink = HTMLReportSink(out: out, names: InputNames(names ?? paths), version: "test")
        let collect = CollectingSink()
        let analyzer = MigrationAnalyzer(
            sink: PipelinedSink(wrapping: TeeSink([sink, collect]), batchCapacity: 64, startAfterWindows: 100))
        for (i, path) in paths.enumerated() {
            let fd = open(path, O_RDONLY)
            try #require(fd >= 0, "cannot open \(path)")
            defer { close(fd) }
            _ = try TraceReader.read(fd: fd, input: i, into: analyzer)
            analyzer.endInput(i)
        }
        analyzer.finish()
        return (out.text, collect.windows)
    }

    static func count(_ needle: String, in text: String) -> Int { text.components(separatedBy: needle).count - 1 }

    @Test func shortRealTraceDrawsEveryWindow() throws {
        let path = Paths.qemuFixtures.appendingPathComponent("7.2-stall.log").path
        let (html, windows) = try Self.report([path])
        #expect(windows.count == 48)
        let plot = SeriesPlot()
        for w in windows { plot.add(w) }
        #expect(!plot.downsampled)
        #expect(plot.columns().count == 48)
        // Each chart of the one migration, no downsampling note; the stall's 1599 ms window is in the data.
        for kind in HTMLReportSink.chartKinds { #expect(Self.count("data-chart=\"\(kind)\"", in: html) == 1) }
        #expect(!html.contains("Downsampled"))
        #expect(html.contains(",1599,1599,"))
        #expect(html.contains("<span class=\"verdict v-completed\">completed</span>"))
        #expect(Self.count("class=\"band band-critical\"", in: html) == 4)  // thread-stall, shaded in each chart
        #expect(html.contains("data-columns=\"48\""))
    }

    /// A synthetic trace (bench/gen-trace.py; real QEMU traces of this length are not in the repository) of
    /// ~5,600 windows: drawn in at most 1000 columns that keep every window and every extreme.
    @Test func longTraceIsDownsampledKeepingExtremes() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("migtrace-report-\(UUID().uuidString).log").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let gen = Process()
        gen.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        gen.arguments = [Paths.repository.appendingPathComponent("bench/gen-trace.py").path, "--seed", "7", "3M", path]
        gen.standardError = FileHandle.nullDevice
        try gen.run()
        gen.waitUntilExit()
        try #require(gen.terminationStatus == 0)

        let (html, windows) = try Self.report([path])
        try #require(windows.count > HTMLReportSink.rawWindowLimit)
        let plot = SeriesPlot()
        for w in windows { plot.add(w) }
        #expect(plot.downsampled)
        let columns = plot.columns()
        #expect(columns.count <= HTMLReportSink.plotWidth && columns.count > HTMLReportSink.plotWidth / 2)
        #expect(columns.reduce(0) { $0 + $1.windows } == windows.count)
        // Extremes kept: each value's lowest and highest over all windows are some column's.
        let bw = windows.map(\.megabytesPerSecond)
        #expect(columns.map(\.bandwidth.max).max() == bw.max())
        #expect(columns.map(\.bandwidth.min).min() == bw.min())
        let ms = windows.map { Double($0.timeSpentMs) }
        #expect(columns.map(\.length.max).max() == ms.max())
        #expect(ms.max()! > 130, "the generator's rare long windows are in the trace")
        let pending = windows.compactMap(\.pendingBytes).map { Double($0) / 1e6 }
        #expect(columns.map(\.pending.max).max() == pending.max())
        #expect(columns.map(\.pending.min).min() == pending.min())
        #expect(columns.map(\.threshold.max).max() == windows.map(\.thresholdMegabytes).max())
        // Columns in time order, each within the span.
        #expect(zip(columns, columns.dropFirst()).allSatisfy { $0.lastTime <= $1.firstTime })
        // The page says so, once per migration and on each chart.
        #expect(
            html.contains(
                "Downsampled for drawing: \(windows.count) windows shown as \(columns.count) pixel columns, each drawn through its first, lowest, highest and last value (extremes kept)."
            ))
        #expect(Self.count(">min/max of \(windows.count) windows per pixel</text>", in: html) == 4)
        #expect(html.contains("data-columns=\"\(columns.count)\""))
    }

    @Test func inputIsEscaped() throws {
        let path = Paths.qemuFixtures.appendingPathComponent("10.0-stall.log").path
        let hostile = "<img src=x onerror=alert(1)>\u{1B}[31m\u{7}\"q'.log"
        let (html, _) = try Self.report([path], names: [hostile])
        #expect(html.contains("&lt;img src=x onerror=alert(1)&gt;\\x1B[31m\\x07&quot;q&#39;.log"))
        #expect(!html.contains("<img"))
        #expect(!html.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" && $0 != "\t" })
        #expect(HTMLPage.escape("a\u{85}b\u{FFFE}") == "a\\x85b\\u{FFFE}")
    }

    @Test func severalInputsGiveSeveralMigrations() throws {
        let paths = ["7.2-converge.log", "10.0-converge.log", "10.0-nonconverge.log"].map {
            Paths.qemuFixtures.appendingPathComponent($0).path
        }
        let (html, _) = try Self.report(paths)
        #expect(Self.count("<section class=\"migration\" id=\"series-", in: html) == 3)
        #expect(Self.count("<svg class=\"chart\"", in: html) == 3 * HTMLReportSink.chartKinds.count)
        for (i, p) in paths.enumerated() { #expect(html.contains("migration \(i + 1) · \(p) · series \(i)")) }
    }

    @Test func niceTicksAndDates() {
        #expect(HTMLPage.niceStep(140) == 50)
        #expect(HTMLPage.niceStep(1.7) == 0.5)
        #expect(HTMLPage.niceStep(6_500_000) == 2_000_000)
        #expect(HTMLPage.tick(6_000_000, 0) == "6\u{2009}000\u{2009}000")
        #expect(HTMLPage.tick(2000, 0) == "2000")
        #expect(HTMLPage.tick(0.5, 1) == "0.5")
        #expect(HTMLPage.utc(1_700_000_000) == "2023-11-14 22:13:20 UTC")
        #expect(HTMLPage.utc(951_782_400) == "2000-02-29 00:00:00 UTC")
    }
}
