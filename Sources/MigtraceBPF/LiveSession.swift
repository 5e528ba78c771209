// SPDX-License-Identifier: Apache-2.0

import CMigtraceBPF
import MigtraceCore
import MigtraceIO
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Why a live session could not be set up.
public enum LiveAttachError: Error, Sendable, CustomStringConvertible {
    /// A libbpf step failed (open, load, ring buffer...).
    case libbpf(LibbpfError)
    /// The binary's USDT notes could not be read.
    case notes(USDTNotesError)
    /// The process or its executable cannot be found.
    case precondition(LivePreconditionError)
    /// The binary has no `qemu` USDT probes at all: QEMU was built without the dtrace trace backend.
    case noQEMUProbes(binaryPath: String)
    /// The binary has `qemu` probes but not `migrate_transferred` (or attaching it failed).
    case requiredProbeMissing(binaryPath: String, probe: String, error: LibbpfError?)
    /// A configuration value is out of range.
    case invalidConfiguration(String)

    public var description: String {
        switch self {
        case let .libbpf(e): e.description
        case let .notes(e): e.description
        case let .precondition(e): e.description
        case let .noQEMUProbes(path):
            "\(path) has no qemu USDT probes: QEMU was built without the dtrace trace backend "
                + "(--enable-trace-backends=dtrace); use its log output instead"
        case let .requiredProbeMissing(path, probe, error):
            if let error {
                "cannot attach qemu:\(probe) in \(path): \(error)"
            } else {
                "\(path) has qemu USDT probes but no qemu:\(probe)"
            }
        case let .invalidConfiguration(s): "invalid configuration: \(s)"
        }
    }
}

/// A loaded BPF object attached to one QEMU process, with its ring buffer.
///
/// Open it with ``init(pid:binaryPath:configuration:)``; read events with ``events()``; stop with ``close()``.
/// All libbpf resources are freed in one place (``close()``, also called on deinit).
public final class LiveSession: @unchecked Sendable {
    // SAFETY: @unchecked Sendable. `handle` is written only in init and in `freeResources()` under `state`'s lock,
    // after the poll thread has been joined; between those points only the poll thread calls ring-buffer
    // functions on it, while other threads only call `mt_read_drops` (a map lookup syscall, thread-safe in
    // libbpf). `pending` is touched only by the poll thread (from the sample callback). Everything else is
    // immutable or behind `Mutex`/`Atomic`.

    /// Which processes the uprobes are attached for.
    public enum AttachScope: Sendable, Equatable {
        /// Only the target pid (libbpf's pid argument) plus the in-kernel tgid filter. The default.
        case process
        /// Every process running the binary (pid -1); only the in-kernel tgid filter keeps the target's events.
        /// Meant for tests of that filter.
        case allProcessesFilteredInKernel
    }

    /// Session settings, fixed before the BPF object is loaded.
    public struct Configuration: Sendable {
        /// The default ring-buffer size: 16 MiB, about 160,000 records of 104 bytes. QEMU fires ~10 events a
        /// second; the room is for bursts while the reader is starved of CPU (a 1.3 M events/s burst fills
        /// 4 MiB in 30 ms, which a loaded 2-CPU machine running the test suite did starve the reader for).
        public static let defaultRingBufferSize = 16 << 20
        /// Ring-buffer size in bytes: a power of two and a multiple of the page size.
        public var ringBufferSize: Int = Configuration.defaultRingBufferSize
        /// Probes to attach; `migrate_transferred` is required, the others are optional context.
        public var probes: [ProbeKind] = ProbeKind.allCases
        /// Attach scope (see ``AttachScope``).
        public var scope: AttachScope = .process
        /// Route libbpf's debug log to stderr.
        public var verbose = false
        /// Maximum number of events per batch handed to the consumer.
        public var maxBatchSize = 4096
        /// Finish the stream by itself (after draining) once the traced process has exited.
        public var finishWhenProcessExits = true
        /// Poll timeout of the poll thread, ms (1...100). The BPF program wakes the poll thread for the first
        /// event after 1 ms of quiet and when 1/8 of the ring is pending; other events (the tail of a burst)
        /// are read when this timeout expires. It also bounds how long ``LiveSession/stop()`` takes.
        public var pollIntervalMs = 20
        /// After it woke the poll thread, the BPF program waits this long (µs, 1...100,000) before it wakes it
        /// again; the events in between are read together, at the next wakeup or poll timeout. 1 ms delivers
        /// QEMU's rate at once; a host's QEMUs together (`attach --all`) are better read every 20 ms.
        public var wakeupIntervalMicroseconds = 1000
        /// Measure each event's latency from probe fire (`bpf_ktime_get_ns`, in the BPF program) to the moment the
        /// stream's consumer receives its batch (CLOCK_MONOTONIC); see ``LiveSession/latency()``. Also turned on
        /// by the environment variable `MIGTRACE_LATENCY_REPORT=<file>`, which writes the summary to that file
        /// when the stream ends (used by `bench/live`).
        public var measureLatency = false

