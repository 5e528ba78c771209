// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import MigtraceCore
@testable import MigtraceIO

/// VFIO devices' migration events (`vfio_state_pending`, `vfio_query_stop_copy_size`, `vfio_query_precopy_size` of
/// QEMU 11.1; `vfio_state_pending_estimate/_exact` of 8.x–11.0), read from logs and summarised per device name.
///
/// HAND-MADE inputs: no VFIO device migrates on this machine. `Fixtures/qemu11/11.1-vfio-stall.log` is written by
/// `Fixtures/qemu11/make-11.1-vfio-stall.py` (see there for what comes from where); the 11.1 VFIO format strings are
/// not in the reference, so its VFIO lines follow hw/vfio's 10.0 style, ` (name) label value …`, which is also the
/// layout the lines below use (the 10.0 ones verbatim from Debian's QEMU 10.0.13 `hw/vfio/trace-events`).
@Suite struct VFIODeviceTests {
    static let stall = Paths.fixtures.appendingPathComponent("qemu11/11.1-vfio-stall.log").path

    func parse(_ s: String) -> LineResult {
        var bytes = Array(s.utf8)
        return bytes.withUnsafeMutableBufferPointer { QEMULogParser(input: 1).parse(UnsafeBufferPointer($0), line: 4) }
    }

    func device(_ s: String) throws -> DeviceEvent {
        guard case .device(let d) = parse(s) else {
            Issue.record("not a device event: \(parse(s))")
            throw CancellationError()
        }
        return d
    }

    @Test func elevenOneEvents() throws {
        let p = try device(
            "2026-08-21T18:43:28.5Z vfio_state_pending  (0000:00:02.0) stopcopy size 67108864 precopy initial size 5 precopy dirty size 6 request switchover ack 1 exact 1 final 0"
        )
        #expect(p.kind == .statePending && p.name == "0000:00:02.0")
        #expect(p.stopCopyBytes == 67_108_864 && p.precopyInitialBytes == 5 && p.precopyDirtyBytes == 6)
        #expect(p.requestSwitchoverAck == true && p.exact == true && p.final == false)
        #expect(p.timestampNanoseconds == 1_787_337_808_500_000_000)
        #expect(p.origin == EventOrigin(input: 1, line: 4))
        let s = try device("vfio_query_stop_copy_size  (dev0) size 0x4000000 ret 0")
        #expect(s.kind == .queryStopCopySize && s.stopCopyBytes == 67_108_864 && s.ret == 0)
        let q = try device("4242@1700000000.000001:vfio_query_precopy_size  (dev0) init_size 10 dirty_size 20 reinit 1 ret -22")
        #expect(q.precopyInitialBytes == 10 && q.precopyDirtyBytes == 20 && q.reinit == true && q.ret == -22)
        #expect(q.threadID == 4242)
        // `label=value, ` as the migration events print it is read too.
        let eq = try device("vfio_state_pending (dev1) stopcopy_size=7, precopy_init_size=8, precopy_dirty_size=9, exact=0")
        #expect(eq.stopCopyBytes == 7 && eq.precopyInitialBytes == 8 && eq.precopyDirtyBytes == 9 && eq.exact == false)
    }

    @Test func tenZeroEventsVerbatim() throws {
        // hw/vfio/trace-events:182 of 10.0.13: " (%s) precopy %PRIu64 postcopy %PRIu64 stopcopy size %PRIu64 precopy
        // initial size %PRIu64 precopy dirty size %PRIu64".
        let e = try device(
            "vfio_state_pending_exact  (0000:3b:00.1) precopy 1000 postcopy 0 stopcopy size 2000 precopy initial size 3 precopy dirty size 4"
        )
        #expect(e.kind == .statePendingExact && e.name == "0000:3b:00.1")
        #expect(e.precopyBytes == 1000 && e.postcopyBytes == 0 && e.stopCopyBytes == 2000)
        #expect(e.precopyInitialBytes == 3 && e.precopyDirtyBytes == 4)
        let est = try device(
            "vfio_state_pending_estimate  (0000:3b:00.1) precopy 1000 postcopy 0 precopy initial size 3 precopy dirty size 4")
        #expect(est.kind == .statePendingEstimate && est.stopCopyBytes == nil && est.precopyDirtyBytes == 4)
    }

