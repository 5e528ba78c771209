// SPDX-License-Identifier: Apache-2.0
import Foundation
import MigtraceCore
import Testing

/// Every `--help` text is pinned to a snapshot in HelpSnapshots/ (80 columns): a change to a command's options,
/// examples or exit codes shows up in review. `MIGTRACE_UPDATE_SNAPSHOTS=1 swift test --filter HelpSnapshot`
/// rewrites them.
@Suite struct HelpSnapshotTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("HelpSnapshots")

    /// The help of `command` (empty: the top level) as an 80-column terminal shows it.
    static func help(_ command: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLI.binary)
        p.arguments = command + ["--help"]
        var env = ProcessInfo.processInfo.environment
        env["COLUMNS"] = "80"
        p.environment = env
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        return String(decoding: data, as: UTF8.self)
    }

    @Test(arguments: ["migtrace", "analyze", "report", "attach", "demo", "probes", "rules"])
    func helpMatchesItsSnapshot(_ name: String) throws {
        let text = try Self.help(name == "migtrace" ? [] : [name])
        let file = Self.directory.appendingPathComponent("\(name).txt")
        if ProcessInfo.processInfo.environment["MIGTRACE_UPDATE_SNAPSHOTS"] == "1" {
            try FileManager.default.createDirectory(at: Self.directory, withIntermediateDirectories: true)
            try text.write(to: file, atomically: true, encoding: .utf8)
        }
        let snapshot = try String(contentsOf: file, encoding: .utf8)
        #expect(text == snapshot, "`migtrace \(name) --help` differs from HelpSnapshots/\(name).txt")
        #expect(text.contains("USAGE: migtrace"))
    }

    /// The README's rule table is what the generated registry prints: a new rule file changes both.
    @Test func readmeRuleTableIsTheRegistrys() throws {
        let table = try CLI.run(["rules", "--markdown"])
        #expect(table.status == 0)
        let readme = try String(contentsOf: CLI.repository.appendingPathComponent("README.md"), encoding: .utf8)
        let lines = readme.split(separator: "\n", omittingEmptySubsequences: false)
        let start = try #require(lines.firstIndex { $0.hasPrefix("| id | severity |") })
        let rows = lines[start...].prefix { $0.hasPrefix("|") }
        #expect(rows.joined(separator: "\n") + "\n" == table.stdout)
        #expect(rows.count == 2 + RuleRegistry.all.count)  // header, separator, one row per rule
    }
}

/// The live commands offer only the formats they take, and say what a valid --speed is.
@Suite struct LiveOptionTests {
    @Test func liveCommandsOfferTextAndJSONOnly() throws {
        for command in ["attach", "demo"] {
            let help = try HelpSnapshotTests.help([command])
            #expect(help.contains("(values: text, json; default: text)"))
            #expect(!help.contains("csv"), "`\(command) --help` must not offer csv")
        }
        let refused = try CLI.run(["attach", "--format", "csv", "1"])
        #expect(refused.status == 64)
        #expect(refused.stderr.contains("Please provide one of 'text' and 'json'"))
    }

    @Test func demoSpeedZeroIsRefusedWithTheValidRange() throws {
        let r = try CLI.run(["demo", "--speed", "0"])
        #expect(r.status == 64)
        #expect(r.stderr.contains("--speed must be above 0 and at most 1000"))
    }
}

/// One set of trace events in the README, `--help` and the refusals (TracingRecipe).
@Suite struct TracingRecipeTests {
    @Test func readmeHelpAndRefusalsNameTheSameEvents() throws {
        let readme = try String(contentsOf: CLI.repository.appendingPathComponent("README.md"), encoding: .utf8)
        #expect(readme.contains(TracingRecipe.commandLine()))
        // The libvirt loop lists every pattern of the recipe.
        let loop = try #require(readme.range(of: "for e in ")).upperBound
        let listed = readme[loop...].prefix { $0 != ";" }.replacingOccurrences(of: "\\\n", with: " ")
            .split(whereSeparator: { $0 == " " || $0 == "\n" }).map { $0.replacingOccurrences(of: "'", with: "") }
        #expect(listed == TracingRecipe.events)
        // The help wraps at the terminal's width: compared with its whitespace folded.
        let help = try CLI.run(["analyze", "--help"]).stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        #expect(help.contains(TracingRecipe.commandLine(file: "/tmp/mig.log")))
    }
}
