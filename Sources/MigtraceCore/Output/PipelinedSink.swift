// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
    import Glibc
#endif

/// A sink that replays every call it receives, in order, on another sink run by a thread of its own: the output
/// stage that ``MigrationAnalyzer`` puts in front of its sink (``OutputThreading``).
///
/// The analyzer's thread then only records: a window is one copy of plain values into a batch, the rarer
/// calls sit beside the windows with their place. Full batches go through a small bounded queue to the
/// consumer thread, which formats and writes them; batches are recycled, so the steady state allocates
/// nothing. The thread starts only after `startAfterWindows` windows (small inputs run inline, as if the
/// wrapped sink were used directly). ``finished(_:)`` hands over the rest, joins the thread and calls the
/// wrapped sink's `finished` on the calling thread: once it returns, everything is written, as without it.
public final class PipelinedSink: AnalysisSink, @unchecked Sendable {
    // SAFETY: @unchecked Sendable. `sink` is called by the calling thread while no consumer thread runs
    // (before it is created, and after it is joined), and by the consumer thread only in between: create and
    // join order those accesses; `drain()` and `finished(_:)` wait, with `handoff` locked, until the consumer is
    // idle, and the calling thread calls `sink` again only after the join. `ready`, `free`, `busy` and `done`
    // are read and written only with `handoff` locked. A batch belongs to whoever took it out of `ready`/`free`
    // (or holds it in `current`), never to two threads at once. `current`, `cursor`, `end`, `inlineWindows`
    // and `thread` belong to the calling thread.

    /// One window with the series it belongs to, as the analyzer gave them. Plain values: copying one
    /// touches no reference count.
    struct Entry {
        var window: AnalyzedWindow
        var series: SeriesInfo
    }

    /// A call other than `window`.
    enum Call {
        case seriesStarted(SeriesInfo)
        case finding(Finding)
        case seriesEnded(SeriesSummary)
        case live(LiveEvent)
    }

    /// Windows in call order, and the other calls each with how many of the windows came before it.
    final class Batch {
        let entries: UnsafeMutablePointer<Entry>
        var count = 0
        var calls: [(windowsBefore: Int, call: Call)] = []

        init(capacity: Int) {
            entries = .allocate(capacity: capacity)
        }

        deinit {
            entries.deinitialize(count: count)
            entries.deallocate()
        }

        /// Empty it for reuse (the calls' storage is kept).
        func reset() {
            entries.deinitialize(count: count)
            count = 0
            calls.removeAll(keepingCapacity: true)
        }
    }

    /// Windows per batch.
    public static let defaultBatchCapacity = 512
    /// Batches in all: one being filled, the others queued or being replayed. Enough for more than a
    /// scheduler time slice of the analyzer's output (see `TraceReader.batchesInFlight`); ≈ 2.5 MB.
    static let batchCount = 16
    /// Windows passed on inline before the thread starts.
    public static let defaultStartAfterWindows = 4096

    private let sink: any AnalysisSink
    private let batchCapacity: Int
    private let startAfterWindows: Int
    private var inlineWindows = 0
    private var thread: pthread_t?
    /// The batch being filled (while the thread runs).
    private var current: Batch?
    /// Where the next window goes in `current`, nil while calls are passed on inline. Exclusivity unchecked:
    /// only the calling thread touches it, and no access overlaps another.
    @exclusivity(unchecked) private var cursor: UnsafeMutablePointer<Entry>?
    /// One past `current`'s last entry.
    @exclusivity(unchecked) private var end: UnsafeMutablePointer<Entry>?

    private var ready: [Batch] = []
    private var free: [Batch] = []
    /// The consumer is replaying a batch.
    private var busy = false
    /// No more batches will come: the consumer leaves once `ready` is empty.
    private var done = false
    /// Guards the hand-off state above; "ready": a batch is ready (or the producer done), "free": a batch
    /// was consumed and is free (or the consumer gone).
    private let handoff = HandoffLock()

    /// How many times a consumer thread was started (tests).
    private(set) var threadsStarted = 0

    /// Passes `sink` every call, through a consumer thread once `startAfterWindows` windows went by inline.
    public init(
        wrapping sink: any AnalysisSink, batchCapacity: Int = PipelinedSink.defaultBatchCapacity,
        startAfterWindows: Int = PipelinedSink.defaultStartAfterWindows
    ) {
        precondition(batchCapacity > 0)
        self.sink = sink
        self.batchCapacity = batchCapacity
        self.startAfterWindows = startAfterWindows
    }

    // No deinit work: a running consumer holds a reference, so the sink cannot go away before `finished`
    // joined it.

    // MARK: Calling thread

    public func seriesStarted(_ info: SeriesInfo) {
        if cursor != nil { record(.seriesStarted(info)) } else { sink.seriesStarted(info) }
    }

    @inline(__always) public func window(_ w: AnalyzedWindow, in series: SeriesInfo) {
        if record(w, in: series) { return }
        passOn(w, in: series)
    }

    /// A window while calls are passed on inline; the thread starts after `startAfterWindows` of them.
    @inline(never) private func passOn(_ w: AnalyzedWindow, in series: SeriesInfo) {
        sink.window(w, in: series)
        inlineWindows &+= 1
        if inlineWindows == startAfterWindows { start() }
    }

