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
    @exclusivity(unchecked) private var histogram: [Int: Int] = [:]  // confined to the analyzer's thread
    @exclusivity(unchecked) private var windows = 0  // confined to the analyzer's thread
    @exclusivity(unchecked) private var first: AnalyzedWindow?  // confined to the analyzer's thread
    /// The last counted window and the held-back one live in two slots that swap roles, so each window is
    /// copied once (into the free slot) instead of three times.
    @exclusivity(unchecked) private var slots: (AnalyzedWindow?, AnalyzedWindow?) = (nil, nil)  // confined to the analyzer's thread
    /// Which slot holds the held-back window (the other holds the last counted one).
    @exclusivity(unchecked) private var pendingSlot = 0  // confined to the analyzer's thread
    private var last: AnalyzedWindow? { pendingSlot == 0 ? slots.1 : slots.0 }

    public init(thresholds: RuleThresholds) {
        tolerance = thresholds.rateCapTolerance
        share = thresholds.rateCapShare
    }

    public func observe(_ window: AnalyzedWindow, _ context: RuleContext) {
        // Skip the first window (setup) and hold one back so that the last window (completion) is skipped too.
        guard window.index > 0 else { return }
        // Count the held-back window; it becomes `last`, and `window` goes into the other slot.
        let held: UInt64? = pendingSlot == 0 ? slots.0?.transferred : slots.1?.transferred
        if let transferred = held {
            if first == nil { first = pendingSlot == 0 ? slots.0 : slots.1 }
            count(transferred)
        }
        pendingSlot ^= 1
        if pendingSlot == 0 { slots.0 = window } else { slots.1 = window }
    }

    private func count(_ transferred: UInt64) {
        windows += 1
        guard transferred > 0 else { return }
        let bucket = Int((log(Double(transferred)) / log(1 + Self.bucketWidth)).rounded())
        histogram[bucket, default: 0] += 1
    }

    public func finish(_ context: RuleContext) {
        guard windows >= 10, let first, let last else { return }
        let span = Int(log(1 + tolerance) / log(1 + Self.bucketWidth))
        var best = (center: 0, count: 0)
        for center in histogram.keys {
            var n = 0
            for b in (center - span)...(center + span) { n += histogram[b] ?? 0 }
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
