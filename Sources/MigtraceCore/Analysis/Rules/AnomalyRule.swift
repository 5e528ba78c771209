// SPDX-License-Identifier: Apache-2.0

/// A detector that watches one series window by window and reports findings.
///
/// Rules keep only bounded state, so memory does not grow with the trace. One instance serves one
/// series. A new rule is one file in `Analysis/Rules/`: a `public final class` conforming to this protocol with a
/// `reportOrder` of its own; RuleRegistryPlugin generates the registry (``RuleRegistry``, `BuiltinRules`) from them.
public protocol AnomalyRule: AnyObject {
    /// The stable kebab-case id used in every output and in `--disable-rule`.
    static var id: String { get }
    /// The severities this rule can report, for the documentation.
    static var severities: [Severity] { get }
    /// One line saying what the rule detects, for `migtrace rules` and the README.
    static var summary: String { get }
    /// The QEMU knob that addresses it, as one sentence.
    static var remedy: String { get }
    /// Where the rule stands among the rules (ascending): the order in which they see a window, and so the
    /// order of their findings. Read by RuleRegistryPlugin from the literal `public static let reportOrder = N`.
    static var reportOrder: Int { get }
    /// When it fires, with defaults and the flags that change them: the README table's third column.
    static var firesWhen: String { get }
    /// The knobs that address it, briefly: the README table's last column.
    static var knobs: String { get }
    /// The fewest windows a series needs before the rule can fire, at QEMU's 100 ms cadence and with the default
    /// thresholds (a shorter series can never show it): documented in `migtrace rules` and the README table.
    static var minimumWindows: Int { get }

    /// A fresh rule for one series.
    init(thresholds: RuleThresholds)
    /// Look at the next window of the series.
    func observe(_ window: AnalyzedWindow, _ context: RuleContext)
    /// The series ended: report what is still open.
    func finish(_ context: RuleContext)
    /// Findings about the whole trace rather than one series (rejected lines), once every input is read.
    static func traceFindings(_ trace: TraceFacts) -> [Finding]
}

extension AnomalyRule {
    /// Most rules have nothing left to report at the end of a series.
    public func finish(_ context: RuleContext) {}
    /// Most rules judge series only.
    public static func traceFindings(_ trace: TraceFacts) -> [Finding] { [] }
}

/// What the analyzer knows of the whole trace once every input is read, for ``AnomalyRule/traceFindings(_:)``.
public struct TraceFacts: Sendable {
    /// Lines or events rejected in all.
    public var rejected: UInt64
    /// The first rejection, if any.
    public var firstRejection: Diagnostic?
}

/// What a rule sees of its series besides the window, and where it reports.
public final class RuleContext {
    /// The series being analysed.
    public internal(set) var series: SeriesInfo
    /// Findings are delivered here as they are made.
    let deliver: (Finding) -> Void
    /// Findings reported so far and dropped by the cap, per rule type, to cap floods from hostile input. A short
    /// list searched by type, not a dictionary keyed by the rule's id, which hashed the string on every report
    /// (threshold-collapse reports hundreds per series).
    private var tallies: [(rule: ObjectIdentifier, id: String, reported: Int, suppressed: Int)] = []
    /// Findings dropped by the cap, per rule id.
    public var suppressed: [String: Int] {
        var byID: [String: Int] = [:]
        for tally in tallies where tally.suppressed > 0 { byID[tally.id] = tally.suppressed }
        return byID
    }
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
        let rule = ObjectIdentifier(Rule.self)
        var t = 0
        while t < tallies.count && tallies[t].rule != rule { t += 1 }
        if t == tallies.count { tallies.append((rule, Rule.id, 0, 0)) }
        guard tallies[t].reported < Self.maxFindingsPerRule else {
            tallies[t].suppressed += 1
            return
        }
        tallies[t].reported += 1
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
    /// The insertion order is a ring (dropping the oldest moves nothing) and the sorted copy is kept by hand.
    /// It is noncopyable, so that its arrays are never shared and a write never copies them. In the steady state
    /// a window replaces the oldest value (``replaceOldest(with:)``): two branch-free counts find where the old
    /// value is and where the new one goes, and only the values between those two places move.
    struct SlidingMedian: ~Copyable {
        /// `ring.count` slots in insertion order (`count` of them from `oldest`, wrapping around).
        private var ring: [Double]
        /// The values ascending, at `0..<count` (as many slots as `ring`).
        private var ascending: [Double]
        private var oldest = 0
        private(set) var count = 0
        /// Whether a value below +0 or a NaN was ever added (bandwidths never are): replacing then takes the
        /// general path.
        private var irregular = false
        /// The bits of +infinity: a value is ≥ +0 and not NaN exactly when its bits are at most these.
        private static let infinityBits = Double.infinity.bitPattern

        init(capacity: Int) {
            ring = [Double](repeating: 0, count: max(4, capacity + 2))
            ascending = ring
        }

