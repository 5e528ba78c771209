// SPDX-License-Identifier: Apache-2.0

import Foundation
import MigtraceBPF
import MigtraceCore
import MigtraceIO
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `LiveSession(everyProcessOf:)`, the session of `attach --all`: probes attached by binary (pid -1), no tgid filter,
/// one ring for every process. Each test runs its own copy of fake_qemu, so that other tests' processes of the shared
/// build are not among "every process".
@Suite(.serialized, .requiresRoot)
struct EveryProcessSessionTests {
    /// A private copy of the era-B fake_qemu (a file of its own: uprobes belong to a file).
    static func privateCopy(_ tag: String) throws -> String {
        let dir = "/tmp/migtrace-every-\(getpid())-\(tag)"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = "\(dir)/fake_qemu"
        try FileManager.default.copyItem(atPath: try TestPrograms.path(.eraB), toPath: path)
        return path
    }

    /// Releases both processes at once and returns their results and every event the session received meanwhile.
    static func fire(_ a: FakeQEMU, _ b: FakeQEMU, tracedBy session: LiveSession) async throws
        -> (FakeQEMU.Result, FakeQEMU.Result, [TraceEvent])
    {
        let task = collect(try session.events())
        a.go()
        b.go()
        let ra = try a.finish()
        let rb = try b.finish()
        session.stop()
        return (ra, rb, try await task.value.0)
    }

    @Test func processesStartedBeforeAndAfterAreCapturedWithTheirPid() async throws {
        let exe = try Self.privateCopy("later")
        let early = try FakeQEMU(executable: exe, count: 300)
        let session = try LiveSession(everyProcessOf: [exe])
        defer { session.close() }
        // Started after the attach: the kernel sets its semaphore and fires its uprobes as it maps the file.
        let late = try FakeQEMU(executable: exe, count: 200)
        let (e, l, events) = try await Self.fire(early, late, tracedBy: session)
        #expect(e.fired == 300 && l.fired == 200)
        #expect(e.semaphore > 0 && l.semaphore > 0, "both see the probe enabled")
        let byPid = Dictionary(grouping: events, by: { $0.processID })
        #expect(byPid[UInt32(early.pid)]?.count == 300)
        #expect(byPid[UInt32(late.pid)]?.count == 200)
        #expect(byPid.count == 2)
        #expect(mismatches(byPid[UInt32(late.pid)]!.map(\.arguments), (0..<UInt64(200)).map { expectedTransferred($0, argCount: 5) }) == 0)
        #expect(try session.kernelDrops() == 0)
        #expect(session.receivedEvents == 500)
    }

    @Test func lossesAreCountedPerProcessAndInTotal() async throws {
        // Nobody reads while both fire: a 4096-byte ring keeps 42 records (see unreadRingBufferKeepsExactlyWhatFits),
        // all of the first process; every other reserve fails and is counted for its own process.
        let exe = try Self.privateCopy("drops")
        let first = try FakeQEMU(executable: exe, count: 3000)
        let second = try FakeQEMU(executable: exe, count: 2000)
        var config = LiveSession.Configuration()
        config.ringBufferSize = 4096
        config.probes = [.migrateTransferred]
        let session = try LiveSession(everyProcessOf: [exe], configuration: config)
        defer { session.close() }
        first.go()
        _ = try first.finish()
        second.go()
        _ = try second.finish()
        let task = collect(try session.events())
        session.stop()
        let (events, _) = try await task.value
        #expect(events.count == 42)
        #expect(events.allSatisfy { $0.processID == UInt32(first.pid) })
        #expect(try session.kernelDrops(ofProcess: first.pid) == 3000 - 42)
        #expect(try session.kernelDrops(ofProcess: second.pid) == 2000)
        #expect(try session.kernelDrops() == 5000 - 42)
        session.forgetDrops(ofProcess: second.pid)
        #expect(try session.kernelDrops(ofProcess: second.pid) == 0, "forgotten, for a pid reused later")
        #expect(try session.kernelDrops() == 5000 - 42, "the total keeps them")
    }

    @Test func aReplacedBinaryIsAttachedAgainThroughItsProcess() async throws {
        // A package upgrade: the running QEMU keeps the old (now deleted) file, new ones run the new file at the same
        // path. Uprobes are per file, so each needs its own attach: the old one through /proc/PID/exe.
        let exe = try Self.privateCopy("upgrade")
        let session = try LiveSession(everyProcessOf: [exe])
        defer { session.close() }
        let old = try FakeQEMU(executable: exe, count: 100)
        let oldFile = try #require(FileIdentity(path: "/proc/\(old.pid)/exe"))
        try FileManager.default.removeItem(atPath: exe)
        try FileManager.default.copyItem(atPath: try TestPrograms.path(.eraB), toPath: exe)
        let running = try #require(ProcessTable.process(old.pid))
        #expect(running.executable == exe && running.executableDeleted && running.file == oldFile)
        let new = try FakeQEMU(executable: exe, count: 150)
        #expect(ProcessTable.process(new.pid)?.executableDeleted == false)
        let statuses = try session.attach(binary: exe)
        #expect(statuses.first { $0.kind == .migrateTransferred }?.attached == true)
        let (o, n, events) = try await Self.fire(old, new, tracedBy: session)
        #expect(o.fired == 100 && n.fired == 150)
        let byPid = Dictionary(grouping: events, by: { $0.processID })
        #expect(byPid[UInt32(old.pid)]?.count == 100, "the old file's uprobes are still attached")
        #expect(byPid[UInt32(new.pid)]?.count == 150, "the new file, attached by path")
        #expect(session.probes(ofBinary: exe)?.count == session.configuration.probes.count)
    }
}
