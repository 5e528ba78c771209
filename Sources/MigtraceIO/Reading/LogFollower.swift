// SPDX-License-Identifier: Apache-2.0

import MigtraceCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Follows a growing QEMU trace log as `tail -F` does and feeds every complete line to an analyzer as it arrives:
/// what the file holds already first, then what is appended; a file renamed away and recreated (log rotation) is
/// read to its end and then the new file from its start; a file truncated in place (`copytruncate`) is read again
/// from its new start. A partial last line waits for its newline.
///
/// One thread runs ``run(into:notice:afterRead:)``; ``stop()`` may be called from any thread.
public final class LogFollower: Sendable {
    /// What happened to the followed file, for the caller to say on stderr.
    public enum Notice: Sendable, Equatable {
        /// The path cannot be opened (errno); it is tried again at every poll.
        case waiting(errno: Int32)
        /// The path was opened (the first time, or again after it was missing).
        case opened
        /// The path now names another file (rotated: renamed and recreated); the old one was read to its end.
        case rotated
        /// The path was removed or renamed and nothing replaced it yet; the old file is still read.
        case vanished
        /// The file shrank below what was read (truncated); it is read again from its start.
        case truncated(from: UInt64, to: UInt64)
        /// A line could not be used (its reason as the analysis reports it).
        case rejected(Diagnostic)
    }

    /// Why following cannot go on.
    public enum FollowError: Error, Sendable, Equatable, CustomStringConvertible {
        /// read(2) or fstat(2) failed with this errno.
        case readFailed(Int32)
        /// The file is not a text trace log (a recording, a binary, compressed data).
        case notALog(InputKind)
        /// The path is a directory.
        case directory

        public var description: String {
            switch self {
            case .readFailed(let e): "read failed: \(String(cString: strerror(e)))"
            case .notALog(.recording):
                "a migtrace recording is complete when written; analyse it with `migtrace analyze FILE` (--follow reads a QEMU trace log)"
            case .notALog(.simpletrace):
                "a simple-backend binary trace cannot be followed; analyse it once QEMU closed it with `migtrace analyze FILE`, or follow the log backend's -D file"
            case .notALog(let kind): kind.refusal ?? "not a trace log"
            case .directory: "is a directory; give the log file in it"
            }
        }
    }

    /// The followed path.
    public let path: String
    private let input: Int
    private let pollNanoseconds: UInt64
    private let stopped = Atomic<Bool>(false)

    /// A follower of `path`, whose events are input number `input`; the file is checked every `pollMilliseconds`
    /// while it does not grow.
    public init(path: String, input: Int = 0, pollMilliseconds: UInt64 = 50) {
        self.path = path
        self.input = input
        self.pollNanoseconds = pollMilliseconds * 1_000_000
    }

    /// End ``run(into:notice:afterRead:)`` at its next poll (any thread; more than once is harmless).
    public func stop() {
        stopped.store(true, ordering: .releasing)
    }

    private var isStopped: Bool { stopped.load(ordering: .acquiring) }

