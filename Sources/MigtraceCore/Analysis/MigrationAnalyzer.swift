// SPDX-License-Identifier: Apache-2.0

/// The whole analysis, once every input has been read.
public struct AnalysisReport: Sendable {
    /// One summary per series, in order.
    public var series: [SeriesSummary]
    /// Every finding, in the order rules made them.
    public var findings: [Finding]
    /// Rejected lines/events (the first `maxStoredDiagnostics`).
    public var diagnostics: [Diagnostic]
    /// How many lines/events were rejected in all.
    public var rejectedCount: UInt64
    /// Events accepted, by kind.
    public var eventCounts: [ProbeKind: UInt64]
    /// Findings a rule made beyond its per-series cap, by rule id.
    public var suppressedFindings: [String: Int]
    /// One assessment per migration (convergence, downtime, advice), in order of input and start.
    public var migrations: [MigrationAssessment] = []

    /// The most severe finding, if any.
    public var worstSeverity: Severity? { findings.map(\.severity).max() }
    /// Windows in all series.
    public var windowCount: Int { series.reduce(0) { $0 + $1.windows } }
    /// Windows whose threshold was rebuilt exactly, in all series.
    public var exactCount: Int { series.reduce(0) { $0 + $1.exactThresholds } }
}

/// Turns a stream of trace events into series of analysed windows and findings.
///
/// Series are split by input, by migration thread id, and by migration (a `migrate_set_state` to
/// `setup` starts a new one). State is bounded per open series, so memory does not grow with the input.
public final class MigrationAnalyzer {
    /// The configuration in force.
    public let configuration: AnalysisConfiguration
    /// Where every window, finding and live event goes.
    private let output: any AnalysisSink

    private struct SeriesKey: Hashable {
        var input: Int
        var thread: UInt32?
    }

    // The analyzer and everything it owns (series, rules, contexts) are confined to the thread that feeds it
    // (the class is not Sendable).
    /// One open series' state. A value kept in `slots`, changed in place: reaching it costs no reference
    /// counting, as a class instance would per event.
    private struct OpenSeries {
        var info: SeriesInfo
        // Constants, so that a window reaches the rules without retaining either.
        let context: RuleContext
        let rules: BuiltinRules
        var summary: SeriesSummary
        var limit: UInt64?
        var cumulative: UInt64 = 0
        var elapsedMs: UInt64 = 0
        var pending: UInt64?
        var pendingExact = false
        var pendingSplit: PendingSplit?
        /// When this series last had a window (the analyzer's window counter), to close the idlest first.
        var lastUse: UInt64 = 0
        var tracker: MigrationTracker?

        init(info: SeriesInfo, context: RuleContext, rules: BuiltinRules) {
            self.info = info
            self.context = context
            self.rules = rules
            summary = SeriesSummary(
                info: info, windows: 0, exactThresholds: 0, exactBandwidths: 0, totalBytes: 0, totalTimeMs: 0,
                startTime: 0, endTime: 0, downtimeLimits: [], finalState: nil)
        }
    }

