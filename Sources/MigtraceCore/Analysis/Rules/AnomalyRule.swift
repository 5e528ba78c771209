// SPDX-License-Identifier: Apache-2.0

/// A detector that watches one series window by window and reports findings.
///
/// Rules keep only bounded state, so memory does not grow with the trace. One instance serves one
/// series. A new rule is one small file: a class conforming to this protocol, listed in ``RuleRegistry``.
public protocol AnomalyRule: AnyObject {
    /// The stable kebab-case id used in every output and in `--disable-rule`.
    static var id: String { get }
    /// The severities this rule can report, for the documentation.
    static var severities: [Severity] { get }
    /// One line saying what the rule detects, for `migtrace rules` and the README.
    static var summary: String { get }
    /// The QEMU knob that addresses it, as one sentence.
    static var remedy: String { get }

    /// A fresh rule for one series.
    init(thresholds: RuleThresholds)
    /// Look at the next window of the series.
    func observe(_ window: AnalyzedWindow, _ context: RuleContext)
    /// The series ended: report what is still open.
    func finish(_ context: RuleContext)
}

extension AnomalyRule {
    /// Most rules have nothing left to report at the end of a series.
    public func finish(_ context: RuleContext) {}
}

/// What a rule sees of its series besides the window, and where it reports.
public final class RuleContext {
    /// The series being analysed.
    // Exclusivity unchecked: confined to the analyzer's thread (see MigrationAnalyzer.OpenSeries).
    @exclusivity(unchecked) public internal(set) var series: SeriesInfo
    /// Findings are delivered here as they are made.
    let deliver: (Finding) -> Void
    /// Findings reported so far per rule id, to cap floods from hostile input.
    private var counts: [String: Int] = [:]
    /// Findings dropped by the cap, per rule id.
    public private(set) var suppressed: [String: Int] = [:]
    /// At most this many findings of one rule per series.
    static let maxFindingsPerRule = 100

    init(series: SeriesInfo, deliver: @escaping (Finding) -> Void) {
        self.series = series
        self.deliver = deliver
    }

    /// Report a finding of `Rule` covering windows `first`...`last`.
    ///
    /// The message and evidence are built only when the finding is kept (not beyond the per-rule cap): a rule
    /// that fires on every window of a long trace must not format a message per window.
    public func report<Rule: AnomalyRule>(
        _ rule: Rule.Type, _ severity: Severity, from first: AnalyzedWindow, to last: AnalyzedWindow,
        _ message: @autoclosure () -> String, evidence: @autoclosure () -> [Evidence], remedy: String? = nil
    ) {
        report(rule, severity, from: first.mark, to: last.mark, message(), evidence: evidence(), remedy: remedy)
    }

    /// Report a finding of `Rule` covering the windows marked `first`...`last` (for rules that keep marks,
    /// not whole windows).
    public func report<Rule: AnomalyRule>(
        _ rule: Rule.Type, _ severity: Severity, from first: WindowMark, to last: WindowMark,
        _ message: @autoclosure () -> String, evidence: @autoclosure () -> [Evidence], remedy: String? = nil
    ) {
        let n = counts[Rule.id, default: 0]
        guard n < Self.maxFindingsPerRule else {
            suppressed[Rule.id, default: 0] += 1
            return
        }
        counts[Rule.id] = n + 1
        deliver(
            Finding(
                rule: Rule.id, severity: severity, series: series.index, firstWindow: first.index,
                lastWindow: last.index, startTime: first.startTime, endTime: last.endTime, message: message(),
                evidence: evidence(), remedy: remedy ?? Rule.remedy))
    }
}

/// Every rule migtrace runs, in report order.
public enum RuleRegistry {
    /// The rule types.
    // SAFETY: an immutable array of metatypes, never written after initialisation.
    nonisolated(unsafe) public static let all: [any AnomalyRule.Type] = BuiltinRules.types

    /// The ids of every rule.
    public static var ids: [String] { all.map { $0.id } }
}

/// The rules of one series, each held by its concrete type (a disabled rule is `nil`).
///
/// A window reaches each rule with a direct, inlinable call: no existential box and no retain/release
/// per rule and window, which cost ≈ 6 % of `analyze` when the rules were an `[any AnomalyRule]`
/// (a parameter pack was tried too: its loop still went through witness tables and retained every rule).
/// A new rule is added to ``types``, to `init`, and to `observe`/`finish` in the same place of the order.
final class BuiltinRules {
    /// Every built-in rule type, in the order rules see a window (and so the order of their findings).
    // SAFETY: an immutable array of metatypes, never written after initialisation.
    nonisolated(unsafe) static let types: [any AnomalyRule.Type] = [
        ThreadStallRule.self,
        NoProgressRule.self,
        BandwidthShiftRule.self,
        ThresholdCollapseRule.self,
        DowntimeLimitChangedRule.self,
        SwitchoverBandwidthMismatchRule.self,
        RateCappedRule.self,
        NonConvergenceRule.self,
        FormulaMismatchRule.self,
        UnknownEraRule.self,
        TraceIntegrityRule.self,
    ]

