// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import MigtraceBPF
import MigtraceCore
import MigtraceIO

#if canImport(Glibc)
    import Glibc
#endif

/// `migtrace attach <pid>`: live analysis of a running QEMU through its USDT probes.
struct AttachCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attach",
        abstract: "Attach to a running QEMU's USDT probes and analyse its migration live.",
        discussion: """
            Needs a QEMU built with the dtrace trace backend (RHEL, CentOS, Fedora);
            for Debian's and Ubuntu's (log backend only) it names the
            `migtrace analyze --follow FILE` command on that QEMU's log instead. Needs
            root, or CAP_SYS_ADMIN (uprobes need it again since Linux 6.16 and
            its stable backports; older kernels take CAP_BPF+CAP_PERFMON) plus
            CAP_SYS_PTRACE for a QEMU of another user. Ends when the target exits, on
            Ctrl-C/SIGTERM/SIGHUP, or with --until-complete when the migration
            completes; the summary and drop counts are printed last.

            EXAMPLES:
              pgrep -af qemu                      # one line per QEMU: pick the source
              migtrace attach $(pgrep -f 'guest=vm1,')   # libvirt's -name guest=vm1,…
              migtrace attach --record mig.rec --until-complete 4242
              migtrace attach --format json 4242 | jq -c 'select(.type=="anomaly")'
              migtrace attach --metrics 127.0.0.1:9464 4242   # Prometheus scrapes /metrics
              migtrace attach --all --metrics 0.0.0.0:9464    # every QEMU, later ones too
              migtrace analyze mig.rec   # replays: same series, same anomalies

            EXIT CODES (besides 0, 1, 2, 64 of every command):
              3 no such process
              4 missing privileges (root, or the capabilities above)
              5 the kernel lacks uprobes or the BPF ring buffer
              6 not a QEMU with the qemu:migrate_transferred probe
              7 recording file refused or not writable
              9 the kernel refused access although no capability is missing
            """
    )

    @Argument(help: "Process id of the source QEMU.")
    var pid: Int32?

    @Flag(help: "Attach to every process of the QEMU binaries with the probe, and to those started later.")
    var all = false

    @Option(
        name: .customLong("binary"), help: ArgumentHelp("With --all: watch this QEMU binary's processes (repeatable).", valueName: "path"))
    var binaries: [String] = []

    @OptionGroup var output: LiveOutputOptions

    @Flag(help: "Stop once the migration reaches completed, failed or cancelled (needs the migrate_set_state probe).")
    var untilComplete = false

    @Option(help: "Ring-buffer size in bytes (a power of two, at least a page); room for bursts. With --all, one for all.")
    var ringBufferSize: Int = LiveSession.Configuration.defaultRingBufferSize

    @Flag(help: "Show libbpf's debug log.")
    var verbose = false

    @OptionGroup var analysis: AnalysisOptions

    func validate() throws {
        if all {
            guard pid == nil else { throw ValidationError("Give a pid or --all, not both.") }
            guard output.record == nil, !untilComplete else {
                throw ValidationError(
                    "--record and --until-complete take one process; with --all, use --format json (each line names its pid).")
            }
        } else if !binaries.isEmpty {
            throw ValidationError("--binary goes with --all (e.g. --all --binary /usr/libexec/qemu-kvm).")
        }
        guard all || (pid ?? 0) > 0 else {
            throw ValidationError("The pid must be a positive number, e.g. $(pgrep -f 'guest=vm1,') (`pgrep -af qemu` lists them).")
        }
        guard ringBufferSize >= 4096, ringBufferSize & (ringBufferSize - 1) == 0 else {
            throw ValidationError("--ring-buffer-size must be a power of two of at least 4096 bytes.")
        }
    }

    func run() async throws {
        if all {
            let code = try await FleetRun(
                binaries: binaries, format: output.format, ringBufferSize: ringBufferSize, verbose: verbose, analysis: analysis,
                metrics: output.metrics
            ).run()
            if code != .success { throw code }
            return
        }
        let code = try await LiveRun(
            pid: pid ?? 0, format: output.format, record: output.record, force: output.force, untilComplete: untilComplete,
            ringBufferSize: ringBufferSize, verbose: verbose, analysis: analysis, liveView: output.liveView,
            metrics: output.metrics
        ).run()
        if code != .success { throw code }
    }
}

/// One live capture, shared by `attach` and `demo`: wiring only. Rendering is the sinks', errors become
/// messages and exit codes in ``LiveFailure``, signals and the output reader are watched by ``CaptureStopper``.
struct LiveRun {
    var pid: Int32
    var format: LiveFormat
    var record: String?
    var force: Bool
    var untilComplete: Bool
    var ringBufferSize: Int
    var verbose: Bool
    var analysis: AnalysisOptions
    /// Called once the probes are attached (the demo starts its target's replay then).
    var onAttached: (@Sendable () -> Void)? = nil
    /// Text output as the live view redrawn in place (``LiveViewSink``) rather than a line per window.
    var liveView = false
    /// `--metrics HOST:PORT`: serve Prometheus metrics of the capture there.
    var metrics: String? = nil

