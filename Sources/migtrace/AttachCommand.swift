// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Dispatch
import MigtraceBPF
import MigtraceCore

#if canImport(Glibc)
    import Glibc
#endif

/// Exit codes of `attach` beyond the common ones (README "Exit codes").
enum AttachExit {
    static let noSuchProcess = ExitCode(3)
    static let privileges = ExitCode(4)
    static let kernelSupport = ExitCode(5)
    static let notQEMUWithProbe = ExitCode(6)
    static let recording = ExitCode(7)
}

/// `migtrace attach <pid>`: live analysis of a running QEMU through its USDT probes.
struct AttachCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attach",
        abstract: "Attach to a running QEMU's USDT probes and analyse its migration live.",
        discussion: """
            Needs a QEMU built with the dtrace trace backend (RHEL, CentOS, Fedora)
            and root, or CAP_SYS_ADMIN (uprobes need it again since Linux 6.16 and
            its stable backports; older kernels take CAP_BPF+CAP_PERFMON) plus
            CAP_SYS_PTRACE for a QEMU of another user. Ends when the target exits, on
            Ctrl-C/SIGTERM/SIGHUP, or with --until-complete when the migration
            completes; the summary and drop counts are printed last.

            EXAMPLES:
              migtrace attach $(pidof qemu-kvm)
              migtrace attach --record mig.rec --until-complete 4242
              migtrace attach --format json 4242 | jq -c 'select(.type=="anomaly")'
              migtrace analyze mig.rec   # replays: same series, same anomalies

            EXIT CODES (besides 0, 1, 2, 64 of every command):
              3 no such process
              4 missing privileges (root, or the capabilities above)
              5 the kernel lacks uprobes or the BPF ring buffer
              6 not a QEMU with the qemu:migrate_transferred probe
              7 recording file refused or not writable
            """
    )

    @Argument(help: "Process id of the source QEMU.")
    var pid: Int32

    @OptionGroup var output: LiveOutputOptions

    @Flag(help: "Stop once the migration reaches completed, failed or cancelled (needs the migrate_set_state probe).")
    var untilComplete = false

    @Option(help: "Ring-buffer size in bytes (a power of two, at least a page); room for bursts.")
    var ringBufferSize: Int = LiveSession.Configuration.defaultRingBufferSize

    @Flag(help: "Show libbpf's debug log.")
    var verbose = false

    @OptionGroup var analysis: AnalysisOptions

    func validate() throws {
        guard pid > 0 else { throw ValidationError("The pid must be a positive number, e.g. $(pidof qemu-system-x86_64).") }
        guard ringBufferSize >= 4096, ringBufferSize & (ringBufferSize - 1) == 0 else {
            throw ValidationError("--ring-buffer-size must be a power of two of at least 4096 bytes.")
        }
    }

    func run() async throws {
        let code = try await LiveRun(
            pid: pid, format: output.format, record: output.record, force: output.force, untilComplete: untilComplete,
            ringBufferSize: ringBufferSize, verbose: verbose, analysis: analysis
        ).run()
        if code != .success { throw code }
    }
}

/// One live capture, shared by `attach` and `demo`.
struct LiveRun {
    var pid: Int32
    var format: OutputFormat
    var record: String?
    var force: Bool
    var untilComplete: Bool
    var ringBufferSize: Int
    var verbose: Bool
    var analysis: AnalysisOptions
    /// Called once the probes are attached (the demo starts its target's replay then).
    var onAttached: (@Sendable () -> Void)? = nil

    func fail(_ message: String, _ code: ExitCode) -> ExitCode {
        printError("migtrace: \(message)")
        return code
    }

