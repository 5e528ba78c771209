// SPDX-License-Identifier: Apache-2.0

import MigtraceCore

#if canImport(Glibc)
    import Glibc
#endif

/// Streams a trace from a file descriptor into an analyzer: fixed-size buffer, byte-level line
/// splitting, no per-line allocation for lines that are not migration events.
///
/// An input larger than one read chunk is read as a two-stage pipeline (see BatchPipe.swift): a producer thread
/// reads, splits and parses it into batches of events, and the calling thread feeds them to the analyzer, in
/// the same order and with the same results as reading it on one thread. Smaller inputs never start a thread.
public enum TraceReader {
    /// Lines longer than this are skipped with a diagnostic (a QEMU trace line is ~120 bytes).
    public static let maxLineLength = 64 * 1024
    static let chunkSize = 1 << 20
    /// Events and diagnostics per batch: enough that handing a batch over costs nothing per line, small enough
    /// that the batches in flight stay in the shared cache and memory stays flat.
    static let batchCapacity = 4096
    /// Batches of one threaded read: one being parsed into, the others waiting or being analysed. The queue
    /// must hold more work than a thread's time slice, or a descheduled thread stops the other (bench/README.md).
    static let batchesInFlight = 16

    /// An error reading the input itself (not its content).
    public struct ReadError: Error, CustomStringConvertible {
        /// The errno of the failed read(2).
        public var errno: Int32
        public var description: String { "read failed: \(String(cString: strerror(errno)))" }
    }

    /// Read `fd` to its end, feeding `analyzer`. `input` numbers the events' origins.
    public static func read(fd: Int32, input: Int, into analyzer: MigrationAnalyzer) throws(ReadError) -> InputStatistics {
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
        var statistics: InputStatistics
        var threaded: Bool
        var stopped: Bool
    }

    /// Read `fd` into `analyzer`, on one thread while the input fits in one chunk, on two once it does not.
    static func run(fd: Int32, input: Int, into analyzer: MigrationAnalyzer, tuning: Tuning) throws(ReadError) -> Run {
        let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: chunkSize + maxLineLength)
        // Deallocated only after the producer thread, if any, has been joined (readThreaded joins before returning).
        defer { buffer.deallocate() }
        let producer = Producer(source: LineSource(fd: fd, input: input, buffer: buffer, batchCapacity: tuning.batchCapacity))
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
        var outcome = producer.source.pump(pausing: true, deliverHere)
        if producer.source.stats.refused == .simpletrace {
            // A binary simple-backend trace: decoded by its own reader from the bytes read so far on.
            let prefix = UnsafeBufferPointer(start: buffer, count: producer.source.filled)
            let stats = try SimpletraceReader.read(fd: fd, prefix: prefix, input: input, into: analyzer)
            return Run(statistics: stats, threaded: false, stopped: false)
        }
        var threaded = false
        if outcome == .paused {
            if let result = producer.runThreaded(into: analyzer, keepGoing: keepGoing) {
                threaded = true
                outcome = result
            } else {
                // No thread to be had (resource limits): finish on this one.
                outcome = producer.source.pump(pausing: false, deliverHere)
            }
        }
        if !threaded && outcome != .stopped {
            producer.source.batch.deliver(to: analyzer)
        }
        if case .failed(let errno) = outcome { throw ReadError(errno: errno) }
        return Run(statistics: producer.source.stats, threaded: threaded, stopped: outcome == .stopped)
    }
}

/// One input's ``LineSource``, pumped by a producer thread into a ``BatchPipe`` once the input proves large.
private final class Producer: @unchecked Sendable {
    // SAFETY: @unchecked Sendable. `source` (the parser state, buffer and statistics) is used by the calling
    // thread before the producer thread starts and after it is joined, and by the producer thread only in
    // between: start and join order those accesses. `outcome` is written by the producer before it closes the
    // pipe and read by the calling thread after the join.
    var source: LineSource
    private var outcome: LineSource.Outcome = .finished

    init(source: LineSource) { self.source = source }

    /// Feed `analyzer` every batch the producer thread parses, in order, until the input ends or `keepGoing`
    /// says stop; then let the producer go, join it, and say how the read ended. Nil if no thread could start.
    func runThreaded(into analyzer: MigrationAnalyzer, keepGoing: () -> Bool) -> LineSource.Outcome? {
        let capacity = source.batchCapacity
        let pipe = BatchPipe<TraceBatch>(spare: (1..<TraceReader.batchesInFlight).map { _ in TraceBatch(capacity: capacity) })
        guard case .success(let thread) = WorkerThread.start({ self.produce(into: pipe) }) else { return nil }
        var stopped = false
        while let batch = pipe.receive() {
            batch.deliver(to: analyzer)
            pipe.recycle(batch)  // the producer empties it
            if !keepGoing() {
                stopped = true
                break
            }
        }
        // Whether the producer is done or waiting for a free batch, this lets it leave. (A producer blocked in
        // read(2) on a pipe that stays silent leaves once the read returns.)
        pipe.cancel()
        thread.join()
        return stopped ? .stopped : outcome
    }

    /// Producer thread: pump the source to its end, sending each full batch and the last one.
    private func produce(into pipe: BatchPipe<TraceBatch>) {
        let result = source.pump(pausing: false) { batch in
            guard let free = pipe.send(batch) else { return false }
            batch = free
            // Emptying a used batch is done here, off the analyzer's thread.
            batch.removeAll()
            return true
        }
        outcome = result
        let last = source.batch
        source.batch = TraceBatch()
        pipe.close(last: result == .stopped ? nil : last)
    }
}
