// SPDX-License-Identifier: Apache-2.0

/// What an input is, told from its first bytes before any line is parsed: a trace migtrace reads, or a file
/// that is no trace at all (a program, a compressed log, random bytes), which is named instead of being
/// searched for lines that happen to look like events.
public enum InputKind: Equatable, Sendable {
    /// Text: a QEMU log (any prefix), possibly mixed with other lines.
    case text
    /// A migtrace recording.
    case recording
    /// A QEMU simple-backend binary trace (header version 4).
    case simpletrace
    /// An ELF file: a program, a library or a core dump.
    case elf
    /// Compressed data, with the compressor's name and the command that decompresses to standard output.
    case compressed(format: String, decompress: String)
    /// Binary data of no known kind.
    case binary

    /// How many leading bytes decide the kind (fewer when the input is shorter).
    public static let sampleSize = 512

    /// The file header of QEMU's simple backend: event id `0xffffffffffffffff`, magic `0xf2b177cb0aa429b4`, in the
    /// writer's byte order (little-endian hosts write it so; migtrace decodes little-endian files).
    static let simpletraceHeader: [UInt8] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xb4, 0x29, 0xa4, 0x0a, 0xcb, 0x77, 0xb1, 0xf2,
    ]

    /// The kind of an input that starts with `bytes` (its first ``sampleSize`` bytes, or all of it if shorter).
    public static func classify(_ bytes: UnsafeBufferPointer<UInt8>) -> InputKind {
        func starts(with magic: [UInt8]) -> Bool {
            bytes.count >= magic.count && magic.indices.allSatisfy { bytes[$0] == magic[$0] }
        }
        if starts(with: RecordingFormat.magic) { return .recording }
        if starts(with: simpletraceHeader) { return .simpletrace }
        if starts(with: [0x7f, 0x45, 0x4c, 0x46]) { return .elf }
        if starts(with: [0x1f, 0x8b]) { return .compressed(format: "gzip", decompress: "zcat") }
        if starts(with: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]) { return .compressed(format: "xz", decompress: "xzcat") }
        if starts(with: [0x28, 0xb5, 0x2f, 0xfd]) { return .compressed(format: "zstd", decompress: "zstdcat") }
        if starts(with: [0x42, 0x5a, 0x68]) { return .compressed(format: "bzip2", decompress: "bzcat") }
        return looksBinary(bytes) ? .binary : .text
    }

    /// Whether the first line (at most ``sampleSize`` bytes) is mostly not text: more than a quarter of its bytes
    /// are control characters other than tab, CR, form feed and ESC, or are not valid UTF-8. Only the first line
    /// is judged, so a log with garbage lines further on is still read as a log (its garbage lines are skipped),
    /// and a line with a stray control character (which the parser escapes) does not make a file binary.
    static func looksBinary(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var end = min(bytes.count, sampleSize)
        for i in 0..<end where bytes[i] == 10 {
            end = i
            break
        }
        guard end > 0 else { return false }
        var odd = 0
        var i = 0
        while i < end {
            let b = bytes[i]
            if b < 0x20 || b == 0x7f {
                if b != 9 && b != 13 && b != 12 && b != 0x1b { odd += 1 }
                i += 1
            } else if b < 0x80 {
                i += 1
            } else {
                // A UTF-8 sequence: its length from the lead byte, then continuation bytes.
                let length = b >= 0xf0 && b <= 0xf4 ? 4 : b >= 0xe0 ? (b < 0xf0 ? 3 : 0) : b >= 0xc2 ? 2 : 0
                var valid = length > 0 && i + length <= end
                if valid { for k in 1..<length where bytes[i + k] & 0xc0 != 0x80 { valid = false } }
                if valid {
                    i += length
                } else {
                    odd += 1
                    i += 1
                }
            }
        }
        return odd * 4 > end
    }

    /// The kind's name in outputs (JSON `inputs[].format`).
    public var name: String {
        switch self {
        case .text: "qemu-log"
        case .recording: "recording"
        case .simpletrace: "simpletrace"
        case .elf: "elf"
        case .compressed(let format, _): format
        case .binary: "binary"
        }
    }

    /// Why an input of this kind is not analysed, and what to do instead; nil for the kinds migtrace reads.
    public var refusal: String? {
        let hint = "give the QEMU trace log (`-trace migrate_transferred -D FILE`) or a migtrace recording"
        switch self {
        case .text, .recording, .simpletrace: return nil
        case .elf: return "not a trace but an ELF file (a program, library or core dump); \(hint)"
        case .compressed(let format, let decompress):
            return "\(format)-compressed data; decompress it first: `\(decompress) FILE | migtrace analyze -`"
        case .binary: return "not a trace but binary data (its first line is not text); \(hint)"
        }
    }
}
