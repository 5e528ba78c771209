// SPDX-License-Identifier: Apache-2.0

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The kinds of trace file migtrace reads.
public enum TraceFileFormat: String, Sendable {
    /// QEMU's log trace backend (text), possibly mixed with other lines.
    case qemuLog = "qemu-log"
    /// migtrace's own recording (JSON Lines).
    case recording
}

/// Streams a trace from a file descriptor into an analyzer: fixed-size buffer, byte-level line
/// splitting, no per-line allocation for lines that are not migration events.
///
/// An input larger than one read chunk is read as a two-stage pipeline: a producer thread reads, splits and
/// parses it into batches of events, and the calling thread feeds them to the analyzer, in the same order
/// and with the same results as reading it on one thread. Smaller inputs never start a thread.
public struct TraceReader {
    /// Lines longer than this are skipped with a diagnostic (a QEMU trace line is ~120 bytes).
    public static let maxLineLength = 64 * 1024
    static let chunkSize = 1 << 20
    /// Events and diagnostics per batch: ~500 KB of events, enough that handing a batch over costs nothing
    /// per line, small enough that the batches in flight (~2 MB) stay in the shared cache and memory stays flat.
    static let batchCapacity = 4096
    /// Batches of one threaded read: one being parsed into, the others waiting or being analysed. With
    /// three busy threads on two cores a thread is often descheduled for a time slice (a few ms); the
    /// queue must hold more than that much work, or the others stop too (4 batches: ≈ 0.25 ms of work,
    /// and 10–15 % more wall time). 16 batches hold ≈ 6 MB.
    static let batchesInFlight = 16

    /// What reading one input found.
    public struct Statistics: Sendable, Equatable {
        public var format: TraceFileFormat = .qemuLog
        public var lines: UInt64 = 0
        public var events: UInt64 = 0
        public var rejected: UInt64 = 0
        public var bytes: UInt64 = 0
        /// The recording's header, for recordings.
        public var header: RecordingFormat.Header?
        /// The recording's closing reason, if it has one (a killed recorder leaves none).
        public var endReason: String?
        /// Loss counts the recording reported.
        public var kernelDrops: UInt64 = 0
        public var consumerDrops: UInt64 = 0
        /// What the input is when it was not analysed because it is no trace (``InputKind/refusal`` says why).
        public var refused: InputKind?
    }

    /// An error reading the input itself (not its content).
    public struct ReadError: Error, CustomStringConvertible {
        public var errno: Int32
        public var description: String { "read failed: \(String(cString: strerror(errno)))" }
    }

    /// Read `fd` to its end, feeding `analyzer`. `input` numbers the events' origins.
    public static func read(fd: Int32, input: Int, into analyzer: MigrationAnalyzer) throws(ReadError) -> Statistics {
        try run(fd: fd, input: input, into: analyzer, tuning: Tuning()).statistics
    }

    /// Knobs of one read; the defaults are what ``read(fd:input:into:)`` uses, tests change them.
    struct Tuning {
        var batchCapacity = TraceReader.batchCapacity
        /// Stop after handing this many batches to the analyzer, as a consumer that leaves early would.
        var stopAfterBatches: Int?
    }

    /// How one read went: its statistics (partial when stopped) and whether a producer thread ran.
    struct Run {
        var statistics: Statistics
        var threaded: Bool
        var stopped: Bool
    }

