// SPDX-License-Identifier: Apache-2.0

/// How a migration ended, from its `migrate_set_state` events.
public enum MigrationOutcome: String, Sendable, Equatable {
    case completed, cancelled, failed, running, unknown
}

/// Whether pending data is heading below the threshold.
public enum ConvergenceVerdict: String, Sendable, Equatable {
    /// The post-sync pending falls from one dirty sync to the next.
    case converging
    /// The post-sync pending settled at a floor above the threshold.
    case stalled
    /// The post-sync pending grows.
    case diverging
    /// The migration completed.
    case completed
}

/// The switchover decision.
public struct Switchover: Sendable, Equatable {
    /// The last window before the decision, if any.
    public var window: Int?
    /// When, in seconds on the series' time base (the state's timestamp when there is no window).
    public var time: Double?
    /// Pending bytes at the decision.
    public var pendingBytes: UInt64?
    /// The threshold in force (the last window's `max_size`).
    public var thresholdBytes: UInt64?
    /// The event that showed it: `migration_thread_low_pending` or `migrate_set_state`.
    public var event: String
}

/// What to change, with numbers.
public struct ConvergenceAdvice: Sendable, Equatable {
    /// The smallest downtime-limit (ms) whose threshold lies above the pending floor at the measured bandwidth.
    public var downtimeLimitMs: UInt64?
    /// The switchover bandwidth (bytes/s) whose threshold at the current limit lies above the floor.
    public var bandwidthBytesPerSecond: UInt64?
    /// One sentence.
    public var reason: String
}

/// The per-migration answer: will it converge, when, with what downtime, and what to change.
public struct MigrationAssessment: Sendable, Equatable {
    /// The series (index) whose windows belong to this migration; `nil` when it had none.
    public var series: Int?
    /// The input it was read from.
    public var input: Int
    public var outcome: MigrationOutcome
    /// The final verdict; `nil` when the trace has too little to tell.
    public var verdict: ConvergenceVerdict?
    /// Each verdict change, with the window it was made at.
    public var verdictChanges: [(window: Int, verdict: ConvergenceVerdict)]
    /// Seconds from the end of the trace to the switchover while converging, with a range.
    public var etaSeconds: Double?
    public var etaLowSeconds: Double?
    public var etaHighSeconds: Double?
    /// What QEMU 11.1 would report as `expected-downtime` (ms) at the end of the trace.
    public var expectedDowntimeMs: Double?
    /// The downtime measured from state timestamps (ms), when the trace has them.
    public var downtimeMs: Double?
    /// The downtime limit in force at the end (ms), when known.
    public var downtimeLimitMs: UInt64?
    public var switchover: Switchover?
    /// Iterations: dirty syncs (`migration_bitmap_sync_end`, else exact pending events); in a QEMU 11.1 trace the
    /// exact, non-final `qemu_savevm_query_pending` queries, as 11.1 counts them.
    public var iterations: Int
    /// Whether `iterations` counts 11.1's exact pending queries (else dirty syncs).
    public var iterationsAreQueries = false
    /// Post-sync pending levels (the last few), bytes.
    public var postSyncPending: [UInt64]
    /// The dirty rate the syncs imply, bytes/s.
    public var dirtyRateBytesPerSecond: Double?
    /// The latest ratio of post-sync pending levels.
    public var pendingRatio: Double?
    /// The level pending settles at after a sync (the latest level when not converging), bytes.
    public var pendingFloorBytes: UInt64?
    /// Device data that can only move while the VM is stopped (11.1 `stopcopy`), bytes, when known.
    public var stopCopyBytes: UInt64?
    /// Mean bandwidth of the last windows, bytes/s.
    public var bandwidthBytesPerSecond: Double?
    /// The switchover bandwidth QEMU multiplies by the limit (last window), bytes/s.
    public var switchoverBytesPerSecond: Double?
    /// Total bytes sent and total time (ms; windows' sum, or state timestamps when there are no windows).
    public var totalBytes: UInt64
    public var totalTimeMs: Double?
    public var advice: ConvergenceAdvice?
    /// What each VFIO device reported, in order of first appearance.
    public var devices: [DeviceSummary] = []
    /// Device events beyond the first 64 device names (not summarised).
    public var otherDeviceEvents = 0

    public static func == (l: MigrationAssessment, r: MigrationAssessment) -> Bool {
        l.series == r.series && l.input == r.input && l.outcome == r.outcome && l.verdict == r.verdict
            && l.verdictChanges.map(\.window) == r.verdictChanges.map(\.window)
            && l.verdictChanges.map(\.verdict) == r.verdictChanges.map(\.verdict) && l.etaSeconds == r.etaSeconds
            && l.expectedDowntimeMs == r.expectedDowntimeMs && l.downtimeMs == r.downtimeMs
            && l.switchover == r.switchover && l.iterations == r.iterations && l.advice == r.advice
            && l.pendingFloorBytes == r.pendingFloorBytes && l.totalBytes == r.totalBytes && l.devices == r.devices
    }
}
