// SPDX-License-Identifier: Apache-2.0

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `rate-capped`: over at least 10 s, most windows move the same number of bytes (± 2 %): max-bandwidth sets the
/// pace. A migration that completes sooner is not worth a finding: nearly every migration runs at its cap (QEMU's
/// default max-bandwidth is 128 MiB/s), and `info` is for what an operator may want to act on.
///
/// Keeps a histogram of transfers in 0.5 % logarithmic buckets, so memory stays bounded.
public final class RateCappedRule: AnomalyRule {
    public static let id = "rate-capped"
    public static let reportOrder = 70
    /// Needs 10 s of windows besides the first (setup) and the last (completion).
    public static let minimumWindows = 102
    public static let firesWhen =
        "over ≥ 10 s of windows (`--rate-cap-min-ms`), most (≥ 50 %) move the same bytes ± 2 % (`--rate-cap-percent`): max-bandwidth sets the pace of a long migration"
    public static let knobs = "`max-bandwidth`"
    public static let severities: [Severity] = [.info]
    public static let summary =
        "Over at least 10 s, most windows transfer the same amount ± 2 %: `max-bandwidth`, not the network, sets the pace."
    public static let remedy =
        "If the link is faster, raise `max-bandwidth` (migrate-set-parameters); QEMU sends at most max-bandwidth/10 bytes per 100 ms window."

    private static let bucketWidth = 0.005
    private let tolerance: Double
    private let share: Double
    private let minSeconds: Double
    /// Windows per bucket, indexed by bucket (every `UInt64` falls in 0...maxBucket): a table, not a
    /// dictionary, since counting is per window. Allocated at the first count (35 KB per series); `Int32` wraps
    /// only after 2^31 windows in one bucket, 6.8 years of 100 ms windows.
    private var histogram: [Int32] = []
    /// `log(1 + bucketWidth)`, once.
    static let logBucketBase = log(1 + bucketWidth)
    /// The bucket of `UInt64.max`.
    private static let maxBucket = Int((log(Double(UInt64.max)) / logBucketBase).rounded())
    private var windows = 0
    private var first: WindowMark?
    private var last: WindowMark?
    /// The held-back window: whether there is one, where it lies and what it sent (counted once the next window
    /// shows it was not the last).
    private var holding = false
    private var heldMark = WindowMark(index: 0, startTime: 0, endTime: 0)
    private var heldTransferred: UInt64 = 0

    private let bucketIndex = BucketIndex()

    public init(thresholds: RuleThresholds) {
        tolerance = thresholds.rateCapTolerance
        share = thresholds.rateCapShare
        minSeconds = Double(thresholds.rateCapMinMs) / 1000
    }

    public func observe(_ window: AnalyzedWindow, _ context: RuleContext) {
        // Skip the first window (setup) and hold one back so that the last window (completion) is skipped too.
        guard window.index > 0 else { return }
        if holding {
            if first == nil { first = heldMark }
            last = heldMark
            count(heldTransferred)
        }
        holding = true
        heldMark = window.mark
        heldTransferred = window.transferred
    }

    @inline(__always) private func count(_ transferred: UInt64) {
        windows += 1
        guard transferred > 0 else { return }
        let bucket = bucketIndex.bucket(of: transferred)
        if histogram.isEmpty { histogram = [Int32](repeating: 0, count: Self.maxBucket + 1) }
        histogram[bucket] &+= 1
    }

    /// The bucket of a transfer: `Int((log(Double(transferred)) / logBucketBase).rounded())`, mostly without
    /// calling `log()`, which runs per window.
    ///
    /// A short table-and-polynomial logarithm places the transfer in bucket units within 10⁻⁸; when that is
    /// more than 10⁻⁶ away from a half (where the rounding changes bucket), the exact expression, whose own
    /// error is below 10⁻¹¹ bucket units, rounds to the same bucket. The few transfers in a million that come
    /// closer to a half take the exact expression.
    struct BucketIndex {
        /// How many leading fraction bits of the transfer (as a `Double`) choose the table entry.
        private static let tableBits = 7
        /// Per entry `j`: `1 / c` and `log(c)` for `c = 1 + j / 2^tableBits`, so that `m / c` is in
        /// `[1, 1 + 2^-tableBits)` for a fraction `m` whose leading bits are `j`.
        private static let sharedTable: [Entry] = (0..<1 << tableBits).map { j in
            let c = 1 + Double(j) / Double(1 << tableBits)
            return Entry(reciprocal: 1 / c, log: log(c))
        }
        /// One table entry.
        struct Entry {
            var reciprocal: Double
            var log: Double
        }
        /// How close (in bucket units) to a half the estimate may come before the exact expression decides.
        static let unsureWithin = 1e-6

