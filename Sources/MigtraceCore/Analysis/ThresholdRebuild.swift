// SPDX-License-Identifier: Apache-2.0

/// Where the bandwidth that QEMU multiplied by the downtime limit came from.
public enum SwitchoverBasis: String, Sendable, Equatable, Codable {
    /// The window's measured bandwidth (era A; era B with avail-switchover-bandwidth unset).
    case measured
    /// avail-switchover-bandwidth with the integer division `switchover_bw / 1000` of QEMU 8.2–10.2.
    case userInteger = "user-integer"
    /// avail-switchover-bandwidth with the float division `(double)switchover_bw / 1000` of QEMU 11.0 (and ≥ 11.1).
    case userFloat = "user-float"
    /// Era C without a user value: the estimate `mbps / 8 * 1000 * 1000 / 1000`.
    case estimated
    /// Era B with 0 < avail-switchover-bandwidth < 1000 B/s: the integer division yields 0 and so does
    /// the threshold (reference §1.7).
    case userBelowResolution = "user-below-resolution"
}

/// Which era an individual window fits, from its values alone (reference §1.6).
public struct EraFit: Sendable, Equatable {
    /// The era that fits, `nil` when none does.
    public var era: ProbeEra?
    /// True when more than one era fits (almost no traffic); the series' era decides.
    public var ambiguous: Bool

    /// Classify one `migrate_transferred` argument list.
    public static func classify(_ args: ProbeArguments) -> EraFit {
        guard args.count == 4 || args.count == 5, args.a1 > 0 else { return EraFit(era: nil, ambiguous: false) }
        let bandwidth = QEMUArithmetic.bandwidth(transferred: args.a0, timeSpent: args.a1)
        let mbps = args.count == 4 ? 0 : QEMUArithmetic.mbps(transferred: args.a0, timeSpent: args.a1)
        return classify(
            args, truncatedBandwidth: QEMUArithmetic.truncate(bandwidth), truncatedMbps: QEMUArithmetic.truncate(mbps))
    }

    /// ``classify(_:)`` of a window with 4 or 5 arguments and `time_spent` > 0, from the truncations of its
    /// bandwidth and (for 5 arguments; ignored for 4) Mbit/s: the analyzer compares arg 3 with one of them
    /// again, so it truncates each once.
    @inline(__always)
    static func classify(_ args: ProbeArguments, truncatedBandwidth bw: UInt64, truncatedMbps mb: UInt64) -> EraFit {
        let fitsMeasured = args.a2 &+ 1 >= bw && args.a2 <= bw &+ 1
        if args.count == 4 { return EraFit(era: fitsMeasured ? .a : nil, ambiguous: false) }
        let fitsMbps = args.a2 &+ 1 >= mb && args.a2 <= mb &+ 1
        switch (fitsMeasured, fitsMbps) {
        case (true, false): return EraFit(era: .b, ambiguous: false)
        case (false, true): return EraFit(era: .c, ambiguous: false)
        case (true, true): return EraFit(era: .b, ambiguous: true)
        case (false, false): return EraFit(era: nil, ambiguous: false)
        }
    }
}

/// The threshold of one window rebuilt with QEMU's formulas, and the downtime limit that does it.
///
/// Layout: the optionals are stored as plain values with their presence flags beside the other one-byte fields
/// at the end. Stored as Swift optionals, each tag byte came with 7 bytes of padding that every copy of a window
/// (built by the analyzer, handed to the output pipeline) moved and re-packed; now the padding is one tail.
public struct ThresholdRebuild: Sendable, Equatable {
    /// The bytes/ms value QEMU multiplied by the downtime limit.
    public var expectedPerMs: Double {
        willSet { materializeLimitRange() }
    }
    /// The rebuilt `threshold_size`.
    public var threshold: UInt64 {
        willSet { materializeLimitRange() }
    }
    /// `downtimeLimitMs` when `hasDowntimeLimit`, else 0.
    private var storedDowntimeLimit: UInt64 = 0
    /// `storedLimitRange` when `hasStoredLimitRange`, else 0...0.
    private var storedLimitRangeBounds: ClosedRange<UInt64> = 0...0
    /// `switchoverBytesPerSecond` when `hasSwitchoverBytesPerSecond`, else 0...0.
    private var storedSwitchoverBytesPerSecond: ClosedRange<UInt64> = 0...0
    /// Where the multiplied bandwidth came from.
    public var basis: SwitchoverBasis
    /// Whether the rebuilt threshold equals the traced `max_size`.
    public var exact: Bool
    private var hasDowntimeLimit = false
    private var hasStoredLimitRange = false
    private var hasSwitchoverBytesPerSecond = false
    /// `limitRange` is `downtimeLimits(reproducing: threshold, expectedPerMs: expectedPerMs)`, not yet computed.
    private var limitRangeIsDeferred = false

