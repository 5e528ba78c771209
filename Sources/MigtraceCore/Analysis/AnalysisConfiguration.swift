// SPDX-License-Identifier: Apache-2.0

/// Thresholds of the anomaly rules, each with a documented default (README "Anomaly rules").
public struct RuleThresholds: Sendable, Equatable {
    /// `thread-stall`: a window at least this long (ms) is a warning.
    public var stallWarningMs: UInt64 = 300
    /// `thread-stall`: a window at least this long (ms) is critical.
    public var stallCriticalMs: UInt64 = 1000
    /// `no-progress`: windows sending less than this many bytes (one 4 KiB page) make no progress.
    public var noProgressBytes: UInt64 = 4096
    /// `no-progress`: how long (ms) consecutive no-progress windows must last.
    public var noProgressMinMs: UInt64 = 1000
    /// `bandwidth-shift`: the relative change of bandwidth that counts as a shift (0.30 = 30 %).
    public var shiftFraction: Double = 0.30
    /// `bandwidth-shift`: how long (ms) the new level must last.
    public var shiftMinMs: UInt64 = 1000
    /// `bandwidth-shift`, `threshold-collapse`: how many windows form the baseline.
    public var baselineWindows: Int = 10
    /// `threshold-collapse`: a window below this fraction of the baseline bandwidth (0.25 = 25 %).
    public var collapseFraction: Double = 0.25
    /// `switchover-bandwidth-mismatch`: declared ≥ this × measured (overshoot) or ≤ 1/this (late).
    public var switchoverMismatchRatio: Double = 2.0
    /// `switchover-bandwidth-mismatch`: how long (ms) the mismatch must last.
    public var switchoverMismatchMinMs: UInt64 = 1000
    /// `rate-capped`: windows within this fraction of the median transfer (0.02 = ± 2 %).
    public var rateCapTolerance: Double = 0.02
    /// `rate-capped`: the share of windows that must be at the cap (0.5 = most).
    public var rateCapShare: Double = 0.5
    /// `rate-capped`: how long (ms) the windows looked at must last: a shorter migration is not held back enough
    /// to be worth a finding.
    public var rateCapMinMs: UInt64 = 10_000
    /// `non-convergence`: how long (ms) pending must stay above the threshold without falling.
    public var nonConvergenceMs: UInt64 = 10_000
    /// `trace-integrity`: bandwidth above this (bytes/ms) is impossible (100 GB/s).
    public var impossibleBandwidth: Double = 100_000_000
    /// `trace-integrity`: a gap between windows longer than this many times the window, and ≥ 1 s.
    public var gapFactor: Double = 10

    /// The documented defaults.
    public init() {}
}

/// What the analysis needs to know beyond the events.
public struct AnalysisConfiguration: Sendable, Equatable {
    /// The downtime limit to rebuild thresholds with; `nil` infers it per window.
    public var downtimeLimitMs: UInt64?
    /// Rule thresholds.
    public var thresholds = RuleThresholds()
    /// Rule ids not to run.
    public var disabledRules: Set<String> = []
    /// Keep at most this many diagnostics in memory (all are counted).
    public var maxStoredDiagnostics = 1000
    /// Tell the sink, as they happen, each state change (``LiveEvent/state(_:timeNanoseconds:)``) and the
    /// migration's current assessment after each window and state change (``LiveEvent/migration(_:)``): live
    /// captures. A post-mortem analysis reports both once, with the series.
    public var liveUpdates = false

    /// The defaults: infer the limit, every rule on.
    public init(downtimeLimitMs: UInt64? = nil) {
        self.downtimeLimitMs = downtimeLimitMs
    }
}
