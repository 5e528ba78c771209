// SPDX-License-Identifier: Apache-2.0
import Synchronization

/// The live state of one or more captured QEMUs as Prometheus metrics: ``MetricsSink`` writes it from the analysis
/// thread, an HTTP server renders it from its own thread (``render()``), so it lives behind a `Mutex`.
public final class MetricsStore: Sendable {
    /// What is known of one VM's capture.
    struct VM {
        var pid: Int32
        var name: String
        var bytes: UInt64 = 0
        var windows: UInt64 = 0
        var bandwidthBytesPerSecond: Double?
        var pendingBytes: UInt64?
        var thresholdBytes: UInt64?
        var downtimeLimitMs: UInt64?
        var expectedDowntimeMs: Double?
        var dirtyRateBytesPerSecond: Double?
        var verdict: ConvergenceVerdict?
        var state: String?
        var iterations: Int = 0
        /// Keyed by rule id, then severity.
        var findings: [String: [Severity: UInt64]] = [:]
        var eventsReceived: UInt64 = 0
        var kernelDrops: UInt64 = 0
        var consumerDrops: UInt64 = 0
        /// Set when the capture ended: its place among the ended ones (older ones are dropped first).
        var ended: UInt64?
    }

    private struct State {
        var vms: [Int32: VM] = [:]
        var endings: UInt64 = 0
    }

    private let state = Mutex(State())
    /// Ended captures kept (their last values stay visible to a scraper); older ones are dropped, so that a
    /// host service whose QEMUs come and go for days keeps a bounded endpoint.
    public let keptEnded: Int

    /// An empty store (no VM yet) keeping the last `keptEnded` ended captures.
    public init(keptEnded: Int = 64) { self.keptEnded = keptEnded }

    /// Make `pid` known under `name` (its QEMU `-name`, empty when it has none), with every counter at zero; an
    /// ended capture of the same pid (a pid reused by a new QEMU) is replaced.
    public func register(pid: Int32, name: String) {
        state.withLock { state in
            if state.vms[pid] == nil || state.vms[pid]?.ended != nil {
                var vm = VM(pid: pid, name: name)
                for rule in RuleRegistry.all { vm.findings[rule.id] = Dictionary(uniqueKeysWithValues: rule.severities.map { ($0, 0) }) }
                state.vms[pid] = vm
            }
        }
    }

    /// Change the VM of `pid` (a no-op for an unknown pid).
    func update(pid: Int32, _ body: (inout VM) -> Void) {
        state.withLock { state in
            if var vm = state.vms[pid] {
                body(&vm)
                state.vms[pid] = vm
            }
        }
    }

    /// Mark the capture of `pid` ended, and drop the oldest ended ones beyond ``keptEnded``.
    func end(pid: Int32) {
        state.withLock { state in
            guard state.vms[pid] != nil, state.vms[pid]?.ended == nil else { return }
            state.endings += 1
            state.vms[pid]?.ended = state.endings
            let ended = state.vms.values.compactMap { vm in vm.ended.map { (vm.pid, $0) } }
            if ended.count > keptEnded {
                for (old, _) in ended.sorted(by: { $0.1 < $1.1 }).prefix(ended.count - keptEnded) { state.vms[old] = nil }
            }
        }
    }

    /// The OpenMetrics-compatible Prometheus text exposition (format 0.0.4) of every VM, sorted by pid.
    public func render() -> String {
        let snapshot = state.withLock { $0.vms.values.sorted { $0.pid < $1.pid } }
        return MetricsText.render(snapshot)
    }
}

/// Feeds one VM's analysis into a ``MetricsStore`` (tee it next to the display sink of a live capture).
public final class MetricsSink: AnalysisSink {
    private let store: MetricsStore
    private let pid: Int32

    /// A sink for the capture of `pid`, labelled `vm` = `name`.
    public init(store: MetricsStore, pid: Int32, name: String) {
        self.store = store
        self.pid = pid
        store.register(pid: pid, name: name)
    }

    public func seriesStarted(_ info: SeriesInfo) {}

    public func window(_ window: AnalyzedWindow, in series: SeriesInfo) {
        store.update(pid: pid) { vm in
            vm.bytes &+= window.transferred
            vm.windows += 1
            vm.bandwidthBytesPerSecond = window.bandwidth * 1000
            vm.thresholdBytes = window.thresholdTraced
            if let limit = window.rebuild.downtimeLimitMs { vm.downtimeLimitMs = limit }
            if let pending = window.pendingBytes { vm.pendingBytes = pending }
        }
    }

    public func finding(_ finding: Finding) {
        store.update(pid: pid) { vm in vm.findings[finding.rule, default: [:]][finding.severity, default: 0] += 1 }
    }

    public func seriesEnded(_ summary: SeriesSummary) {}

    public func finished(_ report: AnalysisReport) {}

    public func live(_ event: LiveEvent) {
        switch event {
        case .captured:
            store.update(pid: pid) { $0.eventsReceived += 1 }
        case .state(let name, _):
            store.update(pid: pid) { vm in
                // A new migration starts from nothing: its bandwidth, pending and verdict are not the last one's.
                if name == "setup" {
                    vm.bandwidthBytesPerSecond = nil
                    vm.pendingBytes = nil
                    vm.expectedDowntimeMs = nil
                    vm.dirtyRateBytesPerSecond = nil
                    vm.verdict = nil
                    vm.iterations = 0
                }
                vm.state = name
            }
        case .migration(let a):
            store.update(pid: pid) { vm in
                vm.verdict = a.verdict
                vm.iterations = a.iterations
                vm.expectedDowntimeMs = a.expectedDowntimeMs
                vm.dirtyRateBytesPerSecond = a.dirtyRateBytesPerSecond
                if let limit = a.downtimeLimitMs { vm.downtimeLimitMs = limit }
            }
        case .lost(let kernel, let consumer):
            store.update(pid: pid) { vm in
                vm.kernelDrops = max(vm.kernelDrops, kernel)
                vm.consumerDrops = max(vm.consumerDrops, consumer)
            }
        case .ended(let end):
            store.update(pid: pid) { vm in
                vm.eventsReceived = max(vm.eventsReceived, end.eventsReceived)
                vm.kernelDrops = max(vm.kernelDrops, end.kernelDrops)
                vm.consumerDrops = max(vm.consumerDrops, end.consumerDrops)
            }
            store.end(pid: pid)
        case .attached:
            break
        }
    }
}

