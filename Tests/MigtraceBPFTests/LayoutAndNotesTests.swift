// SPDX-License-Identifier: Apache-2.0

import CMigtraceBPF
import Foundation
import MigtraceBPF
import MigtraceCore
import MigtraceIO
import MigtraceTestSupport
import Testing

@Suite(.serialized)
struct LayoutTests {
    @Test func recordLayoutMatchesSharedHeader() {
        #expect(MemoryLayout<mt_event>.size == 88)
        #expect(Int(mt_event_size()) == 88)
        #expect(LiveEventDecoder.recordSize == 88)
        #expect(MT_MAX_ARGS == 8)
        // The arguments from byte 24, the state string over args[1...4] (byte 32): written through each field, read
        // back at its offset.
        var e = mt_event()
        e.args.0 = 0x0101_0101_0101_0101
        e.args.7 = 0x0808_0808_0808_0808
        withUnsafeMutableBytes(of: &e.state) { $0[0] = 0x5a }
        withUnsafeBytes(of: e) { raw in
            #expect(raw[24] == 0x01 && raw[24 + 7 * 8] == 0x08 && raw[Int(MT_STATE_OFFSET)] == 0x5a)
        }
        #expect(MT_STATE_OFFSET == 32)
        #expect(MT_PROBE_MIGRATE_SET_STATE == Int32(ProbeKind.migrateSetState.rawValue))
        #expect(MT_PROBE_QEMU_SAVEVM_QUERY_PENDING == Int32(ProbeKind.qemuSavevmQueryPending.rawValue))
        #expect(MT_PROBE_COUNT == Int32(ProbeKind.allCases.count))
    }

    @Test func embeddedObjectIsBPFELF() {
        let b = BPFObject.bytes
        #expect(b.count > 1000)
        #expect(Array(b.prefix(4)) == [0x7f, 0x45, 0x4c, 0x46])
        #expect(b[4] == 2)  // ELFCLASS64
        #expect(UInt16(b[18]) | UInt16(b[19]) << 8 == 247)  // EM_BPF
    }

    @Test func decodesARecord() {
        var e = mt_event()
        e.ts_ns = 123_456_789
        e.pid = 4242
        e.tid = 4243
        e.probe = ProbeKind.migrateSetState.rawValue
        e.arg_cnt = 1
        e.args.0 = 0xdead_beef
        withUnsafeMutableBytes(of: &e.state) { raw in
            for (i, c) in "completed".utf8.enumerated() { raw[i] = c }
        }
        let ev = withUnsafeBytes(of: e) { LiveEventDecoder.decode($0.baseAddress!, size: $0.count) }
        #expect(
            ev
                == TraceEvent(
                    kind: .migrateSetState, arguments: ProbeArguments(count: 1, 0xdead_beef),
                    timestampNanoseconds: 123_456_789, clock: .monotonic, threadID: 4243, processID: 4242,
                    state: .completed, origin: .live))
        e.probe = 200
        #expect(withUnsafeBytes(of: e) { LiveEventDecoder.decode($0.baseAddress!, size: $0.count) } == nil)
        #expect(withUnsafeBytes(of: e) { LiveEventDecoder.decode($0.baseAddress!, size: 87) } == nil)
    }

    /// The 8 arguments of `qemu_savevm_query_pending` come through; a value over 32 bits in slot 7 or 8 (QEMU passes
    /// `uint32_t` there) makes the record undecodable instead of being cut.
    @Test func decodesAnEightArgumentRecord() {
        var e = mt_event()
        e.ts_ns = 5
        e.pid = 10
        e.tid = 11
        e.probe = ProbeKind.qemuSavevmQueryPending.rawValue
        e.arg_cnt = 8
        e.args = (1, 0, 300, 4_000_000, 20, 4_000_320, 2, 3)
        let ev = withUnsafeBytes(of: e) { LiveEventDecoder.decode($0.baseAddress!, size: $0.count) }
        #expect(ev?.kind == .qemuSavevmQueryPending)
        #expect(ev?.arguments == ProbeArguments(count: 8, 1, 0, 300, 4_000_000, 20, 4_000_320, 2, 3))
        e.args.7 = 1 << 32
        #expect(withUnsafeBytes(of: e) { LiveEventDecoder.decode($0.baseAddress!, size: $0.count) } == nil)
        // Past the count the slots do not matter.
        e.arg_cnt = 6
        #expect(withUnsafeBytes(of: e) { LiveEventDecoder.decode($0.baseAddress!, size: $0.count) }?.arguments.count == 6)
    }
}

@Suite(.serialized)
struct USDTNotesTests {
    /// `nm` address of a symbol in `binary`.
    func symbol(_ name: String, in binary: String) throws -> UInt64 {
        let out = try TestProgramBuilder.run("/usr/bin/env", ["nm", binary])
        for line in out.split(separator: "\n") {
            let f = line.split(separator: " ")
            if f.count == 3, f[2] == name, let v = UInt64(f[0], radix: 16) { return v }
        }
        throw TestPrograms.BuildError(description: "no symbol \(name)")
    }