        /// Default settings.
        public init() {}
    }

    /// What happened to one probe at attach time.
    public struct ProbeStatus: Sendable, Equatable {
        /// The probe.
        public var kind: ProbeKind
        /// `kind.eventName`.
        public var name: String { kind.eventName }
        /// Number of probe sites (`.note.stapsdt` entries) of this probe in the binary; 0 when absent.
        public var siteCount: Int
        /// Argument count from the ELF note, when the binary has the probe.
        public var noteArgumentCount: Int?
        /// Whether the probe has a semaphore (QEMU's dtrace backend gives every probe one).
        public var hasSemaphore: Bool
        /// Whether the BPF program is attached to it.
        public var attached: Bool
        /// The attach error, when the binary has the probe but attaching failed.
        public var error: LibbpfError?

        /// Why the probe is not attached, or `nil` when it is.
        public var reason: String? {
            if attached { return nil }
            if let error { return error.description }
            return siteCount == 0 ? "not in binary" : "not requested"
        }
    }

    /// The traced process; 0 for a session of every process of its binaries.
    public let pid: Int32
    /// The binary whose probes are attached.
    public let binaryPath: String
    /// One status per requested probe, in ``Configuration/probes`` order.
    public let probes: [ProbeStatus]
    /// The settings used.
    public let configuration: Configuration

    /// The probes' statuses by binary (the latest attach of each path).
    private let binaries: Mutex<[String: [ProbeStatus]]>

    /// The probes that are attached.
    public var attachedProbes: [ProbeStatus] { probes.filter(\.attached) }

    private struct State {
        var thread: WorkerThread?
        var joined = false
        var freed = false
        var streamStarted = false
    }

    // SAFETY: nonisolated(unsafe): see the type's SAFETY note (written under `state`'s lock only).
    private nonisolated(unsafe) var handle: OpaquePointer?  // mt_session *
    private let state = Mutex(State())
    /// Serializes close(): a second caller must not free while the first is still joining the poll thread.
    private let closeLock = Mutex(())
    private let stopRequested = Atomic<Bool>(false)
    private let consumerDropCount = Atomic<UInt64>(0)
    private let undecodableCount = Atomic<UInt64>(0)
    private let receivedCount = Atomic<UInt64>(0)
    // SAFETY: nonisolated(unsafe): only the poll thread reads or writes `pending`.
    private nonisolated(unsafe) var pending: [TraceEvent] = []
    // SAFETY: nonisolated(unsafe): written once in events() under the lock before the poll thread starts
    // (pthread_create orders it), then used only by the poll thread; Continuation itself is Sendable.
    private nonisolated(unsafe) var continuation: AsyncThrowingStream<[TraceEvent], any Error>.Continuation?
    private let latencyRecorder: LatencyRecorder?

    /// Opens the embedded BPF object, sets the ring-buffer size and tgid filter, loads it and attaches every
    /// requested probe present in the binary.
    ///
    /// - Parameters:
    ///   - pid: The QEMU process.
    ///   - binaryPath: The QEMU executable; default: the target of `/proc/<pid>/exe`.
    ///   - configuration: Ring-buffer size, probes, scope.
    /// - Throws: ``LiveAttachError``; ``LiveAttachError/noQEMUProbes(binaryPath:)`` when the binary has no `qemu`
    ///   USDT notes, ``LiveAttachError/requiredProbeMissing(binaryPath:probe:error:)`` when
    ///   `migrate_transferred` cannot be attached. A missing context probe is not an error (see ``probes``).
    public convenience init(pid: Int32, binaryPath: String? = nil, configuration: Configuration = Configuration())
        throws(LiveAttachError)
    {
        let path: String
        if let binaryPath {
            path = binaryPath
        } else {
            do { path = try LivePreconditions.executablePath(pid: pid) } catch { throw .precondition(error) }
        }
        try self.init(pid: pid, binaries: [path], attachPID: configuration.scope == .process ? pid : -1, configuration: configuration)
    }

