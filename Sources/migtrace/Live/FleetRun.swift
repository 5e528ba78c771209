// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import MigtraceBPF
import MigtraceCore
import MigtraceIO

#if canImport(Glibc)
    import Glibc
#endif

/// `attach --all`: a capture of every process of the QEMU binaries with the probe, those started later included
/// (the process list is read again every second). Each process has its own BPF session, analyzer and sinks, and its
/// output lines carry its label (`[vm pid]` in text, `"pid"` and `"vm"` fields in JSON Lines). Every session's
/// batches come through one stream to this one task, so each analyzer and the shared standard output are used by
/// one thread at a time, as everywhere in migtrace (BatchPipe.swift).
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
        let session: LiveSession
        let analyzer: MigrationAnalyzer
        let output: LabelledOutput
        var reportedDrops: UInt64 = 0

        init(pid: Int32, session: LiveSession, analyzer: MigrationAnalyzer, output: LabelledOutput) {
            self.pid = pid
            self.session = session
            self.analyzer = analyzer
            self.output = output
        }
    }

    /// What reaches the fleet's one consumer.
    private enum Arrival: Sendable {
        case batch(Int32, [TraceEvent])
        case closed(Int32, String?)
        case rescan
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
        let targets = try resolveBinaries()
        let endpoint = try metrics.map { address throws(LiveFailure) in try MetricsEndpoint.start(address: address) }
        defer { endpoint?.server.stop() }
        printError(
            "migtrace: watching every process of \(targets.sorted().joined(separator: ", ")) (Ctrl-C ends with a summary per process)")

        let (arrivals, feed) = AsyncStream.makeStream(of: Arrival.self)
        let stopper = CaptureStopper { feed.finish() }
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                feed.yield(.rescan)
            }
        }
        defer { ticker.cancel() }
        let out = FileDescriptorOutput.standardOutput
        let offset = MonotonicClock.realtimeOffsetNanoseconds()
        var captures: [Int32: Capture] = [:]
        var refused: Set<Int32> = []
        var ended: [(pid: Int32, end: CaptureEnd)] = []
        var worst: ExitCode = .success

        func endCapture(_ c: Capture, reason: String) {
            let end = CaptureEnd(
                reason: reason, eventsReceived: c.session.receivedEvents, kernelDrops: (try? c.session.kernelDrops()) ?? c.reportedDrops,
                consumerDrops: c.session.consumerDrops)
            c.analyzer.live(.ended(end))
            let report = c.analyzer.finish()
            c.output.finishLine()
            c.session.close()
            ended.append((c.pid, end))
            if analysis.exitCode(for: report) != .success { worst = analysis.exitCode(for: report) }
        }

        func attachNew() {
            for pid in Self.processes(of: targets) where captures[pid] == nil && !refused.contains(pid) {
                let name = QEMUCommandLine.vmName(pid: pid) ?? ""
                let session: LiveSession
                let stream: LiveEventStream
                do {
                    var config = LiveSession.Configuration()
                    config.ringBufferSize = ringBufferSize
                    config.verbose = verbose
                    session = try LiveSession(pid: pid, binaryPath: try LivePreconditions.executablePath(pid: pid), configuration: config)
                    stream = try session.events()
                } catch {
                    refused.insert(pid)
                    printError("migtrace: pid \(pid) not attached: \(LiveFailure(error, pid: pid).message)")
                    continue
                }
                let output = LabelledOutput(out: out, pid: pid, vm: name, json: format == .json)
                let display: any AnalysisSink =
                    format == .json
                    ? JSONLinesSink(out: output, flushEachObject: false)
                    : TextSink(out: output, names: InputNames(["live"]), flushEachLine: false)
                let sink: any AnalysisSink = endpoint.map { TeeSink([display, $0.sink(pid: pid)]) } ?? display
                var configuration = analysis.configuration
                configuration.liveUpdates = true
                let analyzer = MigrationAnalyzer(configuration: configuration, sink: sink)
                analyzer.live(
                    .attached(
                        LiveAttachment(
                            migtraceVersion: Migtrace.version, pid: pid, binary: session.binaryPath, ringBufferBytes: ringBufferSize,
                            probes: session.probes.map {
                                .init(
                                    name: $0.name, attached: $0.attached, argumentCount: $0.noteArgumentCount, siteCount: $0.siteCount,
                                    reason: $0.reason)
                            }, recordPath: nil)))
                captures[pid] = Capture(pid: pid, session: session, analyzer: analyzer, output: output)
                Task {
                    do {
                        for try await batch in stream { feed.yield(.batch(pid, batch)) }
                        feed.yield(.closed(pid, nil))
                    } catch {
                        feed.yield(.closed(pid, "\(error)"))
                    }
                }
            }
            out.flush()
        }

        attachNew()
        for await arrival in arrivals {
            switch arrival {
            case .rescan:
                attachNew()
            case .batch(let pid, let batch):
                guard let c = captures[pid] else { continue }
                for var e in batch {
                    let mono = e.timestampNanoseconds
                    if let m = mono {
                        e.timestampNanoseconds = MonotonicClock.wallNanoseconds(monotonic: m, offset: offset)
                        e.clock = .wall
                    }
                    c.analyzer.live(.captured(e, monotonicNanoseconds: mono))
                    c.analyzer.consume(e)
                }
                let drops = (try? c.session.kernelDrops()) ?? c.reportedDrops
                if drops > c.reportedDrops {
                    c.reportedDrops = drops
                    c.analyzer.live(.lost(kernelDrops: drops, consumerDrops: c.session.consumerDrops))
                }
                out.flush()
                if out.closed { stopper.end("output-closed") }
            case .closed(let pid, let failure):
                guard let c = captures.removeValue(forKey: pid) else { continue }
                if let failure { printError("migtrace: pid \(pid): live capture failed: \(failure)") }
                endCapture(c, reason: failure == nil ? "target-exited" : "error")
                out.flush()
            }
        }
        let reason = stopper.why ?? "target-exited"
        for pid in captures.keys.sorted() { endCapture(captures[pid]!, reason: reason) }
        out.flush()
        let received = ended.reduce(0) { $0 + $1.end.eventsReceived }
        let kernel = ended.reduce(0) { $0 + $1.end.kernelDrops }
        let consumer = ended.reduce(0) { $0 + $1.end.consumerDrops }
        printError(
            "migtrace: \(ended.count) \(ended.count == 1 ? "process" : "processes") captured: \(received) events received; lost \(kernel) events (kernel), \(consumer) (consumer)"
        )
        if let failure = outputWriteFailure() {
            printError(failure)
            return MigtraceExit.error
        }
        return worst
    }

    /// The binaries to watch: those given (each must carry the probe), or those of the running processes that do.
    private func resolveBinaries() throws(LiveFailure) -> Set<String> {
        func hasProbe(_ path: String) -> Bool {
            guard let probes = try? USDTNotes.read(path: path) else { return false }
            return probes.contains { $0.provider == "qemu" && $0.name == "migrate_transferred" }
        }
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
                guard hasProbe(path) else {
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
        for pid in Self.allPids() {
            guard let exe = Self.executable(pid), checked.insert(exe).inserted else { continue }
            if hasProbe(exe) { found.insert(exe) }
        }
        guard !found.isEmpty else {
            throw LiveFailure(
                message:
                    "no running process has the qemu:migrate_transferred probe; name the QEMU binary with --binary PATH to wait for its processes",
                code: AttachExit.notQEMUWithProbe)
        }
        return found
    }

    /// Every pid in /proc.
    private static func allPids() -> [Int32] {
        guard let dir = opendir("/proc") else { return [] }
        defer { closedir(dir) }
        var pids: [Int32] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if let pid = Int32(name), pid > 0 { pids.append(pid) }
        }
        return pids
    }

    /// The executable of `pid` (a deleted or replaced one without its " (deleted)" mark).
    private static func executable(_ pid: Int32) -> String? {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/\(pid)/exe", &buf, buf.count - 1)
        guard n > 0 else { return nil }
        var path = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if path.hasSuffix(" (deleted)") { path.removeLast(10) }
        return path
    }

    /// The processes running one of `binaries`, in pid order (kernel threads and zombies have no executable).
    private static func processes(of binaries: Set<String>) -> [Int32] {
        allPids().filter { pid in executable(pid).map(binaries.contains) ?? false }.sorted()
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
        var start = 0
        while let nl = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) {
            line += bytes[start...nl]
            emit()
            start = nl + 1
        }
        line += bytes[start...]
    }

    func flush() { out.flush() }

    /// Write out a last line that has no newline.
    func finishLine() {
        if !line.isEmpty {
            line.append(UInt8(ascii: "\n"))
            emit()
        }
    }

    private func emit() {
        if json, line.first == UInt8(ascii: "{") {
            out.write([UInt8(ascii: "{")] + label + line.dropFirst())
        } else if json {
            out.write(line)
        } else {
            out.write(label + line)
        }
        line.removeAll(keepingCapacity: true)
    }
}
