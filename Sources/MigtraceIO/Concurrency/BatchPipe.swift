// SPDX-License-Identifier: Apache-2.0
//
// The threading model of migtrace, all of it in this file.
//
// The analysis itself (MigrationAnalyzer, the rules, the arithmetic) runs on one thread: whoever feeds it
// events. Threads exist only around it, for throughput or for blocking calls, and each is started by
// `WorkerThread.start` (here):
//  - Post-mortem reading: a producer thread reads, splits and parses an input into batches of events
//    (`LineSource`), the calling thread analyses them (`TraceReader`). Only for inputs larger than one read chunk.
//  - Post-mortem output: the analyzer's calls to its sink are recorded into batches and replayed on a consumer
//    thread that formats and writes them (`PipelinedSink`). Only after a few thousand windows.
//  - Live capture: one poll thread per session drains the BPF ring buffer into an AsyncSequence
//    (MigtraceBPF's `LiveSession`); the demo's helper threads reap and feed its target process. With
//    `attach --all`, each process has its session; their batches are merged into one stream, read by one task
//    that owns every analyzer and the output.
//  - Metrics (`--metrics`): one server thread (MetricsServer.swift, next to this file) renders the state the
//    analysis keeps behind a `Mutex` (MigtraceCore's `MetricsStore`); nothing else is shared with it.
// Both post-mortem stages hand batches over through one primitive, `BatchPipe`: bounded (a fixed set of
// batches circulates, so memory stays flat and the producer waits when the consumer falls behind),
// recycled (a consumed batch goes back to the producer, so the steady state allocates nothing), cancellable
// (the consumer can leave early and the producer sees it at its next hand-off), and joined (the thread that
// started a worker joins it before it touches what the worker used, so no state is shared without order).
// Where a thread waits for another, `ConditionLock` (one mutex, two conditions) is the one idiom; every other
// piece of shared state is behind `Mutex` or `Atomic` from the standard library's Synchronization module.

#if canImport(Glibc)
    import Glibc
#endif

/// A bounded, recycling hand-off of batches from one producer thread to one consumer thread.
///
/// A fixed set of batches circulates: the producer fills one and ``send(_:)``s it, getting a free one back
/// (waiting while none is free); the consumer ``receive()``s them in order and ``recycle(_:)``s each when done.
/// Either side may leave: ``close(last:)`` (the producer has no more), ``cancel()`` (the consumer wants no more).
/// A batch is handed over, never shared: the side that gave it away does not touch it again.
final class BatchPipe<Batch>: @unchecked Sendable {
    // SAFETY: @unchecked Sendable. `ready`, `free`, `closed`, `cancelled` and `inUse` are read and written only
    // with `lock` held. A batch belongs to whoever took it out of `ready`/`free`, never to two threads at once.
    private var ready: [Batch] = []
    private var free: [Batch] = []
    private var closed = false
    private var cancelled = false
    /// Batches not in `free`: the producer's, the queued ones and the one being consumed.
    private var inUse = 1
    /// "ready": a batch is ready or the pipe is closed; "free": a batch is free again or the pipe is cancelled.
    private let lock = ConditionLock()

    /// A pipe whose producer holds one batch and finds the `spare` ones free.
    init(spare: [Batch]) {
        free = spare
        ready.reserveCapacity(spare.count + 1)
    }

    // MARK: Producer

    /// Queue the full batch and return a free one, waiting while none is; nil when the consumer has left.
    func send(_ full: consuming Batch) -> Batch? {
        lock.lock()
        defer { lock.unlock() }
        guard !cancelled else { return nil }
        ready.append(full)
        lock.signalReady()
        while free.isEmpty && !cancelled { lock.waitFree() }
        guard !cancelled else { return nil }
        inUse += 1
        return free.removeLast()
    }

    /// Queue the batch and wait until the consumer has given every batch back: everything sent so far has been
    /// consumed. Returns a free batch to go on with.
    func flush(_ full: consuming Batch) -> Batch {
        lock.lock()
        defer { lock.unlock() }
        ready.append(full)
        lock.signalReady()
        while inUse > 0 && !cancelled { lock.waitFree() }
        inUse += 1
        return free.removeLast()
    }

    /// Queue the last batch, if any, and say that no more come.
    func close(last: consuming Batch?) {
        lock.lock()
        if let last, !cancelled { ready.append(last) }
        closed = true
        lock.signalReady()
        lock.unlock()
    }

    // MARK: Consumer