/// The exposition text: one `# HELP`/`# TYPE` block per metric, one sample per VM (and label set).
enum MetricsText {
    /// Every migration state QEMU spells, for the state set (one sample per state, 1 for the current one).
    static let states = MigrationState.allCases.filter { $0 != .unrecognized }.map(\.name)
    static let verdicts: [ConvergenceVerdict] = [.converging, .stalled, .diverging, .completed]

    static func render(_ vms: [MetricsStore.VM]) -> String {
        var out = ""
        func family(_ name: String, _ type: String, _ help: String, _ samples: (MetricsStore.VM) -> [(String, Double)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for vm in vms {
                let base = "vm=\"\(escaped(vm.name))\",pid=\"\(vm.pid)\""
                for (extra, value) in samples(vm) {
                    out += "\(name){\(base)\(extra.isEmpty ? "" : "," + extra)} \(number(value))\n"
                }
            }
        }
        func one(_ v: Double?) -> [(String, Double)] { v.map { [("", $0)] } ?? [] }

        family(
            "migtrace_migration_data_processed_bytes_total", "counter",
            "Bytes QEMU's migration thread sent, summed over every window of the capture (migrate_transferred)."
        ) {
            [("", Double($0.bytes))]
        }
        family("migtrace_migration_windows_total", "counter", "Migration windows (migrate_transferred events) analysed.") {
            [("", Double($0.windows))]
        }
        family(
            "migtrace_migration_memory_transfer_rate_bytes", "gauge",
            "Bandwidth of the last window in bytes per second, as QEMU computed it."
        ) {
            one($0.bandwidthBytesPerSecond)
        }
        family("migtrace_migration_data_remaining_bytes", "gauge", "Pending bytes QEMU last traced (migrate_pending_estimate/exact).") {
            one($0.pendingBytes.map { Double($0) })
        }
        family(
            "migtrace_migration_threshold_bytes", "gauge",
            "Switchover threshold of the last window (QEMU's max_size): pending must fall below it."
        ) {
            one($0.thresholdBytes.map { Double($0) })
        }
        family("migtrace_migration_downtime_limit_seconds", "gauge", "Downtime limit in force, inferred from the threshold or given.") {
            one($0.downtimeLimitMs.map { Double($0) / 1000 })
        }
        family("migtrace_migration_expected_downtime_seconds", "gauge", "Downtime QEMU 11.1 would report as expected-downtime now.") {
            one($0.expectedDowntimeMs.map { $0 / 1000 })
        }
        family("migtrace_migration_dirty_memory_rate_bytes", "gauge", "Dirty rate the dirty syncs imply, in bytes per second.") {
            one($0.dirtyRateBytesPerSecond)
        }
        family("migtrace_migration_iterations", "gauge", "Dirty-bitmap syncs of the current migration.") { [("", Double($0.iterations))] }
        family(
            "migtrace_migration_verdict", "gauge",
            "Convergence verdict of the current migration: 1 for the one in force, 0 for the others (none before the first)."
        ) {
            vm in verdicts.map { ("verdict=\"\($0.rawValue)\"", vm.verdict == $0 ? 1 : 0) }
        }
        family("migtrace_migration_state", "gauge", "QEMU migration state (migrate_set_state): 1 for the current one, 0 for the others.") {
            vm in
            states.map { ("state=\"\($0)\"", vm.state == $0 ? 1 : 0) }
                + (vm.state.map { s in states.contains(s) ? [] : [("state=\"\(escaped(s))\"", 1)] } ?? [])
        }
        family("migtrace_findings_total", "counter", "Findings reported, by rule and severity.") { vm in
            vm.findings.sorted { $0.key < $1.key }.flatMap { rule, bySeverity in
                bySeverity.sorted { $0.key < $1.key }.map { ("rule=\"\(escaped(rule))\",severity=\"\($0.key)\"", Double($0.value)) }
            }
        }
        family("migtrace_events_received_total", "counter", "Probe events received from the kernel.") { [("", Double($0.eventsReceived))] }
        family(
            "migtrace_events_dropped_total", "counter",
            "Probe events lost: in the kernel ring buffer (kernel) or handing over to the analysis (consumer)."
        ) {
            [("where=\"kernel\"", Double($0.kernelDrops)), ("where=\"consumer\"", Double($0.consumerDrops))]
        }
        family("migtrace_capture_up", "gauge", "1 while the capture runs, 0 once the target exited or the capture ended.") {
            [("", $0.ended == nil ? 1 : 0)]
        }
        return out
    }

    /// A label value with backslash, double quote and newline escaped, as the format wants.
    static func escaped(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// A sample value: integers without a fraction, NaN and infinities as the format spells them.
    static func number(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        if v == v.rounded(), abs(v) < 9.007_199_254_740_992e15 { return String(Int64(v)) }
        return "\(v)"
    }
}
