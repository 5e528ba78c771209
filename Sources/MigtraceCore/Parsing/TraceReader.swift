// SPDX-License-Identifier: Apache-2.0

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The kinds of trace file migtrace reads.
public enum TraceFileFormat: String, Sendable {
    /// QEMU's log trace backend (text), possibly mixed with other lines.
    case qemuLog = "qemu-log"
    /// migtrace's own recording (JSON Lines).
    case recording
}

/// Streams a trace from a file descriptor into an analyzer: fixed-size buffer, byte-level line
/// splitting, no per-line allocation for lines that are not migration events.
public struct TraceReader {
    /// Lines longer than this are skipped with a diagnostic (a QEMU trace line is ~120 bytes).
    public static let maxLineLength = 64 * 1024
    private static let chunkSize = 1 << 20

    /// What reading one input found.
    public struct Statistics: Sendable, Equatable {
        public var format: TraceFileFormat = .qemuLog
        public var lines: UInt64 = 0
        public var events: UInt64 = 0
        public var rejected: UInt64 = 0
        public var bytes: UInt64 = 0
        /// The recording's header, for recordings.
        public var header: RecordingFormat.Header?
        /// The recording's closing reason, if it has one (a killed recorder leaves none).
        public var endReason: String?
        /// Loss counts the recording reported.
        public var kernelDrops: UInt64 = 0
        public var consumerDrops: UInt64 = 0
    }

    /// An error reading the input itself (not its content).
    public struct ReadError: Error, CustomStringConvertible {
        public var errno: Int32
        public var description: String { "read failed: \(String(cString: strerror(errno)))" }
    }

    /// Read `fd` to its end, feeding `analyzer`. `input` numbers the events' origins.
    public static func read(fd: Int32, input: Int, into analyzer: MigrationAnalyzer) throws(ReadError) -> Statistics {
        var stats = Statistics()
        let parser = QEMULogParser(input: input)
        let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: chunkSize + maxLineLength)
        defer { buffer.deallocate() }
        var filled = 0  // bytes in buffer
        var lineNumber: UInt64 = 0
        var skipping = false  // inside an over-long line
        var skippedLength = 0
        var detected = false
        var eof = false

        /// The next line is unusable: count it and report why.
        func rejectLine(_ reason: String) {
            lineNumber += 1
            stats.lines += 1
            stats.rejected += 1
            analyzer.reject(Diagnostic(input: input, line: lineNumber, reason: reason))
        }

        func handle(_ line: UnsafeBufferPointer<UInt8>) {
            lineNumber += 1
            stats.lines += 1
            switch stats.format {
            case .qemuLog:
                switch parser.parse(line, line: lineNumber) {
                case .event(let e):
                    stats.events += 1
                    analyzer.consume(e)
                case .ignored:
                    break
                case .malformed(let reason):
                    stats.rejected += 1
                    analyzer.reject(Diagnostic(input: input, line: lineNumber, reason: reason))
                }
            case .recording:
                guard line.count > 0 else { return }
                switch RecordingFormat.parse(line, input: input, line: lineNumber) {
                case .success(.event(let e)):
                    stats.events += 1
                    analyzer.consume(e)
                case .success(.header(let h)):
                    stats.header = h
                case .success(.lost(let k, let c)):
                    stats.kernelDrops = k
                    stats.consumerDrops = c
                case .success(.end(let reason, let k, let c)):
                    stats.endReason = reason
                    stats.kernelDrops = k
                    stats.consumerDrops = c
                case .success(.unknown):
                    break
                case .failure(let f):
                    stats.rejected += 1
                    analyzer.reject(Diagnostic(input: input, line: lineNumber, reason: f.reason))
                }
            }
        }

        while !eof {
            // Fill the buffer.
            let n = Glibc.read(fd, buffer + filled, chunkSize + maxLineLength - filled)
            if n < 0 {
                if errno == EINTR { continue }
                throw ReadError(errno: errno)
            }
            if n == 0 { eof = true }
            filled += n
            stats.bytes += UInt64(n)
            if !detected && (filled >= RecordingFormat.magic.count || eof) {
                detected = true
                let m = RecordingFormat.magic
                if filled >= m.count && (0..<m.count).allSatisfy({ buffer[$0] == m[$0] }) { stats.format = .recording }
                // QEMU's simple backend writes a binary file (reference §4c): say so instead of finding no event.
                let simpletrace: [UInt8] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xb4, 0x29, 0xa4, 0x0a, 0xcb, 0x77, 0xb1, 0xf2]
                if filled >= simpletrace.count && (0..<simpletrace.count).allSatisfy({ buffer[$0] == simpletrace[$0] }) {
                    stats.rejected += 1
                    analyzer.reject(
                        Diagnostic(
                            input: input, line: 0,
                            reason:
                                "a QEMU simpletrace binary file; migtrace reads the log backend: decode it with QEMU's scripts/simpletrace.py or trace with -trace migrate_transferred -D FILE"
                        ))
                    return stats
                }
            }
            if !detected { continue }
            // Split complete lines.
            var start = 0
            while start < filled {
                let rest = filled - start
                guard let nl = memchr(buffer + start, 10, rest) else { break }
                let end = buffer.distance(to: nl.assumingMemoryBound(to: UInt8.self))
                if skipping || end - start > maxLineLength {
                    // Too long, whether it began in an earlier read or lies whole in this one.
                    let length = (skipping ? skippedLength : 0) + end - start
                    skipping = false
                    rejectLine("line of \(length) bytes exceeds \(maxLineLength) bytes; skipped")
                } else {
                    handle(UnsafeBufferPointer(start: buffer + start, count: end - start))
                }
                start = end + 1
            }
            // Keep the partial line, or skip it when it is too long to be a trace line.
            let remaining = filled - start
            if remaining > maxLineLength || (skipping && remaining > 0) {
                if !skipping { skippedLength = 0 }
                skipping = true
                skippedLength += remaining
                filled = 0
            } else {
                if start > 0 && remaining > 0 { memmove(buffer, buffer + start, remaining) }
                filled = remaining
            }
        }
        if skipping {
            rejectLine("line of \(skippedLength) bytes exceeds \(maxLineLength) bytes; skipped")
        } else if filled > 0 {
            // A last line without newline: a cut recording's partial record is reported, a log line parsed.
            let partial = UnsafeBufferPointer(start: buffer, count: filled)
            if stats.format == .recording, case .failure = RecordingFormat.parse(partial, input: input, line: lineNumber + 1) {
                rejectLine("incomplete last record (the recorder was stopped mid-write); everything before it is analysed")
            } else {
                handle(partial)
            }
        }
        return stats
    }
}