    /// Opens one session for every process of `binaries`, those started later included: the probes are attached by
    /// binary (libbpf's pid -1, the kernel's uprobes and USDT semaphores follow the file into every process that maps
    /// it), there is no tgid filter, and one ring buffer carries every process's events, each with its
    /// ``TraceEvent/processID``. ``attach(binary:)`` adds a binary later (a new QEMU, or an upgraded file).
    ///
    /// - Throws: as ``init(pid:binaryPath:configuration:)``, for the first binary that fails.
    public convenience init(everyProcessOf binaries: [String], configuration: Configuration = Configuration())
        throws(LiveAttachError)
    {
        guard !binaries.isEmpty else { throw .invalidConfiguration("no binary to attach to") }
        var config = configuration
        config.finishWhenProcessExits = false
        try self.init(pid: 0, binaries: binaries, attachPID: -1, configuration: config)
    }

    private init(pid: Int32, binaries: [String], attachPID: Int32, configuration: Configuration) throws(LiveAttachError) {
        let size = configuration.ringBufferSize
        guard size > 0, size <= Int(UInt32.max / 2) + 1, size & (size - 1) == 0 else {
            throw .invalidConfiguration("ring buffer size \(size) is not a power of two")
        }
        guard configuration.maxBatchSize > 0 else { throw .invalidConfiguration("maxBatchSize must be positive") }
        guard (1...100).contains(configuration.pollIntervalMs) else {
            throw .invalidConfiguration("pollIntervalMs \(configuration.pollIntervalMs) is not in 1...100")
        }
        guard configuration.probes.contains(.migrateTransferred) else {
            throw .invalidConfiguration("migrate_transferred must be among the probes")
        }
        guard (1...100_000).contains(configuration.wakeupIntervalMicroseconds) else {
            throw .invalidConfiguration("wakeupIntervalMicroseconds \(configuration.wakeupIntervalMicroseconds) is not in 1...100000")
        }
        // Which probes does each binary have? (Also tells "no dtrace backend" apart from other failures.)
        var notes: [[USDTProbe]] = []
        for path in binaries { notes.append(try Self.qemuProbes(in: path)) }

        mt_set_verbose(configuration.verbose)
        guard let h = mt_session_new() else { throw .libbpf(LibbpfError(operation: "mt_session_new", errno: ENOMEM)) }
        // From here on, every failure frees `h` through the one cleanup path.
        func check(_ rc: Int32, _ fallback: String) throws(LiveAttachError) {
            if rc < 0 {
                let op = mt_failed_op(h).map { String(cString: $0) } ?? fallback
                mt_session_free(h)
                throw .libbpf(LibbpfError(operation: op, errno: rc))
            }
        }
        let object = BPFObject.bytes
        try check(object.withUnsafeBytes { mt_open(h, $0.baseAddress!, $0.count) }, "bpf_object__open_mem")
        try check(mt_set_ringbuf_size(h, UInt32(size)), "bpf_map__set_max_entries(events)")
        try check(mt_set_target_tgid(h, UInt32(bitPattern: pid)), "set targ_tgid")
        try check(mt_set_wakeup_interval(h, UInt64(configuration.wakeupIntervalMicroseconds) * 1000), "set wakeup_interval_ns")
        try check(mt_load(h), "bpf_object__load")

        var attached: [String: [ProbeStatus]] = [:]
        for (path, probes) in zip(binaries, notes) {
            do {
                attached[path] = try Self.attachProbes(h, pid: attachPID, path: path, notes: probes, kinds: configuration.probes)
            } catch {
                mt_session_free(h)
                throw error
            }
        }

        self.pid = pid
        self.binaryPath = binaries[0]
        self.configuration = configuration
        self.probes = attached[binaries[0]]!
        self.handle = h
        self.binaries = Mutex(attached)
        let reportPath = getenv("MIGTRACE_LATENCY_REPORT").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
        self.latencyRecorder =
            configuration.measureLatency || reportPath != nil ? LatencyRecorder(reportPath: reportPath) : nil
    }

