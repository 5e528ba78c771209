// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import MigtraceCore

/// `rate-capped` finds a transfer's histogram bucket with an estimate and the exact expression only near a
/// bucket's edge: the bucket must be the exact expression's for every transfer, and the findings unchanged.
@Suite struct RuleRateCappedTests {
    typealias BucketIndex = RateCappedRule.BucketIndex

    @Test func estimatedBucketIsExactForSmallTransfers() {
        let index = BucketIndex()
        var wrong: [UInt64] = []
        for t in UInt64(1)...300_000 where index.bucket(of: t) != BucketIndex.exactBucket(of: t) { wrong.append(t) }
        #expect(wrong.isEmpty)
    }

    /// Around every bucket edge (the smallest transfer of each bucket, found with the exact expression), where
    /// the estimate alone cannot decide.
    @Test func estimatedBucketIsExactAtEveryBucketEdge() {
        let index = BucketIndex()
        let maxBucket = BucketIndex.exactBucket(of: .max)
        #expect(maxBucket == 8_894)
        var wrong: [UInt64] = []
        var edges = 0
        var low: UInt64 = 1
        for bucket in 1...maxBucket {
            // The smallest transfer whose bucket is ≥ `bucket` (the expression grows with the transfer).
            var lo = low
            var hi = UInt64.max
            while lo < hi {
                let mid = lo + (hi - lo) / 2
                if BucketIndex.exactBucket(of: mid) >= bucket { hi = mid } else { lo = mid + 1 }
            }
            low = lo
            if BucketIndex.exactBucket(of: lo) != bucket { continue }  // a bucket no integer falls in
            edges += 1
            for t in (lo > 3 ? lo - 3 : 1)...(lo < .max - 3 ? lo + 3 : .max)
            where index.bucket(of: t) != BucketIndex.exactBucket(of: t) {
                wrong.append(t)
            }
            // Above 2^53 a `Double` holds only every 2^shift-th integer: also the neighbours one or two of those
            // steps away.
            let shift = max(0, lo.bitWidth - lo.leadingZeroBitCount - 53)
            for k: UInt64 in 1...2 {
                for (t, overflow) in [lo.subtractingReportingOverflow(k << shift), lo.addingReportingOverflow(k << shift)]
                where !overflow && t > 0 && index.bucket(of: t) != BucketIndex.exactBucket(of: t) {
                    wrong.append(t)
                }
            }
        }
        #expect(edges > 8_000)
        #expect(wrong.isEmpty)
    }

    @Test func estimatedBucketIsExactForRandomTransfersOfEveryMagnitude() {
        let index = BucketIndex()
        var rng = SplitMix64(seed: 17)
        var wrong: [UInt64] = []
        for _ in 0..<1_000_000 {
            let t = max(1, rng.next() >> (rng.next() % 64))
            if index.bucket(of: t) != BucketIndex.exactBucket(of: t) { wrong.append(t) }
        }
        let extremes: [UInt64] = [.max, .max - 1, .max - 1024, .max - 2048, 1 << 63, (1 << 63) - 1, (1 << 63) + 1]
        for t in extremes
        where index.bucket(of: t) != BucketIndex.exactBucket(of: t) {
            wrong.append(t)
        }
        for shift in 0..<64 {
            for t in [UInt64(1) << shift, (UInt64(1) << shift) &- 1, (UInt64(1) << shift) &+ 1]
            where t > 0 && index.bucket(of: t) != BucketIndex.exactBucket(of: t) {
                wrong.append(t)
            }
        }
        #expect(wrong.isEmpty)
    }

    /// The finding on a capped trace, as the rule made it before the estimate (`migtrace analyze` of the
    /// same trace by the earlier binary).
    @Test func findingOfACappedTraceIsUnchanged() throws {
        var rng = SplitMix64(seed: 23)
        var lines: [String] = []
        var micros: UInt64 = 1_700_000_000_000_000
        for i in 0..<400 {
            let ms = 100 + rng.next() % 30
            // ± 1 % around 1 MB, every seventh window anywhere from 0.1 to 3 MB.
            let transferred = i % 7 == 0 ? 100_000 + rng.next() % 2_900_000 : 990_000 + rng.next() % 20_000
            micros += ms * 1000
            lines.append(RuleTraces.line(micros: micros, transferred: transferred, ms: ms))
        }
        let sink = try analyze(text: lines.joined(separator: "\n"))
        #expect(
            RuleTraces.render(sink.findings, rule: "rate-capped") == [
                "rate-capped 1–398: 342 of 398 windows (45.23 s) sent 0.995 MB ± 2 %: max-bandwidth ≈ 10.0 MB/s sets the pace."
            ])
    }
}

/// Synthetic traces for rule tests.
enum RuleTraces {
    /// One era-A `migrate_transferred` line of thread 11 ending at `micros` µs since the epoch.
    static func line(micros: UInt64, transferred: UInt64, ms: UInt64) -> String {
        let bandwidth = transferred / ms
        return
            "\(prefix(micros: micros)):migrate_transferred transferred \(transferred) time_spent \(ms) bandwidth \(bandwidth) max_size \(bandwidth * 300)"
    }

    /// `11@SECONDS.MICROSECONDS`: thread 11 at `micros` µs since the epoch.
    static func prefix(micros: UInt64) -> String {
        let fraction = String(micros % 1_000_000)
        return "11@\(micros / 1_000_000).\(String(repeating: "0", count: 6 - fraction.count) + fraction)"
    }

    /// The findings of `rule` as `migtrace analyze --format text` shows them: id, windows, message.
    static func render(_ findings: [Finding], rule: String) -> [String] {
        findings.filter { $0.rule == rule }.map { "\($0.rule) \($0.firstWindow)–\($0.lastWindow): \($0.message)" }
    }
}
