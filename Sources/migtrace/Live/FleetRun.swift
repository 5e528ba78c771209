// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import MigtraceBPF
import MigtraceCore
import MigtraceIO

#if canImport(Glibc)
    import Glibc
#endif

/// `attach --all`: a capture of every process of the QEMU binaries with the probe, those started later included.
///
/// One BPF session serves them all: its probes are attached by binary, so the kernel fires them in every process
/// that runs the file, those started later too (their USDT semaphores are set when they map it), and one ring
/// buffer carries every event with its process id. Attaching is one BPF load whatever the number of processes, and
/// memory is one ring. `/proc` is read again every second (``ProcessTable``) to give idle processes their header,
/// to close those that exited with their summary (one scan after the exit was seen, when the ring holds nothing
/// more of theirs), and to attach a binary file seen for the first time (a new QEMU binary without `--binary`, or
/// an upgraded one). Each process has its own analyzer and sinks, and its output lines carry its label (`[vm pid]`
/// in text, `"pid"` and `"vm"` in JSON Lines). Events, scans and the end arrive through one stream to this one
/// task, so each analyzer and the shared standard output are used by one thread at a time (BatchPipe.swift).
struct FleetRun {
    var binaries: [String]
    var format: LiveFormat
    var ringBufferSize: Int
    var verbose: Bool
    var analysis: AnalysisOptions
    var metrics: String?

    /// One process being captured.
    private final class Capture {
        let pid: Int32
        let analyzer: MigrationAnalyzer
        let output: LabelledOutput
        var events: UInt64 = 0
        var reportedDrops: UInt64 = 0

        init(pid: Int32, analyzer: MigrationAnalyzer, output: LabelledOutput) {
            self.pid = pid
            self.analyzer = analyzer
            self.output = output
        }
    }

    /// What reaches the fleet's one consumer.
    private enum Arrival: Sendable {
        case batch([TraceEvent])
        case closed(String?)
        case rescan
    }

    /// What the ended captures add up to.
    private struct Totals {
        var processes = 0
        var events: UInt64 = 0
        var kernelDrops: UInt64 = 0
    }

    func run() async throws -> ExitCode {
        signal(SIGPIPE, SIG_IGN)
        return try await LiveFailure.reported { try await capture() }
    }

