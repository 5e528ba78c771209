// SPDX-License-Identifier: Apache-2.0

/// The layout and meaning of `migrate_transferred`'s arguments in one span of QEMU releases.
///
/// Decided per window from the values alone (reference §1.6), never from a version string.
public enum ProbeEra: String, Sendable, Equatable, Codable {
    /// QEMU ≤ 8.1: `transferred, time_spent, bandwidth (bytes/ms), max_size`.
    case a = "A"
    /// QEMU 8.2 … 11.0: adds `switchover_bw` = avail-switchover-bandwidth / 1000 (0 when unset).
    case b = "B"
    /// QEMU ≥ 11.1 (its switchover-bandwidth helper): arg 3 becomes Mbit/s, arg 4 the effective switchover bytes/ms.
    case c = "C"
}

/// QEMU's `migration_update_counters()` arithmetic, operation for operation.
///
/// Every function mirrors one C expression of `migration/migration.c`, with the same IEEE-754 double
/// operations in the same order and C's truncating double → integer conversions, so the results are
/// bit-identical to what QEMU computed.
public enum QEMUArithmetic {
    /// Largest downtime-limit QEMU accepts (`MAX_MIGRATE_DOWNTIME`, ms).
    public static let maxDowntimeLimitMs: UInt64 = 2000 * 1000
    /// QEMU's default downtime-limit (`DEFAULT_MIGRATE_SET_DOWNTIME`, ms).
    public static let defaultDowntimeLimitMs: UInt64 = 300
    /// `BUFFER_DELAY`: the shortest window QEMU traces, in ms.
    public static let bufferDelayMs: UInt64 = 100

    /// `bandwidth = (double)transferred / time_spent;` in bytes/ms.
    @inline(__always)
    public static func bandwidth(transferred: UInt64, timeSpent: UInt64) -> Double {
        Double(transferred) / Double(timeSpent)
    }

    /// `s->mbps = (((double) transferred * 8.0) / ((double) time_spent / 1000.0)) / 1000.0 / 1000.0;`
    @inline(__always)
    public static func mbps(transferred: UInt64, timeSpent: UInt64) -> Double {
        ((Double(transferred) * 8.0) / (Double(timeSpent) / 1000.0)) / 1000.0 / 1000.0
    }

    /// The era-C estimate `migration_get_switchover_bw(s) / 1000` when the user set nothing:
    /// `(s->mbps / 8 * 1000 * 1000) / 1000`, in bytes/ms.
    @inline(__always)
    public static func estimatedSwitchoverPerMs(mbps: Double) -> Double {
        (mbps / 8 * 1000 * 1000) / 1000
    }

    /// The float form of the user-set switchover bandwidth (QEMU 11.0, and era C):
    /// `(double)switchover_bw / 1000`, in bytes/ms.
    @inline(__always)
    public static func userSwitchoverPerMs(bytesPerSecond: UInt64) -> Double {
        Double(bytesPerSecond) / 1000
    }

    /// `s->threshold_size = expected_bw_per_ms * migrate_downtime_limit();` — a double product
    /// converted to an integer by truncation toward zero.
    @inline(__always)
    public static func threshold(expectedPerMs: Double, downtimeLimitMs: UInt64) -> UInt64 {
        truncate(expectedPerMs * Double(downtimeLimitMs))
    }

    /// C's implicit double → uint64_t conversion: truncation toward zero.
    ///
    /// Values C leaves undefined (NaN, negative, ≥ 2^64) saturate instead of trapping.
    @inline(__always)
    public static func truncate(_ value: Double) -> UInt64 {
        guard value.isFinite, value > 0 else { return 0 }
        guard value < 18_446_744_073_709_551_616.0 else { return .max }
        return UInt64(value)
    }

    /// The integer downtime limits `L` (ms, within QEMU's accepted range) for which
    /// `threshold(expectedPerMs, L) == threshold`. The solution set is contiguous because the
    /// product is monotone in `L`. `nil` when no limit reproduces the threshold.
    public static func downtimeLimits(reproducing threshold: UInt64, expectedPerMs: Double) -> ClosedRange<UInt64>? {
        guard expectedPerMs.isFinite, expectedPerMs > 0 else {
            return threshold == 0 ? 0...maxDowntimeLimitMs : nil
        }
        // Smallest L whose product reaches `target`, by bisection over [0, max + 1].
        func firstLimit(reaching target: UInt64) -> UInt64 {
            var lo: UInt64 = 0
            var hi: UInt64 = maxDowntimeLimitMs + 1
            while lo < hi {
                let mid = lo + (hi - lo) / 2
                if Self.threshold(expectedPerMs: expectedPerMs, downtimeLimitMs: mid) >= target {
                    hi = mid
                } else {
                    lo = mid + 1
                }
            }
            return lo
        }
        let first = firstLimit(reaching: threshold)
        guard first <= maxDowntimeLimitMs,
            Self.threshold(expectedPerMs: expectedPerMs, downtimeLimitMs: first) == threshold
        else { return nil }
        let pastLast = threshold == .max ? maxDowntimeLimitMs + 1 : firstLimit(reaching: threshold + 1)
        return first...min(pastLast - 1, maxDowntimeLimitMs)
    }
}
