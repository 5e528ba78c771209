// SPDX-License-Identifier: Apache-2.0

import MigtraceCore

#if canImport(Glibc)
    import Glibc
#endif

/// The producer stage of one input: reads, detects the format, splits lines and parses them into batches.
/// Every read of the input goes through here, on one thread at a time (the calling thread until the input
/// proves large, then the producer thread).
struct LineSource {
    /// Why ``pump(pausing:_:)`` returned.
    enum Outcome: Equatable {
        /// The input ended (or was rejected whole); the last lines are in `batch`.
        case finished
        /// A chunk is read and the input goes on: worth a thread. The chunk is not split yet.
        case paused
        /// The consumer left.
        case stopped
        /// read(2) failed with this errno; the lines before are in `batch` or were handed over.
        case failed(Int32)
    }

    let fd: Int32
    let parser: QEMULogParser
    let buffer: UnsafeMutablePointer<UInt8>
    let batchCapacity: Int
    var batch: TraceBatch
    var stats = InputStatistics()
    var filled = 0  // bytes in buffer
    var lineNumber: UInt64 = 0
    var skipping = false  // inside an over-long line
    var skippedLength = 0
    var detected = false
    var eof = false
    var unsplit = false  // paused between reading a chunk and splitting it

    var input: Int { parser.input }

    init(fd: Int32, input: Int, buffer: UnsafeMutablePointer<UInt8>, batchCapacity: Int) {
        self.fd = fd
        self.parser = QEMULogParser(input: input)
        self.buffer = buffer
        self.batchCapacity = batchCapacity
        self.batch = TraceBatch(capacity: batchCapacity)
    }

    /// Read, split and parse until the input ends, `handOff` refuses a full batch, read(2) fails, or (when
    /// `pausing`) a whole chunk has arrived with more to come. `handOff` takes a full batch and leaves an
    /// empty one in its place; false means nobody consumes any more.
    mutating func pump(pausing: Bool, _ handOff: (inout TraceBatch) -> Bool) -> Outcome {
        while true {
            if !unsplit {
                let n = Glibc.read(fd, buffer + filled, TraceReader.chunkSize + TraceReader.maxLineLength - filled)
                if n < 0 {
                    if errno == EINTR { continue }
                    return .failed(errno)
                }
                if n == 0 { eof = true }
                filled += n
                stats.bytes += UInt64(n)
                // The kind is known from the first line (or the first bytes, for the binary kinds).
                if !detected && (filled >= InputKind.sampleSize || eof || (filled >= 16 && memchr(buffer, 10, filled) != nil)) {
                    if detectFormat() { return .finished }
                }
                if !detected { continue }
                if pausing && !eof && stats.bytes >= UInt64(TraceReader.chunkSize) {
                    unsplit = true
                    return .paused
                }
            }
            unsplit = false
            guard splitLines(handOff) else { return .stopped }
            if eof {
                finishInput()
                return .finished
            }
        }
    }

    /// Decide the format from the first bytes; true when the input is refused whole (no trace, ``InputKind``).
    private mutating func detectFormat() -> Bool {
        detected = true
        let kind = InputKind.classify(UnsafeBufferPointer(start: buffer, count: min(filled, InputKind.sampleSize)))
        switch kind {
        case .text: return false
        case .recording:
            stats.format = .recording
            return false
        default:
            stats.refused = kind
            return true
        }
    }

    /// Handle the complete lines in the buffer and keep the partial one; false when the consumer left.
    private mutating func splitLines(_ handOff: (inout TraceBatch) -> Bool) -> Bool {
        let maxLineLength = TraceReader.maxLineLength
        var start = 0
        let fast = stats.format == .qemuLog
        while start < filled {
            if fast && !skipping {
                // Lines in QEMU's common layout are split and parsed in one pass, while a whole line's reach is
                // buffered; the first other line (and the last few of the buffer) takes the exact path below.
                let fastEnd = filled &- QEMULogParser.fastPathReach
                let input = self.input
                // Every fast line is one line and one event: the line number is counted here and the statistics
                // catch up with it before anyone can read them (a hand-off, the end of the run).
                var fastLineNumber = lineNumber
                // No diagnostic joins the batch in this loop: the batch is full at this many events.
                var eventLimit = batchCapacity &- batch.rejections.count &- batch.devices.count
                // SAFETY: start <= fastEnd leaves fastPathReach bytes of the buffer's data after buffer + start.
                var memo = FastLineMemo()
                while start <= fastEnd, let line = QEMULogParser.fastLine(UnsafeRawPointer(buffer + start), memo: &memo) {
                    fastLineNumber &+= 1
                    batch.append(line, lineNumber: fastLineNumber, input: input)
                    start &+= line.length
                    if batch.eventCount >= eventLimit {
                        countFastLines(upTo: fastLineNumber)
                        guard handOff(&batch) else { return false }
                        eventLimit = batchCapacity &- batch.rejections.count &- batch.devices.count
                    }
                }
                countFastLines(upTo: fastLineNumber)
                if start >= filled { break }
            }
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
            if batch.count >= batchCapacity {
                guard handOff(&batch) else { return false }
            }
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
        return true
    }

    /// Count the fast-path lines up to line `number` (each one line and one event).
    @inline(__always)
    private mutating func countFastLines(upTo number: UInt64) {
        let counted = number &- lineNumber
        lineNumber = number
        stats.lines &+= counted
        stats.events &+= counted
    }

    /// The end of the input: an over-long or unterminated last line.
    private mutating func finishInput() {
        let maxLineLength = TraceReader.maxLineLength
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
    }

    /// The next line is unusable: count it and report why.
    private mutating func rejectLine(_ reason: String) {
        lineNumber += 1
        stats.lines += 1
        stats.rejected += 1
        batch.reject(Diagnostic(input: input, line: lineNumber, reason: reason))
    }

    @inline(__always)
    private mutating func handle(_ line: UnsafeBufferPointer<UInt8>) {
        lineNumber += 1
        stats.lines += 1
        switch stats.format {
        case .qemuLog:
            switch parser.parse(line, line: lineNumber) {
            case .event(let e):
                stats.events += 1
                batch.append(e)
            case .ignored:
                break
            case .malformed(let reason):
                stats.rejected += 1
                batch.reject(Diagnostic(input: input, line: lineNumber, reason: reason))
            case .device(let d):
                stats.events += 1
                batch.append(d)
            }
        case .simpletrace:
            break  // decoded by SimpletraceReader, never split into lines
        case .recording:
            guard line.count > 0 else { return }
            switch RecordingFormat.parse(line, input: input, line: lineNumber) {
            case .success(.event(let e)):
                stats.events += 1
                batch.append(e)
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
                batch.reject(Diagnostic(input: input, line: lineNumber, reason: f.reason))
            }
        }
    }
}