    /// Read `fd` into `analyzer`, on one thread while the input fits in one chunk, on two once it does not.
    static func run(fd: Int32, input: Int, into analyzer: MigrationAnalyzer, tuning: Tuning) throws(ReadError) -> Run {
        let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: chunkSize + maxLineLength)
        // Deallocated only after the producer thread, if any, has been joined (drain joins before returning).
        defer { buffer.deallocate() }
        let pipeline = ReadPipeline(
            source: LineSource(fd: fd, input: input, buffer: buffer, batchCapacity: tuning.batchCapacity))
        var delivered = 0
        func keepGoing() -> Bool {
            delivered += 1
            return tuning.stopAfterBatches.map { delivered < $0 } ?? true
        }
        func deliverHere(_ batch: inout TraceBatch) -> Bool {
            batch.deliver(to: analyzer)
            batch.removeAll()
            return keepGoing()
        }
        var outcome = pipeline.source.pump(pausing: true, deliverHere)
        var threaded = false
        if outcome == .paused {
            if let thread = pipeline.startProducer() {
                threaded = true
                outcome = pipeline.drain(into: analyzer, joining: thread, keepGoing: keepGoing)
            } else {
                // No thread to be had (resource limits): finish on this one.
                outcome = pipeline.source.pump(pausing: false, deliverHere)
            }
        }
        if !threaded && outcome != .stopped {
            pipeline.source.batch.deliver(to: analyzer)
        }
        if case .failed(let errno) = outcome { throw ReadError(errno: errno) }
        return Run(statistics: pipeline.source.stats, threaded: threaded, stopped: outcome == .stopped)
    }
}

/// Parsed lines handed to the analyzer at once: the events, and each diagnostic with how many of the
/// events came before it, so that the analyzer sees them in the order of the lines.
///
/// The events live in memory the batch manages itself (kept alive by ``TraceEventStorage``): appending or
/// folding one is a plain store, and emptying the batch for reuse visits none (``TraceEvent`` is trivial).
struct TraceBatch: @unchecked Sendable {
    // SAFETY: @unchecked Sendable because of `base`, which points into `storage`. A batch is moved between
    // threads, never shared (see ReadPipeline): only one thread at a time reads or writes its events. A copy of
    // a batch shares its events (unlike an array), so a batch is never copied and then mutated through both.

    /// A diagnostic and its place among the batch's events.
    struct Rejection: Sendable {
        var eventsBefore: Int
        var diagnostic: Diagnostic
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

    var count: Int { eventCount &+ rejections.count }

    mutating func reject(_ diagnostic: Diagnostic) {
        rejections.append(Rejection(eventsBefore: eventCount, diagnostic: diagnostic))
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
        walk({ analyzer.consume(base[$0]) }, analyzer.reject)
    }

    /// Pass each event to `event` and each diagnostic to `rejection`, in the order of their lines (a
    /// folded pending event once, as the last of its run).
    @inline(__always)
    func inLineOrder(_ event: (TraceEvent) -> Void, _ rejection: (Diagnostic) -> Void) {
        walk({ event(self.base[$0]) }, rejection)
    }

