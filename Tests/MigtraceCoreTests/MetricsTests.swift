// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import MigtraceCore
@testable import MigtraceIO

/// The samples of an exposition text, keyed by `name{labels}` exactly as written.
func metricSamples(_ text: String) -> [String: Double] {
    var samples: [String: Double] = [:]
    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
        guard let space = line.lastIndex(of: " ") else { continue }
        samples[String(line[..<space])] = Double(line[line.index(after: space)...])
    }
    return samples
}

/// MetricsSink on real QEMU traces, read as a live capture would feed them (live updates on).
@Suite struct MetricsSinkTests {
    /// Run `fixture` (a real QEMU log) through the analyzer into a metrics sink and a collecting one.
    func metrics(of fixture: String, name: String = "vm1") throws -> (samples: [String: Double], text: String, sink: CollectingSink) {
        let store = MetricsStore()
        let collected = CollectingSink()
        var configuration = AnalysisConfiguration()
        configuration.liveUpdates = true
        let analyzer = MigrationAnalyzer(
            configuration: configuration, sink: TeeSink([MetricsSink(store: store, pid: 4242, name: name), collected]))
        let path = Paths.qemuFixtures.appendingPathComponent(fixture).path
        let fd = open(path, O_RDONLY)
        try #require(fd >= 0)
        defer { close(fd) }
        _ = try TraceReader.read(fd: fd, input: 0, into: analyzer)
        analyzer.endInput(0)
        analyzer.finish()
        let text = store.render()
        return (metricSamples(text), text, collected)
    }

    @Test func stallRunOnQEMU72GivesItsWindowsBytesFindingsAndState() throws {
        let (m, _, sink) = try metrics(of: "7.2-stall.log")
        let l = "vm=\"vm1\",pid=\"4242\""
        // Figures of this trace as the README shows them: 48 windows, 80572751 bytes, one critical stall.
        #expect(m["migtrace_migration_windows_total{\(l)}"] == 48)
        #expect(m["migtrace_migration_data_processed_bytes_total{\(l)}"] == 80_572_751)
        #expect(m["migtrace_findings_total{\(l),rule=\"thread-stall\",severity=\"critical\"}"] == 1)
        #expect(m["migtrace_findings_total{\(l),rule=\"threshold-collapse\",severity=\"warning\"}"] == 1)
        #expect(m["migtrace_findings_total{\(l),rule=\"no-progress\",severity=\"warning\"}"] == 0)
        #expect(m["migtrace_migration_state{\(l),state=\"completed\"}"] == 1)
        #expect(m["migtrace_migration_state{\(l),state=\"active\"}"] == 0)
        #expect(m["migtrace_migration_downtime_limit_seconds{\(l)}"] == 0.3)
        let last = try #require(sink.windows.last)
        #expect(m["migtrace_migration_memory_transfer_rate_bytes{\(l)}"] == last.bandwidth * 1000)
        #expect(m["migtrace_migration_threshold_bytes{\(l)}"] == Double(last.thresholdTraced))
        #expect(m["migtrace_migration_data_remaining_bytes{\(l)}"] == Double(try #require(last.pendingBytes)))
        let assessment = try #require(sink.summaries.last?.assessment)
        #expect(m["migtrace_migration_iterations{\(l)}"] == Double(assessment.iterations))
        #expect(assessment.iterations > 0)
        #expect(m["migtrace_migration_verdict{\(l),verdict=\"completed\"}"] == (assessment.verdict == .completed ? 1 : 0))
        #expect(m["migtrace_migration_verdict{\(l),verdict=\"diverging\"}"] == 0)
    }

    @Test func nonConvergingRunReportsItsFindingAndVerdict() throws {
        let (m, _, sink) = try metrics(of: "10.0-nonconverge.log")
        let l = "vm=\"vm1\",pid=\"4242\""
        let found = sink.findings.filter { $0.rule == "non-convergence" }.count
        #expect(found == 1)
        #expect(m["migtrace_findings_total{\(l),rule=\"non-convergence\",severity=\"warning\"}"] == Double(found))
        #expect(m["migtrace_migration_downtime_limit_seconds{\(l)}"] == 0.02)
    }

    @Test func labelValuesAreEscapedAndEveryFamilyIsTyped() throws {
        let (_, text, _) = try metrics(of: "7.2-converge.log", name: "a\"b\\c\nd")
        #expect(text.contains("migtrace_migration_windows_total{vm=\"a\\\"b\\\\c\\nd\",pid=\"4242\"}"))
        let names = text.split(separator: "\n").filter { !$0.hasPrefix("#") }.map { String($0.prefix { $0 != "{" }) }
        for name in Set(names) {
            #expect(text.contains("# TYPE \(name) "), "\(name) has a TYPE line")
            #expect(name.hasPrefix("migtrace_"))
        }
    }