    /// ``window(_:in:)`` while the consumer thread runs: the window is recorded (true). False while windows are
    /// passed on inline (then ``window(_:in:)`` passes it on). Inlined into ``window(_:in:)``, which the analyzer
    /// calls on this concrete type: no call through the sink existential per window. Calling thread only.
    @inline(__always) func record(_ w: AnalyzedWindow, in series: SeriesInfo) -> Bool {
        guard let c = cursor else { return false }
        c.initialize(to: Entry(window: w, series: series))
        let next = c + 1
        cursor = next
        if next == end { handOff() }
        return true
    }

    public func finding(_ finding: Finding) {
        if cursor != nil { record(.finding(finding)) } else { sink.finding(finding) }
    }

    public func seriesEnded(_ summary: SeriesSummary) {
        if cursor != nil { record(.seriesEnded(summary)) } else { sink.seriesEnded(summary) }
    }

    public func live(_ event: LiveEvent) {
        if cursor != nil { record(.live(event)) } else { sink.live(event) }
    }

    /// Hands over what is left, waits for the consumer thread to replay it and leave, then passes the report on.
    public func finished(_ report: AnalysisReport) {
        if let thread {
            let batch = sealCurrent()
            handoff.lock()
            ready.append(batch)
            done = true
            handoff.signalReady()
            handoff.unlock()
            pthread_join(thread, nil)
            // Calls after this (a sink is not meant to get any) are passed on inline.
            self.thread = nil
            ready.removeAll()
            free.removeAll()
            done = false
        }
        sink.finished(report)
    }

    /// Waits until every call received so far has reached the wrapped sink (and whatever it wrote is written
    /// as far as it would be without the thread): then the caller may look at the sink's output, e.g. whether
    /// it was closed, or write elsewhere in the same order as before.
    public func drain() {
        guard thread != nil else { return }
        let batch = sealCurrent()
        handoff.lock()
        if batch.count > 0 || !batch.calls.isEmpty {
            ready.append(batch)
            handoff.signalReady()
        } else {
            free.append(batch)
        }
        while !ready.isEmpty || busy { handoff.waitFree() }
        let next = free.removeLast()
        handoff.unlock()
        take(next)
    }

    private func record(_ call: Call) {
        let batch = current!
        batch.calls.append((windowsBefore: cursor! - batch.entries, call: call))
    }

    /// `current` with its count set, now no longer the calling thread's.
    private func sealCurrent() -> Batch {
        let batch = current!
        batch.count = cursor! - batch.entries
        current = nil
        cursor = nil
        end = nil
        return batch
    }

    /// Make `batch` the one being filled.
    private func take(_ batch: Batch) {
        current = batch
        cursor = batch.entries
        end = batch.entries + batchCapacity
    }

    /// Queue the full batch and take a free one, waiting for the consumer if none is.
    private func handOff() {
        let batch = sealCurrent()
        handoff.lock()
        ready.append(batch)
        handoff.signalReady()
        while free.isEmpty { handoff.waitFree() }
        let next = free.removeLast()
        handoff.unlock()
        take(next)
    }

    /// Start the consumer thread; if none can be created, calls keep going to the sink inline.
    private func start() {
        ready.reserveCapacity(Self.batchCount)
        free.reserveCapacity(Self.batchCount)
        for _ in 1..<Self.batchCount { free.append(Batch(capacity: batchCapacity)) }
        guard let t = startPipelineThread({ self.consume() }) else {
            free.removeAll()
            return
        }
        thread = t
        threadsStarted += 1
        take(Batch(capacity: batchCapacity))
    }

    // MARK: Consumer thread

    /// Replay each batch in order until `done` and none is left.
    private func consume() {
        handoff.lock()
        while true {
            while ready.isEmpty && !done { handoff.waitReady() }
            if ready.isEmpty { break }
            let batch = ready.removeFirst()
            busy = true
            handoff.unlock()
            replay(batch)
            batch.reset()
            handoff.lock()
            free.append(batch)
            busy = false
            handoff.signalFree()
        }
        handoff.unlock()
    }

    /// Pass the batch's calls to the sink in the order they were made; each window by address, not copied.
    private func replay(_ batch: Batch) {
        let windowOffset = MemoryLayout<Entry>.offset(of: \.window)!
        replay(batch) { e in
            let window = UnsafeRawPointer(e).advanced(by: windowOffset).assumingMemoryBound(to: AnalyzedWindow.self)
            sink.window(at: window, in: e.pointee.series)
        }
    }

    /// `replay(_:)` with `window` passing each window on.
    @inline(__always) private func replay(_ batch: Batch, window: (UnsafeMutablePointer<Entry>) -> Void) {
        let calls = batch.calls
        var k = 0
        var nextCallAt = calls.isEmpty ? Int.max : calls[0].windowsBefore
        for i in 0..<batch.count {
            while nextCallAt == i {
                deliver(calls[k].call)
                k += 1
                nextCallAt = k < calls.count ? calls[k].windowsBefore : Int.max
            }
            window(batch.entries + i)
        }
        while k < calls.count {
            deliver(calls[k].call)
            k += 1
        }
    }

    private func deliver(_ call: Call) {
        switch call {
        case .seriesStarted(let info): sink.seriesStarted(info)
        case .finding(let f): sink.finding(f)
        case .seriesEnded(let s): sink.seriesEnded(s)
        case .live(let e): sink.live(e)
        }
    }
}
