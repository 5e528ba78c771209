// SPDX-License-Identifier: Apache-2.0

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Converts `bpf_ktime_get_ns()` timestamps (CLOCK_MONOTONIC) to wall-clock time.
public enum MonotonicClock {
    /// Current CLOCK_MONOTONIC time in nanoseconds (the clock of `bpf_ktime_get_ns`).
    public static func monotonicNanoseconds() -> UInt64 { read(CLOCK_MONOTONIC) }

    /// Current CLOCK_REALTIME time in nanoseconds since the Unix epoch.
    public static func realtimeNanoseconds() -> UInt64 { read(CLOCK_REALTIME) }

    /// CLOCK_REALTIME minus CLOCK_MONOTONIC, in nanoseconds: add it to a monotonic timestamp to get wall time.
    ///
    /// Takes the tightest of several realtime/monotonic/realtime samples, so the error is at most half the
    /// narrowest bracket (typically well under a microsecond). The offset changes when the wall clock is stepped
    /// (NTP, `date -s`); recompute it for long sessions.
    public static func realtimeOffsetNanoseconds(samples: Int = 8) -> Int64 {
        var best: (width: UInt64, offset: Int64) = (.max, 0)
        for _ in 0..<max(1, samples) {
            let r1 = realtimeNanoseconds()
            let m = monotonicNanoseconds()
            let r2 = realtimeNanoseconds()
            guard r2 >= r1 else { continue }  // wall clock stepped backwards mid-sample
            let width = r2 - r1
            if width < best.width {
                let mid = r1 + width / 2
                best = (width, Int64(bitPattern: mid &- m))
            }
        }
        return best.offset
    }

    /// Wall-clock nanoseconds for a monotonic timestamp, given ``realtimeOffsetNanoseconds(samples:)``.
    public static func wallNanoseconds(monotonic: UInt64, offset: Int64) -> UInt64 {
        UInt64(bitPattern: Int64(bitPattern: monotonic) &+ offset)
    }

    private static func read(_ clock: clockid_t) -> UInt64 {
        var ts = timespec()
        clock_gettime(clock, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