    /// The downtime limit used (given, or inferred); `nil` when nothing determines it.
    public var downtimeLimitMs: UInt64? {
        get { hasDowntimeLimit ? storedDowntimeLimit : nil }
        set {
            storedDowntimeLimit = newValue ?? 0
            hasDowntimeLimit = newValue != nil
        }
    }
    /// Every limit that reproduces the traced threshold with this basis (several when bytes/ms < 1).
    ///
    /// The fast path (the previous window's limit still holds) leaves it to be computed on first read: a
    /// bisection per window that only the JSON and text outputs need.
    public var limitRange: ClosedRange<UInt64>? {
        get {
            limitRangeIsDeferred
                ? QEMUArithmetic.downtimeLimits(reproducing: threshold, expectedPerMs: expectedPerMs) : storedLimitRange
        }
        set {
            storedLimitRange = newValue
            limitRangeIsDeferred = false
        }
    }
    /// For a user-set switchover bandwidth, the bytes/s values consistent with the window.
    public var switchoverBytesPerSecond: ClosedRange<UInt64>? {
        get { hasSwitchoverBytesPerSecond ? storedSwitchoverBytesPerSecond : nil }
        set {
            storedSwitchoverBytesPerSecond = newValue ?? 0...0
            hasSwitchoverBytesPerSecond = newValue != nil
        }
    }

    private var storedLimitRange: ClosedRange<UInt64>? {
        get { hasStoredLimitRange ? storedLimitRangeBounds : nil }
        set {
            storedLimitRangeBounds = newValue ?? 0...0
            hasStoredLimitRange = newValue != nil
        }
    }

    init(
        basis: SwitchoverBasis, expectedPerMs: Double, downtimeLimitMs: UInt64?, limitRange: ClosedRange<UInt64>?,
        switchoverBytesPerSecond: ClosedRange<UInt64>?, threshold: UInt64, exact: Bool
    ) {
        self.basis = basis
        self.expectedPerMs = expectedPerMs
        self.threshold = threshold
        self.exact = exact
        self.downtimeLimitMs = downtimeLimitMs
        self.storedLimitRange = limitRange
        self.switchoverBytesPerSecond = switchoverBytesPerSecond
    }

    /// Computes a deferred `limitRange` before one of its inputs changes.
    private mutating func materializeLimitRange() {
        guard limitRangeIsDeferred else { return }
        limitRange = QEMUArithmetic.downtimeLimits(reproducing: threshold, expectedPerMs: expectedPerMs)
    }

    public static func == (l: ThresholdRebuild, r: ThresholdRebuild) -> Bool {
        l.basis == r.basis && l.expectedPerMs == r.expectedPerMs && l.downtimeLimitMs == r.downtimeLimitMs
            && l.switchoverBytesPerSecond == r.switchoverBytesPerSecond && l.threshold == r.threshold
            && l.exact == r.exact && l.limitRange == r.limitRange
    }

