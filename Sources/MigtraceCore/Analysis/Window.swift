// SPDX-License-Identifier: Apache-2.0

/// One `migrate_transferred` window: the raw values QEMU traced, and what migtrace rebuilt from them.
public struct AnalyzedWindow: Sendable, Equatable {
    /// Index of the series this window belongs to.
    public var series: Int
    /// 0-based index within the series.
    public var index: Int
    /// Where the event came from.
    public var origin: EventOrigin
    /// Thread id of the migration thread, when known.
    public var threadID: UInt32?
    /// Window start and end on the series' time base, in seconds.
    public var startTime: Double
    public var endTime: Double
    /// Arg 1: bytes sent during the window.
    public var transferred: UInt64
    /// Arg 2: window length in ms.
    public var timeSpentMs: UInt64
    /// Arg 3 as traced (bytes/ms in eras A/B, Mbit/s in era C).
    public var bandwidthTraced: UInt64
    /// Arg 4 as traced (era B/C), `nil` for era A.
    public var switchoverTraced: UInt64?
    /// The last argument as traced: `max_size`, i.e. QEMU's threshold_size in bytes.
    public var thresholdTraced: UInt64
    /// The era this window fits; `nil` when it fits none.
    public var era: ProbeEra?
    /// `(double)transferred / time_spent`, bytes/ms, exactly as QEMU computed it.
    public var bandwidth: Double
    /// `s->mbps`, Mbit/s, exactly as QEMU computed it.
    public var mbps: Double
    /// Whether arg 3 equals the truncation of the rebuilt bandwidth (or Mbit/s in era C).
    public var bandwidthTracedExact: Bool
    /// The rebuilt threshold and the limit behind it.
    public var rebuild: ThresholdRebuild
    /// Sum of `transferred` over the series so far, this window included.
    public var cumulativeBytes: UInt64
    /// The last pending size QEMU traced during this window, if the trace has pending events.
    public var pendingBytes: UInt64?
    /// Whether `pendingBytes` came from an exact (post-bitmap-sync) pending event.
    public var pendingExact: Bool
    /// The parts of `pendingBytes`, when the pending event gives them apart (`qemu_savevm_query_pending`, 11.1).
    public var pendingSplit: PendingSplit? = nil

    /// The window's bandwidth in MB/s (10^6 bytes per second).
    public var megabytesPerSecond: Double { bandwidth / 1000 }
    /// The traced threshold in MB (10^6 bytes).
    public var thresholdMegabytes: Double { Double(thresholdTraced) / 1_000_000 }
    /// Where the window lies: all a finding needs of the windows it spans.
    @inline(__always) public var mark: WindowMark { WindowMark(index: index, startTime: startTime, endTime: endTime) }
}

/// QEMU 11.1's pending data by kind (`qemu_savevm_query_pending`): their sum is the total QEMU compares with the
/// threshold.
public struct PendingSplit: Sendable, Equatable {
    /// Data that can move while the VM runs (RAM's dirty pages, a device's precopy data), bytes.
    public var precopy: UInt64
    /// Device data (VFIO) that can only move while the VM is stopped: iterating never shrinks it, bytes.
    public var stopcopy: UInt64
    /// Data that may move after a switch to postcopy, bytes.
    public var postcopy: UInt64

    /// A split of `precopy + stopcopy + postcopy` bytes.
    public init(precopy: UInt64, stopcopy: UInt64, postcopy: UInt64) {
        self.precopy = precopy
        self.stopcopy = stopcopy
        self.postcopy = postcopy
    }
}

/// A window's place in its series and in time: what rules keep of a window they only report on, so
/// that remembering a window costs 24 bytes instead of a copy of the whole ``AnalyzedWindow``.
public struct WindowMark: Sendable, Equatable {
    /// 0-based index within the series.
    public var index: Int
    /// Window start and end on the series' time base, in seconds.
    public var startTime: Double
    public var endTime: Double

    /// A mark at `index` spanning `startTime`...`endTime`.
    public init(index: Int, startTime: Double, endTime: Double) {
        self.index = index
        self.startTime = startTime
        self.endTime = endTime
    }
}

/// How a series' times are expressed.
public enum TimeBase: String, Sendable, Equatable {
    /// Seconds since the Unix epoch, from the trace's own timestamps.
    case epoch
    /// Seconds since the start of the series, from the sum of `time_spent` (the trace has no timestamps).
    case relative
    /// Seconds of CLOCK_MONOTONIC (live capture without a wall-clock offset).
    case monotonic
}

/// What identifies a series and what was learnt about it.
public struct SeriesInfo: Sendable, Equatable {
    /// 0-based index, in order of first window.
    public var index: Int
    /// Index of the input it was read from.
    public var input: Int
    /// Migration thread id, when the trace gives it.
    public var threadID: UInt32?
    /// Process id, when known.
    public var processID: UInt32?
    /// The series' era (the first window that fits one unambiguously decides).
    public var era: ProbeEra?
    /// How `startTime`/`endTime` are expressed.
    public var timeBase: TimeBase
}

/// What a series amounted to, for the summary.
public struct SeriesSummary: Sendable, Equatable {
    public var info: SeriesInfo
    /// Number of windows.
    public var windows: Int
    /// Windows whose rebuilt threshold equals the traced one.
    public var exactThresholds: Int
    /// Windows whose traced bandwidth equals the rebuilt truncation.
    public var exactBandwidths: Int
    /// Total bytes (sum of `transferred`).
    public var totalBytes: UInt64
    /// Sum of `time_spent`, ms.
    public var totalTimeMs: UInt64
    /// First window start and last window end, on the series' time base.
    public var startTime: Double
    public var endTime: Double
    /// Each downtime limit in force, with the first window it applied to.
    public var downtimeLimits: [(window: Int, limitMs: UInt64)]
    /// The last migration state seen (`completed`, `cancelled`, `failed`, …), if the trace has state events.
    public var finalState: String?
    /// The assessment of the migration this series belongs to (Convergence/), when the trace lets one be made.
    public var assessment: MigrationAssessment?
    /// Mean bandwidth over the series, bytes/ms (`totalBytes / totalTimeMs`).
    public var meanBandwidth: Double { totalTimeMs == 0 ? 0 : Double(totalBytes) / Double(totalTimeMs) }

    public static func == (l: SeriesSummary, r: SeriesSummary) -> Bool {
        l.info == r.info && l.windows == r.windows && l.exactThresholds == r.exactThresholds
            && l.totalBytes == r.totalBytes && l.totalTimeMs == r.totalTimeMs && l.finalState == r.finalState
            && l.downtimeLimits.map(\.window) == r.downtimeLimits.map(\.window)
            && l.downtimeLimits.map(\.limitMs) == r.downtimeLimits.map(\.limitMs)
    }
}

/// A line or event that could not be used, with its place and the reason.
public struct Diagnostic: Sendable, Equatable {
    /// Index of the input.
    public var input: Int
    /// 1-based line number (0 for live events).
    public var line: UInt64
    /// Why it was rejected.
    public var reason: String

    /// A diagnostic at `input`:`line`.
    public init(input: Int, line: UInt64, reason: String) {
        self.input = input
        self.line = line
        self.reason = reason
    }
}
