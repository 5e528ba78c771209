// SPDX-License-Identifier: Apache-2.0
import Foundation
import MigtraceTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Support for the live fault tests: fake_qemu built like QEMU's dtrace backend, and a migtrace process
/// whose output is read while it runs and which can be signalled.
enum FaultFixture {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// fake_qemu (era B, 5-argument migrate_transferred), built once per test process into a 0755 directory
    /// (the least-privilege test runs migtrace as another user, which must read the binary).
    static let fakeQEMU: Result<String, Failure> = {
        let dir = "/tmp/migtrace-faults-\(getpid())"
        do {
            try FileManager.default.createDirectory(
                atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
            return .success(try TestProgramBuilder.buildFakeQEMU(probes: "fake_qemu.d", into: dir))
        } catch {
            return .failure(Failure(description: "\(error)"))
        }
    }()

    /// Runs a command (see ``TestProgramBuilder/run(_:_:)``).
    @discardableResult
    static func shell(_ exe: String, _ args: [String]) throws -> String {
        try TestProgramBuilder.run(exe, args)
    }
}

/// Reads a pipe on its own thread, line by line; optionally closes it after `closeAfter` lines (like `head -N`).
final class LineReader: @unchecked Sendable {
    // SAFETY: `lines`, `eof` and `closedAt` are guarded by `cond`.
    private let cond = NSCondition()
    private var lines: [String] = []
    private var eof = false
    private(set) var closedAt: UInt64?

    init(fd: Int32, closeAfter: Int? = nil) {
        let thread = Thread { [self] in
            var pending: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 65536)
            var count = 0
            reading: while true {
                let n = read(fd, &buf, buf.count)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                for b in buf[0..<n] {
                    if b == 10 {
                        let line = String(decoding: pending, as: UTF8.self)
                        pending.removeAll()
                        cond.lock(); lines.append(line); cond.broadcast(); cond.unlock()
                        count += 1
                        if let c = closeAfter, count >= c { break reading }
                    } else {
                        pending.append(b)
                    }
                }
            }
            close(fd)
            cond.lock()
            if closeAfter != nil { closedAt = Self.now() }
            eof = true
            cond.broadcast()
            cond.unlock()
        }
        thread.start()
    }

    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Every line so far.
    var all: [String] { cond.lock(); defer { cond.unlock() }; return lines }
    /// Every line once the pipe reached end of file (or was closed by `closeAfter`).
    func waitEOF(timeout: Double) -> [String]? {
        cond.lock(); defer { cond.unlock() }
        let deadline = Date(timeIntervalSinceNow: timeout)
        while !eof { if !cond.wait(until: deadline) { return nil } }
        return lines
    }

    /// Waits until `count` lines satisfy `predicate`; false on timeout or end of file.
    func wait(count: Int = 1, timeout: Double, _ predicate: (String) -> Bool) -> Bool {
        cond.lock(); defer { cond.unlock() }
        let deadline = Date(timeIntervalSinceNow: timeout)
        while lines.filter(predicate).count < count {
            if eof || !cond.wait(until: deadline) { return lines.filter(predicate).count >= count }
        }
        return true
    }
}

/// A spawned process (posix_spawn) with stdout/stderr pipes read by `LineReader`s.
final class Spawned {
    let pid: pid_t
    let stdout: LineReader
    let stderr: LineReader
    private(set) var status: Int32?

    /// `closeStdoutAfter` closes the read end of stdout after that many lines (`| head -N`).
    init(_ argv: [String], closeStdoutAfter: Int? = nil) throws {
        var outPipe: [Int32] = [0, 0]
        var errPipe: [Int32] = [0, 0]
        guard pipe(&outPipe) == 0, pipe(&errPipe) == 0 else { throw FaultFixture.Failure(description: "pipe") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        for fd in outPipe + errPipe { posix_spawn_file_actions_addclose(&actions, fd) }
        // Default signal dispositions and an empty mask, like a shell gives its children.
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var all = sigset_t()
        sigfillset(&all)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attr, &all)
        posix_spawnattr_setsigmask(&attr, &none)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        var pid: pid_t = 0
        let cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for a in cargs { free(a) } }
        let rc = posix_spawn(&pid, argv[0], &actions, &attr, cargs, environ)
        close(outPipe[1])
        close(errPipe[1])
        guard rc == 0 else {
            close(outPipe[0]); close(errPipe[0])
            throw FaultFixture.Failure(description: "posix_spawn \(argv[0]): \(String(cString: strerror(rc)))")
        }
        self.pid = pid
        stdout = LineReader(fd: outPipe[0], closeAfter: closeStdoutAfter)
        stderr = LineReader(fd: errPipe[0])
    }

    func signal(_ sig: Int32) { _ = kill(pid, sig) }

    /// Waits for exit (polling waitpid) up to `timeout` seconds; the raw wait status, or nil on timeout.
    func wait(timeout: Double) -> Int32? {
        if let status { return status }
        let deadline = LineReader.now() + UInt64(timeout * 1e9)
        while LineReader.now() < deadline {
            var st: Int32 = 0
            let r = waitpid(pid, &st, WNOHANG)
            if r == pid { status = st; return st }
            usleep(10_000)
        }
        return nil
    }

    /// Exit code when it exited normally, or 128 + signal.
    static func code(_ status: Int32) -> Int32 {
        status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    deinit {
        if status == nil {
            kill(pid, SIGKILL)
            var st: Int32 = 0
            waitpid(pid, &st, 0)
        }
    }
}