    /// Rebuild the threshold of a window of `era`.
    ///
    /// - Parameters:
    ///   - fixedLimit: the downtime limit the user asserted (`--downtime-limit`); no inference.
    ///   - preferredLimit: the limit in force in the previous window; kept when it still reproduces the threshold.
    public static func rebuild(
        era: ProbeEra, arguments args: ProbeArguments, bandwidth: Double, mbps: Double,
        fixedLimit: UInt64?, preferredLimit: UInt64?
    ) -> ThresholdRebuild {
        let traced = args[args.count - 1]
        // The first inexact rebuild, returned when the float form does not fit either (an optional, not an
        // array: no allocation per window).
        var candidate: ThresholdRebuild?
        func fixed(_ basis: SwitchoverBasis, _ expected: Double) -> ThresholdRebuild {
            solveFixedExpected(basis: basis, expected: expected, traced: traced, fixedLimit: fixedLimit, preferredLimit: preferredLimit)
        }
        switch era {
        case .a:
            return fixed(.measured, bandwidth)
        case .b:
            if args.a3 == 0 {
                let measured = fixed(.measured, bandwidth)
                // A zero threshold while data flowed means a limit of 0 ms or, far likelier, a user value
                // below 1000 B/s that the integer division turned into 0.
                if traced != 0 || bandwidth == 0 || fixedLimit == 0 { return measured }
                var below = measured
                below.basis = .userBelowResolution
                below.expectedPerMs = 0
                below.threshold = 0
                below.exact = true
                below.limitRange = nil
                below.downtimeLimitMs = fixedLimit ?? preferredLimit
                below.switchoverBytesPerSecond = 1...999
                return below
            }
            let integer = fixed(.userInteger, Double(args.a3))
            if integer.exact { return integer }
            candidate = integer
        case .c:
            let estimate = QEMUArithmetic.estimatedSwitchoverPerMs(mbps: mbps)
            if QEMUArithmetic.truncate(estimate) == args.a3 {
                let estimated = fixed(.estimated, estimate)
                if estimated.exact { return estimated }
                candidate = estimated
            }
        }
        let float = solveUserFloat(perMsTraced: args.a3, traced: traced, fixedLimit: fixedLimit, preferredLimit: preferredLimit)
        if float.exact { return float }
        return candidate ?? float
    }

    /// The rebuild on `basis` when the previous window's `limit` still reproduces the threshold, else nil: the
    /// fast path of every rebuild without a fixed limit (nearly every window keeps its predecessor's limit).
    @inline(__always)
    static func keepingLimit(_ basis: SwitchoverBasis, _ limit: UInt64, expected: Double, traced: UInt64)
        -> ThresholdRebuild?
    {
        guard QEMUArithmetic.threshold(expectedPerMs: expected, downtimeLimitMs: limit) == traced else { return nil }
        var result = ThresholdRebuild(
            basis: basis, expectedPerMs: expected, downtimeLimitMs: limit, limitRange: nil,
            switchoverBytesPerSecond: basis == .userInteger ? userRange(perMs: QEMUArithmetic.truncate(expected)) : nil,
            threshold: traced, exact: true)
        // limitRange = downtimeLimits(reproducing: traced, expectedPerMs: expected), computed when read.
        result.limitRangeIsDeferred = expected > 0
        return result
    }

    private static func solveFixedExpected(
        basis: SwitchoverBasis, expected: Double, traced: UInt64, fixedLimit: UInt64?, preferredLimit: UInt64?
    ) -> ThresholdRebuild {
        // Fast path: the limit of the previous window usually still holds.
        if fixedLimit == nil, let limit = preferredLimit,
            let kept = keepingLimit(basis, limit, expected: expected, traced: traced)
        {
            return kept
        }
        var result = ThresholdRebuild(
            basis: basis, expectedPerMs: expected, downtimeLimitMs: nil, limitRange: nil,
            switchoverBytesPerSecond: nil, threshold: 0, exact: false)
        if basis == .userInteger { result.switchoverBytesPerSecond = userRange(perMs: QEMUArithmetic.truncate(expected)) }
        if let limit = fixedLimit {
            result.downtimeLimitMs = limit
            result.threshold = QEMUArithmetic.threshold(expectedPerMs: expected, downtimeLimitMs: limit)
            result.exact = result.threshold == traced
            return result
        }
        guard let range = QEMUArithmetic.downtimeLimits(reproducing: traced, expectedPerMs: expected) else {
            result.downtimeLimitMs = preferredLimit
            result.threshold = QEMUArithmetic.threshold(expectedPerMs: expected, downtimeLimitMs: preferredLimit ?? 0)
            return result
        }
        result.exact = true
        result.threshold = traced
        if expected > 0 {
            result.limitRange = range
            result.downtimeLimitMs = preferredLimit.flatMap { range.contains($0) ? $0 : nil } ?? range.lowerBound
        } else {
            // Nothing was sent: every limit gives 0, so the window says nothing about the limit.
            result.downtimeLimitMs = preferredLimit
        }
        return result
    }

