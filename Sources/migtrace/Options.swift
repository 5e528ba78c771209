// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import MigtraceCore
import MigtraceIO

/// Options shared by `analyze` and `attach`: downtime limit, rule thresholds, failure gate.
struct AnalysisOptions: ParsableArguments {
    @Option(help: "Rebuild thresholds with this downtime-limit (ms) instead of inferring it per window.")
    var downtimeLimit: UInt64?

    @Option(
        help: ArgumentHelp(
            "Exit with code 2 when a finding at or above this severity is reported.", valueName: "info|warning|critical|none"))
    var failOn: String = "none"

    @Option(name: .customLong("disable-rule"), help: "Do not run this rule (repeatable). See `migtrace rules`.")
    var disabledRules: [String] = []

    @Option(help: "thread-stall: warning at a window of at least this many ms.")
    var stallWarningMs: UInt64 = 300
    @Option(help: "thread-stall: critical at a window of at least this many ms.")
    var stallCriticalMs: UInt64 = 1000
    @Option(help: "bandwidth-shift: relative change that counts as a shift, in percent.")
    var shiftPercent: Double = 30
    @Option(help: "bandwidth-shift: how long the new level must last, ms.")
    var shiftMinMs: UInt64 = 1000
    @Option(help: "threshold-collapse: a window below this percentage of the baseline bandwidth.")
    var collapsePercent: Double = 25
    @Option(help: "no-progress: how long windows sending less than a page must last, ms.")
    var noProgressMs: UInt64 = 1000
    @Option(help: "switchover-bandwidth-mismatch: declared/measured ratio (and its inverse) that counts.")
    var switchoverRatio: Double = 2
    @Option(help: "rate-capped: tolerance around the common transfer size, in percent.")
    var rateCapPercent: Double = 2
    @Option(help: "rate-capped: how long the migration must run (ms) for a cap to be reported.")
    var rateCapMinMs: UInt64 = 10_000
    @Option(help: "non-convergence: how long pending must stay above the threshold, ms.")
    var nonConvergenceMs: UInt64 = 10_000

    func validate() throws {
        if failOn != "none" && Severity(name: failOn) == nil {
            throw ValidationError("--fail-on takes info, warning, critical or none, not '\(failOn)'.")
        }
        for id in disabledRules where !RuleRegistry.ids.contains(id) {
            throw ValidationError("Unknown rule '\(id)' in --disable-rule; `migtrace rules` lists them.")
        }
        if let l = downtimeLimit, l > QEMUArithmetic.maxDowntimeLimitMs {
            throw ValidationError("--downtime-limit \(l) exceeds QEMU's maximum of \(QEMUArithmetic.maxDowntimeLimitMs) ms.")
        }
        guard stallWarningMs <= stallCriticalMs else {
            throw ValidationError("--stall-warning-ms must not exceed --stall-critical-ms.")
        }
        guard shiftPercent > 0, collapsePercent > 0, collapsePercent < 100, switchoverRatio > 1, rateCapPercent > 0 else {
            throw ValidationError("Percentages must be positive (collapse below 100) and --switchover-ratio above 1.")
        }
    }

    /// The analysis configuration these options describe.
    var configuration: AnalysisConfiguration {
        var c = AnalysisConfiguration(downtimeLimitMs: downtimeLimit)
        c.disabledRules = Set(disabledRules)
        c.thresholds.stallWarningMs = stallWarningMs
        c.thresholds.stallCriticalMs = stallCriticalMs
        c.thresholds.shiftFraction = shiftPercent / 100
        c.thresholds.shiftMinMs = shiftMinMs
        c.thresholds.collapseFraction = collapsePercent / 100
        c.thresholds.noProgressMinMs = noProgressMs
        c.thresholds.switchoverMismatchRatio = switchoverRatio
        c.thresholds.rateCapTolerance = rateCapPercent / 100
        c.thresholds.rateCapMinMs = rateCapMinMs
        c.thresholds.nonConvergenceMs = nonConvergenceMs
        return c
    }

    /// The exit code for a finished report.
    func exitCode(for report: AnalysisReport) -> ExitCode {
        guard let gate = Severity(name: failOn), let worst = report.worstSeverity, worst >= gate else { return .success }
        return MigtraceExit.findings
    }
}

/// The output formats of `analyze`.
enum OutputFormat: String, CaseIterable, ExpressibleByArgument {
    case text, csv, json
}

/// The output formats of the live commands: CSV is for `analyze` (of a recording), so it is not offered here.
enum LiveFormat: String, CaseIterable, ExpressibleByArgument {
    case text, json
}

/// Options shared by the live commands (`attach`, `demo`): output format and recording.
struct LiveOutputOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "Output format: text (a line per window) or json (JSON Lines).")
    var format: LiveFormat = .text

    @Option(help: ArgumentHelp("Also record every event to this file (created 0600; see --force).", valueName: "file"))
    var record: String?

    @Flag(help: "Overwrite an existing --record file.")
    var force = false

    @Flag(help: "On a terminal too, print a line per window instead of the live view redrawn in place.")
    var plain = false

    @Option(help: ArgumentHelp("Serve Prometheus metrics at http://HOST:PORT/metrics while capturing.", valueName: "host:port"))
    var metrics: String?

    func validate() throws {
        if let metrics {
            do throws(MetricsServer.StartError) { _ = try MetricsServer.parse(metrics) } catch { throw ValidationError(error.description) }
        }
    }

    /// Whether the text output is the live view: text format, no --plain, standard output a terminal.
    var liveView: Bool { format == .text && !plain && LiveViewSink.canDraw(fd: 1) }
}
