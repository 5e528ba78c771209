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
    /// `qemu_savevm_query_pending(exact, final, precopy, stopcopy, postcopy, total, ack_pending, total_ack_pending)`
    /// (QEMU ≥ 11.1, replacing `migrate_pending_estimate`/`_exact`); `exact = 1` ends an iteration.
    case qemuSavevmQueryPending = 8

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
        case .qemuSavevmQueryPending: "qemu_savevm_query_pending"
        }
    }
}

extension ProbeKind {
    /// How many numeric arguments QEMU gives the event (a state's string is not counted): what a reader of
    /// positional values (bpftrace lines, simpletrace records) checks a record against.
    public var argumentCounts: [Int] {
        switch self {
        case .migrateTransferred: [4, 5]
        case .migratePendingEstimate, .migratePendingExact: [3]
        case .migratePending: [5]
        case .qemuSavevmQueryPending: [8]
        case .migrationThreadLowPending, .bitmapSyncEnd: [1]
        case .bitmapSyncStart, .migrateSetState: [0]
        }
    }
}

/// Up to eight raw probe arguments, stored inline so that an event never allocates.
///
/// Slots 0–5 hold 64 bits, slots 6 and 7 hold 32: the one probe with more than six arguments,
/// `qemu_savevm_query_pending`, passes `uint32_t` values there, and the narrower slots keep ``TraceEvent`` at
/// 96 bytes. ``fits(_:at:)`` says whether a value can be stored; readers reject an event whose value cannot.
public struct ProbeArguments: Sendable, Equatable {
    /// The most arguments an event keeps.
    public static let capacity = 8
    public var a0: UInt64, a1: UInt64, a2: UInt64, a3: UInt64, a4: UInt64, a5: UInt64
    public var a6: UInt32, a7: UInt32
    @usableFromInline var storedCount: UInt8

    /// How many of the slots are meaningful (0...8).
    public var count: Int {
        @inline(__always) get { Int(storedCount) }
    }

    /// Arguments from explicit values; slots past `count` are zero.
    @inlinable
    public init(
        count: Int, _ a0: UInt64 = 0, _ a1: UInt64 = 0, _ a2: UInt64 = 0, _ a3: UInt64 = 0, _ a4: UInt64 = 0,
        _ a5: UInt64 = 0, _ a6: UInt32 = 0, _ a7: UInt32 = 0
    ) {
        precondition((0...Self.capacity).contains(count), "a probe has at most eight arguments")
        storedCount = UInt8(truncatingIfNeeded: count)
        self.a0 = a0
        self.a1 = a1
        self.a2 = a2
        self.a3 = a3
        self.a4 = a4
        self.a5 = a5
        self.a6 = a6
        self.a7 = a7
    }

    /// Arguments from an array (tests and slow paths); at most eight values, each fitting its slot.
    public init(_ values: [UInt64]) {
        precondition(values.count <= Self.capacity, "a probe has at most eight arguments")
        self.init(count: values.count)
        for (i, v) in values.enumerated() { self[i] = v }
    }

    /// Whether `value` fits slot `index` (slots 6 and 7 hold 32 bits).
    @inline(__always)
    public static func fits(_ value: UInt64, at index: Int) -> Bool {
        index < 6 || value <= UInt64(UInt32.max)
    }

