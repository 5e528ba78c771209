// SPDX-License-Identifier: Apache-2.0
import MigtraceCore

/// A sink that replays every call it receives, in order, on another sink run by a thread of its own: the output
/// stage that ``TraceAnalysis`` puts between the analyzer and the output the user chose.
///
/// The analyzer's thread then only records: a window is one copy of plain values into a batch, the rarer
/// calls sit beside the windows with their place. Full batches go through a small bounded queue to the
/// consumer thread, which formats and writes them; batches are recycled, so the steady state allocates
/// nothing. The thread starts only after `startAfterWindows` windows (small inputs run inline, as if the
/// wrapped sink were used directly). ``finished(_:)`` hands over the rest, joins the thread and calls the
/// wrapped sink's `finished` on the calling thread: once it returns, everything is written, as without it.
public final class PipelinedSink: AnalysisSink, @unchecked Sendable {
    // SAFETY: @unchecked Sendable. `sink` is called by the calling thread while no consumer thread runs
    // (before it is started, and after it is joined), and by the consumer thread only in between: start and
    // join order those accesses; `drain()` waits (BatchPipe.flush) until the consumer has given back every batch,
    // and the calling thread calls `sink` again only after the join. A batch belongs to whoever took it from the
    // pipe, never to two threads at once. `current`, `cursor`, `end`, `inlineWindows`, `pipe` and `thread`
    // belong to the calling thread.

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
    private var thread: WorkerThread?
    private var pipe: BatchPipe<Batch>?
    /// The batch being filled (while the thread runs).
    private var current: Batch?
    /// Where the next window goes in `current`, nil while calls are passed on inline.
    private var cursor: UnsafeMutablePointer<Entry>?
    /// One past `current`'s last entry.
    private var end: UnsafeMutablePointer<Entry>?

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
        if let thread, let pipe {
            pipe.close(last: sealCurrent())
            thread.join()
            // Calls after this (a sink is not meant to get any) are passed on inline.
            self.thread = nil
            self.pipe = nil
        }
        sink.finished(report)
    }

    /// Waits until every call received so far has reached the wrapped sink (and whatever it wrote is written
    /// as far as it would be without the thread): then the caller may look at the sink's output, e.g. whether
    /// it was closed, or write elsewhere in the same order as before.
    public func drain() {
        guard let pipe else { return }
        take(pipe.flush(sealCurrent()))
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
        // The consumer never cancels: a free batch always comes back.
        take(pipe!.send(sealCurrent())!)
    }

    /// Start the consumer thread; if none can be created, calls keep going to the sink inline.
    private func start() {
        let capacity = batchCapacity
        let pipe = BatchPipe<Batch>(spare: (1..<Self.batchCount).map { _ in Batch(capacity: capacity) })
        guard case .success(let t) = WorkerThread.start({ self.consume(pipe) }) else { return }
        self.pipe = pipe
        thread = t
        threadsStarted += 1
        take(Batch(capacity: batchCapacity))
    }

    // MARK: Consumer thread

    /// Replay each batch in order until the pipe is closed and none is left.
    private func consume(_ pipe: BatchPipe<Batch>) {
        while let batch = pipe.receive() {
            replay(batch)
            batch.reset()
            pipe.recycle(batch)
        }
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
