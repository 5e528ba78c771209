// SPDX-License-Identifier: Apache-2.0

import Foundation
import MigtraceBPF
import MigtraceCore
import MigtraceIO
import Testing

/// Runs fake_qemu under a session: start (waiting), attach, go, wait for exit, stop, collect.
func traceRun(
    _ variant: TestPrograms.Variant, count: Int, extra: [String] = [],
    configuration: LiveSession.Configuration = LiveSession.Configuration()
) async throws -> (
    events: [TraceEvent], batches: Int, result: FakeQEMU.Result, session: LiveSession, pid: Int32,
    seconds: Double
) {
    let child = try FakeQEMU(variant, count: count, extra: extra)
    let session = try LiveSession(pid: child.pid, configuration: configuration)
    let task = collect(try session.events())
    let start = MonotonicClock.monotonicNanoseconds()
    child.go()
    let result = try child.finish()
    let seconds = Double(MonotonicClock.monotonicNanoseconds() - start) / 1e9
    session.stop()
    let (events, batches) = try await task.value
    return (events, batches, result, session, child.pid, seconds)
}

@Suite(.serialized, .requiresRoot)
struct LiveSessionTests {
    /// Every argument kind the BPF program decodes: registers (-O2), memory operands and constants (-O0).
    @Test(arguments: [TestPrograms.Variant.eraB, .eraBUnoptimized])
    func eraBExactValuesInOrder(_ variant: TestPrograms.Variant) async throws {
        let n = 200
        let notes = USDTNotes.probes(try USDTNotes.read(path: try TestPrograms.path(variant)), provider: "qemu")
        let locations = notes.flatMap { $0.arguments.map(\.location) }
        // The -O0 build really has a memory operand (migrate_set_state's pointer) and constants.
        #expect(locations.contains { $0.hasSuffix("(%rbp)") } == (variant == .eraBUnoptimized))
        #expect(locations.contains("$1000"))
        let started = MonotonicClock.monotonicNanoseconds()
        let run = try await traceRun(variant, count: n, extra: ["--context"])
        defer { run.session.close() }

        // Probe table: every probe of the binary attached, migrate_pending absent (a QEMU >= 8.0 binary).
        let byKind = Dictionary(uniqueKeysWithValues: run.session.probes.map { ($0.kind, $0) })
        #expect(run.session.attachedProbes.count == 8)
        #expect(byKind[.qemuSavevmQueryPending]?.noteArgumentCount == 8)
        #expect(byKind[.migrateTransferred]?.noteArgumentCount == 5)
        #expect(byKind[.migrateTransferred]?.hasSemaphore == true)
        #expect(byKind[.migratePendingEstimate]?.noteArgumentCount == 3)
        #expect(byKind[.bitmapSyncStart]?.noteArgumentCount == 0)
        #expect(byKind[.migrateSetState]?.attached == true)
        #expect(byKind[.migratePending]?.attached == false)
        #expect(byKind[.migratePending]?.siteCount == 0)
        #expect(byKind[.migratePending]?.reason == "not in binary")
        // libbpf bumped the semaphore in the traced process (ref_ctr) before it fired.
        #expect(run.result.semaphore >= 1)

        // fired = 2 states + per i (estimate, exact if even, sync start, sync end, transferred) + low + completed
        let expectedTotal = UInt64(2 + n * 4 + (n + 1) / 2 + 2)
        #expect(run.result.fired == expectedTotal)
        #expect(UInt64(run.events.count) == run.result.fired)
        #expect(try run.session.kernelDrops() == 0)
        #expect(run.session.consumerDrops == 0)
        #expect(run.session.undecodableRecords == 0)

        // Rebuild the exact expected sequence and compare event by event (kind, args, count).
        var expected: [(ProbeKind, ProbeArguments, String?)] = [
            (.migrateSetState, ProbeArguments(count: 1), "setup"), (.migrateSetState, ProbeArguments(count: 1), "active"),
        ]
        for i in 0..<UInt64(n) {
            expected.append((.migratePendingEstimate, ProbeArguments(count: 3, 10000 - i, 9000 - i, 1000), nil))
            if i % 2 == 0 {
                expected.append((.migratePendingExact, ProbeArguments(count: 3, 20000 - i, 19000 - i, 1000), nil))
            }
            expected.append((.bitmapSyncStart, ProbeArguments(count: 0), nil))
            expected.append((.bitmapSyncEnd, ProbeArguments(count: 1, 1000 + i), nil))
            expected.append((.migrateTransferred, expectedTransferred(i, argCount: 5), nil))
        }
        expected.append((.migrationThreadLowPending, ProbeArguments(count: 1, 42), nil))
        expected.append((.migrateSetState, ProbeArguments(count: 1), "completed"))
        #expect(expected.count == run.events.count)
        var mismatches = 0
        var lastTS: UInt64 = 0
        for (e, (kind, args, state)) in zip(run.events, expected) {
            var got = e.arguments
            if kind == .migrateSetState { got.a0 = 0 }  // a0 is the string pointer: not deterministic
            if e.kind != kind || got != args || e.state?.name != state { mismatches += 1 }
            #expect(e.processID == UInt32(run.pid))
            #expect(e.threadID == UInt32(run.pid))  // single-threaded program: tid == pid
            #expect(e.clock == .monotonic && e.origin == .live)
            #expect(e.timestampNanoseconds! >= lastTS)
            lastTS = e.timestampNanoseconds!
        }
        #expect(mismatches == 0)
        #expect(run.events.filter { $0.kind == .migrateSetState }.compactMap(\.state) == [.setup, .active, .completed])
        // Live timestamps are CLOCK_MONOTONIC: every event fired between the start of this test and now (a bound
        // that holds however slowly a loaded machine runs the test; a fixed "within 10 s" did not).
        let now = MonotonicClock.monotonicNanoseconds()
        #expect(run.events.first.map { $0.timestampNanoseconds! >= started } == true)
        #expect(lastTS <= now)
    }

