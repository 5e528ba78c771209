// SPDX-License-Identifier: Apache-2.0
import MigtraceCore
import MigtraceIO

#if canImport(Glibc)
    import Glibc
#endif

/// One input of `migtrace analyze`: opened, read into the analyzer, and summarised, with every problem said on
/// standard error (names escaped: a file name is input too).
enum AnalyzeInput {
    /// Read `path` (`-`: standard input) as input number `index` into `analysis`; the summary lists an input that
    /// could not be read or is no trace with its error (`failed` is then true).
    static func read(path: String, index: Int, name: String, into analysis: TraceAnalysis) -> (summary: InputSummary, failed: Bool) {
        let shown = TerminalText.escaped(path)
        let fd: Int32 = path == "-" ? 0 : open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let cause = String(cString: strerror(errno))
            printError("migtrace: cannot open \(shown): \(cause); check the path and permissions")
            return (InputSummary(name: name, error: "cannot open: \(cause)"), true)
        }
        defer { if fd != 0 { close(fd) } }
        var st = stat()
        if fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR {
            printError("migtrace: \(shown) is a directory; give the trace files in it (e.g. \(shown)/*.log)")
            return (InputSummary(name: name, error: "is a directory"), true)
        }
        // `read` returns once the output has everything of this input: stderr follows in order.
        do {
            let stats = try analysis.read(fd: fd, input: index)
            let summary = InputSummary(name: name, statistics: stats)
            if let refusal = summary.error {
                printError("migtrace: \(shown): \(refusal)")
                return (summary, true)
            }
            if stats.format == .recording, stats.endReason == nil, stats.header != nil {
                printError(
                    "migtrace: \(shown): recording has no end record (the recorder was killed); analysed up to its last complete event")
            }
            if stats.lostEvents > 0 {
                printError(
                    "migtrace: \(shown): \(stats.lostEvents) event(s) were lost while tracing (counted by the tracer); windows may be missing"
                )
            }
            return (summary, false)
        } catch {
            printError("migtrace: \(shown): \(error)")
            return (InputSummary(name: name, error: "\(error)"), true)
        }
    }
}
