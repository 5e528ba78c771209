// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import MigtraceCore

/// Real bpftrace 0.17 output (issue 15 item 9): one-liners on migtrace-demo-target's USDT probes while it replayed the
/// real QEMU 10.0 trace `qemu/10.0-converge.log` (Fixtures/bpftrace/make.sh). Read without any option, they give
/// the windows of the QEMU log itself, on bpftrace's monotonic clock.
@Suite struct BpftraceOutputTests {
    static func path(_ name: String) -> String { Paths.fixtures.appendingPathComponent("bpftrace/\(name)").path }

    @Test(arguments: ["10.0-converge.positional.txt", "10.0-converge.labelled.txt"])
    func oneLinerOutputGivesTheLogsWindows(_ name: String) throws {
        let original = try analyze([Paths.qemuFixtures.appendingPathComponent("10.0-converge.log").path])
        let sink = try analyze([Self.path(name)])
        let report = try #require(sink.report)
        #expect(report.diagnostics.isEmpty && report.rejectedCount == 0)
        #expect(sink.windows.count == 21 && report.exactCount == 21)
        #expect(sink.windows.map(\.transferred) == original.windows.map(\.transferred))
        #expect(sink.windows.map(\.thresholdTraced) == original.windows.map(\.thresholdTraced))
        #expect(sink.windows.map(\.pendingBytes) == original.windows.map(\.pendingBytes))
        let series = try #require(sink.series.first)
        #expect(series.timeBase == .monotonic)
        // The pid in the first event line is the target's.
        let text = try String(contentsOfFile: Self.path(name), encoding: .utf8)
        let pid = text.split(separator: "\n")[1].split(separator: "@")[0]
        #expect(series.processID.map { "\($0)" } == String(pid))
        #expect(report.series.first?.finalState == "completed")
        #expect(sink.findings.isEmpty)
    }
}