    let threadStall: ThreadStallRule?
    let noProgress: NoProgressRule?
    let bandwidthShift: BandwidthShiftRule?
    let thresholdCollapse: ThresholdCollapseRule?
    let downtimeLimitChanged: DowntimeLimitChangedRule?
    let switchoverBandwidthMismatch: SwitchoverBandwidthMismatchRule?
    let rateCapped: RateCappedRule?
    let nonConvergence: NonConvergenceRule?
    let formulaMismatch: FormulaMismatchRule?
    let unknownEra: UnknownEraRule?
    let traceIntegrity: TraceIntegrityRule?

    /// Fresh rules for one series, except those whose id is in `disabled`.
    init(thresholds: RuleThresholds, disabled: Set<String>) {
        func make<Rule: AnomalyRule>(_: Rule.Type) -> Rule? {
            disabled.contains(Rule.id) ? nil : Rule(thresholds: thresholds)
        }
        threadStall = make(ThreadStallRule.self)
        noProgress = make(NoProgressRule.self)
        bandwidthShift = make(BandwidthShiftRule.self)
        thresholdCollapse = make(ThresholdCollapseRule.self)
        downtimeLimitChanged = make(DowntimeLimitChangedRule.self)
        switchoverBandwidthMismatch = make(SwitchoverBandwidthMismatchRule.self)
        rateCapped = make(RateCappedRule.self)
        nonConvergence = make(NonConvergenceRule.self)
        formulaMismatch = make(FormulaMismatchRule.self)
        unknownEra = make(UnknownEraRule.self)
        traceIntegrity = make(TraceIntegrityRule.self)
    }

    /// Every enabled rule looks at the next window, in ``types`` order.
    @inline(__always) func observe(_ window: AnalyzedWindow, _ context: RuleContext) {
        threadStall?.observe(window, context)
        noProgress?.observe(window, context)
        bandwidthShift?.observe(window, context)
        thresholdCollapse?.observe(window, context)
        downtimeLimitChanged?.observe(window, context)
        switchoverBandwidthMismatch?.observe(window, context)
        rateCapped?.observe(window, context)
        nonConvergence?.observe(window, context)
        formulaMismatch?.observe(window, context)
        unknownEra?.observe(window, context)
        traceIntegrity?.observe(window, context)
    }

    /// The series ended: every enabled rule reports what is still open, in ``types`` order.
    func finish(_ context: RuleContext) {
        threadStall?.finish(context)
        noProgress?.finish(context)
        bandwidthShift?.finish(context)
        thresholdCollapse?.finish(context)
        downtimeLimitChanged?.finish(context)
        switchoverBandwidthMismatch?.finish(context)
        rateCapped?.finish(context)
        nonConvergence?.finish(context)
        formulaMismatch?.finish(context)
        unknownEra?.finish(context)
        traceIntegrity?.finish(context)
    }
}

/// Small numeric helpers shared by rules.
enum RuleMath {
    /// Median of a non-empty array (the mean of the two middle values for even counts).
    static func median(_ values: [Double]) -> Double {
        precondition(!values.isEmpty)
        let s = values.sorted()
        let m = s.count / 2
        return s.count % 2 == 1 ? s[m] : (s[m - 1] + s[m]) / 2
    }

    /// The median of a sliding set of values, kept sorted as values come and go, so that a query is O(1)
    /// instead of a sort per window. Gives exactly ``median(_:)`` of the values in insertion order.
    ///
    /// The insertion order is a ring (dropping the oldest moves nothing) and the sorted copy is shifted by
    /// hand: `Array.insert`/`remove(at:)`/`removeFirst` went through generic range replacement and `memmove`
    /// for a handful of doubles, ≈ 5 % of `analyze` for the two rules with a baseline.
    struct SlidingMedian {
        /// The values in insertion order: `count` of them from `oldest`, wrapping around.
        private var ring: [Double]
        private var oldest = 0
        private(set) var count = 0
        /// The same values, ascending.
        private var ascending: [Double] = []

        init(capacity: Int) {
            ring = [Double](repeating: 0, count: max(4, capacity + 2))
            ascending.reserveCapacity(capacity + 2)
        }