    /// QEMU 11.1's 8-argument `qemu_savevm_query_pending`, live: bools (1-byte operands), 64-bit sizes and 32-bit
    /// counts (4-byte registers and constants; memory operands at -O0) arrive exact, in order, and feed the analysis:
    /// each window's pending is the query's total with its parts apart, the exact queries are the iterations.
    @Test(arguments: [TestPrograms.Variant.eraB, .eraBUnoptimized])
    func queryPendingEightArguments(_ variant: TestPrograms.Variant) async throws {
        let n = 60
        let run = try await traceRun(variant, count: n, extra: ["--query", "--context"])
        defer { run.session.close() }
        let byKind = Dictionary(uniqueKeysWithValues: run.session.probes.map { ($0.kind, $0) })
        #expect(byKind[.qemuSavevmQueryPending]?.attached == true)
        #expect(byKind[.qemuSavevmQueryPending]?.noteArgumentCount == 8)
        #expect(UInt64(run.events.count) == run.result.fired)
        #expect(try run.session.kernelDrops() == 0 && run.session.undecodableRecords == 0)
        let queries = run.events.filter { $0.kind == .qemuSavevmQueryPending }.map(\.arguments)
        var expected = (0..<UInt64(n)).map { i in
            ProbeArguments(
                eight: i % 2 == 0 ? 1 : 0, 0, 9000 - i, 4096 + i, 1000, 9000 - i + 4096 + i + 1000, UInt32(i % 3), 2)
        }
        expected.append(ProbeArguments(eight: 1, 1, 0, 4096, 0, 4096, 2, 2))
        #expect(queries.count == n + 1)
        #expect(mismatches(queries, expected) == 0)

        final class Windows: AnalysisSink {
            var windows: [AnalyzedWindow] = []
            func seriesStarted(_ info: SeriesInfo) {}
            func window(_ window: AnalyzedWindow, in series: SeriesInfo) { windows.append(window) }
            func finding(_ finding: Finding) {}
            func seriesEnded(_ summary: SeriesSummary) {}
            func finished(_ report: AnalysisReport) {}
        }
        let sink = Windows()
        let analyzer = MigrationAnalyzer(sink: sink)
        for e in run.events { analyzer.consume(e) }
        let report = analyzer.finish()
        #expect(report.diagnostics.isEmpty)
        // The query comes after the estimate and exact of event i: the window's pending is the query's.
        #expect(sink.windows.map(\.pendingBytes) == (0..<UInt64(n)).map { _ in Optional(14096) })
        #expect(
            sink.windows.map(\.pendingSplit)
                == (0..<UInt64(n)).map { PendingSplit(precopy: 9000 - $0, stopcopy: 4096 + $0, postcopy: 1000) })
        #expect(sink.windows.map(\.pendingExact) == (0..<n).map { $0 % 2 == 0 })
        let m = try #require(report.migrations.first)
        #expect(m.iterations == n / 2)
        #expect(m.iterationsAreQueries)
        #expect(m.stopCopyBytes == 4096)
    }

    @Test func firingThreadIsReported() async throws {
        // QEMU fires from its migration thread: tid differs from pid.
        let run = try await traceRun(.eraB, count: 20, extra: ["--thread", "--context"])
        defer { run.session.close() }
        let tid = try #require(run.result.threadID)
        #expect(tid != UInt32(run.pid))
        #expect(UInt64(run.events.count) == run.result.fired)
        #expect(run.events.allSatisfy { $0.threadID == tid && $0.processID == UInt32(run.pid) })
        #expect(run.events.compactMap(\.state) == [.setup, .active, .completed])
    }

    @Test func eraAFourArguments() async throws {
        let n = 100
        let run = try await traceRun(.eraA, count: n, extra: ["--context"])
        defer { run.session.close() }
        let byKind = Dictionary(uniqueKeysWithValues: run.session.probes.map { ($0.kind, $0) })
        #expect(byKind[.migrateTransferred]?.noteArgumentCount == 4)
        #expect(byKind[.migratePending]?.attached == true)
        #expect(byKind[.migratePending]?.noteArgumentCount == 5)
        #expect(byKind[.migratePendingEstimate]?.attached == false)
        #expect(UInt64(run.events.count) == run.result.fired)
        let transferred = run.events.filter { $0.kind == .migrateTransferred }
        #expect(transferred.count == n)
        #expect(mismatches(transferred.map(\.arguments), (0..<UInt64(n)).map { expectedTransferred($0, argCount: 4) }) == 0)
        let pending = run.events.filter { $0.kind == .migratePending }
        #expect(pending.count == n)
        #expect(
            mismatches(pending.map(\.arguments), (0..<UInt64(n)).map { ProbeArguments(count: 5, 10000 - $0, 5000, 9000 - $0, 0, 1000) })
                == 0)
        #expect(try run.session.kernelDrops() == 0)
    }

    @Test func burstWithZeroDrops() async throws {
        // MIGTRACE_BURST_COUNT raises the count for throughput measurements.
        let n = ProcessInfo.processInfo.environment["MIGTRACE_BURST_COUNT"].flatMap { Int($0) } ?? 200_000
        var config = LiveSession.Configuration()
        config.probes = [.migrateTransferred]
        let run = try await traceRun(.eraB, count: n, configuration: config)
        defer { run.session.close() }
        let drops = try run.session.kernelDrops()
        let rate = Double(n) / run.seconds
        print("burst: \(n) events in \(run.seconds) s = \(Int(rate)) events/s, \(run.batches) batches, drops \(drops)")
        #expect(drops == 0)
        #expect(run.events.count == n)
        #expect(mismatches(run.events.map(\.arguments), (0..<UInt64(n)).map { expectedTransferred($0, argCount: 5) }) == 0)
    }

    @Test func tinyRingBufferCountsEveryDrop() async throws {
        let n = 20_000
        var config = LiveSession.Configuration()
        config.ringBufferSize = 4096
        config.probes = [.migrateTransferred]
        let run = try await traceRun(.eraB, count: n, configuration: config)
        defer { run.session.close() }
        let drops = try run.session.kernelDrops()
        print("tiny ring: fired \(run.result.fired), received \(run.events.count), dropped \(drops)")
        #expect(run.result.fired == UInt64(n))
        #expect(UInt64(run.events.count) + drops == run.result.fired)
        // What arrives is still exact and in order: a strictly increasing subsequence of the fired values.
        let firsts = run.events.map(\.arguments.a0)
        let increasing = zip(firsts, firsts.dropFirst()).allSatisfy { $0 < $1 }
        #expect(increasing)
        let exact = run.events.allSatisfy { $0.arguments == expectedTransferred($0.arguments.a0 - 0x1_0000_0000, argCount: 5) }
        #expect(exact)
    }

    @Test func wakeupIntervalBatchesAPacedStream() async throws {
        // 200 events 1 ms apart: with the default 1 ms interval nearly every event wakes the reader (a batch each);
        // with 50 ms, the 200 ms of events come in a handful of batches. Every event arrives either way.
        var batches: [Int] = []
        for interval in [1000, 50_000] {
            let child = try FakeQEMU(.eraB, count: 200, extra: ["--pace-us", "1000"])
            var config = LiveSession.Configuration()
            config.wakeupIntervalMicroseconds = interval
            config.pollIntervalMs = 100  // its timeout reads what is pending too: longer than the interval here
            let session = try LiveSession(pid: child.pid, configuration: config)
            defer { session.close() }
            let task = collect(try session.events())
            child.go()
            _ = try child.finish()
            session.stop()
            let (events, n) = try await task.value
            #expect(events.count == 200)
            #expect(mismatches(events.map(\.arguments), (0..<UInt64(200)).map { expectedTransferred($0, argCount: 5) }) == 0)
            batches.append(n)
        }
        print("batches of 200 paced events: \(batches[0]) at a 1 ms wakeup interval, \(batches[1]) at 50 ms")
        #expect(batches[0] >= 100, "one wakeup per event: \(batches)")
        #expect(batches[1] <= 12, "one per 50 ms, plus poll-timeout tails: \(batches)")
        let bad = LiveSession.Configuration()
        var config = bad
        config.wakeupIntervalMicroseconds = 0
        let child = try FakeQEMU(.eraB, count: 1)
        #expect(throws: LiveAttachError.self) { _ = try LiveSession(pid: child.pid, configuration: config) }
        child.go()
        _ = try child.finish()
    }

    @Test func unreadRingBufferKeepsExactlyWhatFits() async throws {
        // Nobody reads while the program fires: a 4096-byte ring keeps floor(4096 / (88 + 8-byte header)) = 42
        // records, and every other reserve fails and is counted.
        let n = 5000
        let child = try FakeQEMU(.eraB, count: n)
        var config = LiveSession.Configuration()
        config.ringBufferSize = 4096
        let session = try LiveSession(pid: child.pid, configuration: config)
        defer { session.close() }
        child.go()
        let result = try child.finish()
        let task = collect(try session.events())  // starts reading only now
        let (events, _) = try await task.value
        let drops = try session.kernelDrops()
        print("unread tiny ring: fired \(result.fired), received \(events.count), dropped \(drops)")
        #expect(result.fired == UInt64(n))
        #expect(events.count == 42)
        #expect(drops == UInt64(n - 42))
        #expect(mismatches(events.map(\.arguments), (0..<UInt64(42)).map { expectedTransferred($0, argCount: 5) }) == 0)
    }

    @Test(arguments: [LiveSession.AttachScope.process, .allProcessesFilteredInKernel])
    func otherProcessesAreFiltered(scope: LiveSession.AttachScope) async throws {
        let target = try FakeQEMU(.eraB, count: 300)
        let other = try FakeQEMU(.eraB, count: 500)
        var config = LiveSession.Configuration()
        config.scope = scope
        let session = try LiveSession(pid: target.pid, configuration: config)
        defer { session.close() }
        let task = collect(try session.events())
        other.go()
        target.go()
        let otherResult = try other.finish()
        let targetResult = try target.finish()
        session.stop()
        let (events, _) = try await task.value
        #expect(otherResult.fired == 500)
        #expect(targetResult.fired == 300)
        #expect(events.count == 300)
        #expect(events.allSatisfy { $0.processID == UInt32(target.pid) })
        #expect(mismatches(events.map(\.arguments), (0..<UInt64(300)).map { expectedTransferred($0, argCount: 5) }) == 0)
        #expect(try session.kernelDrops() == 0)
    }

    @Test func missingRequiredProbeAndNoDtraceBackend() throws {
        let child = try FakeQEMU(.noTransferred, count: 1)
        defer { child.go(); _ = try? child.finish() }
        let error = #expect(throws: LiveAttachError.self) { _ = try LiveSession(pid: child.pid) }
        guard case .requiredProbeMissing(_, "migrate_transferred", nil) = error else {
            Issue.record("unexpected error \(String(describing: error))")
            return
        }
        #expect(error?.description.contains("has qemu USDT probes but no qemu:migrate_transferred") == true)

        // A binary with no qemu notes at all: "built without the dtrace backend".
        let sleeper = Process()
        sleeper.executableURL = URL(fileURLWithPath: "/bin/sleep")
        sleeper.arguments = ["5"]
        try sleeper.run()
        defer { sleeper.terminate() }
        let error2 = #expect(throws: LiveAttachError.self) { _ = try LiveSession(pid: sleeper.processIdentifier) }
        guard case .noQEMUProbes = error2 else {
            Issue.record("unexpected error \(String(describing: error2))")
            return
        }
        #expect(error2?.description.contains("without the dtrace trace backend") == true)
    }

    @Test func streamFinishesWhenProcessExits() async throws {
        let child = try FakeQEMU(.eraB, count: 50, extra: ["--pace-us", "1000"])
        let session = try LiveSession(pid: child.pid)
        defer { session.close() }
        let task = collect(try session.events())
        child.go()
        let result = try child.finish()
        // No stop(): the poll thread notices the exit, drains, and finishes the stream.
        let (events, _) = try await task.value
        #expect(result.fired == 50)
        #expect(events.count == 50)
        #expect(session.receivedEvents == 50)
        #expect(events.last?.arguments == expectedTransferred(49, argCount: 5))
        // Paced at 1 ms: the timestamps span at least 49 ms.
        let span = events.last!.timestampNanoseconds! - events.first!.timestampNanoseconds!
        #expect(span >= 49_000_000)
    }

    @Test(
        .enabled(
            if: FileManager.default.isExecutableFile(atPath: "/usr/bin/qemu-system-x86_64"),
            "needs Debian's qemu-system-x86_64 (log trace backend) at /usr/bin"))
    func realQEMUWithoutDtraceBackend() throws {
        let qemu = Process()
        qemu.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-system-x86_64")
        qemu.arguments = ["-M", "none", "-S", "-display", "none", "-monitor", "none", "-serial", "none", "-nodefaults"]
        qemu.standardOutput = FileHandle.nullDevice
        qemu.standardError = FileHandle.nullDevice
        try qemu.run()
        // QEMU blocks SIGTERM in this state (-S, no monitor); SIGKILL it.
        defer { kill(qemu.processIdentifier, SIGKILL); qemu.waitUntilExit() }
        let error = #expect(throws: LiveAttachError.self) { _ = try LiveSession(pid: qemu.processIdentifier) }
        guard case .noQEMUProbes(let path) = error else {
            Issue.record("unexpected error \(String(describing: error))")
            return
        }
        #expect(path == "/usr/bin/qemu-system-x86_64")
    }

    @Test func closeIsIdempotentAndStopsPolling() async throws {
        let child = try FakeQEMU(.eraB, count: 10)
        let session = try LiveSession(pid: child.pid)
        let task = collect(try session.events())
        #expect(throws: LibbpfError.self) { _ = try session.events() }  // one stream per session
        // Two concurrent closers while the poll thread runs: one joins, the other waits; one free.
        let c1 = Task.detached { session.close() }
        let c2 = Task.detached { session.close() }
        await c1.value
        await c2.value
        session.close()
        let (events, _) = try await task.value
        #expect(events.isEmpty)
        #expect(throws: LibbpfError(operation: "mt_read_drops", errno: EBADF)) { _ = try session.kernelDrops() }
        child.go()
        #expect(try child.finish().fired == 10)
    }
}

