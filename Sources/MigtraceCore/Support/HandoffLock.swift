// SPDX-License-Identifier: Apache-2.0

#if canImport(Glibc)
    import Glibc
#endif

/// The mutex and the two condition variables of a bounded hand-off between two threads (a batch is
/// ready / a batch is free), shared by the post-mortem pipelines (`ReadPipeline`, `PipelinedSink`).
///
/// pthread objects must not move once initialised, so they live in heap memory owned by this object.
final class HandoffLock {
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
    /// Wake the thread waiting for a ready batch (the lock is held).
    @inline(__always) func signalReady() { pthread_cond_signal(readyCondition) }
    /// Wake the thread waiting for a free batch (the lock is held).
    @inline(__always) func signalFree() { pthread_cond_signal(freeCondition) }
    /// Wait (the lock is held) until `signalReady`.
    @inline(__always) func waitReady() { pthread_cond_wait(readyCondition, mutex) }
    /// Wait (the lock is held) until `signalFree`.
    @inline(__always) func waitFree() { pthread_cond_wait(freeCondition, mutex) }
}

/// Starts a joinable thread running `body`, for the post-mortem pipelines (`ReadPipeline`, `PipelinedSink`);
/// nil when no thread can be created (resource limits), in which case the caller does the work itself.
func startPipelineThread(_ body: @escaping @Sendable () -> Void) -> pthread_t? {
    // SAFETY: the retained box is balanced by exactly one takeRetainedValue(): in the thread, or below when
    // no thread starts.
    let context = Unmanaged.passRetained(PipelineThreadBody(body)).toOpaque()
    var thread = pthread_t()
    let created = pthread_create(
        &thread, nil,
        { context in
            Unmanaged<PipelineThreadBody>.fromOpaque(context!).takeRetainedValue().run()
            return nil
        }, context)
    guard created == 0 else {
        Unmanaged<PipelineThreadBody>.fromOpaque(context).release()
        return nil
    }
    return thread
}

/// The closure a pipeline thread runs, boxed to travel through pthread_create's context pointer.
private final class PipelineThreadBody {
    let run: @Sendable () -> Void
    init(_ run: @escaping @Sendable () -> Void) { self.run = run }
}