    /// Follow the file until ``stop()``, feeding `analyzer`; `notice` hears of every change of the file and
    /// every rejected line, `afterRead` runs after each read that delivered lines (flush the output there), `idle`
    /// at each poll that found nothing new (a view throttled while lines poured in draws its last state there).
    /// Returns the statistics of everything read, all files together.
    public func run(
        into analyzer: MigrationAnalyzer, notice: (Notice) -> Void, afterRead: () -> Void = {}, idle: () -> Void = {}
    ) throws(FollowError) -> InputStatistics {
        var state = ReadState(input: input)
        defer { state.close() }
        var missingSaid = false
        while !isStopped {
            if state.fd < 0 {
                let fd = open(path, O_RDONLY | O_CLOEXEC)
                if fd < 0 {
                    if !missingSaid { notice(.waiting(errno: errno)) }
                    missingSaid = true
                    sleep()
                    continue
                }
                var st = stat()
                fstat(fd, &st)
                if (st.st_mode & S_IFMT) == S_IFDIR {
                    Glibc.close(fd)
                    throw .directory
                }
                if missingSaid || state.generation > 0 { notice(state.generation > 0 ? .rotated : .opened) }
                missingSaid = false
                state.begin(fd: fd, identity: Identity(st))
            }
            let got = try state.readAvailable(into: analyzer, notice: notice)
            if got > 0 {
                afterRead()
                continue
            }
            // Nothing new: has the file been truncated, rotated or removed?
            var now = stat()
            if fstat(state.fd, &now) != 0 { throw .readFailed(errno) }
            if UInt64(max(0, now.st_size)) < state.offset {
                notice(.truncated(from: state.offset, to: UInt64(max(0, now.st_size))))
                state.restart(afterTruncation: true, into: analyzer, notice: notice)
                lseek(state.fd, 0, SEEK_SET)
                continue
            }
            var named = stat()
            if stat(path, &named) != 0 {
                if !state.vanishedSaid { notice(.vanished) }
                state.vanishedSaid = true
            } else if Identity(named) != state.identity {
                // Rotated: what the writer added to the old file before the new one appeared is read first.
                if try state.readAvailable(into: analyzer, notice: notice) > 0 { afterRead() }
                state.restart(afterTruncation: false, into: analyzer, notice: notice)
                state.close()
                continue
            }
            idle()
            sleep()
        }
        // The end: what is there now is read, a last line without newline too (as `analyze` of the file does).
        if state.fd >= 0 { _ = try state.readAvailable(into: analyzer, notice: notice) }
        state.finish(into: analyzer, notice: notice)
        afterRead()
        return state.stats
    }

    private func sleep() {
        var ts = timespec(tv_sec: Int(pollNanoseconds / 1_000_000_000), tv_nsec: Int(pollNanoseconds % 1_000_000_000))
        var rest = timespec()
        while nanosleep(&ts, &rest) != 0 && errno == EINTR && !isStopped { ts = rest }
    }

    /// A file's identity: a rotated path names another (device, inode).
    struct Identity: Equatable {
        var device: UInt64
        var inode: UInt64
        init(_ st: stat) {
            device = UInt64(st.st_dev)
            inode = UInt64(st.st_ino)
        }
    }
}

/// The open file and its partial line: one generation of the followed path at a time.
private struct ReadState {
    static let chunk = 1 << 16
    let parser: QEMULogParser
    var fd: Int32 = -1
    var identity: LogFollower.Identity?
    /// Bytes read from the current file.
    var offset: UInt64 = 0
    /// How many files (or truncated restarts) were read before the current one.
    var generation = 0
    var vanishedSaid = false
    var lineNumber: UInt64 = 0
    var detected = false
    /// The unterminated end of what was read (a line waiting for its newline).
    var partial: [UInt8] = []
    var skipping = false  // inside an over-long line
    var skipped = 0
    var stats = InputStatistics()
    var buffer = [UInt8](repeating: 0, count: ReadState.chunk)

    init(input: Int) { parser = QEMULogParser(input: input) }

    mutating func begin(fd: Int32, identity: LogFollower.Identity) {
        self.fd = fd
        self.identity = identity
        offset = 0
        vanishedSaid = false
    }

