// SPDX-License-Identifier: Apache-2.0
import Testing

@testable import MigtraceCore

/// The log parser on every prefix QEMU has used, and on malformed lines.
@Suite struct ParserTests {
    func parse(_ s: String) -> LineResult {
        var bytes = Array(s.utf8)
        return bytes.withUnsafeMutableBufferPointer { QEMULogParser(input: 0).parse(UnsafeBufferPointer($0), line: 7) }
    }

    func event(_ s: String) throws -> TraceEvent {
        guard case .event(let e) = parse(s) else {
            Issue.record("not an event: \(parse(s))")
            throw CancellationError()
        }
        return e
    }

    @Test func noPrefixEraA() throws {
        let e = try event("migrate_transferred transferred 1048576 time_spent 100 bandwidth 10485 max_size 3145728")
        #expect(e.kind == .migrateTransferred)
        #expect(e.arguments == ProbeArguments(count: 4, 1_048_576, 100, 10485, 3_145_728))
        #expect(e.timestampNanoseconds == nil && e.threadID == nil)
        #expect(e.origin == EventOrigin(input: 0, line: 7))
    }

    @Test func tidPrefixEraB() throws {
        let e = try event(
            "4242@1700000000.123456:migrate_transferred transferred 5 time_spent 100 bandwidth 0 switchover_bw 125000 max_size 37500000\r")
        #expect(e.arguments == ProbeArguments(count: 5, 5, 100, 0, 125_000, 37_500_000))
        #expect(e.threadID == 4242)
        #expect(e.timestampNanoseconds == 1_700_000_000_123_456_000)
    }

    @Test func isoPrefixOf10_1() throws {
        let e = try event(
            "2026-11-27T15:10:50.250000Z migrate_transferred transferred 1 time_spent 100 bandwidth 0 switchover_bw 0 max_size 0")
        #expect(e.timestampNanoseconds == 1_795_792_250_250_000_000)
        let noFraction = try event("2026-11-27T15:10:50Z migrate_pending_exact exact pending size 10 (pre = 10 post=0)")
        #expect(noFraction.timestampNanoseconds == 1_795_792_250_000_000_000)
        #expect(noFraction.kind == .migratePendingExact && noFraction.arguments == ProbeArguments(count: 3, 10, 10, 0))
    }

    @Test func stapAndProposedPrefixes() throws {
        let stap = try event("1234@1700000000000000001 migrate_transferred transferred 1 time_spent 100 bandwidth 0 max_size 0")
        #expect(stap.processID == 1234 && stap.timestampNanoseconds == 1_700_000_000_000_000_001)
        let proposed = try event(
            "qemu-system-x86_64(777:live_migration): migrate_transferred transferred 1 time_spent 100 bandwidth 0 max_size 0")
        #expect(proposed.threadID == 777)
        let syslog = try event("Nov 27 15:10:50 host qemu[99]: migrate_transferred transferred 1 time_spent 100 bandwidth 0 max_size 0")
        #expect(syslog.arguments.a0 == 1)
    }

