// SPDX-License-Identifier: Apache-2.0
import Testing

@testable import MigtraceCore

/// The recording format round-trips every field.
@Suite struct RecordingTests {
    func parse(_ bytes: [UInt8]) -> Result<RecordingFormat.Line, RecordingFormat.ParseFailure> {
        var b = bytes
        if b.last == 10 { b.removeLast() }
        return b.withUnsafeBufferPointer { RecordingFormat.parse($0, input: 2, line: 9) }
    }

    @Test func headerRoundTrip() throws {
        let h = RecordingFormat.Header(
            migtraceVersion: "0.1.0", host: "h\"ost", kernel: "6.1", pid: 42, binary: "/usr/bin/qemu-system-x86_64",
            buildID: "abcd", clockOffsetNanoseconds: -5, startedAtNanoseconds: 17,
            probes: [("migrate_transferred", 5), ("migrate_set_state", 1)])
        let line = RecordingFormat.headerLine(h)
        #expect(Array(line.prefix(RecordingFormat.magic.count)) == RecordingFormat.magic)
        #expect(try parse(line).get() == .header(h))
    }

    @Test func eventRoundTrip() throws {
        var e = TraceEvent(
            kind: .migrateTransferred, arguments: ProbeArguments(count: 5, 1, 2, 3, 4, UInt64.max), timestampNanoseconds: 99,
            clock: .wall, threadID: 7, processID: 6, origin: EventOrigin(input: 2, line: 9))
        #expect(try parse(RecordingFormat.eventLine(e, monotonicNanoseconds: 5)).get() == .event(e))
        e.kind = .migrateSetState
        e.arguments = ProbeArguments(count: 0)
        e.state = .postcopyRecoverSetup
        #expect(try parse(RecordingFormat.eventLine(e, monotonicNanoseconds: nil)).get() == .event(e))
        // A state that is not QEMU's is refused with its text escaped (hand-made line).
        let odd = Array(#"{"type":"event","probe":"migrate_set_state","args":[],"state":"post\ncopy\u001b[31m"}"#.utf8)
        guard case .failure(let f) = parse(odd) else {
            Issue.record("an unknown state parsed")
            return
        }
        #expect(f.reason == #"new state "post\x0acopy\x1b[31m" is not a QEMU migration state (MigrationStatus)"#)
        #expect(
            try parse(RecordingFormat.endLine(reason: "sigint", kernelDrops: 3, consumerDrops: 0)).get()
                == .end(reason: "sigint", kernel: 3, consumer: 0))
    }

    @Test func cutRecordIsAFailureWithAReason() {
        let line = RecordingFormat.eventLine(
            TraceEvent(kind: .migrateTransferred, arguments: ProbeArguments(count: 4, 1, 100, 0, 0)), monotonicNanoseconds: 1)
        guard case .failure(let f) = parse(Array(line.prefix(40))) else {
            Issue.record("a cut record parsed")
            return
        }
        #expect(f.reason.contains("cut short"))
    }
}
