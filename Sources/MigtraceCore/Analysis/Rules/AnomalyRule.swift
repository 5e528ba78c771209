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
    /// The previous window of the series, if any.
    @exclusivity(unchecked) public internal(set) var previous: AnalyzedWindow?
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
    nonisolated(unsafe) public static let all: [any AnomalyRule.Type] = [
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

    /// The ids of every rule.
    public static var ids: [String] { all.map { $0.id } }
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
    struct SlidingMedian {
        /// The values in insertion order (oldest first).
        private(set) var values: [Double] = []
        /// The same values, ascending.
        private var ascending: [Double] = []

        init(capacity: Int) {
            values.reserveCapacity(capacity + 1)
            ascending.reserveCapacity(capacity + 1)
        }

        var count: Int { values.count }

        /// Index of the first element not less than `v` (bisection).
        @inline(__always) private func lowerBound(_ v: Double) -> Int {
            var lo = 0
            var hi = ascending.count
            while lo < hi {
                let mid = (lo + hi) >> 1
                if ascending[mid] < v { lo = mid + 1 } else { hi = mid }
            }
            return lo
        }

        mutating func append(_ v: Double) {
            values.append(v)
            ascending.insert(v, at: lowerBound(v))
        }

        /// Drops the `n` oldest values.
        mutating func removeOldest(_ n: Int = 1) {
            for _ in 0..<n {
                let v = values.removeFirst()
                let i = lowerBound(v)
                if i < ascending.count && ascending[i] == v {
                    ascending.remove(at: i)
                } else if let j = ascending.firstIndex(where: { $0.bitPattern == v.bitPattern }) {
                    ascending.remove(at: j)  // NaN: never equal to itself (bandwidths are finite; kept for safety)
                } else {
                    ascending.removeLast()
                }
            }
        }

        /// Replaces every value.
        mutating func reset<S: Sequence<Double>>(_ newValues: S) {
            values.removeAll(keepingCapacity: true)
            ascending.removeAll(keepingCapacity: true)
            for v in newValues { append(v) }
        }

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

/// A run of consecutive windows a rule is following: its first and last window, how many, how long.
struct WindowRun {
    private(set) var first: AnalyzedWindow?
    private(set) var last: AnalyzedWindow?
    private(set) var windows: UInt64 = 0
    /// Sum of `time_spent`, saturating: the trace may hold any value and a sum must not trap.
    private(set) var durationMs: UInt64 = 0

    /// Whether no window has been added since the last `take()`.
    var isEmpty: Bool { first == nil }

    /// Extend the run with the next window.
    mutating func add(_ window: AnalyzedWindow) {
        if first == nil { first = window }
        last = window
        windows += 1
        let (ms, overflow) = durationMs.addingReportingOverflow(window.timeSpentMs)
        durationMs = overflow ? .max : ms
    }

    /// End the run: the finished run when it had a window, and an empty run from here on.
    mutating func take() -> (first: AnalyzedWindow, last: AnalyzedWindow, windows: UInt64, durationMs: UInt64)? {
        defer { self = WindowRun() }
        guard let first, let last else { return nil }
        return (first, last, windows, durationMs)
    }
}