    /// The `qemu` USDT probes of the binary at `path`; none is an error that names the missing dtrace backend.
    private static func qemuProbes(in path: String) throws(LiveAttachError) -> [USDTProbe] {
        let probes: [USDTProbe]
        do { probes = USDTNotes.probes(try USDTNotes.read(path: path), provider: "qemu") } catch { throw .notes(error) }
        if probes.isEmpty { throw .noQEMUProbes(binaryPath: path) }
        return probes
    }

    /// Attaches every requested probe that `notes` has; `migrate_transferred` must attach (its links stay with the
    /// session either way: mt_session_free destroys them).
    private static func attachProbes(
        _ h: OpaquePointer, pid: Int32, path: String, notes: [USDTProbe], kinds: [ProbeKind]
    ) throws(LiveAttachError) -> [ProbeStatus] {
        var statuses: [ProbeStatus] = []
        for kind in kinds {
            let sites = notes.filter { $0.name == kind.eventName }
            var status = ProbeStatus(
                kind: kind, siteCount: sites.count, noteArgumentCount: sites.first?.argumentCount,
                hasSemaphore: sites.contains(where: \.hasSemaphore), attached: false, error: nil)
            if !sites.isEmpty {
                let rc = mt_attach_usdt(h, pid, path, "qemu", kind.eventName, UInt64(kind.rawValue))
                if rc == 0 {
                    status.attached = true
                } else {
                    let op = mt_failed_op(h).map { String(cString: $0) } ?? "bpf_program__attach_usdt"
                    status.error = LibbpfError(operation: op, errno: rc, probe: "qemu:\(kind.eventName)")
                }
            }
            if kind == .migrateTransferred && !status.attached {
                throw .requiredProbeMissing(binaryPath: path, probe: kind.eventName, error: status.error)
            }
            statuses.append(status)
        }
        return statuses
    }

    /// Attaches the probes of one more binary for every process (a session of ``init(everyProcessOf:configuration:)``):
    /// a QEMU binary seen for the first time, or a path whose file was replaced (an upgrade: the running processes
    /// keep the old file, new ones map the new one, and uprobes belong to a file). Returns the probes' statuses.
    ///
    /// - Throws: ``LiveAttachError`` as the initializer, or `.invalidConfiguration` on a session of one process.
    public func attach(binary path: String) throws(LiveAttachError) -> [ProbeStatus] {
        guard pid == 0 else { throw .invalidConfiguration("attach(binary:) needs a session of every process") }
        let notes = try Self.qemuProbes(in: path)
        let statuses = try state.withLock { (s: inout State) throws(LiveAttachError) -> [ProbeStatus] in
            guard !s.freed, let h = handle else {
                throw LiveAttachError.libbpf(LibbpfError(operation: "bpf_program__attach_usdt", errno: EBADF))
            }
            return try Self.attachProbes(h, pid: -1, path: path, notes: notes, kinds: configuration.probes)
        }
        binaries.withLock { $0[path] = statuses }
        return statuses
    }

    /// The probe statuses of `path`, when this session has attached it.
    public func probes(ofBinary path: String) -> [ProbeStatus]? {
        binaries.withLock { $0[path] }
    }

    deinit {
        close()
    }

    // MARK: - Counters

    /// Events lost in the kernel because the ring buffer was full (sum of the per-CPU reserve-failure counter).
    ///
    /// - Throws: ``LibbpfError`` if the counter map cannot be read, or after ``close()``.
    public func kernelDrops() throws(LibbpfError) -> UInt64 {
        // SAFETY: the lock keeps freeResources() from running during the read.
        try state.withLock { (s: inout State) throws(LibbpfError) -> UInt64 in
            guard !s.freed, let h = handle else { throw LibbpfError(operation: "mt_read_drops", errno: EBADF) }
            var total: UInt64 = 0
            let rc = mt_read_drops(h, &total)
            if rc < 0 {
                throw LibbpfError(operation: mt_failed_op(h).map { String(cString: $0) } ?? "mt_read_drops", errno: rc)
            }
            return total
        }
    }