    func run() async throws -> ExitCode {
        try await LiveFailure.reported { try await capture() }
    }

    private func capture() async throws -> ExitCode {
        signal(SIGPIPE, SIG_IGN)
        let binary: String
        let session: LiveSession
        do {
            binary = try LivePreconditions.check(pid: pid)
            var config = LiveSession.Configuration()
            config.ringBufferSize = ringBufferSize
            config.verbose = verbose
            session = try LiveSession(pid: pid, binaryPath: binary, configuration: config)
        } catch {
            throw LiveFailure(error, pid: pid)
        }
        defer { session.close() }
        let endpoint = try metrics.map { address throws(LiveFailure) in try MetricsEndpoint.start(address: address) }
        defer { endpoint?.server.stop() }
        // Installed before any output, so that a signal sent once the header is seen never kills migtrace
        // without its summary.
        let stopper = CaptureStopper { session.stop() }
        let offset = MonotonicClock.realtimeOffsetNanoseconds()

        var recorder: RecordingWriter?
        if let record {
            do {
                recorder = try RecordingWriter(path: record, force: force)
            } catch {
                throw LiveFailure(message: error.description, code: AttachExit.recording)
            }
        }

        // Output is flushed once per ring-buffer batch (at QEMU's pace that is every event; in a burst it
        // saves a write(2) per line).
        let out = FileDescriptorOutput.standardOutput
        let view = liveView ? LiveViewSink(out: out, names: InputNames(["live"])) : nil
        let display: any AnalysisSink =
            format == .json
            ? JSONLinesSink(out: out, flushEachObject: false)
            : view.map { $0 as any AnalysisSink } ?? TextSink(out: out, names: InputNames(["live"]), flushEachLine: false)
        var sinks = [display]
        if let recorder {
            sinks.append(RecordingSink(store: recorder, header: recordingHeader(binary: binary, session: session, offset: offset)))
        }
        if let endpoint { sinks.append(endpoint.sink(pid: pid)) }
        let sink: any AnalysisSink = sinks.count == 1 ? display : TeeSink(sinks)
        var configuration = analysis.configuration
        configuration.liveUpdates = true
        let analyzer = MigrationAnalyzer(configuration: configuration, sink: sink)
        analyzer.live(
            .attached(
                LiveAttachment(
                    migtraceVersion: Migtrace.version, pid: pid, binary: binary, ringBufferBytes: ringBufferSize,
                    probes: session.probes.map {
                        .init(
                            name: $0.name, attached: $0.attached, argumentCount: $0.noteArgumentCount, siteCount: $0.siteCount,
                            reason: $0.reason)
                    }, recordPath: record, vmName: QEMUCommandLine.vmName(pid: pid))))

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
                    analyzer.live(.captured(e, monotonicNanoseconds: mono))
                    analyzer.consume(e)
                    if e.kind == .migrateSetState, let state = e.state, state != .unrecognized {
                        if untilComplete && [.completed, .failed, .cancelled].contains(state) { stopper.end("migration-\(state.name)") }
                    }
                }
                let drops = (try? session.kernelDrops()) ?? reportedDrops
                if drops > reportedDrops {
                    reportedDrops = drops
                    analyzer.live(.lost(kernelDrops: drops, consumerDrops: session.consumerDrops))
                }
                view?.refresh()
                out.flush()
                if !recordingFailureShown, let failure = recorder?.failure, let record {
                    recordingFailureShown = true
                    printError(
                        "migtrace: recording to \(record) stopped: \(failure); the file is valid up to its last complete event. Live analysis goes on; free space or record elsewhere."
                    )
                }
                // Keep draining (into the recording) until the stream finishes.
                if out.closed { stopper.end("output-closed") }
            }
        } catch {
            printError("migtrace: live capture failed: \(error)")
            stopper.end("error")
        }
        let reason = stopper.why ?? "target-exited"
        let end = CaptureEnd(
            reason: reason, eventsReceived: session.receivedEvents, kernelDrops: (try? session.kernelDrops()) ?? reportedDrops,
            consumerDrops: session.consumerDrops)
        analyzer.live(.ended(end))
        let report = analyzer.finish()
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

    /// The recording's self-describing header.
    private func recordingHeader(binary: String, session: LiveSession, offset: Int64) -> RecordingFormat.Header {
        var uts = utsname()
        uname(&uts)
        let host = withUnsafeBytes(of: uts.nodename) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let kernel = withUnsafeBytes(of: uts.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let buildID = (try? USDTNotes.buildID(path: binary)) ?? nil
        return RecordingFormat.Header(
            migtraceVersion: Migtrace.version, host: host, kernel: kernel, pid: UInt32(pid), binary: binary, buildID: buildID ?? "",
            clockOffsetNanoseconds: offset, startedAtNanoseconds: MonotonicClock.realtimeNanoseconds(),
            probes: session.attachedProbes.map { ($0.name, $0.noteArgumentCount ?? 0) })
    }
}
