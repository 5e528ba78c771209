// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import MigtraceCore

/// `migtrace rules`: every anomaly rule, its severities and its remedy, from the generated registry.
struct RulesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rules", abstract: "List the anomaly rules, their severities and the QEMU knob for each.",
        discussion: """
            EXAMPLES:
              migtrace rules
              migtrace rules --markdown   # the table of README.md
            """)

    @Flag(help: "Print the rules as the Markdown table of README.md.")
    var markdown = false

    func run() throws {
        let text = markdown ? Self.markdownTable() : Self.listing()
        FileDescriptorOutput.standardOutput.write(Array(text.utf8))
        FileDescriptorOutput.standardOutput.flush()
    }

    /// One paragraph per rule.
    static func listing() -> String {
        var s = ""
        for rule in RuleRegistry.all {
            s += "\(rule.id) (\(rule.severities.map(\.description).joined(separator: ", ")))\n"
            s += "  \(rule.summary)\n  needs: \(Self.needs(rule))\n  remedy: \(rule.remedy)\n\n"
        }
        return s
    }

    /// How many windows the rule needs before it can fire.
    static func needs(_ rule: any AnomalyRule.Type) -> String {
        "at least \(rule.minimumWindows) window\(rule.minimumWindows == 1 ? "" : "s") in the series (at QEMU's 100 ms cadence, default thresholds)"
    }

    /// The README's rule table.
    static func markdownTable() -> String {
        var s = "| id | severity | fires when (default, flag) | min. windows | remedy (knob) |\n|---|---|---|---:|---|\n"
        for rule in RuleRegistry.all {
            let severities = rule.severities.map(\.description).joined(separator: " / ")
            s += "| `\(rule.id)` | \(severities) | \(rule.firesWhen) | \(rule.minimumWindows) | \(rule.knobs) |\n"
        }
        return s
    }
}
