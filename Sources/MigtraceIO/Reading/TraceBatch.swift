// SPDX-License-Identifier: Apache-2.0

import MigtraceCore

#if canImport(Glibc)
    import Glibc
#endif

/// Parsed lines handed to the analyzer at once: the events, and each diagnostic with how many of the
/// events came before it, so that the analyzer sees them in the order of the lines.
///
/// The events live in memory the batch manages itself (kept alive by ``TraceEventStorage``): appending or
/// folding one is a plain store, and emptying the batch for reuse visits none (``TraceEvent`` is trivial).
struct TraceBatch: @unchecked Sendable {
    // SAFETY: @unchecked Sendable because of `base`, which points into `storage`. A batch is moved between
    // threads, never shared (see BatchPipe): only one thread at a time reads or writes its events. A copy of
    // a batch shares its events (unlike an array), so a batch is never copied and then mutated through both.

    /// A diagnostic and its place among the batch's events.
    struct Rejection: Sendable {
        var eventsBefore: Int
        var diagnostic: Diagnostic
    }

    /// A VFIO device event and its place among the batch's events.
    struct Device: Sendable {
        var eventsBefore: Int
        var event: DeviceEvent
    }

    /// Owns the events' memory: `base` is `storage.base`, cached here so that appending loads no class field.
    private var storage: TraceEventStorage
    private var base: UnsafeMutablePointer<TraceEvent>
    private var capacity: Int
    /// How many events the batch holds.
    private(set) var eventCount = 0
    /// The least `eventCount` at which the last event may be folded into: an event after the last diagnostic.
    private var firstFoldable = 1
    var rejections = ContiguousArray<Rejection>()
    /// Device events (rare: a few per iteration), in line order like the diagnostics.
    var devices = ContiguousArray<Device>()

    init() {
        self.init(eventCapacity: 0)
    }

    init(capacity: Int) {
        self.init(eventCapacity: capacity)
        rejections.reserveCapacity(64)
    }

    private init(eventCapacity: Int) {
        storage = TraceEventStorage(capacity: eventCapacity)
        base = storage.base
        capacity = eventCapacity
    }

    /// The events, valid while the batch lives and is not changed.
    var events: UnsafeBufferPointer<TraceEvent> { UnsafeBufferPointer(start: base, count: eventCount) }

    var count: Int { eventCount &+ rejections.count &+ devices.count }

    mutating func reject(_ diagnostic: Diagnostic) {
        rejections.append(Rejection(eventsBefore: eventCount, diagnostic: diagnostic))
        firstFoldable = eventCount &+ 1
    }

    /// Store a device event after the others; no pending event folds across it.
    mutating func append(_ device: DeviceEvent) {
        devices.append(Device(eventsBefore: eventCount, event: device))
        firstFoldable = eventCount &+ 1
    }

    /// Store `event` after the others.
    @inline(__always)
    mutating func append(_ event: TraceEvent) {
        if eventCount == capacity { grow() }
        (base + eventCount).initialize(to: event)
        eventCount &+= 1
    }

    /// Make room for more events: rare, a batch is created with room for its capacity.
    @inline(never)
    private mutating func grow() {
        capacity = Swift.max(16, capacity &* 2)
        base = storage.replace(capacity: capacity, keeping: eventCount)
    }

    /// Add an event the fast path read: wall-clock timestamp and thread id, nothing else optional.
    ///
    /// A pending estimate right after another of the same kind from the same thread replaces it, counted in
    /// its `repeats`: the analyzer keeps only a thread's latest estimate (a window reads it), so the earlier one
    /// would only be copied to the other thread to be overwritten there. QEMU traces four or five per window.
    @inline(__always)
    mutating func append(_ line: FastLine, lineNumber: UInt64, input: Int) {
        let event = TraceEvent(
            kind: line.kind, arguments: line.arguments, timestampNanoseconds: line.timestamp, clock: .wall, threadID: line.thread,
            origin: EventOrigin(input: input, line: lineNumber))
        if line.kind != .migrateTransferred, eventCount >= firstFoldable {
            let last = base + (eventCount &- 1)
            if last.pointee.mayFold(into: event) {
                last.pointee.fold(event)
                return
            }
        }
        append(event)
    }

    /// The event at `index`.
    @inline(__always)
    func event(_ index: Int) -> TraceEvent {
        precondition(index >= 0 && index < eventCount, "event index out of range")
        return base[index]
    }

    /// Feed everything to `analyzer` in line order; the analyzer reads each event in place.
    func deliver(to analyzer: MigrationAnalyzer) {
        walk({ analyzer.consume(base[$0]) }, analyzer.reject, { analyzer.consume($0) })
    }

    /// Pass each event to `event` and each diagnostic to `rejection`, in the order of their lines (a
    /// folded pending event once, as the last of its run).
    @inline(__always)
    func inLineOrder(_ event: (TraceEvent) -> Void, _ rejection: (Diagnostic) -> Void, _ device: (DeviceEvent) -> Void = { _ in }) {
        walk({ event(self.base[$0]) }, rejection, device)
    }

    /// Pass each event's index to `event` and each diagnostic to `rejection`, in the order of their lines.
    @inline(__always)
    private func walk(_ event: (Int) -> Void, _ rejection: (Diagnostic) -> Void, _ device: (DeviceEvent) -> Void) {
        var next = 0
        var d = 0
        for r in rejections {
            // Device events before this diagnostic's line, with the events before them.
            while d < devices.count,
                devices[d].eventsBefore < r.eventsBefore
                    || (devices[d].eventsBefore == r.eventsBefore && devices[d].event.origin.line < r.diagnostic.line)
            {
                while next < devices[d].eventsBefore {
                    event(next)
                    next &+= 1
                }
                device(devices[d].event)
                d &+= 1
            }
            while next < r.eventsBefore {
                event(next)
                next &+= 1
            }
            rejection(r.diagnostic)
        }
        while d < devices.count {
            while next < devices[d].eventsBefore {
                event(next)
                next &+= 1
            }
            device(devices[d].event)
            d &+= 1
        }
        while next < eventCount {
            event(next)
            next &+= 1
        }
    }

    /// Empty it for reuse, keeping its storage so that the steady state allocates nothing.
    mutating func removeAll() {
        eventCount = 0  // TraceEvent is trivial: nothing to deinitialize
        firstFoldable = 1
        rejections.removeAll(keepingCapacity: true)
        devices.removeAll(keepingCapacity: true)
    }
}

/// The memory of one ``TraceBatch``'s events, freed with the last copy of the batch.
final class TraceEventStorage {
    private(set) var base: UnsafeMutablePointer<TraceEvent>

    init(capacity: Int) {
        base = UnsafeMutablePointer<TraceEvent>.allocate(capacity: capacity)
    }

    /// Move the first `count` events to new memory for `capacity` events and return it.
    func replace(capacity: Int, keeping count: Int) -> UnsafeMutablePointer<TraceEvent> {
        let moved = UnsafeMutablePointer<TraceEvent>.allocate(capacity: capacity)
        moved.moveInitialize(from: base, count: count)
        base.deallocate()
        base = moved
        return moved
    }

    deinit {
        base.deallocate()  // TraceEvent is trivial: its events need no deinitialization
    }
}