    /// Where each open series' state is in `slots`.
    private var open: [SeriesKey: Int] = [:]
    /// The open series' states; nil where a series was closed (its place is in `freeSlots`).
    private var slots: ContiguousArray<OpenSeries?> = []
    private var freeSlots: [Int] = []
    /// At most this many series stay open at once; a trace with more concurrent thread ids (only a hostile
    /// or garbled one has them) closes the idlest, so memory stays bounded.
    static let maxOpenSeries = 64
    private var windowClock: UInt64 = 0  // written per window
    /// How many series are open now (tests).
    var openSeriesCount: Int { open.count }
    /// The series of the last look-up (nearly every event belongs to it): spares a hash per event.
    private var cachedKey: SeriesKey?
    /// `close` (the only removal from `open`) clears the cache.
    private var cachedSlot = 0
    /// The key last stored in `lastSeriesOfInput` (its only writer is consumeWindow).
    private var lastSeriesKeyWritten: SeriesKey?
    private var lastSeriesOfInput: [Int: SeriesKey] = [:]
    private var newMigrationPending: Set<Int> = []  // read per window
    private var pendingBeforeSeries: [SeriesKey: (UInt64, Bool, PendingSplit?)] = [:]
    private var nextSeriesIndex = 0
    private var summaries: [SeriesSummary] = []
    private var findings: [Finding] = []
    private var diagnostics: [Diagnostic] = []
    private var rejected: UInt64 = 0
    /// Events accepted, indexed by `ProbeKind.rawValue` (a dictionary only in the report).
    private var kindCounts = [UInt64](repeating: 0, count: ProbeKind.allCases.count)
    private var suppressed: [String: Int] = [:]
    /// The migration each input is in, and the assessments of those that ended (Convergence/AnalyzerHooks.swift).
    var trackers: [Int: MigrationTracker] = [:], endedMigrations: [MigrationAssessment] = []

    /// An analyzer that reports to `sink`, as it goes.
    public init(configuration: AnalysisConfiguration = AnalysisConfiguration(), sink: any AnalysisSink) {
        self.configuration = configuration
        output = sink
    }

    /// Pass a live capture's own event to the sink, in order with the analysis.
    public func live(_ event: LiveEvent) {
        output.live(event)
    }

    /// Record a line or event that could not be used.
    public func reject(_ diagnostic: Diagnostic) {
        rejected += 1
        if diagnostics.count < configuration.maxStoredDiagnostics { diagnostics.append(diagnostic) }
    }

    @inline(__always) private func count(_ kind: ProbeKind) {
        kindCounts[Int(kind.rawValue)] += 1
    }

    /// The slot of the open series of `key`, if any, through the one-entry cache.
    @inline(__always) private func openSlot(_ key: SeriesKey) -> Int? {
        if cachedKey == key { return cachedSlot }
        guard let slot = open[key] else { return nil }
        cachedKey = key
        cachedSlot = slot
        return slot
    }

    /// Feed the next event: the one way events enter the analyzer (readers, live captures, tests).
    ///
    /// Inlined into the reader's loop; the event is trivial, so it is only read, never retained.
    @inline(__always)
    public func consume(_ event: TraceEvent) {
        switch event.kind {
        case .migrateTransferred:
            consumeWindow(event)
        case .migratePendingEstimate, .migratePendingExact, .migratePending:
            // An event with repeats stands for that many earlier estimates of its thread: they are counted, and
            // their values would have been overwritten by this one before any window could read them.
            kindCounts[Int(event.kind.rawValue)] &+= UInt64(event.repeats)
            consumePending(event.kind, event.arguments, input: event.origin.input, thread: event.threadID)
        case .qemuSavevmQueryPending:
            consumeQueryPending(event)
        case .migrateSetState:
            consumeState(event)
        default:
            count(event.kind)
            track(event.kind, event.arguments.a0, input: event.origin.input, timestamp: event.timestampNanoseconds)
        }
    }

    private func consumePending(_ kind: ProbeKind, _ arguments: ProbeArguments, input: Int, thread: UInt32?) {
        count(kind)
        let key = SeriesKey(input: input, thread: thread)
        // Pre-8.0 `migrate_pending` syncs the dirty bitmap itself only when the estimate fell below
        // `max` (its second argument), so a size below `max` proves a sync; a larger one may be stale.
        let exact =
            switch kind {
            case .migratePendingExact: true
            case .migratePending: arguments.count >= 2 && arguments.a0 < arguments.a1
            default: false
            }
        if let slot = openSlot(key) {
            // An open series holds its input's tracker (a `setup` replaces the tracker and closes the series):
            // no dictionary look-up per pending event, 4–5 of which come per window.
            Self.notePending(arguments.a0, exact: exact, in: &slots[slot]!)
        } else {
            migrationTracker(input).pending(arguments.a0, exact: exact)
            pendingBeforeSeries[key] = (arguments.a0, exact, nil)
        }
    }

