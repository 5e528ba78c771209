// SPDX-License-Identifier: Apache-2.0
import ArgumentParser

/// The `migtrace` command: watches and analyses QEMU live migrations.
@main
struct Migtrace: AsyncParsableCommand {
    /// The version printed by `--version` and stored in recordings.
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "migtrace",
        abstract: "Watch QEMU live migrations through eBPF and explain what they are really doing.",
        discussion: """
            migtrace rebuilds, window by window, the bandwidth and switchover
            threshold that QEMU's migration_update_counters() computed, checks them
            bit for bit against what QEMU traced, and reports anomalies.

            EXAMPLES:
              migtrace analyze qemu-trace.log         # post-mortem, human table
              migtrace analyze -f json a.log b.log    # machine-readable
              migtrace report a.log -o a.html         # charts in one HTML page
              sudo migtrace attach $(pgrep -f 'guest=vm1,')  # live, through USDT
              sudo migtrace demo                      # live, on a bundled replay
              migtrace rules                          # every anomaly rule

            EXIT CODES:
              0  no finding at or above --fail-on
              1  error (unreadable input, failed attach, …)
              2  findings at or above --fail-on were reported
              8  analyze: no migration in the input (no migrate_transferred
                 or migrate_set_state event)
              64 usage error
            """,
        version: version,
        subcommands: [AnalyzeCommand.self, ReportCommand.self, AttachCommand.self, ProbesCommand.self, DemoCommand.self, RulesCommand.self]
    )
}

/// Exit codes shared by every subcommand (README "Exit codes").
enum MigtraceExit {
    /// Findings at or above `--fail-on`.
    static let findings = ExitCode(2)
    /// Any error that stopped the work.
    static let error = ExitCode(1)
    /// `analyze`: every input was read, and none holds a migration (no `migrate_transferred` and no
    /// `migrate_set_state` event): the wrong file, or tracing was not enabled.
    static let noMigration = ExitCode(8)
}
