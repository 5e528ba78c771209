// SPDX-License-Identifier: Apache-2.0

import Testing

@testable import MigtraceCore

/// Live output is rendered by the sinks from the analyzer's one path: header, state changes, windows, lost
/// events and the capture's end come out in order, on memory output. The windows are the first two of the real
/// QEMU 10.0 demo migration (Fixtures/qemu/10.0-demo.log), fed as live events with hand-set timestamps.
@Suite struct LiveOutputTests {
    static let attachment = LiveAttachment(
        migtraceVersion: "9.9.9", pid: 4242, binary: "/usr/bin/qemu-system-x86_64", ringBufferBytes: 65536,
        probes: [
            .init(name: "migrate_transferred", attached: true, argumentCount: 5, siteCount: 2, reason: nil),
            .init(name: "migrate_set_state", attached: true, argumentCount: 1, siteCount: 1, reason: nil),
            .init(name: "migrate_pending", attached: false, argumentCount: nil, siteCount: 0, reason: "not in binary"),
        ], recordPath: "mig.rec")

    /// Attach, `active`, two windows, 3 events lost, `completed`, the end: what `attach` feeds the analyzer, with
    /// live updates on (the analyzer reports states and the migration's assessment as they come).
    static func capture(into sink: any AnalysisSink) {
        var configuration = AnalysisConfiguration()
        configuration.liveUpdates = true
        let analyzer = MigrationAnalyzer(configuration: configuration, sink: sink)
        analyzer.live(.attached(attachment))
        let t0: UInt64 = 1_700_000_000_000_000_000
        func state(_ s: String, _ t: UInt64) {
            analyzer.consume(
                TraceEvent(
                    kind: .migrateSetState, arguments: ProbeArguments(count: 1), timestampNanoseconds: t, state: MigrationState(name: s)))
        }
        state("active", t0)
        for (i, sent) in [UInt64(2_635_660), 2_626_578].enumerated() {
            analyzer.consume(
                TraceEvent(
                    kind: .migrateTransferred, arguments: ProbeArguments(count: 5, sent, 100, sent / 100, 0, sent * 3),
                    timestampNanoseconds: t0 + UInt64(i + 1) * 100_000_000, threadID: 7, processID: 4242))
        }
        analyzer.live(.lost(kernelDrops: 3, consumerDrops: 0))
        state("completed", t0 + 300_000_000)
        analyzer.live(.ended(CaptureEnd(reason: "sigint", eventsReceived: 4, kernelDrops: 3, consumerDrops: 0)))
        analyzer.finish()
    }

    @Test func textShowsHeaderStatesWindowsLossAndEndInOrder() {
        let out = MemoryOutput()
        Self.capture(into: TextSink(out: out, names: InputNames(["live"])))
        let lines = out.text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines[0] == "migtrace 9.9.9: attached to pid 4242 (/usr/bin/qemu-system-x86_64)")
        #expect(lines[1] == "probes: migrate_transferred (5 args), migrate_set_state (1 arg)")
        #expect(lines[2] == "not attached: migrate_pending (not in binary)")
        #expect(lines[3] == "recording to mig.rec")
        #expect(lines[4] == "waiting for migrate_transferred windows… (Ctrl-C ends with a summary)")
        #expect(lines[5] == "  · migration state: active")
        // The migration's status line comes when it says something new: not again after each window.
        #expect(lines[6] == "  · migration: verdict unknown so far")
        #expect(lines[8] == "series 0 · live · thread 7 · pid 4242")
        #expect(lines[10].hasPrefix("     0    0.10     2635660    100      26356"))
        #expect(lines[10].hasSuffix("7906980    7906980    300  =            "))
        #expect(lines[11].hasPrefix("     1    0.20     2626578    100      26265"))
        #expect(lines[12] == "  ▲ lost 3 events so far (kernel ring buffer full; try --ring-buffer-size)")
        #expect(lines[13] == "  · migration state: completed")
        #expect(lines[14] == "  · migration: completed; expected downtime 300 ms (limit 300 ms)")
        #expect(lines.contains("summary: 1 series, 2 windows, thresholds exact in 2/2; findings: 0 critical, 0 warning, 0 info"))
        #expect(lines.last(where: { !$0.isEmpty }) == "capture ended (sigint): 4 events received; lost 3 events (kernel), 0 (consumer)")
    }

    @Test func jsonLinesCarryTheSameEventsAndTheAccountingInTheSummary() {
        let out = MemoryOutput()
        Self.capture(into: JSONLinesSink(out: out))
        let lines = out.text.split(separator: "\n").map(String.init)
        let types = lines.map { line -> String in
            let afterType = line.split(separator: "\"type\":\"", maxSplits: 1)[1]
            return String(afterType.prefix { $0 != "\"" })
        }
        // A migration record after each state change and each window, as the analysis sees it then.
        #expect(
            types == [
                "header", "state", "migration", "series", "window", "migration", "window", "migration", "lost", "state", "migration",
                "series_end", "summary",
            ])
        #expect(
            lines[0]
                == #"{"type":"header","pid":4242,"binary":"/usr/bin/qemu-system-x86_64","ring_buffer_bytes":65536,"probes":[{"name":"migrate_transferred","attached":true,"args":5,"sites":2},{"name":"migrate_set_state","attached":true,"args":1,"sites":1},{"name":"migrate_pending","attached":false,"args":null,"sites":0}],"record":"mig.rec"}"#
        )
        #expect(lines[1] == #"{"type":"state","state":"active","time":1700000000}"#)
        #expect(lines[5].hasPrefix(#"{"type":"migration","migration":{"series":0,"input":0,"outcome":"running","verdict":null,"#))
        #expect(lines[5].contains(#""expected_downtime_ms":300,"downtime_ms":null,"downtime_limit_ms":300,"#))
        #expect(lines[8] == #"{"type":"lost","kernel_drops":3}"#)
        #expect(lines[10].hasPrefix(#"{"type":"migration","migration":{"series":0,"input":0,"outcome":"completed","verdict":"completed","#))
        #expect(lines[12].hasSuffix(#","events_received":4,"kernel_drops":3,"consumer_drops":0,"end_reason":"sigint"}"#))
    }

    /// The registry is generated in `reportOrder`, one entry per rule file, ids unique.
    @Test func ruleRegistryFollowsReportOrder() {
        let orders = RuleRegistry.all.map { $0.reportOrder }
        #expect(orders == orders.sorted())
        #expect(Set(RuleRegistry.ids).count == RuleRegistry.all.count)
        #expect(RuleRegistry.ids.first == "thread-stall")
        #expect(RuleRegistry.ids.last == "trace-integrity")
        #expect(RuleRegistry.all.count == 11)
    }
}
