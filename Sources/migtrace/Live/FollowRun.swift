// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import MigtraceCore
import MigtraceIO

#if canImport(Glibc)
    import Glibc
#endif

/// `migtrace analyze --follow FILE`: a growing QEMU log analysed live, with the live output of `attach` (the same
/// sinks and live updates); the log is followed by ``LogFollower``, what happens to the file is said on stderr.
struct FollowRun {
    var path: String
    var format: OutputFormat
    var liveView: Bool
    var analysis: AnalysisOptions

    /// Rejected lines shown as they come; the rest are counted at the end.
    static let shownDiagnostics = 50

    func run() -> ExitCode {
        signal(SIGPIPE, SIG_IGN)
        let shown = TerminalText.escaped(path)
        let follower = LogFollower(path: path)
        let stopper = CaptureStopper { follower.stop() }
        let out = FileDescriptorOutput.standardOutput
        let names = InputNames([shown])
        let json = format == .json ? JSONLinesSink(out: out, flushEachObject: false) : nil
        let display: any AnalysisSink
        let view = liveView && json == nil ? LiveViewSink(out: out, names: names) : nil
        if let json {
            display = json
        } else if let view {
            display = view
        } else {
            display = TextSink(out: out, names: names, flushEachLine: false)
        }
        if let json {
            json.object("header") { o in
                o.raw(",\"follow\":"); o.string(path)
                o.raw(",\"migtrace_version\":"); o.string(Migtrace.version)
            }
        } else {
            out.write(
                Array(
                    "migtrace \(Migtrace.version): following \(shown) (appends, rotation and truncation, as tail -F)\nwaiting for migrate_transferred windows… (Ctrl-C ends with a summary)\n"
                        .utf8))
        }
        out.flush()
        var configuration = analysis.configuration
        configuration.liveUpdates = true
        let analyzer = MigrationAnalyzer(configuration: configuration, sink: display)
        var rejected = 0
        var rotations = 0
        var truncations = 0
        func say(_ notice: LogFollower.Notice) {
            out.flush()  // stderr in order with what is shown already
            switch notice {
            case .waiting(let e):
                printError("migtrace: cannot open \(shown): \(String(cString: strerror(e))); waiting for it to appear (Ctrl-C stops)")
            case .opened: printError("migtrace: \(shown) appeared; following it")
            case .rotated:
                rotations += 1
                printError(
                    "migtrace: \(shown) was replaced (rotated): the old file was read to its end; following the new one from its start")
            case .vanished: printError("migtrace: \(shown) was removed or renamed; reading the old file until a new one appears")
            case .truncated(let from, let to):
                truncations += 1
                printError("migtrace: \(shown) was truncated (\(from) → \(to) bytes); reading it again from its new start")
            case .rejected(let d):
                rejected += 1
                if rejected <= Self.shownDiagnostics { printError("\(shown):\(d.line): \(TerminalText.escaped(d.reason))") }
            }
        }
        let stats: InputStatistics
        do {
            // Idle polls since the last read: the view redraws at most every 50 ms, so a burst (the backlog) ends
            // with a frame drawn at the next few polls.
            var idlePolls = 0
            stats = try follower.run(
                into: analyzer, notice: say,
                afterRead: {
                    idlePolls = 0
                    // The frame follows the pending sizes and syncs read after a window, as in `attach`.
                    view?.refresh()
                    out.flush()
                    if out.closed { stopper.end("output-closed") }
                },
                idle: {
                    idlePolls += 1
                    if idlePolls <= 3, let view {
                        view.refresh()
                        out.flush()
                    }
                })
        } catch {
            out.flush()
            printError("migtrace: \(shown): \(error)")
            return MigtraceExit.error
        }
        let reason = stopper.why ?? "stopped"
        if json != nil {
            analyzer.live(.ended(CaptureEnd(reason: reason, eventsReceived: stats.events, kernelDrops: 0, consumerDrops: 0)))
        }
        let report = analyzer.finish()
        if rejected > Self.shownDiagnostics { printError("migtrace: … and \(rejected - Self.shownDiagnostics) more rejected line(s)") }
        if json == nil {
            printError(
                "migtrace: followed \(shown) until \(reason): \(stats.lines) lines, \(stats.events) events read; rotated \(rotations)×, truncated \(truncations)×"
            )
        }
        if let failure = outputWriteFailure() {
            printError(failure)
            return MigtraceExit.error
        }
        if report.windowCount == 0 && report.migrations.isEmpty { return MigtraceExit.noMigration }
        return analysis.exitCode(for: report)
    }
}
