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
/// Two layouts share 51 bytes, so that ``TraceEvent`` stays at 88 bytes. Up to five arguments (every probe but one)
/// are `a0`…`a4`, 64 bits each. Six to eight (`qemu_savevm_query_pending`: two bools, four 64-bit sizes, two
/// `uint32_t` counts) keep slots 0–1 in a byte each, slots 2–5 in `a0`…`a3` and slots 6–7 in 32 bits: read and
/// write those through the subscript. ``fits(_:at:of:)`` says whether a value can be stored; readers reject an event
/// whose value cannot.
public struct ProbeArguments: Sendable, Equatable {
    /// The most arguments an event keeps.
    public static let capacity = 8
    /// Slots 0–4 of an event of up to five arguments (slots 2–5 of a wider one).
    public var a0: UInt64, a1: UInt64, a2: UInt64, a3: UInt64, a4: UInt64
    @usableFromInline var w6: UInt32, w7: UInt32
    @usableFromInline var b0: UInt8, b1: UInt8
    @usableFromInline var storedCount: UInt8

    /// How many of the slots are meaningful (0...8).
    public var count: Int {
        @inline(__always) get { Int(storedCount) }
    }

    /// Up to five arguments; slots past `count` are zero.
    @inlinable
    public init(count: Int, _ a0: UInt64 = 0, _ a1: UInt64 = 0, _ a2: UInt64 = 0, _ a3: UInt64 = 0, _ a4: UInt64 = 0) {
        precondition((0...5).contains(count), "ProbeArguments(count:_:…) takes at most five arguments")
        storedCount = UInt8(truncatingIfNeeded: count)
        self.a0 = a0
        self.a1 = a1
        self.a2 = a2
        self.a3 = a3
        self.a4 = a4
        w6 = 0
        w7 = 0
        b0 = 0
        b1 = 0
    }

    /// Eight arguments (`qemu_savevm_query_pending`): slots 0–1 at most 255, slots 6–7 32-bit.
    @inlinable
    public init(
        eight s0: UInt64, _ s1: UInt64, _ s2: UInt64, _ s3: UInt64, _ s4: UInt64, _ s5: UInt64, _ s6: UInt32, _ s7: UInt32
    ) {
        precondition(s0 <= 0xff && s1 <= 0xff, "slots 0 and 1 of an 8-argument event hold a byte")
        storedCount = 8
        b0 = UInt8(truncatingIfNeeded: s0)
        b1 = UInt8(truncatingIfNeeded: s1)
        a0 = s2
        a1 = s3
        a2 = s4
        a3 = s5
        a4 = 0
        w6 = s6
        w7 = s7
    }

    /// Arguments from an array (tests and slow paths); at most eight values, each one fitting its slot.
    public init(_ values: [UInt64]) {
        precondition(values.count <= Self.capacity, "a probe has at most eight arguments")
        self.init(count: 0)
        storedCount = UInt8(truncatingIfNeeded: values.count)
        for (i, v) in values.enumerated() { self[i] = v }
    }

    /// Whether `value` fits slot `index` of an event of `count` arguments.
    @inline(__always)
    public static func fits(_ value: UInt64, at index: Int, of count: Int) -> Bool {
        value <= limit(at: index, of: count)
    }

    /// The largest value slot `index` of an event of `count` arguments holds.
    @inline(__always)
    public static func limit(at index: Int, of count: Int) -> UInt64 {
        count <= 5 || (index >= 2 && index < 6) ? .max : index < 2 ? 0xff : UInt64(UInt32.max)
    }

    /// Slot `i` (0-based) of `count`; a value stored must fit it (``fits(_:at:of:)``).
    public subscript(i: Int) -> UInt64 {
        get {
            if storedCount <= 5 {
                switch i {
                case 0: return a0
                case 1: return a1
                case 2: return a2
                case 3: return a3
                case 4: return a4
                case 5, 6, 7: return 0
                default: preconditionFailure("argument index \(i) out of range")
                }
            }
            switch i {
            case 0: return UInt64(b0)
            case 1: return UInt64(b1)
            case 2: return a0
            case 3: return a1
            case 4: return a2
            case 5: return a3
            case 6: return UInt64(w6)
            case 7: return UInt64(w7)
            default: preconditionFailure("argument index \(i) out of range")
            }
        }
        set {
            precondition(Self.fits(newValue, at: i, of: count), "argument \(i) of \(count) does not hold \(newValue)")
            if storedCount <= 5 {
                switch i {
                case 0: a0 = newValue
                case 1: a1 = newValue
                case 2: a2 = newValue
                case 3: a3 = newValue
                case 4: a4 = newValue
                default: preconditionFailure("argument index \(i) out of range for \(count) arguments")
                }
                return
            }
            switch i {
            case 0: b0 = UInt8(truncatingIfNeeded: newValue)
            case 1: b1 = UInt8(truncatingIfNeeded: newValue)
            case 2: a0 = newValue
            case 3: a1 = newValue
            case 4: a2 = newValue
            case 5: a3 = newValue
            case 6: w6 = UInt32(truncatingIfNeeded: newValue)
            case 7: w7 = UInt32(truncatingIfNeeded: newValue)
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

    // Field order is layout: the one-byte fields fill the tail of `arguments` (51 bytes), so that the stride stays
    // at 88 bytes with eight arguments.
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