    /// Slot `i` (0-based); a value stored in slot 6 or 7 must fit in 32 bits.
    public subscript(i: Int) -> UInt64 {
        get {
            switch i {
            case 0: a0
            case 1: a1
            case 2: a2
            case 3: a3
            case 4: a4
            case 5: a5
            case 6: UInt64(a6)
            case 7: UInt64(a7)
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
            case 5: a5 = newValue
            case 6, 7:
                guard let v = UInt32(exactly: newValue) else { preconditionFailure("argument \(i) holds 32 bits") }
                if i == 6 { a6 = v } else { a7 = v }
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
    @inlinable
    public init(input: Int, line: UInt64) {
        self.input = input
        self.line = line
    }

    /// The origin used for events captured live.
    public static let live = EventOrigin(input: 0, line: 0)
}

/// One trace event: the probe's raw values exactly as QEMU passed them, plus where and when it fired.
///
/// Every field is stored inline (optionals as flag bits, the state as ``MigrationState``), so that an event
/// holds no reference: readers store batches of them and the analyzer reads them in place, with no reference
/// counting per event.
public struct TraceEvent: Sendable, Equatable {
    @usableFromInline static let hasTimestamp: UInt8 = 1
    @usableFromInline static let hasThread: UInt8 = 2
    @usableFromInline static let hasProcess: UInt8 = 4

    // Field order is layout: the one-byte fields fill the tail of `arguments` (57 bytes), so that the stride is
    // 96 bytes with eight arguments.
    /// The raw probe arguments, unconverted (4 or 5 for `migrate_transferred`).
    public var arguments: ProbeArguments
    /// Which event fired.
    public var kind: ProbeKind
    /// The clock `timestampNanoseconds` is on.
    public var clock: ClockKind
    @usableFromInline var flags: UInt8
    /// The new state for `migrate_set_state`; `nil` for every other event.
    public var state: MigrationState?
    // 32 bits for the input's index (a count of command-line files), the thread and the process.
    @usableFromInline var input32: UInt32
    @usableFromInline var thread: UInt32
    @usableFromInline var process: UInt32
    /// How many earlier events of the same kind and thread this one stands for, dropped by the reader because
    /// this one overwrote them before any window could read them (consecutive pending estimates); counted as events.
    public var repeats: UInt32
    @usableFromInline var timestamp: UInt64
    @usableFromInline var line: UInt64

    /// An event with every field given.
    @inlinable
    public init(
        kind: ProbeKind, arguments: ProbeArguments, timestampNanoseconds: UInt64? = nil, clock: ClockKind = .wall,
        threadID: UInt32? = nil, processID: UInt32? = nil, state: MigrationState? = nil, origin: EventOrigin = .live
    ) {
        self.kind = kind
        self.arguments = arguments
        self.clock = clock
        self.state = state
        precondition(origin.input >= 0 && origin.input <= Int(UInt32.max), "input index out of range")
        input32 = UInt32(truncatingIfNeeded: origin.input)
        line = origin.line
        timestamp = timestampNanoseconds ?? 0
        thread = threadID ?? 0
        process = processID ?? 0
        repeats = 0
        flags =
            (timestampNanoseconds == nil ? 0 : Self.hasTimestamp) | (threadID == nil ? 0 : Self.hasThread)
            | (processID == nil ? 0 : Self.hasProcess)
    }

    /// Nanoseconds on `clock`, when the source gives a time; `nil` for logs without a prefix.
    public var timestampNanoseconds: UInt64? {
        @inlinable get { flags & Self.hasTimestamp != 0 ? timestamp : nil }
        set {
            timestamp = newValue ?? 0
            flags = newValue == nil ? flags & ~Self.hasTimestamp : flags | Self.hasTimestamp
        }
    }

    /// Thread id of the firing thread (the migration thread), when known.
    public var threadID: UInt32? {
        @inlinable get { flags & Self.hasThread != 0 ? thread : nil }
        set {
            thread = newValue ?? 0
            flags = newValue == nil ? flags & ~Self.hasThread : flags | Self.hasThread
        }
    }

    /// Process id, when known.
    public var processID: UInt32? {
        @inlinable get { flags & Self.hasProcess != 0 ? process : nil }
        set {
            process = newValue ?? 0
            flags = newValue == nil ? flags & ~Self.hasProcess : flags | Self.hasProcess
        }
    }

    /// File and line, or live.
    public var origin: EventOrigin {
        @inlinable get { EventOrigin(input: Int(input32), line: line) }
        set {
            precondition(newValue.input >= 0 && newValue.input <= Int(UInt32.max), "input index out of range")
            input32 = UInt32(truncatingIfNeeded: newValue.input)
            line = newValue.line
        }
    }

    /// Whether `next` may stand for this event too (it would overwrite it, and nothing reads it in between):
    /// a pending event of the same kind, input and thread, with a timestamp and thread and nothing else optional.
    @inlinable
    package func mayFold(into next: TraceEvent) -> Bool {
        kind == next.kind && thread == next.thread && input32 == next.input32 && flags == next.flags
            && flags == Self.hasTimestamp | Self.hasThread && state == nil && next.state == nil
    }

    /// Fold this event into `next`'s values: it now stands for itself, the events it stood for, and `next`.
    @inlinable
    package mutating func fold(_ next: TraceEvent) {
        let earlier = repeats
        self = next
        repeats = earlier &+ 1
    }
}