    func run() async throws -> ExitCode {
        signal(SIGPIPE, SIG_IGN)
        let binary: String
        do {
            binary = try LivePreconditions.check(pid: pid)
        } catch {
            switch error {
            case .noSuchProcess: return fail("\(error); check the pid with `pgrep -a qemu`", AttachExit.noSuchProcess)
            case .insufficientPrivileges: return fail(error.description, AttachExit.privileges)
            case .uprobesUnavailable:
                return fail("\(error); a kernel with CONFIG_UPROBE_EVENTS and BPF ring buffer (5.8+) is needed", AttachExit.kernelSupport)
            case .executableUnresolvable(_, let e) where e == EACCES || e == EPERM:
                return fail(
                    "\(error): reading another user's /proc/<pid>/exe needs CAP_SYS_PTRACE (missing); run as root or add CAP_SYS_PTRACE",
                    AttachExit.privileges)
            case .executableUnresolvable: return fail("\(error); run as root in the target's PID namespace", AttachExit.noSuchProcess)
            }
        }
        var config = LiveSession.Configuration()
        config.ringBufferSize = ringBufferSize
        config.verbose = verbose
        let session: LiveSession
        do {
            session = try LiveSession(pid: pid, binaryPath: binary, configuration: config)
        } catch {
            switch error {
            case .noQEMUProbes(let path):
                guard path.contains("qemu") else {
                    return fail(
                        "pid \(pid) (\(path)) is not a QEMU: it has no qemu USDT probes. Give the pid of the source qemu-system-* / qemu-kvm process (`pgrep -a qemu`).",
                        AttachExit.notQEMUWithProbe)
                }
                return fail(
                    """
                    pid \(pid) (\(path)) has no qemu USDT probes: this QEMU was built without the dtrace trace backend (Debian and Ubuntu build only the log backend). Two ways forward:
                      1. start QEMU with `-trace migrate_transferred -trace 'migrate_pending*' -D FILE`, then `migtrace analyze FILE`;
                      2. on a running QEMU: QMP {"execute":"trace-event-set-state","arguments":{"name":"migrate_transferred","enable":true}} (HMP: `trace-event migrate_transferred on`; it logs to the -D file or stderr), then `migtrace analyze` that log.
                    """, AttachExit.notQEMUWithProbe)
            case .requiredProbeMissing(_, _, let e?) where e.errno == EPERM || e.errno == EACCES:
                return fail(
                    "\(error): the kernel refused the uprobe; it needs CAP_SYS_ADMIN (missing; CAP_BPF+CAP_PERFMON are not enough since Linux 6.16 and its stable backports), plus CAP_SYS_PTRACE for another user's QEMU. Run as root or add CAP_SYS_ADMIN",
                    AttachExit.privileges)
            case .requiredProbeMissing:
                return fail(
                    "\(error); this QEMU has USDT probes but not migrate_transferred: use its log output with `migtrace analyze`",
                    AttachExit.notQEMUWithProbe)
            case .libbpf(let e) where e.errno == EPERM || e.errno == EACCES:
                return fail("\(e); run as root or with CAP_BPF+CAP_PERFMON", AttachExit.privileges)
            case .libbpf(let e) where e.errno == EINVAL || e.errno == EOPNOTSUPP || e.errno == ENOSYS:
                return fail("\(e); the kernel lacks BPF ring buffer or uprobe support (5.8+ needed)", AttachExit.kernelSupport)
            case .precondition(.noSuchProcess):
                return fail(error.description, AttachExit.noSuchProcess)
            default:
                return fail(error.description, MigtraceExit.error)
            }
        }
        defer { session.close() }

        // Signals end the capture cleanly: the stream drains and the summary follows. Installed before any
        // output, so that a signal sent once the header is seen never kills migtrace without its summary.
        let endReason = EndReason()
        var sources: [any DispatchSourceSignal] = []
        for (sig, name) in [(SIGINT, "sigint"), (SIGTERM, "sigterm"), (SIGHUP, "sighup")] {
            signal(sig, SIG_IGN)
            let src = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            src.setEventHandler {
                endReason.set(name)
                session.stop()
            }
            src.resume()
            sources.append(src)
        }
        defer { for s in sources { s.cancel() } }

        // A reader that went away (`| head`) ends the capture even when no event comes to be written.
        let outputWatch = DispatchSource.makeTimerSource(queue: .global())
        outputWatch.schedule(deadline: .now() + .milliseconds(200), repeating: .milliseconds(200))
        outputWatch.setEventHandler {
            var pfd = pollfd(fd: 1, events: 0, revents: 0)
            if poll(&pfd, 1, 0) == 1 && pfd.revents & Int16(POLLERR) != 0 {
                endReason.set("output-closed")
                session.stop()
            }
        }
        outputWatch.resume()
        defer { outputWatch.cancel() }

        let out = FileDescriptorOutput.standardOutput
        let offset = MonotonicClock.realtimeOffsetNanoseconds()
        let attached = session.attachedProbes

        // The recording starts with a self-describing header.
        var recorder: RecordingWriter?
        if let record {
            do {
                recorder = try RecordingWriter(path: record, force: force)
            } catch {
                return fail(error.description, AttachExit.recording)
            }
            var uts = utsname()
            uname(&uts)
            let host = withUnsafeBytes(of: uts.nodename) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            let kernel = withUnsafeBytes(of: uts.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            let buildID = (try? USDTNotes.buildID(path: binary)) ?? nil
            recorder?.append(
                RecordingFormat.headerLine(
                    RecordingFormat.Header(
                        migtraceVersion: Migtrace.version, host: host, kernel: kernel, pid: UInt32(pid), binary: binary,
                        buildID: buildID ?? "", clockOffsetNanoseconds: offset, startedAtNanoseconds: MonotonicClock.realtimeNanoseconds(),
                        probes: attached.map { ($0.name, $0.noteArgumentCount ?? 0) })))
        }

        // Header.
        // Output is flushed once per ring-buffer batch (at QEMU's pace that is every event; in a burst it
        // saves a write(2) per line).
        let jsonl = format == .json ? JSONLinesSink(out: out, flushEachObject: false) : nil
        let sink: any AnalysisSink = jsonl ?? TextSink(out: out, names: InputNames(["live"]), flushEachLine: false)
        if let jsonl {
            jsonl.object("header") { o in
                o.raw(",\"pid\":"); o.unsigned(UInt64(pid))
                o.raw(",\"binary\":"); o.string(binary)
                o.raw(",\"ring_buffer_bytes\":"); o.unsigned(UInt64(ringBufferSize))
                o.raw(",\"probes\":[")
                for (i, p) in session.probes.enumerated() {
                    if i > 0 { o.raw(",") }
                    o.raw("{\"name\":"); o.string(p.name)
                    o.raw(",\"attached\":"); o.raw(p.attached ? "true" : "false")
                    o.raw(",\"args\":"); if let n = p.noteArgumentCount { o.unsigned(UInt64(n)) } else { o.raw("null") }
                    o.raw(",\"sites\":"); o.unsigned(UInt64(p.siteCount))
                    o.raw("}")
                }
                o.raw("]")
                if let record { o.raw(",\"record\":"); o.string(record) }
            }
            out.flush()
        } else {
            var h = "migtrace \(Migtrace.version): attached to pid \(pid) (\(binary))\n"
            h +=
                "probes: "
                + attached.map { "\($0.name) (\($0.noteArgumentCount.map { $0 == 1 ? "1 arg" : "\($0) args" } ?? "?"))" }.joined(
                    separator: ", ")
                + "\n"
            let missing = session.probes.filter { !$0.attached }
            if !missing.isEmpty { h += "not attached: " + missing.map { "\($0.name) (\($0.reason ?? ""))" }.joined(separator: ", ") + "\n" }
            if let record { h += "recording to \(record)\n" }
            h += "waiting for migrate_transferred windows… (Ctrl-C ends with a summary)\n"
            out.write(Array(h.utf8))
            out.flush()
        }

        let analyzer = MigrationAnalyzer(configuration: analysis.configuration, sink: sink)
        var reportedDrops: UInt64 = 0
        var recordingFailureShown = false
        let stream = try session.events()
        onAttached?()
        do {
            for try await batch in stream {
                for var e in batch {
                    let mono = e.timestampNanoseconds
                    if let m = mono {
                        e.timestampNanoseconds = MonotonicClock.wallNanoseconds(monotonic: m, offset: offset)
                        e.clock = .wall
                    }
                    recorder?.append(RecordingFormat.eventLine(e, monotonicNanoseconds: mono))
                    analyzer.consume(e)
                    if e.kind == .migrateSetState, let st = e.state {
                        if let jsonl {
                            jsonl.object("state") { o in
                                o.raw(",\"state\":"); o.string(st)
                                if let ts = e.timestampNanoseconds { o.raw(",\"time\":"); o.number(Double(ts) / 1e9) }
                            }
                        } else {
                            out.write(Array("  · migration state: \(st)\n".utf8))
                        }
                        if untilComplete && ["completed", "failed", "cancelled"].contains(st) {
                            endReason.set("migration-\(st)")
                            session.stop()
                        }
                    }
                }
                let drops = (try? session.kernelDrops()) ?? reportedDrops
                if drops > reportedDrops {
                    reportedDrops = drops
                    recorder?.append(RecordingFormat.lostLine(kernelDrops: drops, consumerDrops: session.consumerDrops))
                    if let jsonl {
                        jsonl.object("lost") { o in
                            o.raw(",\"kernel_drops\":"); o.unsigned(drops)
                        }
                    } else {
                        out.write(Array("  ▲ lost \(drops) events so far (kernel ring buffer full; try --ring-buffer-size)\n".utf8))
                    }
                }
                out.flush()
                if !recordingFailureShown, let failure = recorder?.failure, let record {
                    recordingFailureShown = true
                    printError(
                        "migtrace: recording to \(record) stopped: \(failure); the file is valid up to its last complete event. Live analysis goes on; free space or record elsewhere."
                    )
                }
                if out.closed {
                    // Keep draining (into the recording) until the stream finishes.
                    endReason.set("output-closed")
                    session.stop()
                }
            }
        } catch {
            printError("migtrace: live capture failed: \(error)")
            endReason.set("error")
        }
        let reason = endReason.get() ?? "target-exited"
        let kernelDrops = (try? session.kernelDrops()) ?? reportedDrops
        let consumerDrops = session.consumerDrops
        // A recording stopped early (disk full) says so in its end record.
        let recordReason = recorder?.failure == nil ? reason : "recording-stopped"
        recorder?.finish(RecordingFormat.endLine(reason: recordReason, kernelDrops: kernelDrops, consumerDrops: consumerDrops))
        if let jsonl {
            jsonl.summaryExtras = [
                ("events_received", session.receivedEvents), ("kernel_drops", kernelDrops), ("consumer_drops", consumerDrops),
            ]
            jsonl.endReason = reason
        }
        let report = analyzer.finish()
        if jsonl == nil {
            out.write(
                Array(
                    "capture ended (\(reason)): \(session.receivedEvents) events received; lost \(kernelDrops) events (kernel), \(consumerDrops) (consumer)\n"
                        .utf8))
            out.flush()
        }
        let outputFailure = outputWriteFailure()
        if let outputFailure { printError(outputFailure) }
        if let failure = recorder?.failure, let record {
            printError(
                "migtrace: recording to \(record) stopped: \(failure); the file is valid up to its last complete event. Free space or record elsewhere."
            )
            return AttachExit.recording
        }
        if outputFailure != nil { return MigtraceExit.error }
        return analysis.exitCode(for: report)
    }
}

/// The first reason the capture ended, set from signal handlers.
final class EndReason: @unchecked Sendable {
    // SAFETY: guarded by `lock`.
    private var value: String?
    private let lock = NSLockLike()
    func set(_ v: String) { lock.with { if value == nil { value = v } } }
    func get() -> String? { lock.with { value } }
}

/// A tiny pthread mutex (no Foundation).
final class NSLockLike: @unchecked Sendable {
    // SAFETY: the mutex is only used through with(_:).
    private var m = pthread_mutex_t()
    init() { pthread_mutex_init(&m, nil) }
    deinit { pthread_mutex_destroy(&m) }
    func with<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(&m)
        defer { pthread_mutex_unlock(&m) }
        return body()
    }
}