    @Test func eraBNotes() throws {
        let bin = try TestPrograms.path(.eraB)
        let all = try USDTNotes.read(path: bin)
        let qemu = USDTNotes.probes(all, provider: "qemu")
        #expect(qemu.count == all.count)
        let counts = Dictionary(qemu.map { ($0.name, $0.argumentCount) }, uniquingKeysWith: { a, _ in a })
        #expect(
            counts == [
                "migrate_set_state": 1, "migrate_pending_estimate": 3, "migrate_pending_exact": 3,
                "migration_bitmap_sync_start": 0, "migration_bitmap_sync_end": 1,
                "migration_thread_low_pending": 1, "migrate_transferred": 5, "qemu_savevm_query_pending": 8,
            ])
        for p in qemu {
            #expect(p.hasSemaphore, "\(p.name) has no semaphore")
            #expect(p.semaphore == (try symbol("qemu_\(p.name)_semaphore", in: bin)))
            #expect(p.semaphoreFileOffset != nil)
            #expect(p.pcFileOffset != nil)
            // qemu_savevm_query_pending has QEMU's typed parameters (1-byte bools, 4-byte counts).
            if p.name != "qemu_savevm_query_pending" {
                #expect(p.arguments.allSatisfy { $0.size == 8 && !$0.isSigned && !$0.isFloat })
            }
        }
        let q = try #require(qemu.first { $0.name == "qemu_savevm_query_pending" })
        #expect(q.arguments.map { abs($0.size) } == [1, 1, 8, 8, 8, 8, 4, 4])
        let t = try #require(qemu.first { $0.name == "migrate_transferred" })
        #expect(t.argumentString.split(separator: " ").count == 5)
        // The probe site is a nop inside main's code.
        let main = try symbol("main", in: bin)
        #expect(t.pc > main && t.pc < main + 4096)
    }

    @Test func eraANotes() throws {
        let qemu = USDTNotes.probes(try USDTNotes.read(path: try TestPrograms.path(.eraA)), provider: "qemu")
        let counts = Dictionary(qemu.map { ($0.name, $0.argumentCount) }, uniquingKeysWith: { a, _ in a })
        #expect(
            counts == [
                "migrate_set_state": 1, "migrate_pending": 5, "migration_bitmap_sync_start": 0,
                "migration_bitmap_sync_end": 1, "migration_thread_low_pending": 1, "migrate_transferred": 4,
            ])
        let allHaveSemaphores = qemu.allSatisfy { $0.hasSemaphore }
        #expect(allHaveSemaphores)
    }

    @Test func binaryWithoutNotes() throws {
        // A plain C program: ELF but no .note.stapsdt.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("migtrace-plain-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let src = dir.appendingPathComponent("plain.c")
        try "int main(void) { return 0; }\n".write(to: src, atomically: true, encoding: .utf8)
        let bin = dir.appendingPathComponent("plain").path
        try TestProgramBuilder.run("/usr/bin/env", ["cc", src.path, "-o", bin])
        #expect(try USDTNotes.read(path: bin) == [])
        #expect(throws: USDTNotesError.notELF(path: src.path)) { try USDTNotes.read(path: src.path) }
        #expect(throws: USDTNotesError.io(path: "/nonexistent/qemu", operation: "open", errno: ENOENT)) {
            try USDTNotes.read(path: "/nonexistent/qemu")
        }
    }

    @Test func prelinkBaseAdjustment() throws {
        // Rewrite the noted _.stapsdt.base of the migrate_transferred note to 0x1000 below the section's address,
        // as prelink would leave it: pc and semaphore must both move up by 0x1000.
        let bin = try TestPrograms.path(.eraB)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: bin)))
        let before = try #require(try USDTNotes.parse(bytes: bytes).first { $0.name == "migrate_transferred" })
        let le: (UInt64) -> [UInt8] = { v in (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        let pcBytes = le(before.pc)
        let semBytes = le(before.semaphore)
        func matches(_ i: Int) -> Bool {
            bytes[i..<i + 8].elementsEqual(pcBytes) && bytes[i + 16..<i + 24].elementsEqual(semBytes)
        }
        let found: Int? = (0..<(bytes.count - 24)).first(where: matches)
        let at = try #require(found)
        var base: UInt64 = 0
        for k in 0..<8 { base |= UInt64(bytes[at + 8 + k]) << (8 * UInt64(k)) }
        bytes.replaceSubrange(at + 8..<at + 16, with: le(base - 0x1000))
        let after = try #require(try USDTNotes.parse(bytes: bytes).first { $0.name == "migrate_transferred" })
        #expect(after.pc == before.pc + 0x1000)
        #expect(after.semaphore == before.semaphore + 0x1000)
        #expect(after.argumentCount == 5)
    }

    @Test func buildID() throws {
        let bin = try TestPrograms.path(.eraB)
        let readelf = try TestProgramBuilder.run("/usr/bin/env", ["readelf", "-n", bin])
        let line = try #require(readelf.split(separator: "\n").first { $0.contains("Build ID:") })
        let expected = String(line.split(separator: " ").last!)
        #expect(expected.count == 40)
        #expect(try USDTNotes.buildID(path: bin) == expected)
    }

    @Test func argumentOperands() throws {
        #expect(throws: USDTNotesError.notELF(path: "<memory>")) { try USDTNotes.parse(bytes: []) }
        let args = USDTNotes.parseArguments("8@%rdi -4@-20(%rbp) 8f@%xmm0  1@$5")
        #expect(args.count == 4)
        #expect(args[0] == .init(size: 8, isSigned: false, isFloat: false, location: "%rdi"))
        #expect(args[1] == .init(size: 4, isSigned: true, isFloat: false, location: "-20(%rbp)"))
        #expect(args[2] == .init(size: 8, isSigned: false, isFloat: true, location: "%xmm0"))
        #expect(args[3] == .init(size: 1, isSigned: false, isFloat: false, location: "$5"))
        #expect(USDTNotes.parseArguments("").isEmpty)
    }
}