/// fake_qemu started with --wait: "ready <pid>", fires on SIGUSR1, ends with "fired N transferred M semaphore S".
final class FaultTarget {
    let process: Spawned
    var pid: pid_t { process.pid }

    /// `executable`: another build of fake_qemu than the shared one.
    init(count: Int, _ extra: [String] = [], prefix: [String] = [], executable: String? = nil) throws {
        let exe = try executable ?? FaultFixture.fakeQEMU.get()
        process = try Spawned(prefix + [exe, String(count), "--wait"] + extra)
        guard process.stdout.wait(timeout: 10, { $0.hasPrefix("ready ") }) else {
            throw FaultFixture.Failure(description: "fake_qemu did not start: \(process.stderr.all)")
        }
        // Under a prefix (setpriv), the pid that fires is the one fake_qemu prints (setpriv execs, so equal).
    }

    func go() { process.signal(SIGUSR1) }

    /// Waits for exit; (fired, transferred).
    func finish(timeout: Double = 60) throws -> (fired: UInt64, transferred: UInt64) {
        guard let st = process.wait(timeout: timeout) else { throw FaultFixture.Failure(description: "fake_qemu did not finish") }
        let lines = process.stdout.waitEOF(timeout: 5) ?? []
        guard let last = lines.last(where: { $0.hasPrefix("fired ") }), Spawned.code(st) == 0 else {
            throw FaultFixture.Failure(description: "fake_qemu ended with \(st): \(lines)")
        }
        let f = last.split(separator: " ")
        return (UInt64(f[1]) ?? 0, UInt64(f[3]) ?? 0)
    }

    func kill9() {
        process.signal(SIGKILL)
        _ = process.wait(timeout: 10)  // reaped: /proc/<pid> disappears as for a QEMU whose parent reaps it
    }
}

/// JSON Lines helpers.
enum JSONL {
    static func objects(_ lines: [String]) -> [[String: Any]] {
        lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    static func ofType(_ objects: [[String: Any]], _ type: String) -> [[String: Any]] {
        objects.filter { $0["type"] as? String == type }
    }

    /// A window without the fields that legitimately differ between live output and a replay.
    static func strip(_ w: [String: Any]) -> NSDictionary {
        var w = w
        for k in ["type", "series", "line"] { w.removeValue(forKey: k) }
        return w as NSDictionary
    }

    /// `migtrace analyze --format json FILE`: status, windows of every series, the document, stderr.
    static func analyze(_ path: String) throws -> (status: Int32, windows: [[String: Any]], doc: [String: Any], stderr: String) {
        let r = try CLI.run(["analyze", "--format", "json", path])
        let doc = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]) ?? [:]
        let windows = ((doc["series"] as? [[String: Any]]) ?? []).flatMap { ($0["windows"] as? [[String: Any]]) ?? [] }
        return (r.status, windows, doc, r.stderr)
    }

    /// The lines of a recording and how many are complete migrate_transferred events.
    static func recording(_ path: String) throws -> (lines: [String], windows: Int, endsWithNewline: Bool) {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let text = String(decoding: data, as: UTF8.self)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
        let complete = text.hasSuffix("\n") ? lines : Array(lines.dropLast())
        let windows = complete.filter { l in
            l.contains("\"probe\":\"migrate_transferred\"") && (try? JSONSerialization.jsonObject(with: Data(l.utf8))) != nil
        }.count
        return (lines, windows, text.hasSuffix("\n"))
    }
}
