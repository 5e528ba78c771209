// SPDX-License-Identifier: Apache-2.0

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `rate-capped`: most windows move the same number of bytes (± 2 %): max-bandwidth sets the pace.
///
/// Keeps a histogram of transfers in 0.5 % logarithmic buckets, so memory stays bounded.
public final class RateCappedRule: AnomalyRule {
    public static let id = "rate-capped"
    public static let severities: [Severity] = [.info]
    public static let summary =
        "Most windows transfer the same amount ± 2 %: `max-bandwidth`, not the network, sets the pace."
    public static let remedy =
        "If the link is faster, raise `max-bandwidth` (migrate-set-parameters); QEMU sends at most max-bandwidth/10 bytes per 100 ms window."

    private static let bucketWidth = 0.005
    private let tolerance: Double
    private let share: Double
    /// Windows per bucket, indexed by bucket (every `UInt64` falls in 0...maxBucket): an array, not a
    /// dictionary, since counting is per window. Allocated at the first count (35 KB per series); `Int32`
    /// wraps only after 2^31 windows in one bucket, 6.8 years of 100 ms windows.
    @exclusivity(unchecked) private var histogram: [Int32] = []  // confined to the analyzer's thread
    /// `log(1 + bucketWidth)`, once.
    private static let logBucketBase = log(1 + bucketWidth)
    /// The bucket of `UInt64.max`.
    private static let maxBucket = Int((log(Double(UInt64.max)) / logBucketBase).rounded())
    @exclusivity(unchecked) private var windows = 0  // confined to the analyzer's thread
    @exclusivity(unchecked) private var first: WindowMark?  // confined to the analyzer's thread
    @exclusivity(unchecked) private var last: WindowMark?  // confined to the analyzer's thread
    /// The held-back window: where it lies and what it sent (counted once the next window shows it was not the last).
    @exclusivity(unchecked) private var held: (mark: WindowMark, transferred: UInt64)?  // confined to the analyzer's thread

    public init(thresholds: RuleThresholds) {
        tolerance = thresholds.rateCapTolerance
        share = thresholds.rateCapShare
    }

    public func observe(_ window: AnalyzedWindow, _ context: RuleContext) {
        // Skip the first window (setup) and hold one back so that the last window (completion) is skipped too.
        guard window.index > 0 else { return }
        if let (mark, transferred) = held {
            if first == nil { first = mark }
            last = mark
            count(transferred)
        }
        held = (window.mark, window.transferred)
    }

    private func count(_ transferred: UInt64) {
        windows += 1
        guard transferred > 0 else { return }
        let bucket = Int((log(Double(transferred)) / Self.logBucketBase).rounded())
        if histogram.isEmpty { histogram = [Int32](repeating: 0, count: Self.maxBucket + 1) }
        histogram[bucket] &+= 1
    }

    public func finish(_ context: RuleContext) {
        guard windows >= 10, let first, let last else { return }
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
            "\(best.count) of \(windows) windows sent \(Format.fixed(bytes / 1_000_000, 3)) MB ± \(Format.fixed(tolerance * 100, 0)) %: max-bandwidth ≈ \(Format.fixed(bytes * 10 / 1_000_000, 1)) MB/s sets the pace.",
            evidence: [
                .count("windows_at_cap", UInt64(best.count)), .count("windows", UInt64(windows)),
                .number("bytes_per_window", bytes), .number("max_bandwidth_estimate_bytes_per_second", bytes * 10),
            ])
    }
}
