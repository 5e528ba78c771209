// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import MigtraceCore
@testable import MigtraceIO

/// Collects everything an analysis produces.
final class CollectingSink: AnalysisSink {
    var series: [SeriesInfo] = []
    var windows: [AnalyzedWindow] = []
    var findings: [Finding] = []
    var summaries: [SeriesSummary] = []
    var report: AnalysisReport?

    func seriesStarted(_ info: SeriesInfo) { series.append(info) }
    func window(_ window: AnalyzedWindow, in series: SeriesInfo) { windows.append(window) }
    func finding(_ finding: Finding) { findings.append(finding) }
    func seriesEnded(_ summary: SeriesSummary) { summaries.append(summary) }
    func finished(_ report: AnalysisReport) { self.report = report }
}

/// Where the repository and its fixtures are.
enum Paths {
    static let repository: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let fixtures = repository.appendingPathComponent("Tests/MigtraceCoreTests/Fixtures")
    static let qemuFixtures = fixtures.appendingPathComponent("qemu")
}

/// Analyse files with the same path the CLI uses (TraceReader → MigrationAnalyzer).
func analyze(_ paths: [String], configuration: AnalysisConfiguration = AnalysisConfiguration()) throws -> CollectingSink {
    let sink = CollectingSink()
    let analyzer = MigrationAnalyzer(configuration: configuration, sink: sink)
    for (i, path) in paths.enumerated() {
        let fd = open(path, O_RDONLY)
        try #require(fd >= 0, "cannot open \(path)")
        defer { close(fd) }
        _ = try TraceReader.read(fd: fd, input: i, into: analyzer)
        analyzer.endInput(i)
    }
    analyzer.finish()
    return sink
}

/// Analyse bytes given in memory (written to a temporary file first).
func analyze(text: String, configuration: AnalysisConfiguration = AnalysisConfiguration()) throws -> CollectingSink {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("migtrace-test-\(UUID().uuidString).log")
    try Data(text.utf8).write(to: url)
    defer { try? FileManager.default.removeItem(at: url) }
    return try analyze([url.path], configuration: configuration)
}

extension AnalysisConfiguration {
    /// For hand-made traces without pending events, written for other rules: `pending-unseen` would add its
    /// finding to each.
    static var handMade: AnalysisConfiguration {
        var c = AnalysisConfiguration()
        c.disabledRules = [PendingUnseenRule.id]
        return c
    }
}