    /// The next batch in the order it was queued, waiting for the producer; nil once the pipe is closed and
    /// every batch has been received.
    func receive() -> Batch? {
        lock.lock()
        defer { lock.unlock() }
        while ready.isEmpty && !closed { lock.waitReady() }
        return ready.isEmpty ? nil : ready.removeFirst()
    }

    /// Give a consumed batch back to the producer.
    func recycle(_ batch: consuming Batch) {
        lock.lock()
        free.append(batch)
        inUse -= 1
        lock.signalFree()
        lock.unlock()
    }

    /// The consumer takes no more: a producer waiting for a free batch, or at its next send, stops.
    func cancel() {
        lock.lock()
        cancelled = true
        lock.signalFree()
        lock.unlock()
    }
}

/// One mutex and two condition variables ("ready", "free"): the one lock idiom where a thread waits for
/// another. pthread objects must not move once initialised, so they live in memory this object owns.
final class ConditionLock {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t> = .allocate(capacity: 1)
    private let readyCondition: UnsafeMutablePointer<pthread_cond_t> = .allocate(capacity: 1)
    private let freeCondition: UnsafeMutablePointer<pthread_cond_t> = .allocate(capacity: 1)

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(readyCondition, nil)
        pthread_cond_init(freeCondition, nil)
    }

    deinit {
        pthread_cond_destroy(freeCondition)
        pthread_cond_destroy(readyCondition)
        pthread_mutex_destroy(mutex)
        freeCondition.deallocate()
        readyCondition.deallocate()
        mutex.deallocate()
    }

    @inline(__always) func lock() { pthread_mutex_lock(mutex) }
    @inline(__always) func unlock() { pthread_mutex_unlock(mutex) }
    /// Wake the thread waiting for "ready" (the lock is held).
    @inline(__always) func signalReady() { pthread_cond_signal(readyCondition) }
    /// Wake the thread waiting for "free" (the lock is held).
    @inline(__always) func signalFree() { pthread_cond_signal(freeCondition) }
    /// Wait (the lock is held) until `signalReady`.
    @inline(__always) func waitReady() { pthread_cond_wait(readyCondition, mutex) }
    /// Wait (the lock is held) until `signalFree`.
    @inline(__always) func waitFree() { pthread_cond_wait(freeCondition, mutex) }
}

/// A thread migtrace started: the one way to start one (pipelines, the live poll thread, the demo's helpers).
public struct WorkerThread: @unchecked Sendable {
    // SAFETY: a pthread_t is an opaque id; joining or detaching it from any thread is what pthreads allow.
    private let id: pthread_t

    /// Start a joinable thread running `body`; nil when no thread can be created (resource limits), in which
    /// case the caller does the work itself or reports the errno it is given.
    public static func start(_ body: @escaping @Sendable () -> Void) -> Result<WorkerThread, ThreadStartError> {
        // SAFETY: the retained box is balanced by exactly one takeRetainedValue(): in the thread, or below when
        // no thread starts.
        let context = Unmanaged.passRetained(WorkerBody(body)).toOpaque()
        var thread = pthread_t()
        let created = pthread_create(
            &thread, nil,
            { context in
                Unmanaged<WorkerBody>.fromOpaque(context!).takeRetainedValue().run()
                return nil
            }, context)
        guard created == 0 else {
            Unmanaged<WorkerBody>.fromOpaque(context).release()
            return .failure(ThreadStartError(errno: created))
        }
        return .success(WorkerThread(id: thread))
    }

    /// Start a thread nobody joins (it ends on its own); false when none could be created.
    @discardableResult
    public static func detached(_ body: @escaping @Sendable () -> Void) -> Bool {
        guard case .success(let t) = start(body) else { return false }
        t.detach()
        return true
    }

    /// Wait for the thread to end.
    public func join() { pthread_join(id, nil) }

    /// Let the thread end on its own, unjoined (when the thread itself is the one letting go).
    public func detach() { pthread_detach(id) }

    /// Whether this is the calling thread.
    public var isCurrent: Bool { pthread_equal(id, pthread_self()) != 0 }
}

/// Why a thread could not be started (pthread_create's error number).
public struct ThreadStartError: Error, Sendable {
    /// The error number pthread_create returned (EAGAIN: a resource limit).
    public var errno: Int32
}

/// The closure a worker thread runs, boxed to travel through pthread_create's context pointer.
private final class WorkerBody {
    let run: @Sendable () -> Void
    init(_ run: @escaping @Sendable () -> Void) { self.run = run }
}