    private func capture() async throws -> ExitCode {
        do {
            let caps = (try? CapabilitySet.currentEffective()) ?? CapabilitySet(rawValue: 0)
            try LivePreconditions.checkPrivileges(euid: geteuid(), effective: caps)
            try LivePreconditions.checkUprobes()
        } catch {
            throw LiveFailure(error, pid: 0)
        }
        let followNewBinaries = binaries.isEmpty
        var targets = try resolveBinaries()
        let session: LiveSession
        do {
            var config = LiveSession.Configuration()
            config.ringBufferSize = ringBufferSize
            config.verbose = verbose
            // The BPF program wakes the reader for the first event after a quiet millisecond, so the timeout only
            // reads a burst's tail and bounds the stop: 100 ms keeps an idle host service at 10 wakeups a second.
            config.pollIntervalMs = 100
            // Many QEMUs fire thousands of events a second together: a wakeup for each cost more than their
            // analysis (context switches were 44 % of migtrace's CPU with 20 migrating VMs). Read every 20 ms;
            // a lone event after a quiet 20 ms still wakes the reader at once.
            config.wakeupIntervalMicroseconds = 20_000
            session = try LiveSession(everyProcessOf: targets.sorted(), configuration: config)
        } catch {
            throw LiveFailure(error, pid: 0)
        }
        defer { session.close() }
        var attachedFiles = Set(targets.compactMap(FileIdentity.init(path:)))
        var probeOfFile: [FileIdentity: Bool] = [:]
        let endpoint = try metrics.map { address throws(LiveFailure) in try MetricsEndpoint.start(address: address) }
        defer { endpoint?.server.stop() }
        printError(
            "migtrace: watching every process of \(targets.sorted().map(TerminalText.escaped).joined(separator: ", ")) (Ctrl-C ends with a summary per process)"
        )

        let (arrivals, feed) = AsyncStream.makeStream(of: Arrival.self)
        let stopper = CaptureStopper { session.stop() }
        let stream: LiveEventStream
        do { stream = try session.events() } catch { throw LiveFailure(LiveAttachError.libbpf(error), pid: 0) }
        let forward = Task {
            do {
                for try await batch in stream { feed.yield(.batch(batch)) }
                feed.yield(.closed(nil))
            } catch {
                feed.yield(.closed("\(error)"))
            }
        }
        defer { forward.cancel() }
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                feed.yield(.rescan)
            }
        }
        defer { ticker.cancel() }
        let out = FileDescriptorOutput.standardOutput
        let offset = MonotonicClock.realtimeOffsetNanoseconds()
        var table = ProcessTable()
        var captures: [Int32: Capture] = [:]
        var exitSeen: [Int32] = []
        var totals = Totals()
        var checkedDrops: UInt64 = 0
        var receivedAtScan: UInt64 = 0
        var burstSeen = false
        var worst: ExitCode = .success

        func start(_ pid: Int32, binary: String) -> Capture {
            let name = QEMUCommandLine.vmName(pid: pid) ?? ""
            let output = LabelledOutput(out: out, pid: pid, vm: name, json: format == .json)
            let display: any AnalysisSink =
                format == .json
                ? JSONLinesSink(out: output, flushEachObject: false)
                : TextSink(out: output, names: InputNames(["live"]), flushEachLine: false)
            let sink: any AnalysisSink = endpoint.map { TeeSink([display, $0.sink(pid: pid, name: name)]) } ?? display
            var configuration = analysis.configuration
            configuration.liveUpdates = true
            let analyzer = MigrationAnalyzer(configuration: configuration, sink: sink)
            let probes = session.probes(ofBinary: binary) ?? session.probes
            analyzer.live(
                .attached(
                    LiveAttachment(
                        migtraceVersion: Migtrace.version, pid: pid, binary: binary, ringBufferBytes: ringBufferSize,
                        probes: probes.map {
                            .init(
                                name: $0.name, attached: $0.attached, argumentCount: $0.noteArgumentCount, siteCount: $0.siteCount,
                                reason: $0.reason)
                        }, recordPath: nil)))
            let capture = Capture(pid: pid, analyzer: analyzer, output: output)
            captures[pid] = capture
            table.watch(pid)
            return capture
        }

        func end(_ c: Capture, reason: String) {
            let drops = (try? session.kernelDrops(ofProcess: c.pid)) ?? c.reportedDrops
            c.analyzer.live(.ended(CaptureEnd(reason: reason, eventsReceived: c.events, kernelDrops: drops, consumerDrops: 0)))
            let report = c.analyzer.finish()
            c.output.finishLine()
            session.forgetDrops(ofProcess: c.pid)
            captures[c.pid] = nil
            totals.processes += 1
            totals.events += c.events
            totals.kernelDrops += drops
            if analysis.exitCode(for: report) != .success { worst = analysis.exitCode(for: report) }
        }

        /// Whether `p` runs a binary to follow; without --binary, any file with the probe, checked once per file.
        func isTarget(_ p: ProcessTable.Process) -> Bool {
            if targets.contains(p.executable) { return true }
            guard followNewBinaries else { return false }
            if let known = probeOfFile[p.file] { return known }
            let has = Self.hasProbe("/proc/\(p.pid)/exe")
            probeOfFile[p.file] = has
            if has { targets.insert(p.executable) }
            return has
        }

        func rescan() {
            // A burst is held in memory while the analysis catches up (nothing is dropped); once it has, give the
            // memory back to the system, which malloc keeps otherwise: a host service stays at its idle size.
            // (This scan came through the same stream as the batches, so those before it have been analysed.)
            let received = session.receivedEvents
            if received - receivedAtScan > 100_000 {
                burstSeen = true
            } else if burstSeen && received - receivedAtScan < 10_000 {
                burstSeen = false
                LiveSession.releaseFreeMemory()
            }
            receivedAtScan = received
            // Exits seen by the previous scan: the ring has long been drained of their events.
            for pid in exitSeen { if let c = captures[pid] { end(c, reason: "target-exited") } }
            let changes = table.scan()
            exitSeen = changes.ended.filter { captures[$0] != nil }
            for p in changes.started where isTarget(p) {
                if !attachedFiles.contains(p.file) {
                    // A deleted or replaced file is reached through the process only.
                    let path = p.executableDeleted ? "/proc/\(p.pid)/exe" : p.executable
                    do {
                        _ = try session.attach(binary: path)
                        attachedFiles.insert(p.file)
                        printError(
                            "migtrace: \(TerminalText.escaped(p.executable)) is a new file (pid \(p.pid)); its probes are attached too")
                    } catch {
                        printError("migtrace: pid \(p.pid) not attached: \(LiveFailure(error, pid: p.pid).message)")
                        continue
                    }
                }
                if captures[p.pid] == nil { _ = start(p.pid, binary: p.executable) }
            }
            // Losses: the total is one map read; a process's own count is read only when the total grew.
            let total = (try? session.kernelDrops()) ?? checkedDrops
            if total > checkedDrops {
                checkedDrops = total
                for c in captures.values {
                    let drops = (try? session.kernelDrops(ofProcess: c.pid)) ?? c.reportedDrops
                    if drops > c.reportedDrops {
                        c.reportedDrops = drops
                        c.analyzer.live(.lost(kernelDrops: drops, consumerDrops: 0))
                    }
                }
            }
            out.flush()
        }

        rescan()
        var failure: String?
        loop: for await arrival in arrivals {
            switch arrival {
            case .rescan:
                rescan()
            case .batch(let batch):
                var last: Capture?
                for var e in batch {
                    let pid = Int32(bitPattern: e.processID ?? 0)
                    let c: Capture
                    if let l = last, l.pid == pid {
                        c = l
                    } else {
                        // A process's first event can come before the scan that finds it.
                        c = captures[pid] ?? start(pid, binary: ProcessTable.process(pid)?.executable ?? session.binaryPath)
                        last = c
                    }
                    c.events += 1
                    let mono = e.timestampNanoseconds
                    if let m = mono {
                        e.timestampNanoseconds = MonotonicClock.wallNanoseconds(monotonic: m, offset: offset)
                        e.clock = .wall
                    }
                    c.analyzer.live(.captured(e, monotonicNanoseconds: mono))
                    c.analyzer.consume(e)
                }
                out.flush()
                if out.closed { stopper.end("output-closed") }
            case .closed(let error):
                failure = error
                break loop
            }
        }
        if let failure {
            printError("migtrace: live capture failed: \(failure)")
            stopper.end("error")
        }
        let reason = stopper.why ?? "error"
        for pid in captures.keys.sorted() { end(captures[pid]!, reason: exitSeen.contains(pid) ? "target-exited" : reason) }
        out.flush()
        let kernel = (try? session.kernelDrops()) ?? totals.kernelDrops
        printError(
            "migtrace: \(totals.processes) \(totals.processes == 1 ? "process" : "processes") captured: \(session.receivedEvents) events received; lost \(kernel) events (kernel), \(session.consumerDrops) (consumer)"
        )
        if kernel > totals.kernelDrops {
            printError(
                "migtrace: \(kernel - totals.kernelDrops) of the lost events are of processes beyond the \(LiveSession.perProcessDropCapacity) the kernel counts one by one"
            )
        }
        if let failure = outputWriteFailure() {
            printError(failure)
            return MigtraceExit.error
        }
        return failure == nil ? worst : MigtraceExit.error
    }

    /// Whether the file at `path` carries QEMU's `migrate_transferred` probe.
    private static func hasProbe(_ path: String) -> Bool {
        guard let probes = try? USDTNotes.read(path: path) else { return false }
        return probes.contains { $0.provider == "qemu" && $0.name == "migrate_transferred" }
    }

    /// The binaries to watch: those given (each must carry the probe), or those of the running processes that do.
    private func resolveBinaries() throws(LiveFailure) -> Set<String> {
        if !binaries.isEmpty {
            var set: Set<String> = []
            for b in binaries {
                guard let real = realpath(b, nil) else {
                    throw LiveFailure(
                        message: "--binary \(b): \(String(cString: strerror(errno))); give the QEMU binary's path", code: MigtraceExit.error
                    )
                }
                let path = String(cString: real)
                free(real)
                guard Self.hasProbe(path) else {
                    throw LiveFailure(
                        message:
                            "\(path) has no qemu:migrate_transferred probe (built without the dtrace trace backend?); `migtrace probes \(path)` lists its probes",
                        code: AttachExit.notQEMUWithProbe)
                }
                set.insert(path)
            }
            return set
        }
        var found: Set<String> = []
        var checked: Set<String> = []
        for pid in ProcessTable.pids() {
            guard let p = ProcessTable.process(pid), !p.executableDeleted, checked.insert(p.executable).inserted else { continue }
            if Self.hasProbe(p.executable) { found.insert(p.executable) }
        }
        guard !found.isEmpty else {
            throw LiveFailure(
                message:
                    "no running process has the qemu:migrate_transferred probe; name the QEMU binary with --binary PATH to wait for its processes",
                code: AttachExit.notQEMUWithProbe)
        }
        return found
    }
}