    /// Events of process `tgid` lost in the kernel because the ring buffer was full. The per-process table holds
    /// `MT_MAX_DROP_PROCESSES` processes; a loss of a process beyond it is only in ``kernelDrops()``.
    public func kernelDrops(ofProcess tgid: Int32) throws(LibbpfError) -> UInt64 {
        try state.withLock { (s: inout State) throws(LibbpfError) -> UInt64 in
            guard !s.freed, let h = handle else { throw LibbpfError(operation: "mt_read_tgid_drops", errno: EBADF) }
            var total: UInt64 = 0
            let rc = mt_read_tgid_drops(h, UInt32(bitPattern: tgid), &total)
            if rc < 0 {
                throw LibbpfError(operation: mt_failed_op(h).map { String(cString: $0) } ?? "mt_read_tgid_drops", errno: rc)
            }
            return total
        }
    }

    /// Frees the per-process loss entry of a process that has ended (its pid may be reused); its losses stay in
    /// ``kernelDrops()``.
    public func forgetDrops(ofProcess tgid: Int32) {
        state.withLock { s in
            guard !s.freed, let h = handle else { return }
            _ = mt_forget_tgid_drops(h, UInt32(bitPattern: tgid))
        }
    }

    /// How many processes ``kernelDrops(ofProcess:)`` counts one by one (the BPF program's `drops_by_tgid` table).
    public static let perProcessDropCapacity = Int(MT_MAX_DROP_PROCESSES)

    /// Gives back to the system the memory a consumer's backlog took (malloc keeps it otherwise); for a long-running
    /// capture once a burst has been read.
    public static func releaseFreeMemory() { mt_release_free_memory() }

    /// Events dropped between the poll thread and the consumer. The stream buffers without bound, so this stays 0;
    /// it is counted anyway so that a policy change could never make losses silent.
    public var consumerDrops: UInt64 { consumerDropCount.load(ordering: .relaxed) }

    /// Records the poll thread could not decode (short record or unknown probe id); expected 0.
    public var undecodableRecords: UInt64 { undecodableCount.load(ordering: .relaxed) }

    /// Events handed to the stream so far.
    public var receivedEvents: UInt64 { receivedCount.load(ordering: .relaxed) }

    /// Probe-fire → consumer latency so far, when ``Configuration/measureLatency`` (or `MIGTRACE_LATENCY_REPORT`)
    /// is on; `nil` otherwise.
    public func latency() -> LatencySummary? { latencyRecorder?.summary() }

    // MARK: - Events

    /// Starts the poll thread and returns the stream of event batches. Call once per session.
    ///
    /// The poll thread (not the Swift cooperative pool) runs `ring_buffer__poll` with a
    /// ``Configuration/pollIntervalMs`` timeout (reading what is pending when it expires), decodes
    /// records into ``TraceEvent`` values (`origin: .live`, `clock: .monotonic`) and yields one batch per poll.
    /// The stream buffers without bound (no consumer-side drops). It finishes after ``stop()``/``close()`` once
    /// the ring buffer is drained, or when the traced process has exited (``Configuration/finishWhenProcessExits``),
    /// or throws ``LibbpfError`` if polling fails. Cancelling the consumer stops the thread.
    public func events() throws(LibbpfError) -> LiveEventStream {
        let (stream, continuation) = AsyncThrowingStream.makeStream(
            of: [TraceEvent].self, throwing: (any Error).self, bufferingPolicy: .unbounded)
        try state.withLock { (s: inout State) throws(LibbpfError) in
            guard !s.freed, let h = handle else { throw LibbpfError(operation: "ring_buffer__new", errno: EBADF) }
            guard !s.streamStarted else { throw LibbpfError(operation: "ring_buffer__new", errno: EALREADY) }
            self.continuation = continuation
            // SAFETY: passUnretained is sound because `self` owns the ring buffer and frees it (freeResources)
            // before it can be deallocated; the callback runs only inside mt_ringbuf_poll/consume on the poll
            // thread, which holds a retained reference to `self`.
            let ctx = Unmanaged.passUnretained(self).toOpaque()
            let rc = mt_ringbuf_open(h, liveSessionSample, ctx)
            if rc < 0 { throw LibbpfError(operation: "ring_buffer__new", errno: rc) }

            // The thread's closure holds a reference: the session stays alive while it polls.
            switch WorkerThread.start({ self.pollLoop() }) {
            case .success(let thread): s.thread = thread
            case .failure(let e): throw LibbpfError(operation: "pthread_create", errno: e.errno)
            }
            s.streamStarted = true
        }
        continuation.onTermination = { [weak self] _ in
            self?.stopRequested.store(true, ordering: .releasing)
        }
        return LiveEventStream(base: stream, latency: latencyRecorder)
    }