    /// A pending event of an open series, changed in place (reading the state out of `slots` copies it).
    @inline(__always)
    private static func notePending(_ bytes: UInt64, exact: Bool, in series: inout OpenSeries) {
        series.pending = bytes
        series.pendingExact = exact
        series.pendingSplit = nil
        series.tracker?.pending(bytes, exact: exact)
    }

    /// QEMU 11.1's `qemu_savevm_query_pending`: its total is the pending size, as `migrate_pending_*`'s size was,
    /// and `exact` marks the query that ends an iteration; the parts are kept apart.
    private func consumeQueryPending(_ event: TraceEvent) {
        let a = event.arguments
        let input = event.origin.input
        if let reason = QueryPending.refusal(a) {
            reject(Diagnostic(input: input, line: event.origin.line, reason: "qemu_savevm_query_pending: " + reason))
            return
        }
        count(.qemuSavevmQueryPending)
        let query = QueryPending(a)
        let key = SeriesKey(input: input, thread: event.threadID)
        if let slot = openSlot(key) {
            slots[slot]!.pending = query.total
            slots[slot]!.pendingExact = query.exact
            slots[slot]!.pendingSplit = query.split
            slots[slot]!.tracker?.query(query)
        } else {
            migrationTracker(input).query(query)
            pendingBeforeSeries[key] = (query.total, query.exact, query.split)
        }
    }

    private func consumeState(_ event: TraceEvent) {
        let input = event.origin.input
        guard let newState = event.state, newState != .unrecognized else {
            reject(
                Diagnostic(
                    input: input, line: event.origin.line,
                    reason: "migrate_set_state without a QEMU migration state (MigrationStatus); the state is left as it was"))
            return
        }
        count(.migrateSetState)
        let state = newState.name
        let timestamp = event.timestampNanoseconds
        trackState(state, input: input, timestamp: timestamp)
        if configuration.liveUpdates {
            live(.state(state, timeNanoseconds: timestamp))
            updateMigration(input)
        }
        if state == "setup" {
            // A new migration: close what this input has open, the next window starts a new series.
            for key in open.keys where key.input == input { close(key) }
            newMigrationPending.insert(input)
        } else if let key = lastSeriesOfInput[input], let slot = open[key] {
            slots[slot]!.summary.finalState = state
        } else if let key = lastSeriesOfInput[input], let i = summaries.lastIndex(where: { $0.info.index == seriesIndex(key) }) {
            summaries[i].finalState = state
        }
    }

    /// The most recently closed series of each input (a state event can follow its series' end).
    private var lastClosedOfInput: [Int: (key: SeriesKey, index: Int)] = [:]
    private func seriesIndex(_ key: SeriesKey) -> Int? {
        guard let last = lastClosedOfInput[key.input], last.key == key else { return nil }
        return last.index
    }

    private func consumeWindow(_ event: TraceEvent) {
        let args = event.arguments
        guard args.count == 4 || args.count == 5 else {
            reject(
                Diagnostic(
                    input: event.origin.input, line: event.origin.line,
                    reason: "migrate_transferred has \(args.count) arguments; QEMU traces 4 or 5"))
            return
        }
        guard args.a1 > 0 else {
            reject(
                Diagnostic(
                    input: event.origin.input, line: event.origin.line,
                    reason: "time_spent is 0; QEMU never traces a window shorter than 100 ms"))
            return
        }
        count(.migrateTransferred)
        let key = SeriesKey(input: event.origin.input, thread: event.threadID)
        if !newMigrationPending.isEmpty, newMigrationPending.contains(key.input) {
            newMigrationPending.remove(key.input)
            for k in open.keys where k.input == key.input { close(k) }
        }
        let slot = openSlot(key) ?? start(key, event)
        analyse(event, key: key, in: &slots[slot]!)
        if configuration.liveUpdates { updateMigration(key.input) }
    }

