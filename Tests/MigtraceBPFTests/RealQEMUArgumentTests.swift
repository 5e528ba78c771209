// SPDX-License-Identifier: Apache-2.0

import CMigtraceBPF
import Foundation
import MigtraceBPF
import MigtraceTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The raw records of one BPF session, filled by the ring-buffer callback on the polling thread (the test's).
private final class RawRecords {
    var events: [(probe: UInt8, args: [UInt64], flags: UInt16)] = []
}

/// ring_buffer_sample_fn: `ctx` is the RawRecords the test polls into.
private func rawSample(_ ctx: UnsafeMutableRawPointer?, _ data: UnsafeRawPointer, _ size: Int) -> Int32 {
    let records = Unmanaged<RawRecords>.fromOpaque(ctx!).takeUnretainedValue()
    guard size >= MemoryLayout<mt_event>.size else { return 0 }
    let e = data.loadUnaligned(as: mt_event.self)
    let all = [e.args.0, e.args.1, e.args.2, e.args.3, e.args.4]
    records.events.append((e.probe, Array(all.prefix(Int(e.arg_cnt))), e.flags))
    return 0
}

/// migtrace's BPF program on argument kinds the migration probes of the usdt QEMU build do not use: on the real
/// binary, `memory_notdirty_set_dirty` passes its argument as a stack memory operand (`8@24(%rsp)`) and
/// `memory_notdirty_write_access` a 4-byte register (`4@%ebp`). Both fire on the source's vCPU thread for every
/// write to a clean page during a migration, some 5,000–15,000 times a second here (fewer on a busy machine). The
/// program is attached to them through the same shim `migtrace attach` uses (the probe id is only a cookie), and
/// every value is compared with the source's own log of the same run.
@Suite(.serialized, .requiresRoot)
struct RealQEMUArgumentTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let probes: [(name: String, cookie: UInt8)] = [("memory_notdirty_set_dirty", 6), ("memory_notdirty_write_access", 1)]

    @Test func memoryOperandAndFourByteArgumentsOfARealQEMU() throws {
        let binary = Self.repository.appendingPathComponent(".cache/qemu-usdt/10.0/qemu-system-x86_64").path
        try #require(
            access(binary, X_OK) == 0,
            "\(binary) is missing: `make test` builds it (scripts/build-qemu-usdt, as root); run that script, then the tests again")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("migtrace-args-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = dir + "/source.log"
        let go = dir + "/go"

        let driver = Process()
        driver.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        driver.arguments = [
            "python3", Self.repository.appendingPathComponent("Tests/qemu/migrate.py").path, "--qemu", "usdt-10.0",
            "--scenario", "converge", "--out", log, "--trace-glob", "memory_notdirty*", "--go-file", go,
        ]
        let out = Pipe()
        driver.standardOutput = out
        try driver.run()
        defer { if driver.isRunning { driver.terminate() } }
        var text = ""
        while !text.contains("\n") {
            let chunk = out.fileHandleForReading.availableData
            try #require(!chunk.isEmpty, "migrate.py ended before starting QEMU")
            text += String(decoding: chunk, as: UTF8.self)
        }
        let pid = try #require(text.split(separator: "\n").first { $0.hasPrefix("source-pid ") }.flatMap { Int32($0.dropFirst(11)) })

        let h = try #require(mt_session_new())
        defer { mt_session_free(h) }
        let object = BPFObject.bytes
        #expect(object.withUnsafeBytes { mt_open(h, $0.baseAddress!, $0.count) } == 0)
        #expect(mt_set_ringbuf_size(h, 16 << 20) == 0)
        #expect(mt_set_target_tgid(h, UInt32(pid)) == 0)
        try #require(mt_load(h) == 0, "bpf_object__load failed")
        for p in Self.probes {
            try #require(mt_attach_usdt(h, pid, binary, "qemu", p.name, UInt64(p.cookie)) == 0, "attach qemu:\(p.name)")
        }
        let records = RawRecords()
        let ctx = Unmanaged.passUnretained(records).toOpaque()
        try #require(mt_ringbuf_open(h, rawSample, ctx) == 0)
        #expect(FileManager.default.createFile(atPath: go, contents: nil))
        while driver.isRunning { _ = mt_ringbuf_poll(h, 20) }
        _ = mt_ringbuf_consume(h)
        var drops: UInt64 = .max
        #expect(mt_read_drops(h, &drops) == 0)
        withExtendedLifetime(records) {}
        #expect(driver.terminationStatus == 0, "migrate.py failed")

        // "memory_notdirty_set_dirty 0xADDR" and "memory_notdirty_write_access 0xADDR ram_addr 0xADDR size N".
        let cookie = Dictionary(uniqueKeysWithValues: Self.probes.map { ($0.name, $0.cookie) })
        let logged = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").compactMap {
            line -> (UInt8, [UInt64])? in
            let f = line.split(separator: " ")
            guard let c = cookie[String(f[0])] else { return nil }
            let values = f.dropFirst().compactMap { w in
                w.hasPrefix("0x") ? UInt64(w.dropFirst(2), radix: 16) : UInt64(w)
            }
            return (c, values)
        }
        let setDirty = logged.filter { $0.0 == 6 }.count
        let writeAccess = logged.filter { $0.0 == 1 }.count
        try #require(setDirty >= 500 && writeAccess >= 500, "QEMU logged \(setDirty) set_dirty and \(writeAccess) write_access")
        #expect(drops == 0)
        #expect(records.events.allSatisfy { $0.flags == 0 }, "an argument could not be read")
        // The guest writes from boot on and the log has it all; the capture starts at the attach. From the first
        // record of the probe attached last on, the capture is the log's tail: every event, in order, same values.
        let start = try #require(records.events.firstIndex { $0.probe == Self.probes.last!.cookie })
        let captured = records.events[start...]
        #expect(start < 1000, "\(start) records before both probes were attached")
        #expect(captured.count >= 2_000, "\(captured.count) records")
        #expect(captured.count <= logged.count)
        let tail = logged.suffix(captured.count)
        let firstDifference = zip(captured, tail).enumerated().first { $0.1.0.probe != $0.1.1.0 || $0.1.0.args != $0.1.1.1 }
        #expect(firstDifference == nil, "record \(start + (firstDifference?.offset ?? 0)) differs from the log's")
        let receivedSetDirty = captured.filter { $0.probe == 6 }.count
        #expect(receivedSetDirty >= 500, "\(receivedSetDirty) memory-operand records")
        print(
            "logged: memory_notdirty_set_dirty \(setDirty), memory_notdirty_write_access \(writeAccess); captured from the "
                + "attach on: \(captured.count) records (\(receivedSetDirty) set_dirty), all equal to the log's tail, \(drops) drops")
    }
}