        private var capacity: Int { ring.count }

        /// How many of the `count` first sorted values are less than `v`: where `Array.insert` at the lower
        /// bound puts `v`, and where the first copy of `v` is. A count, not a bisection: branch-free.
        @inline(__always) private func below(_ v: Double) -> Int {
            var k = 0
            for p in 0..<count { k &+= ascending[p] < v ? 1 : 0 }
            return k
        }

        /// Where `v` is in the ascending copy (values are finite bandwidths; a NaN is found by its bits).
        @inline(__always) private func sortedIndex(of v: Double) -> Int {
            let i = below(v)
            if i < count && ascending[i] == v { return i }
            for k in 0..<count where ascending[k].bitPattern == v.bitPattern { return k }
            return count &- 1
        }

        /// The slot of the ring `offset` values after the oldest.
        @inline(__always) private func slot(_ offset: Int) -> Int {
            let s = oldest &+ offset
            return s >= capacity ? s &- capacity : s
        }

        mutating func append(_ v: Double) {
            if count == capacity {
                // Full (a baseline shorter than 3 windows briefly holds more): unroll into twice the room.
                var r = [Double](repeating: 0, count: 2 * capacity)
                for k in 0..<count { r[k] = ring[slot(k)] }
                ascending.append(contentsOf: repeatElement(0, count: capacity))
                ring = r
                oldest = 0
            }
            if v.bitPattern > Self.infinityBits { irregular = true }
            ring[slot(count)] = v
            // Insert at the lower bound, as `Array.insert(v, at: lowerBound(v))` would.
            var j = count
            while j > 0 && !(ascending[j &- 1] < v) {
                ascending[j] = ascending[j &- 1]
                j &-= 1
            }
            ascending[j] = v
            count &+= 1
        }

        /// Drops the `n` oldest values.
        mutating func removeOldest(_ n: Int = 1) {
            for _ in 0..<n {
                precondition(count > 0, "no value to remove")
                var j = sortedIndex(of: ring[oldest])
                oldest = slot(1)
                count &-= 1
                while j < count {
                    ascending[j] = ascending[j &+ 1]
                    j &+= 1
                }
            }
        }

        /// Drops the oldest value and adds `v`: the same values as `append(v)` then `removeOldest()`.
        mutating func replaceOldest(with v: Double) {
            precondition(count > 0, "no value to replace")
            guard !irregular, v.bitPattern <= Self.infinityBits else {
                append(v)
                removeOldest()
                return
            }
            let old = ring[oldest]
            ring[slot(count)] = v
            oldest = slot(1)
            // The old value's first copy is at `i`; without it, `k` values are less than `v`. The new order
            // is the old one with `i` taken out and `v` put in at `k` (equal values are interchangeable).
            // Every value is ≥ +0 and not NaN, so `x < y` is `x.bits < y.bits`, and the sign of the 64-bit
            // difference says it without a comparison that LLVM would turn back into a branch.
            let n = count
            let oldBits = old.bitPattern
            let newBits = v.bitPattern
            var i = 0
            var k = 0
            for p in 0..<n {
                let bits = ascending[p].bitPattern
                i &+= Int(truncatingIfNeeded: (bits &- oldBits) >> 63)
                k &+= Int(truncatingIfNeeded: (bits &- newBits) >> 63)
            }
            k &-= Int(truncatingIfNeeded: (oldBits &- newBits) >> 63)
            // Only the values from `k` to `i` move, one slot toward `i`: `v` goes in at `k`, each value there
            // passes on to the next slot toward `i`, and the old value at `i` drops out. One loop for both
            // directions, so the direction costs no branch.
            let step = k < i ? 1 : -1
            var carried = v
            var p = k
            while true {
                swap(&ascending[p], &carried)
                if p == i { break }
                p &+= step
            }
        }

        /// Replaces every value.
        mutating func reset<S: Sequence<Double>>(_ newValues: S) {
            oldest = 0
            count = 0
            for v in newValues { append(v) }
        }

        /// The values in insertion order (oldest first).
        var values: [Double] { (0..<count).map { ring[slot($0)] } }

        /// The median (the mean of the two middle values for even counts); the set must not be empty.
        var median: Double {
            precondition(count > 0)
            let m = count >> 1
            return count & 1 == 1 ? ascending[m] : (ascending[m &- 1] + ascending[m]) / 2
        }
    }

    /// A byte rate in bytes/ms shown as MB/s with two decimals.
    static func rate(_ bytesPerMs: Double) -> String { "\(NumberText.fixed(bytesPerMs / 1000, 2)) MB/s" }

    /// Milliseconds as seconds with one or two decimals.
    /// A byte count in MB (10^6), two decimals.
    static func bytes(_ n: Double) -> String { "\(NumberText.fixed(n / 1_000_000, 2)) MB" }
    static func seconds(_ ms: Double) -> String { "\(NumberText.fixed(ms / 1000, 2)) s" }
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
