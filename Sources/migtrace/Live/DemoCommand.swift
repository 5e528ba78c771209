// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import MigtraceBPF
import MigtraceCore
import MigtraceIO

#if canImport(Glibc)
    import Glibc
#endif

/// `migtrace demo`: attach live to a bundled stand-in QEMU that replays a real recorded migration.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Watch a real recorded migration replayed live through USDT probes (no QEMU of yours needed).",
        discussion: """
            Starts migtrace-demo-target (built with migtrace; it carries QEMU's
            migration USDT probes with semaphores, as QEMU's dtrace backend builds
            them), attaches to it exactly as `migtrace attach` does, and lets it
            replay a migration recorded from a real QEMU \(DemoTrace.qemuVersion) at
            its real pace. Needs root (or the capabilities `attach --help` lists).

            EXAMPLES:
              sudo migtrace demo
              sudo migtrace demo --speed 4 --format json
            """
    )

    @Option(help: "Replay this many times faster than recorded.")
    var speed: Double = 1

    @OptionGroup var output: LiveOutputOptions

    @OptionGroup var analysis: AnalysisOptions

    func validate() throws {
        guard speed > 0, speed <= 1000 else {
            throw ValidationError("--speed must be above 0 and at most 1000 (e.g. --speed 4 replays four times faster).")
        }
    }

    func run() async throws {
        let target = try DemoTarget.start()
        let script = DemoTrace.replayScript(speed: speed)
        let run = LiveRun(
            pid: target.pid, format: output.format, record: output.record, force: output.force, untilComplete: false,
            ringBufferSize: LiveSession.Configuration.defaultRingBufferSize, verbose: false, analysis: analysis,
            onAttached: { target.feed(script) }, liveView: output.liveView, metrics: output.metrics)
        let code: ExitCode
        do {
            code = try await run.run()
        } catch {
            target.kill()
            throw error
        }
        if code != .success { throw code }
    }
}

/// The stand-in QEMU process: spawned with a pipe on its standard input.
struct DemoTarget: Sendable {
    let pid: Int32
    let input: Int32

    /// Start `migtrace-demo-target` from next to this executable and wait for its "ready" line.
    static func start() throws -> DemoTarget {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        guard n > 0 else { throw ValidationError("cannot find migtrace's own executable (/proc/self/exe)") }
        var dir = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if let slash = dir.lastIndex(of: "/") { dir = String(dir[..<slash]) }
        let path = dir + "/migtrace-demo-target"
        guard access(path, X_OK) == 0 else {
            printError("migtrace: \(path) is missing; build everything with `swift build -c release` (or `make demo`)")
            throw MigtraceExit.error
        }
        var toChild: [Int32] = [0, 0]
        var fromChild: [Int32] = [0, 0]
        guard pipe(&toChild) == 0, pipe(&fromChild) == 0 else { throw MigtraceExit.error }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)
        posix_spawn_file_actions_addclose(&actions, toChild[1])
        posix_spawn_file_actions_addclose(&actions, fromChild[0])
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup(path), nil]
        defer { for a in argv { free(a) } }
        let rc = posix_spawn(&pid, path, &actions, nil, argv, environ)
        close(toChild[0])
        close(fromChild[1])
        guard rc == 0 else {
            printError("migtrace: cannot start \(path): \(String(cString: strerror(rc)))")
            throw MigtraceExit.error
        }
        // Wait for "ready <pid>\n": the probes are in place once main() runs.
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while read(fromChild[0], &byte, 1) == 1 && byte != 10 { line.append(byte) }
        close(fromChild[0])
        guard String(decoding: line, as: UTF8.self).hasPrefix("ready") else {
            printError("migtrace: \(path) did not start properly")
            throw MigtraceExit.error
        }
        let target = DemoTarget(pid: pid, input: toChild[1])
        target.reapInBackground()
        return target
    }

    /// Reap the target as soon as it exits, so that /proc/<pid> disappears and the live session ends
    /// as it does for a real QEMU (a zombie child would keep it "alive").
    private func reapInBackground() {
        let pid = self.pid
        WorkerThread.detached {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
    }

    /// Hand the replay script to the target (it fires the events at their pace) and close its input.
    func feed(_ script: [UInt8]) {
        let fd = input
        // A thread writes, since the script may exceed the pipe buffer while the target sleeps between events.
        let started = WorkerThread.detached {
            script.withUnsafeBytes { raw in
                var off = 0
                while off < raw.count {
                    let n = write(fd, raw.baseAddress! + off, raw.count - off)
                    if n <= 0 { break }
                    off += n
                }
            }
            close(fd)
        }
        if !started { close(fd) }
    }

    func kill() { _ = Glibc.kill(pid, SIGKILL) }
}

extension DemoTrace {
    /// The embedded trace turned into the target's replay script, paced by the recorded timestamps
    /// (or by time_spent where the trace has none), divided by `speed`.
    static func replayScript(speed: Double) -> [UInt8] {
        let parser = QEMULogParser(input: 0)
        var out: [UInt8] = []
        var lastTs: UInt64?
        var n: UInt64 = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            n += 1
            var bytes = Array(line.utf8)
            let result = bytes.withUnsafeMutableBufferPointer { parser.parse(UnsafeBufferPointer($0), line: n) }
            guard case .event(let e) = result else { continue }
            var waitUs: UInt64 = 0
            if let ts = e.timestampNanoseconds {
                if let last = lastTs, ts > last { waitUs = (ts - last) / 1000 }
                lastTs = ts
            } else if e.kind == .migrateTransferred {
                waitUs = e.arguments.a1 * 1000
            } else if e.kind == .migrateSetState, e.state == .completed {
                waitUs = DemoTrace.downtimeMs * 1000  // the recorded run's downtime (the untimed log lacks it)
            }
            if waitUs > 0 { out.append(contentsOf: "W \(UInt64(Double(waitUs) / speed))\n".utf8) }
            let a = e.arguments
            switch e.kind {
            case .migrateTransferred:
                // The target's probe has era B's five arguments; an era-A trace gets switchover_bw 0.
                let five = a.count == 5 ? a : ProbeArguments(count: 5, a.a0, a.a1, a.a2, 0, a.a3)
                out.append(contentsOf: "T \(five.a0) \(five.a1) \(five.a2) \(five.a3) \(five.a4)\n".utf8)
            case .migratePendingEstimate: out.append(contentsOf: "E \(a.a0) \(a.a1) \(a.a2)\n".utf8)
            case .migratePendingExact: out.append(contentsOf: "X \(a.a0) \(a.a1) \(a.a2)\n".utf8)
            case .migrateSetState: out.append(contentsOf: "S \(e.state?.name ?? "")\n".utf8)
            case .migrationThreadLowPending: out.append(contentsOf: "L \(a.a0)\n".utf8)
            default: break
            }
        }
        return out
    }
}