    /// The arithmetic, bookkeeping and hand-over of one valid window of `series`.
    @inline(__always)
    private func analyse(_ event: TraceEvent, key: SeriesKey, in series: inout OpenSeries) {
        let args = event.arguments
        windowClock &+= 1
        series.lastUse = windowClock
        if lastSeriesKeyWritten != key {
            lastSeriesOfInput[key.input] = key
            lastSeriesKeyWritten = key
        }

        // Era: the window's own fit; an ambiguous window takes the series' era.
        let bw = QEMUArithmetic.bandwidth(transferred: args.a0, timeSpent: args.a1)
        let mb = QEMUArithmetic.mbps(transferred: args.a0, timeSpent: args.a1)
        // Each truncated once: for classification and for `bandwidthTracedExact`. Era C needs 5 arguments (the
        // only ones whose Mbit/s is truncated), also when it comes from the series for an ambiguous window.
        let truncatedBandwidth = QEMUArithmetic.truncate(bw)
        let truncatedMbps = args.count == 4 ? 0 : QEMUArithmetic.truncate(mb)
        var fit = EraFit.classify(args, truncatedBandwidth: truncatedBandwidth, truncatedMbps: truncatedMbps)
        if fit.ambiguous, let e = series.info.era { fit.era = e }
        if !fit.ambiguous, series.info.era == nil, let e = fit.era {
            series.info.era = e
            series.context.series.era = e
            series.summary.info.era = e
        }
        let traced = args[args.count - 1]
        var rebuild = ThresholdRebuild(
            basis: .measured, expectedPerMs: bw, downtimeLimitMs: series.limit, limitRange: nil,
            switchoverBytesPerSecond: nil, threshold: 0, exact: false)
        var bandwidthExact = false
        if let era = fit.era {
            rebuild = ThresholdRebuild.rebuild(
                era: era, arguments: args, bandwidth: bw, mbps: mb, fixedLimit: configuration.downtimeLimitMs,
                preferredLimit: series.limit)
            bandwidthExact = args.a2 == (era == .c ? truncatedMbps : truncatedBandwidth)
        }

        // Time line: the trace's own clock when it has one, else the running sum of time_spent.
        let start: Double
        let end: Double
        if let ts = event.timestampNanoseconds, series.info.timeBase != .relative {
            end = Double(ts / 1000) / 1_000_000 + Double(ts % 1000) / 1e9
            start = end - Double(args.a1) / 1000
        } else {
            start = Double(series.elapsedMs) / 1000
            end = Double(series.elapsedMs &+ args.a1) / 1000
        }
        series.elapsedMs &+= args.a1
        series.cumulative &+= args.a0

        let window = AnalyzedWindow(
            series: series.info.index, index: series.summary.windows, origin: event.origin, threadID: event.threadID,
            startTime: start, endTime: end, transferred: args.a0, timeSpentMs: args.a1, bandwidthTraced: args.a2,
            switchoverTraced: args.count == 5 ? args.a3 : nil, thresholdTraced: traced, era: fit.era, bandwidth: bw,
            mbps: mb, bandwidthTracedExact: bandwidthExact, rebuild: rebuild, cumulativeBytes: series.cumulative,
            pendingBytes: series.pending, pendingExact: series.pendingExact, pendingSplit: series.pendingSplit)

        // Summary bookkeeping.
        if window.index == 0 { series.summary.startTime = start }
        series.summary.endTime = end
        series.summary.windows += 1
        if rebuild.exact { series.summary.exactThresholds += 1 }
        if bandwidthExact { series.summary.exactBandwidths += 1 }
        series.summary.totalBytes &+= args.a0
        series.summary.totalTimeMs &+= args.a1
        if rebuild.exact, rebuild.expectedPerMs > 0, let limit = rebuild.downtimeLimitMs, limit != series.limit {
            series.summary.downtimeLimits.append((window.index, limit))
            series.limit = limit
        }

        output.window(window, in: series.info)
        series.rules.observe(window, series.context)
        series.tracker?.window(window)
    }

