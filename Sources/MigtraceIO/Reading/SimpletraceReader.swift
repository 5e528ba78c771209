// SPDX-License-Identifier: Apache-2.0

import MigtraceCore

#if canImport(Glibc)
    import Glibc
#endif

/// Decodes a trace file of QEMU's simple backend (header version 4) into events for the analyzer.
///
/// The layout (QEMU's `trace/simple.c`, read as its `scripts/simpletrace.py` reads it), in the writer's byte order,
/// little-endian here: a 24-byte header (event id `~0`, magic `0xf2b177cb0aa429b4`, version 4), then records,
/// each a `u64` type. Type 0 maps an event id to its name (`u64` id, `u32` length, the name), and is written for
/// every event when the file is opened: ids are assigned at run time, so only the mapping names them. Type 1 is an
/// event (`u64` id, `u64` CLOCK_MONOTONIC ns, `u32` length from the id to the end, `u32` pid, then the arguments:
/// each integer a `u64`, each string a `u32` length and its bytes); the id `~0 - 1` is the count of events QEMU
/// dropped while its trace buffer was full. The record length lets events migtrace does not read be skipped without
/// QEMU's trace-events file. Record numbers (1-based, after the header) stand for line numbers in diagnostics.
enum SimpletraceReader {
    static let headerEventID: UInt64 = ~0
    static let magic: UInt64 = 0xf2b1_77cb_0aa4_29b4
    static let droppedEventID: UInt64 = ~0 - 1
    /// A record longer than this is damage, not an event (QEMU's strings are at most 512 bytes).
    static let maxRecordLength = 1 << 20
    static let maxNameLength = 4096

    /// Decode the input whose first bytes are `prefix` (already read) and whose rest is read from `fd`.
    static func read(
        fd: Int32, prefix: UnsafeBufferPointer<UInt8>, input: Int, into analyzer: MigrationAnalyzer
    ) throws(TraceReader.ReadError) -> InputStatistics {
        var stats = InputStatistics()
        stats.format = .simpletrace
        var source = ByteSource(fd: fd, prefix: prefix)
        var decoder = Decoder(input: input, analyzer: analyzer)
        try decoder.run(&source, &stats)
        stats.bytes = UInt64(source.consumed)
        return stats
    }

    /// The input's bytes: the prefix, then `fd`, through a buffer that keeps only what is not consumed yet.
    struct ByteSource {
        let fd: Int32
        var buffer: [UInt8]
        var start = 0
        var eof = false
        /// Bytes consumed since the beginning of the file.
        var consumed = 0

        init(fd: Int32, prefix: UnsafeBufferPointer<UInt8>) {
            self.fd = fd
            buffer = Array(prefix)
        }

        var available: Int { buffer.count - start }