        /// Index of the first of the `n` first elements of `a` not less than `v`: a bisection whose steps
        /// are conditional moves, not branches (the baseline's order is unpredictable). Values are finite
        /// bandwidths, never NaN.
        @inline(__always) private static func lowerBound(_ a: UnsafeMutableBufferPointer<Double>, _ n: Int, _ v: Double) -> Int {
            guard n > 0 else { return 0 }
            var base = 0
            var length = n
            while length > 1 {
                let half = length >> 1
                base = a[base &+ half] < v ? base &+ half : base
                length &-= half
            }
            return a[base] < v ? base &+ 1 : base
        }

        mutating func append(_ v: Double) {
            if count == ring.count {
                // Full (a baseline shorter than 3 windows briefly holds more): unroll the ring into a larger one.
                ring = (0..<count).map { ring[($0 + oldest) % count] } + [Double](repeating: 0, count: count)
                oldest = 0
            }
            var slot = oldest + count
            if slot >= ring.count { slot -= ring.count }
            ring[slot] = v
            count += 1
            // Insert at the lower bound, as `Array.insert(v, at: lowerBound(v))` would.
            ascending.append(v)
            ascending.withUnsafeMutableBufferPointer { a in
                let at = Self.lowerBound(a, a.count &- 1, v)
                var j = a.count &- 1
                while j > at {
                    a[j] = a[j &- 1]
                    j &-= 1
                }
                a[at] = v
            }
        }

        /// Drops the `n` oldest values.
        mutating func removeOldest(_ n: Int = 1) {
            for _ in 0..<n {
                precondition(count > 0, "no value to remove")
                let v = ring[oldest]
                oldest += 1
                if oldest == ring.count { oldest = 0 }
                count -= 1
                ascending.withUnsafeMutableBufferPointer { a in
                    let i = Self.lowerBound(a, a.count, v)
                    var j: Int
                    if i < a.count && a[i] == v {
                        j = i
                    } else if let k = a.firstIndex(where: { $0.bitPattern == v.bitPattern }) {
                        j = k  // NaN: never equal to itself (bandwidths are finite; kept for safety)
                    } else {
                        j = a.count &- 1
                    }
                    while j < a.count &- 1 {
                        a[j] = a[j &+ 1]
                        j &+= 1
                    }
                }
                ascending.removeLast()
            }
        }

        /// Replaces every value.
        mutating func reset<S: Sequence<Double>>(_ newValues: S) {
            oldest = 0
            count = 0
            ascending.removeAll(keepingCapacity: true)
            for v in newValues { append(v) }
        }

        /// The values in insertion order (oldest first).
        var values: [Double] { (0..<count).map { ring[($0 + oldest) % ring.count] } }

        /// The median (the mean of the two middle values for even counts); the set must not be empty.
        var median: Double {
            precondition(!ascending.isEmpty)
            let m = ascending.count / 2
            return ascending.count % 2 == 1 ? ascending[m] : (ascending[m - 1] + ascending[m]) / 2
        }
    }

    /// A byte rate in bytes/ms shown as MB/s with two decimals.
    static func rate(_ bytesPerMs: Double) -> String { "\(Format.fixed(bytesPerMs / 1000, 2)) MB/s" }

    /// Milliseconds as seconds with one or two decimals.
    static func seconds(_ ms: Double) -> String { "\(Format.fixed(ms / 1000, 2)) s" }
}

/// A run of consecutive windows a rule is following: its first window, where its last lies, how many, how long.
struct WindowRun {
    /// The whole first window (rules report its values); the others are only counted.
    private(set) var first: AnalyzedWindow?
    private(set) var last = WindowMark(index: 0, startTime: 0, endTime: 0)
    private(set) var windows: UInt64 = 0
    /// Sum of `time_spent`, saturating: the trace may hold any value and a sum must not trap.
    private(set) var durationMs: UInt64 = 0

    /// Whether no window has been added since the last `take()`.
    var isEmpty: Bool { windows == 0 }

    /// Extend the run with the next window.
    mutating func add(_ window: AnalyzedWindow) {
        if windows == 0 { first = window }
        last = window.mark
        windows += 1
        let (ms, overflow) = durationMs.addingReportingOverflow(window.timeSpentMs)
        durationMs = overflow ? .max : ms
    }

    /// End the run: the finished run when it had a window, and an empty run from here on.
    ///
    /// Rules call this for nearly every window (each window that breaks a run), so an empty run is left
    /// untouched rather than overwritten.
    mutating func take() -> (first: AnalyzedWindow, last: WindowMark, windows: UInt64, durationMs: UInt64)? {
        guard windows > 0, let first else { return nil }
        let run = (first, last, windows, durationMs)
        windows = 0
        durationMs = 0
        self.first = nil
        return run
    }
}