/// One capture's share of standard output: each complete line goes out with the capture's label (text: a
/// `[vm pid] ` prefix; JSON Lines: `"pid"` and `"vm"` as the first fields), so the lines of many processes can
/// interleave and still be told apart.
final class LabelledOutput: ByteOutput {
    private let out: any ByteOutput
    private let label: [UInt8]
    private let json: Bool
    private var line: [UInt8] = []
    private var staged: [UInt8] = []

    init(out: any ByteOutput, pid: Int32, vm: String, json: Bool) {
        self.out = out
        self.json = json
        if json {
            var w = JSONWriter()
            w.raw("\"pid\":\(pid),\"vm\":")
            w.string(vm)
            w.raw(",")
            label = w.bytes
        } else {
            label = Array("[\(TerminalText.escaped(vm.isEmpty ? "-" : vm)) \(pid)] ".utf8)
        }
    }

    func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { write($0) }
    }

    /// Complete lines go out labelled, in one write per call (a sink writes a batch of lines at once); the rest of
    /// a line waits for its newline.
    func write(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        var start = 0
        while start < bytes.count {
            guard let hit = memchr(base + start, 0x0A, bytes.count - start) else {
                line.append(contentsOf: bytes[start...])
                break
            }
            let end = UnsafeRawPointer(hit) - base + 1
            if line.isEmpty {
                stage(UnsafeRawBufferPointer(rebasing: bytes[start..<end]))
            } else {
                line.append(contentsOf: bytes[start..<end])
                line.withUnsafeBytes { stage($0) }
                line.removeAll(keepingCapacity: true)
            }
            start = end
        }
        if !staged.isEmpty {
            staged.withUnsafeBytes { out.write($0) }
            staged.removeAll(keepingCapacity: true)
        }
    }

    func flush() { out.flush() }

    /// Write out a last line that has no newline.
    func finishLine() {
        if !line.isEmpty {
            line.append(UInt8(ascii: "\n"))
            line.withUnsafeBytes { stage($0) }
            line.removeAll(keepingCapacity: true)
            staged.withUnsafeBytes { out.write($0) }
            staged.removeAll(keepingCapacity: true)
        }
    }

    /// One complete line, labelled, into the block written out at the end of the call.
    private func stage(_ line: UnsafeRawBufferPointer) {
        if json, line.first == UInt8(ascii: "{") {
            staged.append(UInt8(ascii: "{"))
            staged.append(contentsOf: label)
            staged.append(contentsOf: line[1...])
        } else if json {
            staged.append(contentsOf: line)
        } else {
            staged.append(contentsOf: label)
            staged.append(contentsOf: line)
        }
    }
}
