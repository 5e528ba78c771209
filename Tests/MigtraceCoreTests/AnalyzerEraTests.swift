// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import MigtraceCore

/// The analyzer's era and `bandwidthTracedExact` per window (each truncation is computed once and used for both),
/// and its per-kind event counts (kept in owned storage).
@Suite struct AnalyzerEraTests {
    /// An era-C window: Mbit/s in arg 3, so only the truncated Mbit/s can make it exact.
    func eraC(_ transferred: UInt64, _ ms: UInt64, bandwidth: UInt64, prefix: String) -> String {
        "\(prefix)migrate_transferred transferred \(transferred) time_spent \(ms) bandwidth \(bandwidth) switchover_bw 0 max_size 0"
    }

    @Test func bandwidthTracedExactComparesTheEraOwnTruncation() throws {
        let log = [
            // 1 MB in 100 ms: 10000 bytes/ms, 80 Mbit/s: era C, exact when arg 3 is 80.
            eraC(1_000_000, 100, bandwidth: 80, prefix: "11@1700000000.100000:"),
            eraC(1_000_000, 100, bandwidth: 81, prefix: "11@1700000000.200000:"),
            // 150 bytes in 100 ms: 1 byte/ms (1.5 truncated), 0 Mbit/s (0.012): arg 3 = 0 fits both eras, so the
            // window is ambiguous and takes the series' era C; exact against the Mbit/s (0), not the bytes/ms (1).
            eraC(150, 100, bandwidth: 0, prefix: "11@1700000000.300000:"),
            eraC(150, 100, bandwidth: 1, prefix: "11@1700000000.400000:"),
            // Era A (4 arguments) in another thread: exact against the bytes/ms.
            "12@1700000000.100000:migrate_transferred transferred 1000000 time_spent 100 bandwidth 10000 max_size 3000000",
            "12@1700000000.200000:migrate_transferred transferred 1000000 time_spent 100 bandwidth 9999 max_size 3000000",
        ].joined(separator: "\n")
        let sink = try analyze(text: log)
        #expect(sink.windows.map(\.era) == [.c, .c, .c, .c, .a, .a])
        #expect(sink.windows.map(\.bandwidthTracedExact) == [true, false, true, false, true, false])
        let report = try #require(sink.report)
        #expect(report.series.map(\.exactBandwidths) == [2, 1])
    }

    @Test func eraAWindowsKeepingTheLimitRebuildAsTheGeneralRebuildDoes() throws {
        // The analyzer rebuilds an era-A window whose previous limit still holds without `ThresholdRebuild.rebuild`;
        // every window must equal what that gives with the limit in force (limitRange, deferred, included).
        func line(_ transferred: UInt64, _ ms: UInt64, limit: UInt64, off: UInt64 = 0) -> String {
            let bw = Double(transferred) / Double(ms)
            return "migrate_transferred transferred \(transferred) time_spent \(ms) bandwidth \(UInt64(bw)) "
                + "max_size \(UInt64(bw * Double(limit)) + off)"
        }
        let log = [
            line(1_000_000, 100, limit: 300), line(1_234_567, 103, limit: 300), line(0, 100, limit: 300),
            line(7_777_777, 101, limit: 500), line(7_000_001, 100, limit: 500),
            line(5_000_000, 100, limit: 500, off: 3),  // reproduced by no limit: inexact, the limit stays
            line(999, 1000, limit: 500),  // under 1 byte/ms: several limits fit
            line(2_000_000, 100, limit: 500),
        ].joined(separator: "\n")
        let sink = try analyze(text: log)
        try #require(sink.windows.count == 8)
        var limit: UInt64?
        for w in sink.windows {
            let args = ProbeArguments(count: 4, w.transferred, w.timeSpentMs, w.bandwidthTraced, w.thresholdTraced)
            let expected = ThresholdRebuild.rebuild(
                era: .a, arguments: args, bandwidth: w.bandwidth, mbps: w.mbps, fixedLimit: nil, preferredLimit: limit)
            #expect(w.rebuild == expected, "window \(w.index)")
            #expect(w.rebuild.limitRange == expected.limitRange, "window \(w.index)")
            if expected.exact, expected.expectedPerMs > 0, let l = expected.downtimeLimitMs { limit = l }
        }
        #expect(sink.windows.map(\.rebuild.exact) == [true, true, true, true, true, false, true, true])
        #expect(sink.windows.map(\.rebuild.downtimeLimitMs) == [300, 300, 300, 500, 500, 500, 500, 500])
    }

    @Test func eventsAreCountedByKind() throws {
        let log = [
            "10@1700000000.000000:migrate_set_state new state setup",
            "11@1700000000.010000:migration_bitmap_sync_start ",
            "11@1700000000.020000:migration_bitmap_sync_end dirty_pages 0",
            "11@1700000000.030000:migrate_pending_estimate estimate pending size 4000000 (pre = 4000000 post=0)",
            "11@1700000000.040000:migrate_pending_estimate estimate pending size 3000000 (pre = 3000000 post=0)",
            "11@1700000000.050000:migrate_pending_estimate estimate pending size 2000000 (pre = 2000000 post=0)",
            "11@1700000000.100000:migrate_transferred transferred 1000000 time_spent 100 bandwidth 10000 max_size 3000000",
            "11@1700000000.150000:migrate_pending_exact exact pending size 6000000 (pre = 6000000 post=0)",
            "11@1700000000.200000:migrate_transferred transferred 1000000 time_spent 100 bandwidth 10000 max_size 3000000",
            "11@1700000000.250000:migrate_set_state new state completed",
        ].joined(separator: "\n")
        let report = try #require(try analyze(text: log).report)
        #expect(
            report.eventCounts == [
                .migrateSetState: 2, .bitmapSyncStart: 1, .bitmapSyncEnd: 1, .migratePendingEstimate: 3,
                .migratePendingExact: 1, .migrateTransferred: 2,
            ])
    }
}
