// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import MigtraceCore
import MigtraceIO

#if canImport(Glibc)
    import Glibc
#endif

/// `migtrace analyze FILE...`: post-mortem analysis of QEMU logs and migtrace recordings.
struct AnalyzeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "analyze",
        abstract: "Analyse recorded traces: QEMU log-backend output or migtrace recordings.",
        discussion: """
            Reads QEMU's log trace output of any version (no prefix, tid@sec.usec:,
            the ISO-8601 prefix of 10.1+, mixed with other lines, CRLF; QEMU 11.1's
            qemu_savevm_query_pending and VFIO devices' vfio_* events too), the
            pid@ns lines of qemu-trace-stap and bpftrace one-liners (labelled or
            bare arguments), QEMU's simple-backend binary files, and migtrace's
            own recordings. Memory stays flat whatever the file size.
            Malformed lines are reported as FILE:LINE: reason and skipped. A file
            that is no trace (a program, compressed or binary data), missing or a
            directory is an error (exit 1); when every input was read and none
            holds a migration, the exit code is 8.

            EXAMPLES:
              qemu-system-x86_64 ... \(TracingRecipe.commandLine(file: "/tmp/mig.log"))
              (and with VFIO devices: -trace 'vfio_state_pending*' -trace 'vfio_query_*')
              migtrace analyze /tmp/mig.log
              migtrace analyze --format csv /tmp/mig.log > windows.csv
              migtrace analyze --format json --fail-on warning /tmp/mig.log
              migtrace analyze /var/log/libvirt/qemu/vm1.log   # libvirt: the domain log
              ssh host cat /var/log/libvirt/qemu/vm1.log | migtrace analyze -
              migtrace analyze --follow /var/log/libvirt/qemu/vm1.log   # live, as
                  # `attach` shows it: for QEMUs without USDT probes (Debian, Ubuntu)
            """
    )

    @Argument(help: ArgumentHelp("Trace files; `-` reads standard input.", valueName: "file"), completion: .file())
    var files: [String] = []

    @Option(name: .shortAndLong, help: "Output format: text, csv (one row per window) or json.")
    var format: OutputFormat = .text

    @Flag(help: "Text format: print only series summaries and findings, not every window.")
    var noWindows = false

    @Flag(help: "Text format: each window's arithmetic (traced values, rebuilt threshold) instead of the operator's columns.")
    var verify = false

    @Flag(
        help:
            "Follow the one FILE as it grows (as tail -F: rotation and truncation too) and analyse it live, with the output of `attach` (text or json: JSON Lines); Ctrl-C ends with the summary."
    )
    var follow = false

    @Flag(help: "With --follow on a terminal: a line per window instead of the live view redrawn in place.")
    var plain = false

    @OptionGroup var analysis: AnalysisOptions

    func validate() throws {
        if follow {
            guard files.count == 1, let file = files.first, file != "-" else {
                throw ValidationError(
                    "--follow takes exactly one file, not standard input or several (got \(files.count == 1 ? "-" : "\(files.count) inputs")); e.g. `migtrace analyze --follow /var/log/libvirt/qemu/vm1.log`."
                )
            }
            guard format != .csv else {
                throw ValidationError("--follow writes text or json (JSON Lines, as `attach`); csv is for finished files.")
            }
        }
        if files.isEmpty {
            throw ValidationError(
                "Give at least one trace file (or - for standard input). Record one on the source QEMU with `\(TracingRecipe.commandLine())`."
            )
        }
    }

    func run() throws {
        if follow {
            let code = FollowRun(
                path: files[0], format: format, liveView: format == .text && !plain && LiveViewSink.canDraw(fd: 1), analysis: analysis
            ).run()
            if code != .success { throw code }
            return
        }
        let names = InputNames(files.map { $0 == "-" ? "<stdin>" : $0 })
        // A file name is input too: text and stderr show it escaped (JSON escapes it its own way).
        let shownNames = InputNames(files.map { $0 == "-" ? "<stdin>" : TerminalText.escaped($0) })
        let out = FileDescriptorOutput.standardOutput
        let formatter: any AnalysisSink
        var jsonSink: JSONSink?
        var textSink: TextSink?
        switch format {
        case .text:
            let t = TextSink(out: out, names: shownNames, showWindows: !noWindows, verify: verify)
            textSink = t
            formatter = t
        case .csv: formatter = CSVSink(out: out)
        case .json:
            let j = JSONSink(out: out, names: names, version: Migtrace.version)
            jsonSink = j
            formatter = j
        }
        let analysis = TraceAnalysis(configuration: self.analysis.configuration, sink: formatter)
        var inputs: [InputSummary] = []
        var failed = false
        for (index, path) in files.enumerated() {
            let input = AnalyzeInput.read(path: path, index: index, name: names[index], into: analysis)
            inputs.append(input.summary)
            failed = failed || input.failed
            if out.closed { break }
        }
        // Read only by the JSON sink's `finished`, which `finish()` calls on this thread.
        jsonSink?.inputs = inputs
        let analysed = inputs.contains { $0.error == nil }
        textSink?.nothingRead = !analysed
        let report = analysis.finish()
        for d in report.diagnostics.prefix(50) {
            printError("\(shownNames[d.input]):\(d.line): \(TerminalText.escaped(d.reason))")
        }
        if report.rejectedCount > 50 {
            printError("migtrace: … and \(report.rejectedCount - 50) more rejected line(s)")
        }
        if format != .text {
            for f in report.findings where format == .csv {
                printError(FindingLine.text(f, report: report, names: shownNames))
            }
        }
        let noMigration = report.windowCount == 0 && report.migrations.isEmpty
        if noMigration && analysed && format != .text {
            printError("migtrace: no migrate_transferred events found; trace the source QEMU with `\(TracingRecipe.commandLine())`")
        }
        // Every sink flushed `out` in `finished`: a failed write is known by now.
        if let failure = outputWriteFailure() {
            printError(failure)
            failed = true
        }
        if failed { throw MigtraceExit.error }
        if noMigration { throw MigtraceExit.noMigration }
        let code = self.analysis.exitCode(for: report)
        if code != .success { throw code }
    }
}