/// Number of positions where two argument lists differ (plus the length difference); keeps failure output short.
func mismatches(_ a: [ProbeArguments], _ b: [ProbeArguments]) -> Int {
    zip(a, b).filter { $0 != $1 }.count + abs(a.count - b.count)
}

@Suite(.serialized)
struct ConfigurationTests {
    @Test func ringBufferSizeIsValidated() throws {
        let child = try FakeQEMU(.eraB, count: 1)
        defer { child.go(); _ = try? child.finish() }
        var config = LiveSession.Configuration()
        config.ringBufferSize = 3000
        let e1 = #expect(throws: LiveAttachError.self) { _ = try LiveSession(pid: child.pid, configuration: config) }
        guard case .invalidConfiguration = e1 else {
            Issue.record("unexpected \(String(describing: e1))")
            return
        }
        // A power of two below the page size: libbpf would reject it at load; the shim refuses it before.
        config.ringBufferSize = 2048
        let e2 = #expect(throws: LiveAttachError.self) { _ = try LiveSession(pid: child.pid, configuration: config) }
        guard case .libbpf(let le) = e2 else {
            Issue.record("unexpected \(String(describing: e2))")
            return
        }
        #expect(le == LibbpfError(operation: "bpf_map__set_max_entries(events)", errno: EINVAL))
        #expect(le.description == "bpf_map__set_max_entries(events) failed: Invalid argument (errno 22)")
        config.ringBufferSize = 4096
        config.probes = [.migrateSetState]
        let e3 = #expect(throws: LiveAttachError.self) { _ = try LiveSession(pid: child.pid, configuration: config) }
        guard case .invalidConfiguration("migrate_transferred must be among the probes") = e3 else {
            Issue.record("unexpected \(String(describing: e3))")
            return
        }
    }
}