    mutating func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    /// Read what the file has now; the number of bytes read.
    mutating func readAvailable(into analyzer: MigrationAnalyzer, notice: (LogFollower.Notice) -> Void) throws(LogFollower.FollowError)
        -> Int
    {
        var total = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .readFailed(errno)
            }
            if n == 0 { return total }
            total += n
            offset += UInt64(n)
            stats.bytes += UInt64(n)
            try consume(n, into: analyzer, notice: notice)
        }
    }

    /// Split the `count` bytes just read into lines, keeping the unterminated rest.
    private mutating func consume(_ count: Int, into analyzer: MigrationAnalyzer, notice: (LogFollower.Notice) -> Void)
        throws(LogFollower.FollowError)
    {
        guard !detected else {
            splitLines(buffer, count, into: analyzer, notice: notice)
            return
        }
        // The kind is told from the first line (or the first bytes), as `analyze` tells it.
        partial.append(contentsOf: buffer[0..<count])
        guard partial.count >= InputKind.sampleSize || partial.contains(10) else { return }
        let kind = partial.withUnsafeBufferPointer { InputKind.classify(UnsafeBufferPointer(rebasing: $0.prefix(InputKind.sampleSize))) }
        guard kind == .text else { throw .notALog(kind) }
        detected = true
        let first = partial
        partial = []
        splitLines(first, first.count, into: analyzer, notice: notice)
    }

    private mutating func splitLines(_ bytes: [UInt8], _ count: Int, into analyzer: MigrationAnalyzer, notice: (LogFollower.Notice) -> Void)
    {
        var start = 0
        while start < count, let nl = bytes[start..<count].firstIndex(of: 10) {
            if skipping {
                skipping = false
                reject("line of \(skipped + nl - start) bytes exceeds \(TraceReader.maxLineLength) bytes; skipped", analyzer, notice)
            } else if partial.isEmpty {
                line(bytes[start..<nl], into: analyzer, notice: notice)
            } else {
                partial.append(contentsOf: bytes[start..<nl])
                let whole = partial
                partial.removeAll(keepingCapacity: true)
                line(whole[...], into: analyzer, notice: notice)
            }
            start = nl + 1
        }
        guard start < count else { return }
        if skipping {
            skipped += count - start
        } else if partial.count + count - start > TraceReader.maxLineLength {
            skipping = true
            skipped = partial.count + count - start
            partial.removeAll()
        } else {
            partial.append(contentsOf: bytes[start..<count])
        }
    }

    private mutating func line(_ raw: ArraySlice<UInt8>, into analyzer: MigrationAnalyzer, notice: (LogFollower.Notice) -> Void) {
        lineNumber += 1
        stats.lines += 1
        if raw.count > TraceReader.maxLineLength {
            lineNumber -= 1
            stats.lines -= 1
            reject("line of \(raw.count) bytes exceeds \(TraceReader.maxLineLength) bytes; skipped", analyzer, notice)
            return
        }
        // A writer that kept its offset after a `copytruncate` leaves a hole of NUL bytes before its next line.
        let text = raw.drop { $0 == 0 }
        let result = text.withUnsafeBufferPointer { parser.parse($0, line: lineNumber) }
        switch result {
        case .event(let e):
            stats.events += 1
            analyzer.consume(e)
        case .device(let d):
            stats.events += 1
            analyzer.consume(d)
        case .ignored: break
        case .malformed(let reason):
            stats.rejected += 1
            let d = Diagnostic(input: parser.input, line: lineNumber, reason: reason)
            analyzer.reject(d)
            notice(.rejected(d))
        }
    }

    private mutating func reject(_ reason: String, _ analyzer: MigrationAnalyzer, _ notice: (LogFollower.Notice) -> Void) {
        lineNumber += 1
        stats.lines += 1
        stats.rejected += 1
        let d = Diagnostic(input: parser.input, line: lineNumber, reason: reason)
        analyzer.reject(d)
        notice(.rejected(d))
    }

    /// The file ends here (rotated away or truncated): a partial line's rest went elsewhere, so it is reported,
    /// not parsed (a number cut short would read as another value). Line numbers start again with the new file.
    mutating func restart(afterTruncation: Bool, into analyzer: MigrationAnalyzer, notice: (LogFollower.Notice) -> Void) {
        if skipping || !partial.isEmpty {
            let what = afterTruncation ? "truncated" : "rotated"
            reject("incomplete line of \(skipping ? skipped : partial.count) bytes when the file was \(what); skipped", analyzer, notice)
        }
        partial.removeAll()
        skipping = false
        skipped = 0
        lineNumber = 0
        offset = 0
        generation += 1
    }

    /// Following ends: a last line without newline is parsed, as `analyze` of the file would.
    mutating func finish(into analyzer: MigrationAnalyzer, notice: (LogFollower.Notice) -> Void) {
        if skipping {
            reject("line of \(skipped) bytes exceeds \(TraceReader.maxLineLength) bytes; skipped", analyzer, notice)
        } else if !partial.isEmpty {
            let rest = partial
            partial = []
            line(rest[...], into: analyzer, notice: notice)
        }
    }
}