    @Test func endedCapturesAreKeptUpToTheLimitAndAReusedPidStartsAfresh() {
        let store = MetricsStore(keptEnded: 2)
        var sinks: [MetricsSink] = []
        for pid in Int32(1)...4 {
            let sink = MetricsSink(store: store, pid: pid, name: "vm\(pid)")
            sink.live(.captured(TraceEvent(kind: .migrateSetState, arguments: ProbeArguments(count: 1)), monotonicNanoseconds: nil))
            sinks.append(sink)
        }
        for pid in Int32(1)...3 {
            sinks[Int(pid) - 1].live(.ended(CaptureEnd(reason: "target-exited", eventsReceived: 1, kernelDrops: 0, consumerDrops: 0)))
        }
        let m = metricSamples(store.render())
        // 1 ended first and is dropped; 2 and 3 stay, down; 4 runs.
        #expect(m["migtrace_capture_up{vm=\"vm1\",pid=\"1\"}"] == nil)
        #expect(m["migtrace_capture_up{vm=\"vm2\",pid=\"2\"}"] == 0)
        #expect(m["migtrace_capture_up{vm=\"vm3\",pid=\"3\"}"] == 0)
        #expect(m["migtrace_capture_up{vm=\"vm4\",pid=\"4\"}"] == 1)
        #expect(m["migtrace_events_received_total{vm=\"vm2\",pid=\"2\"}"] == 1)
        // A new QEMU with pid 2: a fresh series under its own name.
        _ = MetricsSink(store: store, pid: 2, name: "other")
        let again = metricSamples(store.render())
        #expect(again["migtrace_capture_up{vm=\"other\",pid=\"2\"}"] == 1)
        #expect(again["migtrace_events_received_total{vm=\"other\",pid=\"2\"}"] == 0)
        #expect(again["migtrace_capture_up{vm=\"vm2\",pid=\"2\"}"] == nil)
    }

    @Test func numbersAreWrittenAsTheFormatWants() {
        #expect(MetricsText.number(300) == "300")
        #expect(MetricsText.number(0.3) == "0.3")
        #expect(MetricsText.number(.infinity) == "+Inf")
        #expect(MetricsText.number(-.infinity) == "-Inf")
        #expect(MetricsText.number(.nan) == "NaN")
        #expect(MetricsText.number(26_356_600.5) == "26356600.5")
    }
}

/// `-name` as QEMU takes it, in the spellings libvirt and users write.
@Suite struct QEMUCommandLineTests {
    @Test func vmNameFromEachSpelling() {
        #expect(QEMUCommandLine.vmName(arguments: ["qemu", "-name", "guest=vm1,debug-threads=on", "-m", "1G"]) == "vm1")
        #expect(QEMUCommandLine.vmName(arguments: ["qemu", "-name", "vm2"]) == "vm2")
        #expect(QEMUCommandLine.vmName(arguments: ["qemu", "-name", "vm3,process=qemu:vm3"]) == "vm3")
        #expect(QEMUCommandLine.vmName(arguments: ["qemu", "-name", "debug-threads=on,guest=a,,b"]) == "a,b")
        #expect(QEMUCommandLine.vmName(arguments: ["qemu", "--name=vm4"]) == "vm4")
        #expect(QEMUCommandLine.vmName(arguments: ["qemu", "-name", "x", "-name", "y"]) == "y")
        #expect(QEMUCommandLine.vmName(arguments: ["qemu", "-m", "1G"]) == nil)
        #expect(QEMUCommandLine.vmName(arguments: ["qemu", "-name"]) == nil)
    }

    @Test func vmNameOfARealProcess() throws {
        // A process of our own with a QEMU-style command line: sh -c with $0 and arguments set (the "; true" keeps sh
        // from exec-ing sleep), and its arguments are what /proc/PID/cmdline shows.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "sleep 5; true", "qemu-system-x86_64", "-name", "guest=real-vm,debug-threads=on"]
        try p.run()
        defer { p.terminate() }
        // Until the child has exec'd sh, its command line is still the test runner's.
        var name: String?
        for _ in 0..<100 where name == nil {
            name = QEMUCommandLine.vmName(pid: p.processIdentifier)
            if name == nil { usleep(20_000) }
        }
        #expect(name == "real-vm")
        #expect(QEMUCommandLine.vmName(pid: 999_999_999) == nil)
    }
}
