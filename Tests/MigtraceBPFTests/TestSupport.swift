// SPDX-License-Identifier: Apache-2.0

import Foundation
import MigtraceBPF
import MigtraceCore
import MigtraceTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The test programs in Tests/testprogs, built at test time like QEMU builds its dtrace backend.
enum TestPrograms {
    /// Which variant of fake_qemu.
    enum Variant: String, CaseIterable {
        /// migrate_transferred with 5 arguments (QEMU >= 8.2).
        case eraB = "fake_qemu_era_b"
        /// migrate_transferred with 4 arguments and pre-8.0 migrate_pending.
        case eraA = "fake_qemu_era_a"
        /// qemu probes but no migrate_transferred site.
        case noTransferred = "fake_qemu_no_transferred"
        /// eraB built with -O0: operands in memory (`8@-8(%rbp)`) and constants (`8@$1000`), the argument
        /// kinds an optimised build leaves in registers.
        case eraBUnoptimized = "fake_qemu_era_b_O0"

        var dFile: String { self == .eraA ? "fake_qemu_era_a.d" : "fake_qemu.d" }
        var defines: [String] {
            switch self {
            case .eraB, .eraBUnoptimized: []
            case .eraA: ["-DMT_ERA_A"]
            case .noTransferred: ["-DMT_NO_TRANSFERRED"]
            }
        }
        var optimization: String { self == .eraBUnoptimized ? "-O0" : "-O2" }
    }

    static let sourceDir = TestProgramBuilder.sourceDirectory

    /// Built binaries by variant; the build runs once per test process.
    static let built: Result<[Variant: String], BuildError> = build()

    struct BuildError: Error, CustomStringConvertible {
        var description: String
    }

    static func path(_ v: Variant) throws -> String {
        try built.get()[v]!
    }

    private static func build() -> Result<[Variant: String], BuildError> {
        let out = FileManager.default.temporaryDirectory
            .appendingPathComponent("migtrace-testprogs-\(getpid())")
        do {
            var result: [Variant: String] = [:]
            for v in Variant.allCases {
                let dir = out.appendingPathComponent(v.rawValue)
                try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
                result[v] = try TestProgramBuilder.buildFakeQEMU(
                    probes: v.dFile, into: dir.path, optimization: v.optimization, defines: v.defines)
            }
            return .success(result)
        } catch {
            return .failure(BuildError(description: "building test programs: \(error)"))
        }
    }
}

/// A running fake_qemu started with --wait: it prints "ready <pid>" and fires on SIGUSR1.
final class FakeQEMU {
    let process = Process()
    private let stdout = Pipe()
    private var buffer = Data()
    let pid: Int32

    convenience init(_ variant: TestPrograms.Variant, count: Int, extra: [String] = []) throws {
        try self.init(executable: try TestPrograms.path(variant), count: count, extra: extra)
    }

    /// A fake_qemu of another file (a private copy: a session of every process of a binary sees all of its runs).
    init(executable: String, count: Int, extra: [String] = []) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = [String(count), "--wait"] + extra
        process.standardOutput = stdout
        try process.run()
        pid = process.processIdentifier
        let line = try readLine()
        guard line == "ready \(pid)" else { throw TestPrograms.BuildError(description: "unexpected: \(line)") }
    }

    private func readLine() throws -> String {
        while true {
            if let nl = buffer.firstIndex(of: 0x0a) {
                let line = String(decoding: buffer[buffer.startIndex..<nl], as: UTF8.self)
                buffer = Data(buffer[(nl + 1)...])
                return line
            }
            let chunk = stdout.fileHandleForReading.availableData
            if chunk.isEmpty { throw TestPrograms.BuildError(description: "fake_qemu closed stdout") }
            buffer.append(chunk)
        }
    }

    /// Result line: fired total, transferred count, semaphore value seen after the go signal.
    struct Result: Equatable {
        var fired: UInt64
        var transferred: UInt64
        var semaphore: UInt64
        /// The firing thread's id, with --thread.
        var threadID: UInt32?
    }

    /// Sends SIGUSR1.
    func go() { kill(pid, SIGUSR1) }

    /// Waits for exit and parses "fired N transferred M semaphore S".
    func finish() throws -> Result {
        var line = try readLine()
        var tid: UInt32?
        if line.hasPrefix("tid ") {
            tid = UInt32(line.dropFirst(4))
            line = try readLine()
        }
        process.waitUntilExit()
        let f = line.split(separator: " ")
        guard f.count == 6, f[0] == "fired", let fired = UInt64(f[1]), let t = UInt64(f[3]), let s = UInt64(f[5]),
            process.terminationStatus == 0
        else { throw TestPrograms.BuildError(description: "unexpected result line: \(line)") }
        return Result(fired: fired, transferred: t, semaphore: s, threadID: tid)
    }

    deinit {
        if process.isRunning { kill(pid, SIGKILL) }
    }
}

/// Collects every event of a session's stream until it finishes.
func collect(_ stream: LiveEventStream) -> Task<([TraceEvent], Int), any Error> {
    Task {
        var all: [TraceEvent] = []
        var batches = 0
        for try await batch in stream {
            batches += 1
            all.append(contentsOf: batch)
        }
        return (all, batches)
    }
}

/// The expected migrate_transferred arguments of event `i` (see fake_qemu.c).
func expectedTransferred(_ i: UInt64, argCount: Int) -> ProbeArguments {
    if argCount == 5 {
        return ProbeArguments(count: 5, 0x1_0000_0000 + i, 100 + i, 3 * i, 5 * i + 7, UInt64.max - i)
    }
    return ProbeArguments(count: 4, 0x1_0000_0000 + i, 100 + i, 3 * i, 5 * i + 7)
}