    /// The name is everything between the first `(` and the last `)` before a space: a name may hold parentheses
    /// or control bytes, and the outputs escape it.
    @Test func namesKeepTheirBytesAndAreEscapedInOutput() throws {
        let e = try device("vfio_query_stop_copy_size  (gpu (a) \u{1b}[31mred) size 5 ret 0")
        #expect(e.name == "gpu (a) \u{1b}[31mred")
        var d = DeviceSummary(name: e.name)
        d.add(e)
        #expect(MigrationText.deviceLine(d) == "  device \"gpu (a) \\x1b[31mred\": stop-copy 5 B; 1 events\n")
        var o = JSONWriter()
        var m = MigrationAssessment(
            series: nil, input: 0, outcome: .unknown, verdict: nil, verdictChanges: [], iterations: 0, postSyncPending: [],
            totalBytes: 0)
        m.devices = [d]
        MigrationJSON.object(m, &o)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(o.bytes)) as? [String: Any])
        let devices = try #require(json["devices"] as? [[String: Any]])
        #expect(devices.first?["name"] as? String == "gpu (a) \u{1b}[31mred")
        #expect(String(decoding: o.bytes, as: UTF8.self).contains(#""name":"gpu (a) \u001b[31mred""#))
    }

    @Test(arguments: [
        ("vfio_state_pending stopcopy size 5", "vfio_state_pending: expected '(device name)' at column 20"),
        ("vfio_state_pending  (dev0 stopcopy size 5", "vfio_state_pending: the device name has no closing ')'"),
        ("vfio_state_pending  (dev0)", "vfio_state_pending: no values after the device name"),
        ("vfio_state_pending  (dev0) stopcopy size", "vfio_state_pending: 'stopcopy size' has no value"),
        ("vfio_state_pending  (dev0) exact 2", "vfio_state_pending: 'exact' is 2; QEMU prints this flag as 0 or 1"),
        ("vfio_state_pending  (dev0) stopcopy size -1", "vfio_state_pending: negative value for unsigned 'stopcopy size' at column 42"),
        (
            "vfio_query_stop_copy_size  (dev0) size 12x ret 0",
            "vfio_query_stop_copy_size: unexpected character after the value of 'size' at column 42"
        ),
        (
            "vfio_query_stop_copy_size  (dev0) size 0x1ffffffffffffffff",
            "vfio_query_stop_copy_size: value of 'size' does not fit in 64 bits"
        ),
    ])
    func malformedLinesSayWhy(line: String, reason: String) {
        #expect(parse(line) == .malformed(reason))
    }

    @Test func otherVFIOEventsAreIgnored() {
        #expect(parse("vfio_save_iterate  (0000:00:02.0) precopy initial size 0 precopy dirty size 0") == .ignored)
        #expect(parse("vfio_region_write  (0000:00:02.0:region0+0x0, 0x1, 4)") == .ignored)
    }

    /// The hand-made stall: per device, what it reported last, in JSON and text; the migration cannot converge, the
    /// advice says why.
    @Test func devicesArePerMigrationAndNamed() throws {
        let sink = try analyze([Self.stall])
        let m = try #require(sink.report?.migrations.first)
        #expect(m.outcome == .cancelled)
        #expect(m.devices.map(\.name) == ["0000:00:02.0", "0000:00:03.0"])
        let gpu = m.devices[0]
        #expect(gpu.stopCopyBytes == 67_108_864 && gpu.maxStopCopyBytes == 67_108_864)
        #expect(gpu.switchoverAckRequested == true && gpu.failedQueries == 0)
        #expect(gpu.events == 167)
        let nic = m.devices[1]
        // Its first size query failed (-22, not taken as a size); the later ones give 1 MiB.
        #expect(nic.failedQueries == 1 && nic.lastError == -22)
        #expect(nic.stopCopyBytes == 1_048_576 && nic.switchoverAckRequested == false)
        #expect(nic.precopyDirtyBytes == 0)
        // 11.1 iterations (20 exact queries), stop-copy data as the floor, the verdict and the advice.
        #expect(m.iterations == 20)
        #expect(m.stopCopyBytes == 68_157_440)
        #expect(m.verdict == .stalled)
        // The levels fall by 50 kB a pass towards a fitted floor below the devices' data: the floor is that data.
        #expect(m.pendingFloorBytes == 68_157_440)
        let reason = try #require(m.advice?.reason)
        #expect(
            reason.contains(
                "the floor is device data (stop-copy, 68157440 bytes) that only moves while the VM is stopped: iterating cannot shrink it"))
        // 1997 ms × 34,145 B/ms is the first threshold above the floor.
        #expect(m.advice?.downtimeLimitMs == 1997)
        // The pending falls 22 % over the passes, but the stop-copy part alone is above the threshold: non-convergence.
        let finding = try #require(sink.findings.first { $0.rule == "non-convergence" })
        #expect(
            finding.message.hasSuffix(
                "68157440 bytes of it are device stop-copy data, which only moves while the VM is stopped and alone exceeds the threshold: iterating cannot make it fit."
            ))
        #expect(finding.remedy.hasPrefix("Raise `downtime-limit` until the threshold holds the devices' stop-copy data"))
        #expect(finding.evidence.contains(.count("stop_copy_bytes", 68_157_440)))
        #expect(sink.windows.count == 106 && sink.windows.allSatisfy { $0.rebuild.exact && $0.era == .c })
        // Window 0 ends before the first query.
        #expect(sink.windows.first?.pendingBytes == nil)
        #expect(sink.windows.dropFirst().allSatisfy { $0.pendingSplit?.stopcopy == 68_157_440 })
        #expect(sink.report?.diagnostics.isEmpty == true)

        let json = MemoryOutput()
        _ = try QEMU11PendingTests.run(Self.stall, JSONSink(out: json, names: InputNames(["t"]), version: "test"))
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(json.bytes)) as? [String: Any])
        let devices = try #require((doc["migrations"] as? [[String: Any]])?.first?["devices"] as? [[String: Any]])
        #expect(devices.map { $0["name"] as? String } == ["0000:00:02.0", "0000:00:03.0"])
        #expect((devices[0]["stop_copy_bytes"] as? NSNumber)?.uint64Value == 67_108_864)
        #expect((devices[1]["failed_queries"] as? NSNumber)?.intValue == 1)
        #expect((devices[1]["last_error"] as? NSNumber)?.intValue == -22)
        #expect(devices[0]["switchover_ack_requested"] as? Bool == true)
        // A trace without VFIO events has an empty list.
        let plain = MemoryOutput()
        _ = try QEMU11PendingTests.run(QEMU11PendingTests.converge, JSONSink(out: plain, names: InputNames(["t"]), version: "t"))
        let plainDoc = try #require(try JSONSerialization.jsonObject(with: Data(plain.bytes)) as? [String: Any])
        #expect(((plainDoc["migrations"] as? [[String: Any]])?.first?["devices"] as? [Any])?.isEmpty == true)

        let text = MemoryOutput()
        _ = try QEMU11PendingTests.run(Self.stall, TextSink(out: text, names: InputNames(["stall"]), showWindows: false))
        #expect(text.text.contains("migration · stall · series 0 · cancelled after 20 iterations\n"))
        #expect(
            text.text.contains(
                "  device \"0000:00:02.0\": stop-copy 67108864 B, precopy initial 0 B, precopy dirty 0 B, asks for a switchover ack; 167 events\n"
            ))
        #expect(
            text.text.contains(
                "  device \"0000:00:03.0\": stop-copy 1048576 B, precopy initial 0 B, precopy dirty 0 B, 1 failed size queries (last -22); 167 events\n"
            ))
    }

    /// Device events keep their place among events and diagnostics through the reader's batches.
    @Test func batchesKeepDeviceEventsInLineOrder() throws {
        var batch = TraceBatch(capacity: 16)
        let parser = QEMULogParser(input: 0)
        let lines = [
            "migrate_set_state new state setup", "vfio_query_stop_copy_size  (a) size 1 ret 0", "migrate_pending_exact nonsense",
            "vfio_query_stop_copy_size  (b) size 2 ret 0", "migrate_set_state new state active",
            "vfio_query_stop_copy_size  (c) size 3 ret 0",
        ]
        for (i, l) in lines.enumerated() {
            var bytes = Array(l.utf8)
            switch bytes.withUnsafeMutableBufferPointer({ parser.parse(UnsafeBufferPointer($0), line: UInt64(i + 1)) }) {
            case .event(let e): batch.append(e)
            case .device(let d): batch.append(d)
            case .malformed(let r): batch.reject(Diagnostic(input: 0, line: UInt64(i + 1), reason: r))
            case .ignored: break
            }
        }
        var order: [String] = []
        batch.inLineOrder({ order.append("e\($0.origin.line)") }, { order.append("d\($0.line)") }, { order.append("v\($0.origin.line)") })
        #expect(order == ["e1", "v2", "d3", "v4", "e5", "v6"])
    }
}
