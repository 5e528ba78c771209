// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import MigtraceCore
@testable import MigtraceIO

/// The other forms QEMU 10.1–11.1 brought (reference §7.1, §7.3, §7.4): the ISO-8601 prefix with and without its
/// fraction, the migration states added since 9.1, 11.0's float switchover arithmetic, and the era names.
/// The lines are HAND-MADE from the reference's formats (no QEMU here writes them).
@Suite struct QEMU11FormsTests {
    func parse(_ s: String) -> LineResult {
        var bytes = Array(s.utf8)
        return bytes.withUnsafeMutableBufferPointer { QEMULogParser(input: 0).parse(UnsafeBufferPointer($0), line: 1) }
    }

    /// GLib writes the microseconds only when they are not zero: both forms, on every kind of line migtrace reads.
    @Test(arguments: [
        "migrate_set_state new state active",
        "migrate_transferred transferred 3414546 time_spent 100 bandwidth 273 switchover_bw 34145 max_size 10243638",
        "qemu_savevm_query_pending exact=1, final=0, precopy=1, stopcopy=2, postcopy=3, total=6, collected switchover ack pending=0, total switchover ack pending=0",
        "migration_thread_low_pending 6",
    ])
    func isoPrefixWithAndWithoutFraction(body: String) throws {
        guard case .event(let whole) = parse("2026-08-21T18:43:28Z " + body),
            case .event(let fraction) = parse("2026-08-21T18:43:28.089797Z " + body),
            case .event(let bare) = parse(body)
        else {
            Issue.record("not parsed: \(body)")
            return
        }
        #expect(whole.timestampNanoseconds == 1_787_337_808_000_000_000)
        #expect(fraction.timestampNanoseconds == 1_787_337_808_089_797_000)
        #expect(whole.threadID == nil && whole.processID == nil)  // 10.1+ writes no pid or tid
        #expect(whole.arguments == bare.arguments && fraction.arguments == bare.arguments && whole.kind == bare.kind)
        #expect(whole.state == bare.state)
    }

    /// Through the analysis: the hand-made stall's states sit on whole seconds (no fraction), its windows between.
    @Test func wholeSecondStatesTimeTheMigration() throws {
        let sink = try analyze([Paths.fixtures.appendingPathComponent("qemu11/11.1-vfio-stall.log").path])
        let m = try #require(sink.report?.migrations.first)
        // setup 18:43:28Z … cancelled 18:43:40.001500Z.
        #expect(m.totalTimeMs == 12001.5)
        #expect(sink.windows.first?.endTime == 1_787_337_809.09992)
        #expect(sink.report?.series.first?.finalState == "cancelled")
    }

    /// `postcopy-recover-setup` (9.1), `postcopy-device` (10.2) and `failing` (11.0) are states; `failing` ends a
    /// migration as failed, the others leave it running.
    @Test func newMigrationStates() throws {
        for (name, state) in [
            ("postcopy-recover-setup", MigrationState.postcopyRecoverSetup), ("postcopy-device", .postcopyDevice), ("failing", .failing),
        ] {
            guard case .event(let e) = parse("2026-08-21T18:43:28Z migrate_set_state new state \(name)") else {
                Issue.record("\(name) not parsed")
                continue
            }
            #expect(e.state == state)
            #expect(state.name == name)
        }
        let window = "migrate_transferred transferred 1000000 time_spent 100 bandwidth 10000 switchover_bw 0 max_size 3000000"
        func outcome(_ states: [String]) throws -> (MigrationOutcome, String?) {
            let lines =
                ["migrate_set_state new state setup", "migrate_set_state new state active", window]
                + states.map { "migrate_set_state new state \($0)" }
            let sink = try analyze(text: lines.joined(separator: "\n") + "\n")
            #expect(sink.report?.diagnostics.isEmpty == true)
            return (try #require(sink.report?.migrations.first).outcome, sink.report?.series.first?.finalState)
        }
        #expect(try outcome(["failing"]) == (.failed, "failing"))
        #expect(try outcome(["failing", "failed"]) == (.failed, "failed"))
        #expect(try outcome(["postcopy-active", "postcopy-paused", "postcopy-recover-setup"]) == (.running, "postcopy-recover-setup"))
        #expect(try outcome(["postcopy-device", "postcopy-active"]) == (.running, "postcopy-active"))
        // A state no QEMU has is refused with its line.
        let sink = try analyze(text: "migrate_set_state new state failingg\n")
        #expect(sink.report?.diagnostics.first?.reason.contains("\"failingg\" is not a QEMU migration state") == true)
    }

    /// QEMU 11.0 divides a user-set avail-switchover-bandwidth as a double: with 1,234,567 B/s and 300 ms the
    /// threshold is ⌊1234.567 × 300⌋ = 370370, where 8.2–10.2's ⌊1234567 / 1000⌋ × 300 = 370200. The traced arg 4 is
    /// 1234 in both: a window with 370370 fits only the float form; it is exact and says so.
    @Test func elevenZeroFloatSwitchoverIsExactAndNamed() throws {
        var lines = ["2026-08-21T18:43:28Z migrate_set_state new state setup"]
        for i in 0..<5 {
            lines.append(
                "2026-08-21T18:43:28.\(i + 1)00000Z migrate_transferred transferred 5000000 time_spent 100 bandwidth 50000 switchover_bw 1234 max_size 370370"
            )
        }
        lines.append(
            "2026-08-21T18:43:29Z migrate_transferred transferred 5000000 time_spent 100 bandwidth 50000 switchover_bw 1234 max_size 370200"
        )
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("migtrace-11.0-\(UUID().uuidString).log")
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: path)
        defer { try? FileManager.default.removeItem(at: path) }
        let sink = try analyze([path.path])
        #expect(sink.windows.count == 6)
        for w in sink.windows.prefix(5) {
            #expect(w.era == .b && w.rebuild.exact && w.rebuild.basis == .userFloat && w.rebuild.downtimeLimitMs == 300)
            #expect(w.rebuild.switchoverBytesPerSecond?.contains(1_234_567) == true)
        }
        // The same values with 8.2–10.2's integer threshold: exact on the integer basis.
        let last = try #require(sink.windows.last)
        #expect(last.rebuild.exact && last.rebuild.basis == .userInteger && last.rebuild.downtimeLimitMs == 300)

        let json = MemoryOutput()
        _ = try QEMU11PendingTests.run(path.path, JSONSink(out: json, names: InputNames(["t"]), version: "t"))
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(json.bytes)) as? [String: Any])
        let windows = try #require((doc["series"] as? [[String: Any]])?.first?["windows"] as? [[String: Any]])
        #expect(windows.map { $0["switchover_basis"] as? String } == Array(repeating: "user-float", count: 5) + ["user-integer"])
        #expect(windows.map { $0["threshold_exact"] as? Bool } == Array(repeating: true, count: 6))
    }

    /// The era names in the text summary: A ≤ 8.1, B 8.2–11.0, C ≥ 11.1.
    @Test func eraNames() {
        #expect(TextSink.eraName(.a) == "A (QEMU ≤ 8.1, 4 args)")
        #expect(TextSink.eraName(.b) == "B (QEMU 8.2–11.0, 5 args)")
        #expect(TextSink.eraName(.c) == "C (QEMU ≥ 11.1, arg 3 in Mbit/s)")
    }
}