    /// Pass each event's index to `event` and each diagnostic to `rejection`, in the order of their lines.
    @inline(__always)
    private func walk(_ event: (Int) -> Void, _ rejection: (Diagnostic) -> Void) {
        var next = 0
        for r in rejections {
            while next < r.eventsBefore {
                event(next)
                next &+= 1
            }
            rejection(r.diagnostic)
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

/// The producer stage of one input: reads, detects the format, splits lines and parses them into batches.
/// Every read of the input goes through here, on one thread at a time (the calling thread until the input
/// proves large, then the producer thread).
struct LineSource {
    /// Why ``pump(pausing:_:)`` returned.
    enum Outcome: Equatable {
        /// The input ended (or was rejected whole); the last lines are in `batch`.
        case finished
        /// A chunk is read and the input goes on: worth a thread. The chunk is not split yet.
        case paused
        /// The consumer left.
        case stopped
        /// read(2) failed with this errno; the lines before are in `batch` or were handed over.
        case failed(Int32)
    }

    let fd: Int32
    let parser: QEMULogParser
    let buffer: UnsafeMutablePointer<UInt8>
    let batchCapacity: Int
    var batch: TraceBatch
    var stats = TraceReader.Statistics()
    var filled = 0  // bytes in buffer
    var lineNumber: UInt64 = 0
    var skipping = false  // inside an over-long line
    var skippedLength = 0
    var detected = false
    var eof = false
    var unsplit = false  // paused between reading a chunk and splitting it

    var input: Int { parser.input }

    init(fd: Int32, input: Int, buffer: UnsafeMutablePointer<UInt8>, batchCapacity: Int) {
        self.fd = fd
        self.parser = QEMULogParser(input: input)
        self.buffer = buffer
        self.batchCapacity = batchCapacity
        self.batch = TraceBatch(capacity: batchCapacity)
    }

    /// Read, split and parse until the input ends, `handOff` refuses a full batch, read(2) fails, or (when
    /// `pausing`) a whole chunk has arrived with more to come. `handOff` takes a full batch and leaves an
    /// empty one in its place; false means nobody consumes any more.
    mutating func pump(pausing: Bool, _ handOff: (inout TraceBatch) -> Bool) -> Outcome {
        while true {
            if !unsplit {
                let n = Glibc.read(fd, buffer + filled, TraceReader.chunkSize + TraceReader.maxLineLength - filled)
                if n < 0 {
                    if errno == EINTR { continue }
                    return .failed(errno)
                }
                if n == 0 { eof = true }
                filled += n
                stats.bytes += UInt64(n)
                // The kind is known from the first line (or the first bytes, for the binary kinds).
                if !detected && (filled >= InputKind.sampleSize || eof || memchr(buffer, 10, filled) != nil) {
                    if detectFormat() { return .finished }
                }
                if !detected { continue }
                if pausing && !eof && stats.bytes >= UInt64(TraceReader.chunkSize) {
                    unsplit = true
                    return .paused
                }
            }
            unsplit = false
            guard splitLines(handOff) else { return .stopped }
            if eof {
                finishInput()
                return .finished
            }
        }
    }

    /// Decide the format from the first bytes; true when the input is refused whole (no trace, ``InputKind``).
    private mutating func detectFormat() -> Bool {
        detected = true
        let kind = InputKind.classify(UnsafeBufferPointer(start: buffer, count: min(filled, InputKind.sampleSize)))
        switch kind {
        case .text: return false
        case .recording:
            stats.format = .recording
            return false
        case .simpletrace:
            // QEMU's simple backend writes a binary file (reference §4c): say so instead of finding no event.
            stats.refused = kind
            return true
        default:
            stats.refused = kind
            return true
        }
    }

    /// Handle the complete lines in the buffer and keep the partial one; false when the consumer left.
    private mutating func splitLines(_ handOff: (inout TraceBatch) -> Bool) -> Bool {
        let maxLineLength = TraceReader.maxLineLength
        var start = 0
        let fast = stats.format == .qemuLog
        while start < filled {
            if fast && !skipping {
                // Lines in QEMU's common layout are split and parsed in one pass, while a whole line's reach is
                // buffered; the first other line (and the last few of the buffer) takes the exact path below.
                let fastEnd = filled &- QEMULogParser.fastPathReach
                let input = self.input
                // Every fast line is one line and one event: the line number is counted here and the statistics
                // catch up with it before anyone can read them (a hand-off, the end of the run).
                var fastLineNumber = lineNumber
                // No diagnostic joins the batch in this loop: the batch is full at this many events.
                var eventLimit = batchCapacity &- batch.rejections.count
                // SAFETY: start <= fastEnd leaves fastPathReach bytes of the buffer's data after buffer + start.
                var memo = FastLineMemo()
                while start <= fastEnd, let line = QEMULogParser.fastLine(UnsafeRawPointer(buffer + start), memo: &memo) {
                    fastLineNumber &+= 1
                    batch.append(line, lineNumber: fastLineNumber, input: input)
                    start &+= line.length
                    if batch.eventCount >= eventLimit {
                        countFastLines(upTo: fastLineNumber)
                        guard handOff(&batch) else { return false }
                        eventLimit = batchCapacity &- batch.rejections.count
                    }
                }
                countFastLines(upTo: fastLineNumber)
                if start >= filled { break }
            }
            let rest = filled - start
            guard let nl = memchr(buffer + start, 10, rest) else { break }
            let end = buffer.distance(to: nl.assumingMemoryBound(to: UInt8.self))
            if skipping || end - start > maxLineLength {
                // Too long, whether it began in an earlier read or lies whole in this one.
                let length = (skipping ? skippedLength : 0) + end - start
                skipping = false
                rejectLine("line of \(length) bytes exceeds \(maxLineLength) bytes; skipped")
            } else {
                handle(UnsafeBufferPointer(start: buffer + start, count: end - start))
            }
            start = end + 1
            if batch.count >= batchCapacity {
                guard handOff(&batch) else { return false }
            }
        }
        // Keep the partial line, or skip it when it is too long to be a trace line.
        let remaining = filled - start
        if remaining > maxLineLength || (skipping && remaining > 0) {
            if !skipping { skippedLength = 0 }
            skipping = true
            skippedLength += remaining
            filled = 0
        } else {
            if start > 0 && remaining > 0 { memmove(buffer, buffer + start, remaining) }
            filled = remaining
        }
        return true
    }

    /// Count the fast-path lines up to line `number` (each one line and one event).
    @inline(__always)
    private mutating func countFastLines(upTo number: UInt64) {
        let counted = number &- lineNumber
        lineNumber = number
        stats.lines &+= counted
        stats.events &+= counted
    }

    /// The end of the input: an over-long or unterminated last line.
    private mutating func finishInput() {
        let maxLineLength = TraceReader.maxLineLength
        if skipping {
            rejectLine("line of \(skippedLength) bytes exceeds \(maxLineLength) bytes; skipped")
        } else if filled > 0 {
            // A last line without newline: a cut recording's partial record is reported, a log line parsed.
            let partial = UnsafeBufferPointer(start: buffer, count: filled)
            if stats.format == .recording, case .failure = RecordingFormat.parse(partial, input: input, line: lineNumber + 1) {
                rejectLine("incomplete last record (the recorder was stopped mid-write); everything before it is analysed")
            } else {
                handle(partial)
            }
        }
    }

    /// The next line is unusable: count it and report why.
    private mutating func rejectLine(_ reason: String) {
        lineNumber += 1
        stats.lines += 1
        stats.rejected += 1
        batch.reject(Diagnostic(input: input, line: lineNumber, reason: reason))
    }

    @inline(__always)
    private mutating func handle(_ line: UnsafeBufferPointer<UInt8>) {
        lineNumber += 1
        stats.lines += 1
        switch stats.format {
        case .qemuLog:
            switch parser.parse(line, line: lineNumber) {
            case .event(let e):
                stats.events += 1
                batch.append(e)
            case .ignored:
                break
            case .malformed(let reason):
                stats.rejected += 1
                batch.reject(Diagnostic(input: input, line: lineNumber, reason: reason))
            }
        case .recording:
            guard line.count > 0 else { return }
            switch RecordingFormat.parse(line, input: input, line: lineNumber) {
            case .success(.event(let e)):
                stats.events += 1
                batch.append(e)
            case .success(.header(let h)):
                stats.header = h
            case .success(.lost(let k, let c)):
                stats.kernelDrops = k
                stats.consumerDrops = c
            case .success(.end(let reason, let k, let c)):
                stats.endReason = reason
                stats.kernelDrops = k
                stats.consumerDrops = c
            case .success(.unknown):
                break
            case .failure(let f):
                stats.rejected += 1
                batch.reject(Diagnostic(input: input, line: lineNumber, reason: f.reason))
            }
        }
    }
}

/// One input's ``LineSource`` and, once it runs on a producer thread, the bounded queue of batches between
/// that thread and the calling one.
final class ReadPipeline: @unchecked Sendable {
    // SAFETY: @unchecked Sendable. `source` (the parser state, buffer and statistics) is used by the calling
    // thread before pthread_create and after pthread_join, and by the producer thread only in between:
    // create and join order those accesses. `ready`, `free`, `cancelled`, `producerDone` and `outcome` are
    // read and written only with `handoff` locked (`outcome` also by the calling thread after the join). A batch
    // belongs to whoever took it out of `ready`/`free` (or holds it in `source.batch`); it is moved, never
    // shared, so its storage stays uniquely owned and is never copied.
    var source: LineSource
    private var ready: [TraceBatch] = []
    private var free: [TraceBatch] = []
    private var cancelled = false
    private var producerDone = false
    private var outcome: LineSource.Outcome = .finished
    /// Guards the hand-off state above; "ready": a batch is ready (or the producer done), "free": a batch
    /// was consumed and is free (or the consumer gone).
    private let handoff = HandoffLock()

    init(source: LineSource) {
        self.source = source
    }

    /// Start the producer thread on `source`; nil if no thread can be created.
    func startProducer() -> pthread_t? {
        ready.reserveCapacity(TraceReader.batchesInFlight)
        free.reserveCapacity(TraceReader.batchesInFlight)
        for _ in 1..<TraceReader.batchesInFlight { free.append(TraceBatch(capacity: source.batchCapacity)) }
        guard let thread = startPipelineThread({ self.produce() }) else {
            free.removeAll()
            return nil
        }
        return thread
    }

    /// Producer thread: pump the source to its end, queueing each full batch and the last one.
    private func produce() {
        let result = source.pump(pausing: false) { batch in exchange(&batch) }
        handoff.lock()
        if result != .stopped {
            ready.append(source.batch)
            source.batch = TraceBatch()
        }
        outcome = result
        producerDone = true
        handoff.signalReady()
        handoff.unlock()
    }

    /// Producer: queue the full `batch` and take an empty one in its place, waiting for one to be free;
    /// false when the consumer has left.
    private func exchange(_ batch: inout TraceBatch) -> Bool {
        handoff.lock()
        if !cancelled {
            ready.append(batch)
            batch = TraceBatch()  // the queued batch is now the only owner of its storage
            handoff.signalReady()
            while free.isEmpty && !cancelled { handoff.waitFree() }
            if !cancelled { batch = free.removeLast() }
        }
        let taken = !cancelled
        handoff.unlock()
        // Emptying a used batch (its few state strings) is done here, off the analyzer's thread.
        batch.removeAll()
        return taken
    }

    /// Calling thread: feed `analyzer` every batch in order until the producer is done or `keepGoing` says
    /// stop; then let the producer go, join it, and say how the read ended.
    func drain(into analyzer: MigrationAnalyzer, joining thread: pthread_t, keepGoing: () -> Bool) -> LineSource.Outcome {
        var stopped = false
        while var batch = next() {
            batch.deliver(to: analyzer)
            recycle(&batch)  // the producer empties it
            if !keepGoing() {
                stopped = true
                break
            }
        }
        // Whether the producer is done or blocked waiting for a free batch, this lets it leave. (A producer
        // blocked in read(2) on a pipe that stays silent leaves once the read returns.)
        handoff.lock()
        cancelled = true
        handoff.signalFree()
        handoff.unlock()
        pthread_join(thread, nil)
        return stopped ? .stopped : outcome
    }

    /// The next batch in line order, waiting for the producer; nil once it is done and all are taken.
    private func next() -> TraceBatch? {
        handoff.lock()
        defer { handoff.unlock() }
        while ready.isEmpty && !producerDone { handoff.waitReady() }
        return ready.isEmpty ? nil : ready.removeFirst()
    }

    /// Give a delivered batch back to the producer, which empties it.
    private func recycle(_ batch: inout TraceBatch) {
        handoff.lock()
        free.append(batch)
        batch = TraceBatch()  // before unlocking, so the producer gets the storage uniquely owned
        handoff.signalFree()
        handoff.unlock()
    }
}
