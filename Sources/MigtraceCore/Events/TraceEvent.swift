// SPDX-License-Identifier: Apache-2.0

/// The QEMU trace events migtrace understands, whether read from a log file or a live USDT probe.
///
/// Raw values follow `migration/trace-events`; the numeric raw value is also the probe id (USDT cookie)
/// used by the BPF program, so it must stay stable.
public enum ProbeKind: UInt8, Sendable, CaseIterable {
    /// `migrate_transferred`: one rate-limit window (≥ 100 ms) of the migration thread.
    case migrateTransferred = 0
    /// `migrate_pending_estimate(size, pre, post)` (QEMU ≥ 8.0).
    case migratePendingEstimate = 1
    /// `migrate_pending_exact(size, pre, post)` (QEMU ≥ 8.0); each implies a RAM bitmap sync.
    case migratePendingExact = 2
    /// `migrate_pending(size, max, pre, compat, post)` (QEMU < 8.0); `max` is the threshold.
    case migratePending = 3
    /// `migration_thread_low_pending(pending)`: the switchover decision.
    case migrationThreadLowPending = 4
    /// `migration_bitmap_sync_start()`.
    case bitmapSyncStart = 5
    /// `migration_bitmap_sync_end(dirty_pages)`.
    case bitmapSyncEnd = 6
    /// `migrate_set_state(new_state)`: carries a string, kept in ``TraceEvent/state``.
    case migrateSetState = 7

    /// The event name as QEMU spells it.
    public var eventName: String {
        switch self {
        case .migrateTransferred: "migrate_transferred"
        case .migratePendingEstimate: "migrate_pending_estimate"
        case .migratePendingExact: "migrate_pending_exact"
        case .migratePending: "migrate_pending"
        case .migrationThreadLowPending: "migration_thread_low_pending"
        case .bitmapSyncStart: "migration_bitmap_sync_start"
        case .bitmapSyncEnd: "migration_bitmap_sync_end"
        case .migrateSetState: "migrate_set_state"
        }
    }
}

/// Up to five raw unsigned 64-bit probe arguments, stored inline so that an event never allocates.
public struct ProbeArguments: Sendable, Equatable {
    /// How many of the five slots are meaningful (0...5).
    public var count: Int
    public var a0: UInt64, a1: UInt64, a2: UInt64, a3: UInt64, a4: UInt64

    /// Arguments from explicit values; slots past `count` are zero.
    public init(count: Int, _ a0: UInt64 = 0, _ a1: UInt64 = 0, _ a2: UInt64 = 0, _ a3: UInt64 = 0, _ a4: UInt64 = 0) {
        precondition((0...5).contains(count), "a probe has at most five arguments")
        self.count = count
        self.a0 = a0
        self.a1 = a1
        self.a2 = a2
        self.a3 = a3
        self.a4 = a4
    }

    /// Arguments from an array (tests and slow paths); at most five values.
    public init(_ values: [UInt64]) {
        precondition(values.count <= 5, "a probe has at most five arguments")
        self.init(count: values.count)
        for (i, v) in values.enumerated() { self[i] = v }
    }

    /// Slot `i` (0-based).
    public subscript(i: Int) -> UInt64 {
        get {
            switch i {
            case 0: a0
            case 1: a1
            case 2: a2
            case 3: a3
            case 4: a4
            default: preconditionFailure("argument index \(i) out of range")
            }
        }
        set {
            switch i {
            case 0: a0 = newValue
            case 1: a1 = newValue
            case 2: a2 = newValue
            case 3: a3 = newValue
            case 4: a4 = newValue
            default: preconditionFailure("argument index \(i) out of range")
            }
        }
    }

    /// The meaningful values as an array.
    public var values: [UInt64] { (0..<count).map { self[$0] } }
}

/// What kind of clock a timestamp was read from.
public enum ClockKind: UInt8, Sendable {
    /// Wall-clock time, nanoseconds since the Unix epoch (log prefixes, converted live timestamps).
    case wall
    /// CLOCK_MONOTONIC nanoseconds (live BPF timestamps without a known offset, simpletrace).
    case monotonic
}

/// Where an event came from: a line of an input file, or a live probe.
public struct EventOrigin: Sendable, Equatable {
    /// Index into the list of inputs (0 for the first file, or the live session).
    public var input: Int
    /// 1-based line number in that input; 0 when the event was not read from a line (live).
    public var line: UInt64

    /// An origin at `line` of input number `input`.
    public init(input: Int, line: UInt64) {
        self.input = input
        self.line = line
    }

    /// The origin used for events captured live.
    public static let live = EventOrigin(input: 0, line: 0)
}

/// One trace event: the probe's raw values exactly as QEMU passed them, plus where and when it fired.
public struct TraceEvent: Sendable, Equatable {
    /// Which event fired.
    public var kind: ProbeKind
    /// The raw probe arguments, unconverted (4 or 5 for `migrate_transferred`).
    public var arguments: ProbeArguments
    /// Nanoseconds on `clock`, when the source gives a time; `nil` for logs without a prefix.
    public var timestampNanoseconds: UInt64?
    /// The clock `timestampNanoseconds` is on.
    public var clock: ClockKind
    /// Thread id of the firing thread (the migration thread), when known.
    public var threadID: UInt32?
    /// Process id, when known.
    public var processID: UInt32?
    /// The new state for `migrate_set_state`; `nil` for every other event.
    public var state: String?
    /// File and line, or live.
    public var origin: EventOrigin

    /// An event with every field given.
    public init(
        kind: ProbeKind, arguments: ProbeArguments, timestampNanoseconds: UInt64? = nil, clock: ClockKind = .wall,
        threadID: UInt32? = nil, processID: UInt32? = nil, state: String? = nil, origin: EventOrigin = .live
    ) {
        self.kind = kind
        self.arguments = arguments
        self.timestampNanoseconds = timestampNanoseconds
        self.clock = clock
        self.threadID = threadID
        self.processID = processID
        self.state = state
        self.origin = origin
    }
}