    /// Open a series for `key`, starting with `event`; returns its slot.
    private func start(_ key: SeriesKey, _ event: TraceEvent) -> Int {
        if open.count >= Self.maxOpenSeries, let idlest = open.min(by: { slots[$0.value]!.lastUse < slots[$1.value]!.lastUse })?.key {
            close(idlest)
        }
        if pendingBeforeSeries.count > Self.maxOpenSeries { pendingBeforeSeries.removeAll() }
        let base: TimeBase = event.timestampNanoseconds == nil ? .relative : (event.clock == .wall ? .epoch : .monotonic)
        let info = SeriesInfo(
            index: nextSeriesIndex, input: key.input, threadID: key.thread, processID: event.processID, era: nil,
            timeBase: base)
        nextSeriesIndex += 1
        let context = RuleContext(series: info) { [unowned self] finding in
            self.findings.append(finding)
            self.output.finding(finding)
        }
        let rules = BuiltinRules(thresholds: configuration.thresholds, disabled: configuration.disabledRules)
        var series = OpenSeries(info: info, context: context, rules: rules)
        series.tracker = migrationTracker(key.input)
        if let (p, exact, split) = pendingBeforeSeries.removeValue(forKey: key) {
            series.pending = p
            series.pendingExact = exact
            series.pendingSplit = split
        }
        let slot: Int
        if let free = freeSlots.popLast() {
            slot = free
            slots[slot] = series
        } else {
            slot = slots.count
            slots.append(series)
        }
        open[key] = slot
        cachedKey = key
        cachedSlot = slot
        output.seriesStarted(info)
        return slot
    }

    private func close(_ key: SeriesKey) {
        guard let slot = open.removeValue(forKey: key), var s = slots[slot] else { return }
        slots[slot] = nil
        freeSlots.append(slot)
        if cachedKey == key { cachedKey = nil }
        s.rules.finish(s.context)
        for (id, n) in s.context.suppressed { suppressed[id, default: 0] += n }
        s.summary.info = s.info
        if let t = s.tracker, t.series == s.info.index { s.summary.assessment = t.assess() }
        summaries.append(s.summary)
        lastClosedOfInput[key.input] = (key, s.info.index)
        output.seriesEnded(s.summary)
    }

    /// The series index of the open series of `key`.
    private func index(of key: SeriesKey) -> Int { slots[open[key]!]!.info.index }

    /// One input is fully read: its series are complete (later inputs never continue them).
    public func endInput(_ input: Int) {
        for key in open.keys.filter({ $0.input == input }).sorted(by: { index(of: $0) < index(of: $1) }) {
            close(key)
        }
        newMigrationPending.remove(input)
        endMigration(input)
    }

    /// End of input: close every series, summarise rejected lines, and deliver the report.
    @discardableResult
    public func finish() -> AnalysisReport {
        for key in open.keys.sorted(by: { index(of: $0) < index(of: $1) }) { close(key) }
        for input in trackers.keys.sorted() { endMigration(input) }
        summaries.sort { $0.info.index < $1.info.index }
        let trace = TraceFacts(rejected: rejected, firstRejection: diagnostics.first)
        for rule in RuleRegistry.all where !configuration.disabledRules.contains(rule.id) {
            for f in rule.traceFindings(trace) {
                findings.append(f)
                output.finding(f)
            }
        }
        var eventCounts: [ProbeKind: UInt64] = [:]
        for kind in ProbeKind.allCases where kindCounts[Int(kind.rawValue)] > 0 {
            eventCounts[kind] = kindCounts[Int(kind.rawValue)]
        }
        let report = AnalysisReport(
            series: summaries, findings: findings, diagnostics: diagnostics, rejectedCount: rejected,
            eventCounts: eventCounts, suppressedFindings: suppressed, migrations: migrationAssessments)
        output.finished(report)
        return report
    }
}
