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
        // Window times are the trace's wall clock (UTC); no pending event came, so no downtime estimate.
        #expect(lines[9] == TextSink.tableHeader.dropLast().description)
        #expect(lines[10] == "     0    22:13:20.1    26.36            -            7.91              -  300 ms")
        #expect(lines[11] == "     1    22:13:20.2    26.27            -            7.88              -  300 ms")
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
    @Test func ruleRegistryFollowsReportOrder() throws {
        let orders = RuleRegistry.all.map { $0.reportOrder }
        #expect(orders == orders.sorted())
        #expect(Set(RuleRegistry.ids).count == RuleRegistry.all.count)
        #expect(RuleRegistry.ids.first == "thread-stall")
        #expect(RuleRegistry.ids.last == "trace-integrity")
        #expect(RuleRegistry.all.count == (try RuleDispatchTests.ruleFiles()).count)
    }
}

/// The text table answers the operator's questions; `--verify` keeps the arithmetic of every window.
@Suite struct TextTableTests {
    @Test func headerNamesTheVMWhenKnown() {
        var a = LiveOutputTests.attachment
        a.vmName = "guest\u{1B}[31m1"  // hand-made: a name with an escape sequence in it
        let text = MemoryOutput()
        TextSink(out: text, names: InputNames(["live"])).live(.attached(a))
        #expect(text.text.hasPrefix("migtrace 9.9.9: attached to pid 4242 (/usr/bin/qemu-system-x86_64), vm guest\\x1b[31m1\n"))
        let json = MemoryOutput()
        JSONLinesSink(out: json).live(.attached(a))
        #expect(json.text.contains(#""binary":"/usr/bin/qemu-system-x86_64","vm":"guest\u001b[31m1","#))
    }

    @Test func operatorColumnsOnARealTrace() throws {
        let out = MemoryOutput()
        let sink = TextSink(out: out, names: InputNames(["t"]))
        let windows = CollectingSink()
        let analyzer = MigrationAnalyzer(sink: TeeSink([sink, windows]))
        let text = try String(contentsOf: Paths.qemuFixtures.appendingPathComponent("10.0-converge-ts.log"), encoding: .utf8)
        let parser = QEMULogParser(input: 0)
        for (i, line) in text.split(separator: "\n").enumerated() {
            var bytes = Array(line.utf8)
            if case .event(let e) = bytes.withUnsafeMutableBufferPointer({ parser.parse(UnsafeBufferPointer($0), line: UInt64(i + 1)) }) {
                analyzer.consume(e)
            }
        }
        analyzer.finish()
        let rows = out.text.split(separator: "\n").map(String.init)
        let header = try #require(rows.firstIndex(of: String(TextSink.tableHeader.dropLast())))
        let w = windows.windows[1]
        // Window 1: end time of day (UTC), MB/s, pending against the threshold, pending over the switchover rate.
        let row = rows[header + 2]
        #expect(row.hasPrefix("     1    15:30:52.7    \(NumberText.fixed(w.megabytesPerSecond, 2))"))
        #expect(row.contains("\(NumberText.fixed(Double(w.pendingBytes!) / 1e6, 2))  >"))
        #expect(row.contains("\(NumberText.fixed(Double(w.pendingBytes!) / w.rebuild.expectedPerMs, 0)) ms  300 ms"))
        #expect(w.rebuild.exact && !row.contains("≠"))
        #expect(!out.text.contains("≠ marks"), "every threshold of this real trace rebuilds exactly")
    }

    @Test func verifyShowsTheArithmeticAndInexactWindowsAreMarked() throws {
        // Hand-made: the second window's traced threshold is one byte off what QEMU's arithmetic gives.
        let text = """
            migrate_transferred transferred 2635660 time_spent 100 bandwidth 26356 switchover_bw 0 max_size 7906980
            migrate_transferred transferred 2626578 time_spent 100 bandwidth 26265 switchover_bw 0 max_size 7879735

            """
        for verify in [false, true] {
            let out = MemoryOutput()
            let analyzer = MigrationAnalyzer(sink: TextSink(out: out, names: InputNames(["t"]), verify: verify))
            let parser = QEMULogParser(input: 0)
            for (i, line) in text.split(separator: "\n").enumerated() {
                var bytes = Array(line.utf8)
                if case .event(let e) = bytes.withUnsafeMutableBufferPointer({ parser.parse(UnsafeBufferPointer($0), line: UInt64(i + 1)) })
                {
                    analyzer.consume(e)
                }
            }
            analyzer.finish()
            let rows = out.text.split(separator: "\n").map(String.init)
            if verify {
                #expect(rows.contains(String(TextSink.verifyHeader.dropLast())))
                #expect(rows.contains { $0.hasPrefix("     1    0.20     2626578    100      26265") && $0.contains("7879735") })
            } else {
                #expect(rows.contains { $0.hasPrefix("     1       +0.20 s") && $0.hasSuffix("  ≠") })
                #expect(rows.contains("  ≠ marks the 1 window(s) whose threshold did not rebuild exactly: --verify shows their arithmetic"))
            }
        }
    }
}