    /// Asks the poll thread to drain the ring buffer and finish the stream (within one poll timeout).
    public func stop() {
        stopRequested.store(true, ordering: .releasing)
    }

    /// Stops the poll thread, waits for it, and frees every libbpf resource (links, ring buffer, object).
    /// Idempotent.
    public func close() {
        stop()
        // Only deinit can run close() on the poll thread, and then nobody else holds a reference: no deadlock.
        closeLock.withLock { _ in
            let toJoin: WorkerThread? = state.withLock { s in
                guard let t = s.thread, !s.joined else { return nil }
                s.joined = true
                return t
            }
            if let t = toJoin {
                if t.isCurrent {
                    t.detach()  // last reference dropped by the poll thread itself
                } else {
                    t.join()
                }
            }
            freeResources()
        }
    }

    /// The one place that frees the C session.
    private func freeResources() {
        state.withLock { s in
            guard !s.freed else { return }
            s.freed = true
            mt_session_free(handle)
            handle = nil
        }
    }

    // MARK: - Poll thread

    fileprivate func pollLoop() {
        guard let h = state.withLock({ s in s.freed ? nil : handle }) else {
            continuation?.finish()
            return
        }
        var failure: LibbpfError?
        let timeout = Int32(configuration.pollIntervalMs)
        while !stopRequested.load(ordering: .acquiring) {
            // Consumes on wakeups and, when the timeout expires, whatever was submitted without one.
            let n = mt_ringbuf_poll(h, timeout)
            if n < 0 && n != -EINTR {
                failure = LibbpfError(
                    operation: mt_failed_op(h).map { String(cString: $0) } ?? "ring_buffer__poll", errno: n)
                break
            }
            flush()
            if configuration.finishWhenProcessExits && pid > 0 && !processAlive() { break }
        }
        if failure == nil {
            // Drain what the producer submitted before the stop.
            let n = mt_ringbuf_consume(h)
            if n < 0 { failure = LibbpfError(operation: "ring_buffer__consume", errno: n) }
        }
        flush()
        if let failure { continuation?.finish(throwing: failure) } else { continuation?.finish() }
    }

    /// Whether the traced process still exists (a zombie counts as alive until reaped).
    private func processAlive() -> Bool {
        kill(pid, 0) == 0 || errno != ESRCH
    }

    fileprivate func onSample(_ data: UnsafeRawPointer, _ size: Int) {
        guard let event = LiveEventDecoder.decode(data, size: size) else {
            undecodableCount.add(1, ordering: .relaxed)
            return
        }
        pending.append(event)
        if pending.count >= configuration.maxBatchSize { flush() }
    }

    private func flush() {
        guard !pending.isEmpty else { return }
        let batch = pending
        pending.removeAll(keepingCapacity: true)
        receivedCount.add(UInt64(batch.count), ordering: .relaxed)
        if case .dropped(let dropped) = continuation?.yield(batch) {
            consumerDropCount.add(UInt64(dropped.count), ordering: .relaxed)
        }
    }
}

/// ring_buffer_sample_fn: must not capture; all state travels through `ctx`.
private func liveSessionSample(_ ctx: UnsafeMutableRawPointer?, _ data: UnsafeRawPointer, _ size: Int) -> Int32 {
    // SAFETY: ctx is the passUnretained LiveSession that owns this ring buffer (see events()); it is alive
    // because the poll thread, the only caller, holds a retained reference.
    let session = Unmanaged<LiveSession>.fromOpaque(ctx!).takeUnretainedValue()
    session.onSample(data, size)
    return 0
}

/// The batches of live events of a ``LiveSession``: an `AsyncSequence` of `[TraceEvent]`.
public struct LiveEventStream: AsyncSequence, Sendable {
    public typealias Element = [TraceEvent]

    let base: AsyncThrowingStream<[TraceEvent], any Error>
    let latency: LatencyRecorder?

