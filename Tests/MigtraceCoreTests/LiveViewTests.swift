// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import MigtraceCore

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
        let analyzer = MigrationAnalyzer(sink: view)
        view.assessment = { [weak analyzer] in analyzer?.currentAssessment(input: 0) }
        let path = Paths.qemuFixtures.appendingPathComponent(fixture).path
        let fd = open(path, O_RDONLY)
        try #require(fd >= 0)
        defer { close(fd) }
        _ = try TraceReader.read(fd: fd, input: 0, into: analyzer)
        analyzer.endInput(0)
        analyzer.finish()
        return (out.text, view)
    }

    @Test func demoMigrationDrawsInPlace() throws {
        let (text, _) = try Self.run("10.0-demo.log")
        print(text.suffix(3000))
    }
}