        /// ``sharedTable`` and `1 / logBucketBase`, held by value: a static read per window is a lazy-global
        /// check (a call to `swift_once`).
        private let table = Self.sharedTable
        private let inverseLogBucketBase = 1 / RateCappedRule.logBucketBase

        /// What the rule computed for every window before the estimate.
        static func exactBucket(of transferred: UInt64) -> Int {
            Int((log(Double(transferred)) / RateCappedRule.logBucketBase).rounded())
        }

        /// The bucket of `transferred`, which is > 0.
        @inline(__always) func bucket(of transferred: UInt64) -> Int {
            // Below 2^63 (every real transfer) the signed conversion, one instruction, rounds the same.
            let x = transferred < 1 << 63 ? Double(Int64(bitPattern: transferred)) : Double(transferred)
            let bits = x.bitPattern
            let exponent = Double(Int(truncatingIfNeeded: bits >> 52) &- 1023)
            let entry = table[Int(truncatingIfNeeded: (bits >> UInt64(52 - Self.tableBits)) & (1 << Self.tableBits - 1))]
            // The transfer is 2^exponent · m with m in [1, 2); m / c = 1 + r with 0 ≤ r < 2^-7, and
            // log(1 + r) ≈ r - r²/2 + r³/3 - r⁴/4 (the next term is below 6·10⁻¹²).
            let m = Double(bitPattern: (bits & 0x000F_FFFF_FFFF_FFFF) | 0x3FF0_0000_0000_0000)
            let r = m * entry.reciprocal - 1
            let log1pR = r * (1 + r * (-0.5 + r * (1.0 / 3 + r * -0.25)))
            let estimate = (exponent * 0.693_147_180_559_945_3 + entry.log + log1pR) * inverseLogBucketBase
            // Adding 1.5 · 2^52 rounds the estimate (≥ -10⁻⁸, < 9000) to the nearest integer, which is then the
            // low bits of the sum: no libm call (`rounded()`) and no checked conversion to `Int`. `offset` is
            // how far from that integer the estimate lies, near ± 0.5 when it is near a half.
            let roundingMagic = 6_755_399_441_055_744.0
            let sum = estimate + roundingMagic
            let offset = estimate - (sum - roundingMagic)
            guard abs(offset) < 0.5 - Self.unsureWithin else { return Self.exactBucket(of: transferred) }
            return Int(truncatingIfNeeded: sum.bitPattern & 0x0007_FFFF_FFFF_FFFF)
        }
    }

    public func finish(_ context: RuleContext) {
        guard windows >= 10, let first, let last, last.endTime - first.startTime >= minSeconds - 0.0005 else { return }
        let span = Int(log(1 + tolerance) / log(1 + Self.bucketWidth))
        var best = (center: 0, count: 0)
        for center in histogram.indices where histogram[center] > 0 {
            var n = 0
            for b in max(0, center - span)...min(Self.maxBucket, center + span) { n += Int(histogram[b]) }
            if n > best.count || (n == best.count && center < best.center) { best = (center, n) }
        }
        guard Double(best.count) >= share * Double(windows) else { return }
        let bytes = pow(1 + Self.bucketWidth, Double(best.center))
        context.report(
            Self.self, .info, from: first, to: last,
            "\(best.count) of \(windows) windows (\(RuleMath.seconds((last.endTime - first.startTime) * 1000))) sent \(NumberText.fixed(bytes / 1_000_000, 3)) MB ± \(NumberText.fixed(tolerance * 100, 0)) %: max-bandwidth ≈ \(NumberText.fixed(bytes * 10 / 1_000_000, 1)) MB/s sets the pace.",
            evidence: [
                .count("windows_at_cap", UInt64(best.count)), .count("windows", UInt64(windows)),
                .number("bytes_per_window", bytes), .number("max_bandwidth_estimate_bytes_per_second", bytes * 10),
            ],
            remedy:
                "If the link is faster, raise `max-bandwidth` above the ≈ \(NumberText.fixed(bytes * 10, 0)) B/s it caps the migration at here (migrate-set-parameters max-bandwidth); QEMU sends at most max-bandwidth/10 bytes per 100 ms window."
        )
    }
}