    /// The iterator; `next()` throws ``LibbpfError`` if polling failed.
    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncThrowingStream<[TraceEvent], any Error>.AsyncIterator
        let latency: LatencyRecorder?

        public mutating func next() async throws -> [TraceEvent]? {
            guard let latency else { return try await base.next() }
            do {
                let batch = try await base.next()
                if let batch { latency.record(batch) } else { latency.streamEnded() }
                return batch
            } catch {
                latency.streamEnded()
                throw error
            }
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: base.makeAsyncIterator(), latency: latency)
    }
}

/// Percentiles of the probe-fire → consumer latency of a live session.
public struct LatencySummary: Sendable, Equatable, CustomStringConvertible {
    /// Events measured.
    public var count: UInt64
    /// Median, 99th percentile and maximum, ns (percentiles to within 1/32 of the value: log-linear buckets).
    public var p50Nanoseconds: UInt64
    public var p99Nanoseconds: UInt64
    public var maxNanoseconds: UInt64

    public var description: String {
        "latency_events=\(count) p50_ns=\(p50Nanoseconds) p99_ns=\(p99Nanoseconds) max_ns=\(maxNanoseconds)"
    }
}

/// A log-linear latency histogram (32 sub-buckets per power of two), fed by the stream's consumer.
final class LatencyRecorder: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: every mutable field is behind `lock`.
    private static let subBits = 5
    private static let bucketCount = (64 - subBits + 1) << subBits
    private let lock = Mutex(())
    private nonisolated(unsafe) var buckets = [UInt64](repeating: 0, count: LatencyRecorder.bucketCount)
    private nonisolated(unsafe) var count: UInt64 = 0
    private nonisolated(unsafe) var maxValue: UInt64 = 0
    private nonisolated(unsafe) var reported = false
    private let reportPath: String?

    init(reportPath: String?) { self.reportPath = reportPath }

    @inline(__always) private static func bucket(_ v: UInt64) -> Int {
        let sub = UInt64(1) << UInt64(subBits)
        if v < sub { return Int(v) }
        let exp = 63 - v.leadingZeroBitCount  // >= subBits
        let shift = exp - subBits
        return ((shift + 1) << subBits) + Int((v >> UInt64(shift)) - sub)
    }

    /// The upper edge of a bucket (a value reported for the percentiles: never an under-estimate).
    private static func upperEdge(_ b: Int) -> UInt64 {
        let sub = 1 << subBits
        if b < sub { return UInt64(b) }
        let shift = (b >> subBits) - 1
        let mantissa = UInt64(sub + (b & (sub - 1)))
        return ((mantissa &+ 1) &<< UInt64(shift)) &- 1  // the top bucket wraps to UInt64.max
    }

    /// One batch, as the consumer receives it: latency = now - the event's BPF timestamp.
    func record(_ batch: [TraceEvent]) {
        let now = MonotonicClock.monotonicNanoseconds()
        lock.withLock { _ in
            for e in batch {
                guard e.clock == .monotonic, let ts = e.timestampNanoseconds else { continue }
                let d = now >= ts ? now - ts : 0
                buckets[Self.bucket(d)] += 1
                count += 1
                if d > maxValue { maxValue = d }
            }
        }
    }

    func summary() -> LatencySummary {
        lock.withLock { _ in
            func percentile(_ p: Double) -> UInt64 {
                guard count > 0 else { return 0 }
                let rank = max(1, UInt64((Double(count) * p).rounded(.up)))
                var seen: UInt64 = 0
                for (b, n) in buckets.enumerated() where n > 0 {
                    seen += n
                    if seen >= rank { return min(Self.upperEdge(b), maxValue) }
                }
                return maxValue
            }
            return LatencySummary(
                count: count, p50Nanoseconds: percentile(0.5), p99Nanoseconds: percentile(0.99), maxNanoseconds: maxValue)
        }
    }

    /// Writes the summary to `MIGTRACE_LATENCY_REPORT` once, when the stream ends.
    func streamEnded() {
        guard let reportPath else { return }
        let first = lock.withLock { _ in
            defer { reported = true }
            return !reported
        }
        guard first else { return }
        let text = Array((summary().description + "\n").utf8)
        let fd = open(reportPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        _ = text.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        _ = close(fd)
    }
}