        /// Make at least `n` bytes available; false when the input ends first.
        mutating func ensure(_ n: Int) throws(TraceReader.ReadError) -> Bool {
            while available < n && !eof {
                if start > 1 << 16 {
                    buffer.removeSubrange(0..<start)
                    start = 0
                }
                let chunk = 1 << 16
                let old = buffer.count
                buffer.append(contentsOf: repeatElement(0, count: chunk))
                let got = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + old, chunk) }
                if got < 0 {
                    buffer.removeLast(chunk)
                    if errno == EINTR { continue }
                    throw TraceReader.ReadError(errno: errno)
                }
                buffer.removeLast(chunk - got)
                if got == 0 { eof = true }
            }
            return available >= n
        }

        /// The little-endian `u64` / `u32` at `offset` from the first available byte.
        func u64(at offset: Int) -> UInt64 {
            var v: UInt64 = 0
            for k in (0..<8).reversed() { v = v << 8 | UInt64(buffer[start + offset + k]) }
            return v
        }

        func u32(at offset: Int) -> UInt32 {
            var v: UInt32 = 0
            for k in (0..<4).reversed() { v = v << 8 | UInt32(buffer[start + offset + k]) }
            return v
        }

        func bytes(at offset: Int, count: Int) -> ArraySlice<UInt8> {
            buffer[(start + offset)..<(start + offset + count)]
        }

        mutating func skip(_ n: Int) {
            start += n
            consumed += n
        }
    }

    /// The decoding state of one file: the id → event mapping and the record count.
    struct Decoder {
        let input: Int
        let analyzer: MigrationAnalyzer
        /// The events migtrace reads, by the ids this file's mapping records gave them.
        var kinds: [UInt64: ProbeKind] = [:]
        var record: UInt64 = 0

        init(input: Int, analyzer: MigrationAnalyzer) {
            self.input = input
            self.analyzer = analyzer
        }

        static let kindsByName: [String: ProbeKind] = Dictionary(
            uniqueKeysWithValues: ProbeKind.allCases.map { ($0.eventName, $0) })

        mutating func reject(_ stats: inout InputStatistics, _ reason: String) {
            stats.rejected += 1
            analyzer.reject(Diagnostic(input: input, line: record, reason: reason))
        }

        /// The file ended inside the record that starts at `offset` after `have` of its `need` bytes.
        mutating func cut(_ stats: inout InputStatistics, at offset: Int, have: Int, need: Int?) {
            let of = need.map { " of its \($0)" } ?? ""
            reject(
                &stats,
                "simpletrace record \(record) at byte \(offset) is cut short: the file ends after \(have)\(of) bytes (QEMU was stopped before flushing its trace buffer, or the copy is incomplete); everything before it is analysed"
            )
        }

        mutating func run(_ s: inout ByteSource, _ stats: inout InputStatistics) throws(TraceReader.ReadError) {
            guard try s.ensure(24), s.u64(at: 0) == SimpletraceReader.headerEventID, s.u64(at: 8) == SimpletraceReader.magic else {
                reject(&stats, "simpletrace header is cut short (\(s.available) of 24 bytes)")
                return
            }
            let version = s.u64(at: 16)
            guard version == 4 else {
                reject(
                    &stats,
                    "simpletrace header version \(version): migtrace decodes version 4, what current QEMU writes; decode this file with the scripts/simpletrace.py of the QEMU that wrote it"
                )
                return
            }
            s.skip(24)
            while true {
                let offset = s.consumed
                guard try s.ensure(8) else {
                    if s.available > 0 {
                        record += 1
                        stats.lines += 1
                        cut(&stats, at: offset, have: s.available, need: nil)
                    }
                    return
                }
                record += 1
                stats.lines += 1
                let type = s.u64(at: 0)
                switch type {
                case 0:
                    guard try s.ensure(20) else { return cut(&stats, at: offset, have: s.available, need: nil) }
                    let id = s.u64(at: 8)
                    let length = Int(s.u32(at: 16))
                    guard length <= SimpletraceReader.maxNameLength else {
                        return reject(
                            &stats,
                            "simpletrace mapping record at byte \(offset) names an event of \(length) bytes: the file is damaged; everything before it is analysed"
                        )
                    }
                    guard try s.ensure(20 + length) else { return cut(&stats, at: offset, have: s.available, need: 20 + length) }
                    let name = String(decoding: s.bytes(at: 20, count: length), as: UTF8.self)
                    if let kind = Self.kindsByName[name] { kinds[id] = kind } else { kinds[id] = nil }
                    s.skip(20 + length)
                case 1:
                    guard try s.ensure(32) else { return cut(&stats, at: offset, have: s.available, need: nil) }
                    let length = Int(s.u32(at: 24))
                    guard length >= 24, length <= SimpletraceReader.maxRecordLength else {
                        return reject(
                            &stats,
                            "simpletrace event record at byte \(offset) has length \(length), which no event has: the file is damaged; everything before it is analysed"
                        )
                    }
                    guard try s.ensure(8 + length) else { return cut(&stats, at: offset, have: s.available, need: 8 + length) }
                    event(s, length: length, &stats)
                    s.skip(8 + length)
                default:
                    return reject(
                        &stats,
                        "simpletrace record at byte \(offset) has type \(type) (0 mapping or 1 event expected): the file is damaged; everything before it is analysed"
                    )
                }
            }
        }

        /// One complete event record (its type word included in `s` at offset 0).
        mutating func event(_ s: ByteSource, length: Int, _ stats: inout InputStatistics) {
            let id = s.u64(at: 8)
            let timestamp = s.u64(at: 16)
            let pid = s.u32(at: 28)
            let argumentBytes = length - 24
            if id == SimpletraceReader.droppedEventID {
                let dropped = argumentBytes >= 8 ? s.u64(at: 32) : 0
                stats.droppedByTracer &+= dropped
                reject(
                    &stats,
                    "QEMU dropped \(dropped) trace event(s) here (its simple-backend trace buffer was full): windows may be missing"
                )
                return
            }
            guard let kind = kinds[id] else { return }  // an event migtrace does not read
            var e = TraceEvent(
                kind: kind, arguments: ProbeArguments(count: 0), timestampNanoseconds: timestamp, clock: .monotonic,
                processID: pid, origin: EventOrigin(input: input, line: record))
            if kind == .migrateSetState {
                let n = argumentBytes >= 4 ? Int(s.u32(at: 32)) : -1
                guard n >= 0, n <= argumentBytes - 4 else {
                    return reject(&stats, "migrate_set_state: the state string does not fit in its record")
                }
                let text = s.bytes(at: 36, count: n)
                guard let state = MigrationState(bytes: text) else {
                    return reject(&stats, "migrate_set_state: \(MigrationState.refusal(text))")
                }
                e.state = state
            } else {
                let count = argumentBytes / 8
                let expected = kind.argumentCounts
                guard argumentBytes % 8 == 0, expected.contains(count) else {
                    return reject(
                        &stats,
                        "\(kind.eventName): \(argumentBytes) bytes of arguments; this event has \(expected.map { "\($0 * 8)" }.joined(separator: " or "))"
                    )
                }
                let values = (0..<count).map { s.u64(at: 32 + 8 * $0) }
                // qemu_savevm_query_pending's two switchover-ack counts are uint32_t in QEMU.
                guard values.enumerated().allSatisfy({ ProbeArguments.fits($0.element, at: $0.offset) }) else {
                    return reject(&stats, "\(kind.eventName): a switchover-ack count above 32 bits")
                }
                if kind == .migrateTransferred, let max = values.last, max > UInt64(Int64.max) {
                    return reject(&stats, "migrate_transferred: negative max_size \(Int64(bitPattern: max))")
                }
                e.arguments = ProbeArguments(values)
            }
            stats.events += 1
            analyzer.consume(e)
        }
    }
}