    private static func userRange(perMs: UInt64) -> ClosedRange<UInt64> {
        let (low, overflow) = perMs.multipliedReportingOverflow(by: 1000)
        if overflow { return UInt64.max...UInt64.max }
        let (high, overflowHigh) = low.addingReportingOverflow(999)
        return low...(overflowHigh ? .max : high)
    }

    /// User-set switchover bandwidth with the float division: the bytes/s value `S` is known only to
    /// within `[1000·a4, 1000·a4 + 999]`, so search the limits `L` and values `S` that reproduce the threshold.
    private static func solveUserFloat(perMsTraced: UInt64, traced: UInt64, fixedLimit: UInt64?, preferredLimit: UInt64?)
        -> ThresholdRebuild
    {
        let range = userRange(perMs: perMsTraced)
        var result = ThresholdRebuild(
            basis: .userFloat, expectedPerMs: QEMUArithmetic.userSwitchoverPerMs(bytesPerSecond: range.lowerBound),
            downtimeLimitMs: fixedLimit ?? preferredLimit, limitRange: nil, switchoverBytesPerSecond: range,
            threshold: 0, exact: false)
        /// The values of S in `range` for which the product with `limit` truncates to `traced`.
        func values(for limit: UInt64) -> ClosedRange<UInt64>? {
            func product(_ s: UInt64) -> UInt64 {
                QEMUArithmetic.threshold(expectedPerMs: QEMUArithmetic.userSwitchoverPerMs(bytesPerSecond: s), downtimeLimitMs: limit)
            }
            func first(reaching target: UInt64) -> UInt64 {
                var lo = range.lowerBound
                var hi = range.upperBound
                if product(hi) < target { return hi == .max ? hi : hi + 1 }
                while lo < hi {
                    let mid = lo + (hi - lo) / 2
                    if product(mid) >= target { hi = mid } else { lo = mid + 1 }
                }
                return lo
            }
            let low = first(reaching: traced)
            guard low <= range.upperBound, product(low) == traced else { return nil }
            let past = traced == .max ? range.upperBound + 1 : first(reaching: traced + 1)
            return low...(past - 1)
        }
        func accept(_ limit: UInt64, _ s: ClosedRange<UInt64>) -> ThresholdRebuild {
            var r = result
            r.downtimeLimitMs = limit
            r.switchoverBytesPerSecond = s
            r.expectedPerMs = QEMUArithmetic.userSwitchoverPerMs(bytesPerSecond: s.lowerBound)
            r.threshold = traced
            r.exact = true
            return r
        }
        if let limit = fixedLimit {
            if let s = values(for: limit) { return accept(limit, s) }
            result.threshold = QEMUArithmetic.threshold(expectedPerMs: result.expectedPerMs, downtimeLimitMs: limit)
            return result
        }
        if let limit = preferredLimit, let s = values(for: limit) { return accept(limit, s) }
        guard range.lowerBound > 0 else { return result }
        // L ≈ traced / (S / 1000): scan the few limits the S interval allows.
        // Saturating conversions: a recorded threshold near 2^64 (a negative max_size read as u64) must not trap.
        let lowest = QEMUArithmetic.truncate(Double(traced) / (Double(range.upperBound) / 1000)) &- 1
        let highest = min(
            QEMUArithmetic.maxDowntimeLimitMs,
            min(QEMUArithmetic.truncate(Double(traced &+ 1) / (Double(range.lowerBound) / 1000)), QEMUArithmetic.maxDowntimeLimitMs) + 1)
        var limit = lowest > highest ? 0 : lowest
        var scanned = 0
        while limit <= highest && scanned < 100_000 {
            if let s = values(for: limit) { return accept(limit, s) }
            limit += 1
            scanned += 1
        }
        return result
    }
}