    /// qemu-trace-stap's `pid@ns` is wall-clock ns; a bpftrace one-liner's `nsecs` is monotonic (before 2000 as
    /// epoch time), and one-liners print bare arguments in probe order (issue 15 item 9).
    @Test func stapAndBpftraceOneLiners() throws {
        let stap = try event("1234@1700000000000000001 migrate_transferred transferred 1 time_spent 100 bandwidth 0 max_size 0")
        #expect(stap.clock == .wall)
        let bt = try event("29665@3015945032548 migrate_transferred 3423628 100 34236 0 10270884")
        #expect(bt.clock == .monotonic && bt.timestampNanoseconds == 3_015_945_032_548 && bt.processID == 29665)
        #expect(bt.arguments == ProbeArguments(count: 5, 3_423_628, 100, 34_236, 0, 10_270_884))
        #expect(
            try event("7@1 migrate_transferred 1679432 100 16794 5038296").arguments
                == ProbeArguments(count: 4, 1_679_432, 100, 16_794, 5_038_296))
        #expect(try event("7@1 migrate_pending_exact 10 10 0").arguments == ProbeArguments(count: 3, 10, 10, 0))
        #expect(try event("7@1 migrate_pending 5 3 5 0 0").arguments == ProbeArguments(count: 5, 5, 3, 5, 0, 0))
        #expect(try event("7@1 migration_bitmap_sync_end 42").arguments == ProbeArguments(count: 1, 42))
        #expect(try event("7@1 migrate_set_state active").state == .active)
        #expect(try event("7@1 migrate_set_state new state completed").state == .completed)
        #expect(
            parse("7@1 migrate_transferred 1 100 0")
                == .malformed("migrate_transferred: 3 bare argument(s); migrate_transferred has 4 or 5"))
        #expect(
            parse("7@1 migrate_pending_exact 10 10 0 4")
                == .malformed("migrate_pending_exact: 4 bare argument(s); migrate_pending_exact has 3"))
        #expect(
            parse("7@1 migrate_transferred 1 100 0 x") == .malformed("migrate_transferred: bare argument 4 is not a number (column 33)"))
        #expect(
            parse("7@1 migrate_transferred 1 100 0 0 9223372036854775808")
                == .malformed("migrate_transferred: value of 'max_size' does not fit in a signed 64-bit integer"))
    }

    @Test func contextEvents() throws {
        let p = try event("migrate_pending pending size 5000000 max 3145728 (pre = 5000000 compat=0 post=0)")
        #expect(p.kind == .migratePending && p.arguments == ProbeArguments(count: 5, 5_000_000, 3_145_728, 5_000_000, 0, 0))
        let est = try event("migrate_pending_estimate estimate pending size 4096 (pre = 4096 post=0)")
        #expect(est.kind == .migratePendingEstimate && est.arguments.a0 == 4096)
        let st = try event("9@1.5:migrate_set_state new state completed")
        #expect(st.state == .completed && st.timestampNanoseconds == 1_500_000_000)
        #expect(try event("migration_bitmap_sync_start ").kind == .bitmapSyncStart)
        #expect(try event("migration_bitmap_sync_end dirty_pages 12").arguments.a0 == 12)
        #expect(try event("migration_thread_low_pending 2048").arguments.a0 == 2048)
    }

    @Test func unrelatedLinesAreIgnored() {
        #expect(parse("") == .ignored)
        #expect(parse("qemu-system-x86_64: -trace migrate_transferred: warning") == .ignored)
        #expect(parse("LC_ALL=C /usr/bin/qemu-system-x86_64 -trace migrate_transferred -D /tmp/x") == .ignored)
        #expect(parse("migrate_fd_connect") == .ignored)
    }

    @Test(
        arguments: [
            ("migrate_transferred transferred 10", "line ends where 'time_spent' was expected"),
            ("migrate_transferred transferred 1 time_spent 100 bandwidth 0 max_size 12", nil),
            (
                "migrate_transferred transferred 99999999999999999999 time_spent 100 bandwidth 0 max_size 0",
                "value of 'transferred' does not fit in 64 bits"
            ),
            ("migrate_transferred transferred -5 time_spent 100 bandwidth 0 max_size 0", "negative value for unsigned 'transferred'"),
            ("migrate_transferred transferred 1 time_spent 100 bandwidth 0 max_size -3", "negative value for 'max_size'"),
            (
                "migrate_transferred transferred 1 time_spent 10x bandwidth 0 max_size 0",
                "unexpected character after the value of 'time_spent'"
            ),
            (
                "migrate_transferred transferred 1 time_spent 100 bandwidth 0 max_size 0 extra",
                "unexpected text after the last field at column 73"
            ),
            ("migrate_transferred transferred 1 time_spent 100 bandwith 0 max_size 0", "expected 'bandwidth' at column 50"),
            ("migrate_transferred transferred 1 time_spent 100 bandwidth 0 max_size", "line ends before the value of 'max_size'"),
        ] as [(String, String?)])
    func malformedLinesSayWhy(line: String, reason: String?) {
        if let reason {
            #expect(parse(line) == .malformed("migrate_transferred: \(reason)"))
        } else if case .event = parse(line) {
        } else {
            Issue.record("expected an event")
        }
    }
}
