// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import MigtraceCore
import MigtraceIO

#if canImport(Glibc)
    import Glibc
#endif

/// `migtrace report FILE... -o report.html`: the analysis as one self-contained HTML page with charts.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Draw recorded traces as one self-contained HTML page (charts, verdict, findings).",
        discussion: """
            Reads what `analyze` reads (QEMU logs of any version, migtrace
            recordings, - for standard input) and writes one HTML file that opens
            offline: per migration its verdict, downtime, ETA and advice, and four
            charts on one time axis (bandwidth, pending against threshold with the
            switchover marked, window length, downtime limit) with the findings
            shaded; hover or click a finding for its message and remedy. A series
            of more than \(HTMLReportSink.rawWindowLimit) windows is drawn through the first, lowest,
            highest and last value of each pixel column, and the chart says so.

            EXAMPLES:
              migtrace report /tmp/mig.log -o mig.html
              migtrace report a.log b.log mig.rec -o report.html
              migtrace report --downtime-limit 300 -o - mig.log > mig.html
            """
    )

    @Argument(help: ArgumentHelp("Trace files; `-` reads standard input.", valueName: "file"), completion: .file())
    var files: [String] = []

    @Option(name: .shortAndLong, help: ArgumentHelp("Write the HTML page here (`-`: standard output).", valueName: "file"))
    var output: String

    @Flag(help: "Overwrite an existing output file.")
    var force = false

    @OptionGroup var analysis: AnalysisOptions

    func validate() throws {
        if files.isEmpty {
            throw ValidationError(
                "Give at least one trace file (or - for standard input). Record one on the source QEMU with `\(TracingRecipe.commandLine())`."
            )
        }
        if output != "-", files.contains(output) {
            throw ValidationError("The output \(output) is also an input; write the report elsewhere.")
        }
    }

    func run() throws {
        let outFD: Int32
        if output == "-" {
            outFD = 1
        } else {
            outFD = open(output, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (force ? O_TRUNC : O_EXCL), 0o644)
            guard outFD >= 0 else {
                let why = errno == EEXIST ? "it exists (use --force to overwrite it)" : String(cString: strerror(errno))
                printError("migtrace: cannot write \(output): \(why)")
                throw MigtraceExit.error
            }
        }
        defer { if outFD != 1 { close(outFD) } }
        let names = InputNames(files.map { $0 == "-" ? "<stdin>" : $0 })
        let out = outFD == 1 ? FileDescriptorOutput.standardOutput : FileDescriptorOutput(fd: outFD)
        let sink = HTMLReportSink(out: out, names: names, version: Migtrace.version)
        let traces = TraceAnalysis(configuration: analysis.configuration, sink: sink)
        var failed = false
        for (index, path) in files.enumerated() {
            let fd: Int32 = path == "-" ? 0 : open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                printError("migtrace: cannot open \(path): \(String(cString: strerror(errno))); check the path and permissions")
                failed = true
                continue
            }
            defer { if fd != 0 { close(fd) } }
            do {
                _ = try traces.read(fd: fd, input: index)
            } catch {
                printError("migtrace: \(path): \(error)")
                failed = true
            }
        }
        let report = traces.finish()
        for d in report.diagnostics.prefix(50) {
            printError("\(names[d.input]):\(d.line): \(d.reason)")
        }
        if report.rejectedCount > 50 {
            printError("migtrace: … and \(report.rejectedCount - 50) more rejected line(s)")
        }
        if report.windowCount == 0 && report.migrations.isEmpty && !failed {
            printError("migtrace: no migrate_transferred events found; trace the source QEMU with `\(TracingRecipe.commandLine())`")
        }
        if let e = out.writeError {
            printError(
                "migtrace: writing \(output) failed: \(String(cString: strerror(e))); the report is incomplete: free space or write elsewhere"
            )
            throw MigtraceExit.error
        }
        if output != "-" {
            let drawn = min(report.series.count, HTMLReportSink.maxDrawnSeries)
            printError(
                "migtrace: wrote \(output): \(drawn) migration(s) drawn, \(report.windowCount) windows, \(report.findings.count) finding(s)"
            )
        }
        if failed { throw MigtraceExit.error }
        let code = analysis.exitCode(for: report)
        if code != .success { throw code }
    }
}
