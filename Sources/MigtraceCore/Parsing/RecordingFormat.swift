// SPDX-License-Identifier: Apache-2.0

/// migtrace's own recording format: JSON Lines, one self-describing header line, then one line per
/// event, each written (and flushed) on its own so that a killed recorder leaves a file readable up to
/// its last complete event.
///
/// ```
/// {"format":"migtrace-recording","version":1,"migtrace_version":"…","host":"…","kernel":"…","pid":N,
///  "binary":"…","build_id":"…","clock_offset_ns":N,"started_at_ns":N,"probes":["…"],"probe_args":[N]}
/// {"type":"event","probe":"migrate_transferred","ts_ns":N,"mono_ns":N,"pid":N,"tid":N,"args":[…]}
/// {"type":"event","probe":"migrate_set_state","ts_ns":N,"mono_ns":N,"pid":N,"tid":N,"args":[],"state":"active"}
/// {"type":"lost","kernel_drops":N,"consumer_drops":N}
/// {"type":"end","reason":"target-exited","kernel_drops":N,"consumer_drops":N}
/// ```
/// `ts_ns` is wall-clock time (CLOCK_MONOTONIC + `clock_offset_ns`), `mono_ns` the raw BPF timestamp.
public enum RecordingFormat {
    /// The value of the header's `format` key.
    public static let formatName = "migtrace-recording"
    /// The version this build writes and reads.
    public static let version = 1
    /// How every recording starts; used to tell a recording from a QEMU log.
    public static let magic: [UInt8] = Array("{\"format\":\"migtrace-recording\"".utf8)

    /// What the header says about the recorded process.
    public struct Header: Sendable, Equatable {
        public var migtraceVersion: String
        public var host: String
        public var kernel: String
        public var pid: UInt32
        public var binary: String
        public var buildID: String
        /// Nanoseconds to add to CLOCK_MONOTONIC to get wall time.
        public var clockOffsetNanoseconds: Int64
        /// Wall-clock ns when recording started.
        public var startedAtNanoseconds: UInt64
        /// Probes attached: name and argument count.
        public var probes: [(name: String, args: Int)]

        /// A header with every field given.
        public init(
            migtraceVersion: String, host: String, kernel: String, pid: UInt32, binary: String, buildID: String,
            clockOffsetNanoseconds: Int64, startedAtNanoseconds: UInt64, probes: [(name: String, args: Int)]
        ) {
            self.migtraceVersion = migtraceVersion
            self.host = host
            self.kernel = kernel
            self.pid = pid
            self.binary = binary
            self.buildID = buildID
            self.clockOffsetNanoseconds = clockOffsetNanoseconds
            self.startedAtNanoseconds = startedAtNanoseconds
            self.probes = probes
        }

        public static func == (l: Header, r: Header) -> Bool {
            l.migtraceVersion == r.migtraceVersion && l.host == r.host && l.kernel == r.kernel && l.pid == r.pid
                && l.binary == r.binary && l.buildID == r.buildID && l.clockOffsetNanoseconds == r.clockOffsetNanoseconds
                && l.startedAtNanoseconds == r.startedAtNanoseconds && l.probes.map(\.name) == r.probes.map(\.name)
                && l.probes.map(\.args) == r.probes.map(\.args)
        }
    }

    /// The header line, newline included.
    public static func headerLine(_ h: Header) -> [UInt8] {
        var o = JSONWriter()
        o.raw("{\"format\":\"\(formatName)\",\"version\":\(version),\"migtrace_version\":")
        o.string(h.migtraceVersion)
        o.raw(",\"host\":")
        o.string(h.host)
        o.raw(",\"kernel\":")
        o.string(h.kernel)
        o.raw(",\"pid\":")
        o.unsigned(UInt64(h.pid))
        o.raw(",\"binary\":")
        o.string(h.binary)
        o.raw(",\"build_id\":")
        o.string(h.buildID)
        o.raw(",\"clock_offset_ns\":")
        o.signed(h.clockOffsetNanoseconds)
        o.raw(",\"started_at_ns\":")
        o.unsigned(h.startedAtNanoseconds)
        o.raw(",\"probes\":[")
        for (i, p) in h.probes.enumerated() {
            if i > 0 { o.raw(",") }
            o.string(p.name)
        }
        o.raw("],\"probe_args\":[")
        for (i, p) in h.probes.enumerated() {
            if i > 0 { o.raw(",") }
            o.unsigned(UInt64(p.args))
        }
        o.raw("]}\n")
        return o.bytes
    }

    /// One event line, newline included. `monotonicNanoseconds` is the raw BPF timestamp.
    public static func eventLine(_ e: TraceEvent, monotonicNanoseconds: UInt64?) -> [UInt8] {
        var o = JSONWriter()
        o.raw("{\"type\":\"event\",\"probe\":\"")
        o.raw(e.kind.eventName)
        o.raw("\"")
        if let ts = e.timestampNanoseconds {
            o.raw(",\"ts_ns\":")
            o.unsigned(ts)
        }
        if let m = monotonicNanoseconds {
            o.raw(",\"mono_ns\":")
            o.unsigned(m)
        }
        if let p = e.processID {
            o.raw(",\"pid\":")
            o.unsigned(UInt64(p))
        }
        if let t = e.threadID {
            o.raw(",\"tid\":")
            o.unsigned(UInt64(t))
        }
        o.raw(",\"args\":[")
        for i in 0..<e.arguments.count {
            if i > 0 { o.raw(",") }
            o.unsigned(e.arguments[i])
        }
        o.raw("]")
        if let s = e.state {
            o.raw(",\"state\":")
            o.string(s.name)
        }
        o.raw("}\n")
        return o.bytes
    }

    /// A line recording events lost so far (cumulative counts).
    public static func lostLine(kernelDrops: UInt64, consumerDrops: UInt64) -> [UInt8] {
        Array("{\"type\":\"lost\",\"kernel_drops\":\(kernelDrops),\"consumer_drops\":\(consumerDrops)}\n".utf8)
    }

    /// The closing line: why the recording ended and the final loss counts.
    public static func endLine(reason: String, kernelDrops: UInt64, consumerDrops: UInt64) -> [UInt8] {
        var o = JSONWriter()
        o.raw("{\"type\":\"end\",\"reason\":")
        o.string(reason)
        o.raw(",\"kernel_drops\":\(kernelDrops),\"consumer_drops\":\(consumerDrops)}\n")
        return o.bytes
    }

    /// What one recording line holds.
    public enum Line: Sendable, Equatable {
        case header(Header)
        case event(TraceEvent)
        case lost(kernel: UInt64, consumer: UInt64)
        case end(reason: String, kernel: UInt64, consumer: UInt64)
        case unknown
    }

    /// Parse one line of a recording (without its newline).
    public static func parse(_ bytes: UnsafeBufferPointer<UInt8>, input: Int, line: UInt64) -> Result<Line, ParseFailure> {
        var scanner = FlatJSONScanner(bytes)
        var fields: [String: FlatJSONScanner.Value] = [:]
        do {
            try scanner.object { key, value in fields[key] = value }
        } catch {
            return .failure(ParseFailure(reason: error.reason))
        }
        if case .string(let f)? = fields["format"] {
            guard f == formatName else { return .failure(ParseFailure(reason: "not a migtrace recording")) }
            guard case .number(let v)? = fields["version"], v == UInt64(version) else {
                return .failure(
                    ParseFailure(
                        reason:
                            "recording version \(fields["version"].map { "\($0)" } ?? "?") is not supported by this migtrace (reads version \(version)); use a matching migtrace"
                    ))
            }
            let names: [String] = if case .strings(let s)? = fields["probes"] { s } else { [] }
            let counts: [UInt64] = if case .numbers(let n)? = fields["probe_args"] { n } else { [] }
            let probes = names.enumerated().map { (i, n) in (name: n, args: i < counts.count ? Int(clamping: counts[i]) : 0) }
            return .success(
                .header(
                    Header(
                        migtraceVersion: fields.string("migtrace_version"), host: fields.string("host"), kernel: fields.string("kernel"),
                        pid: UInt32(truncatingIfNeeded: fields.number("pid")), binary: fields.string("binary"),
                        buildID: fields.string("build_id"), clockOffsetNanoseconds: fields.signed("clock_offset_ns"),
                        startedAtNanoseconds: fields.number("started_at_ns"), probes: probes)))
        }
        guard case .string(let type)? = fields["type"] else { return .failure(ParseFailure(reason: "record has no \"type\"")) }
        switch type {
        case "event":
            guard case .string(let probe)? = fields["probe"], let kind = ProbeKind.allCases.first(where: { $0.eventName == probe })
            else { return .failure(ParseFailure(reason: "unknown or missing \"probe\"")) }
            guard case .numbers(let args)? = fields["args"], args.count <= ProbeArguments.capacity else {
                return .failure(ParseFailure(reason: "missing \"args\" or more than eight"))
            }
            if let i = args.indices.first(where: { !ProbeArguments.fits(args[$0], at: $0) }) {
                return .failure(
                    ParseFailure(reason: "\(probe) argument \(i + 1) is \(args[i]); it is a 32-bit value (at most \(UInt32.max))"))
            }
            var e = TraceEvent(kind: kind, arguments: ProbeArguments(args), origin: EventOrigin(input: input, line: line))
            if case .number(let ts)? = fields["ts_ns"] {
                e.timestampNanoseconds = ts; e.clock = .wall
            } else if case .number(let m)? = fields["mono_ns"] {
                e.timestampNanoseconds = m; e.clock = .monotonic
            }
            if case .number(let p)? = fields["pid"] { e.processID = UInt32(truncatingIfNeeded: p) }
            if case .number(let t)? = fields["tid"] { e.threadID = UInt32(truncatingIfNeeded: t) }
            if case .string(let s)? = fields["state"] {
                guard let state = MigrationState(name: s) else {
                    return .failure(ParseFailure(reason: MigrationState.refusal(Array(s.utf8))))
                }
                e.state = state
            }
            return .success(.event(e))
        case "lost":
            return .success(.lost(kernel: fields.number("kernel_drops"), consumer: fields.number("consumer_drops")))
        case "end":
            return .success(
                .end(reason: fields.string("reason"), kernel: fields.number("kernel_drops"), consumer: fields.number("consumer_drops")))
        default:
            return .success(.unknown)
        }
    }

    /// Why a recording line was rejected.
    public struct ParseFailure: Error, Sendable, Equatable {
        public var reason: String
    }
}

extension Dictionary where Key == String, Value == FlatJSONScanner.Value {
    fileprivate func string(_ k: String) -> String { if case .string(let s)? = self[k] { s } else { "" } }
    fileprivate func number(_ k: String) -> UInt64 { if case .number(let n)? = self[k] { n } else { 0 } }
    fileprivate func signed(_ k: String) -> Int64 {
        switch self[k] {
        case .number(let n)?: Int64(truncatingIfNeeded: n)
        case .negative(let n)?: n
        default: 0
        }
    }
}

/// Appends JSON text to a byte buffer without Foundation.
public struct JSONWriter: Sendable {
    /// The text so far.
    public var bytes: [UInt8] = []

    /// An empty writer.
    public init() { bytes.reserveCapacity(256) }

    /// Append raw text (already valid JSON).
    @inline(__always) public mutating func raw(_ s: String) {
        // Literals and native strings are contiguous UTF-8: one copy instead of a per-byte append loop.
        let done: Void? = s.utf8.withContiguousStorageIfAvailable { bytes.append(contentsOf: $0) }
        if done == nil { bytes.append(contentsOf: s.utf8) }
    }
    /// Remove the text, keeping the memory (a writer reused per object allocates nothing).
    public mutating func reset() { bytes.removeAll(keepingCapacity: true) }
    /// Append what `body` writes into `capacity` bytes of stack memory, with one copy: for objects of many
    /// fields, where an array append per key and per number was most of the cost. `body` must write at
    /// most `capacity` bytes (the writer does not check).
    @inline(__always) mutating func ascii(capacity: Int, _ body: (inout ASCIIWriter) -> Void) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: capacity) { scratch in
            var w = ASCIIWriter(scratch.baseAddress!)
            body(&w)
            precondition(w.count <= capacity, "JSONWriter.ascii: more than the capacity was written")
            bytes.append(contentsOf: UnsafeBufferPointer(start: scratch.baseAddress!, count: w.count))
        }
    }
    /// Append an unsigned integer.
    @inline(__always) public mutating func unsigned(_ v: UInt64) { NumberText.appendUnsigned(v, to: &bytes) }
    /// Append a signed integer.
    public mutating func signed(_ v: Int64) {
        if v < 0 { bytes.append(UInt8(ascii: "-")) }
        NumberText.appendUnsigned(v.magnitude, to: &bytes)
    }
    /// Append a double (shortest round-trip form; `null` when not finite).
    public mutating func number(_ v: Double) { NumberText.appendExact(v, to: &bytes) }
    /// Append a quoted, escaped string.
    public mutating func string(_ s: String) {
        bytes.append(UInt8(ascii: "\""))
        // DEL and the C1 controls (U+0080–U+009F, UTF-8 C2 80–C2 9F) are escaped too: a terminal showing the
        // document raw (`jq -r`, `cat`) must not take them as control sequences.
        var c1 = false
        for b in s.utf8 {
            if c1 {
                c1 = false
                if b >= 0x80 && b <= 0x9f {
                    let hex = Array("0123456789abcdef".utf8)
                    bytes.append(contentsOf: [92, UInt8(ascii: "u"), 48, 48, hex[Int(b >> 4)], hex[Int(b & 15)]])
                    continue
                }
                bytes.append(0xc2)
            }
            switch b {
            case 0xc2:
                c1 = true
            case 0x7f: bytes.append(contentsOf: Array("\\u007f".utf8))
            case UInt8(ascii: "\""): bytes.append(contentsOf: [92, 34])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [92, 92])
            case 10: bytes.append(contentsOf: [92, UInt8(ascii: "n")])
            case 13: bytes.append(contentsOf: [92, UInt8(ascii: "r")])
            case 9: bytes.append(contentsOf: [92, UInt8(ascii: "t")])
            case 0..<32:
                let hex = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: [92, UInt8(ascii: "u"), 48, 48, hex[Int(b >> 4)], hex[Int(b & 15)]])
            default: bytes.append(b)
            }
        }
        if c1 { bytes.append(0xc2) }
        bytes.append(UInt8(ascii: "\""))
    }
}

/// Reads one flat JSON object (string, integer, and arrays of integers or strings as values; nested
/// objects are skipped) — enough for recording lines, with no Foundation in the loop.
public struct FlatJSONScanner {
    /// A scanned value.
    public enum Value: Sendable, Equatable {
        case string(String)
        case number(UInt64)
        case negative(Int64)
        case numbers([UInt64])
        case strings([String])
        case other
    }

    private var c: Cursor

    init(_ bytes: UnsafeBufferPointer<UInt8>) {
        c = Cursor(bytes)
        while c.end > 0 && (bytes[c.end - 1] == 13 || bytes[c.end - 1] == 32) { c.end -= 1 }
    }

    mutating func object(_ each: (String, Value) -> Void) throws(ParseError) {
        ws()
        try expect("{")
        ws()
        if c.peek() == UInt8(ascii: "}") {
            c.pos += 1
            return try tail()
        }
        while true {
            ws()
            let key = try string()
            ws()
            try expect(":")
            ws()
            each(key, try value())
            ws()
            guard let b = c.peek() else { throw ParseError("record is cut short (no closing '}')") }
            c.pos += 1
            if b == UInt8(ascii: "}") { return try tail() }
            guard b == UInt8(ascii: ",") else { throw ParseError("expected ',' or '}' at column \(c.pos)") }
        }
    }

    private mutating func tail() throws(ParseError) {
        ws()
        guard c.pos == c.end else { throw ParseError("unexpected text after the record at column \(c.pos + 1)") }
    }

    private mutating func ws() {
        while let b = c.peek(), b == 32 || b == 9 { c.pos += 1 }
    }

    private mutating func expect(_ ch: UInt8) throws(ParseError) {
        guard c.peek() == ch else {
            throw c.pos >= c.end
                ? ParseError("record is cut short") : ParseError("expected '\(Character(Unicode.Scalar(ch)))' at column \(c.pos + 1)")
        }
        c.pos += 1
    }

    private mutating func expect(_ s: String) throws(ParseError) { try expect(s.utf8.first!) }

    private mutating func string() throws(ParseError) -> String {
        try expect("\"")
        var out: [UInt8] = []
        while let b = c.peek() {
            c.pos += 1
            if b == UInt8(ascii: "\"") { return String(decoding: out, as: UTF8.self) }
            if b == 92 {
                guard let e = c.peek() else { break }
                c.pos += 1
                switch e {
                case UInt8(ascii: "n"): out.append(10)
                case UInt8(ascii: "r"): out.append(13)
                case UInt8(ascii: "t"): out.append(9)
                case UInt8(ascii: "u"):
                    var v: UInt32 = 0
                    for _ in 0..<4 {
                        guard let h = c.peek(), let d = Self.hex(h) else { throw ParseError("bad \\u escape at column \(c.pos + 1)") }
                        v = v * 16 + d
                        c.pos += 1
                    }
                    out.append(contentsOf: Array(String(Character(Unicode.Scalar(v) ?? "\u{FFFD}")).utf8))
                default: out.append(e)
                }
            } else {
                out.append(b)
            }
        }
        throw ParseError("record is cut short inside a string")
    }

    private static func hex(_ b: UInt8) -> UInt32? {
        switch b {
        case 48...57: UInt32(b - 48)
        case 97...102: UInt32(b - 87)
        case 65...70: UInt32(b - 55)
        default: nil
        }
    }

    private mutating func value() throws(ParseError) -> Value {
        guard let b = c.peek() else { throw ParseError("record is cut short") }
        switch b {
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "-"):
            c.pos += 1
            guard let n = c.digits(), n <= UInt64(Int64.max) else { throw ParseError("bad number at column \(c.pos + 1)") }
            return .negative(-Int64(n))
        case 48...57:
            guard let n = c.digits() else { throw ParseError("number at column \(c.pos + 1) does not fit in 64 bits") }
            return .number(n)
        case UInt8(ascii: "["):
            c.pos += 1
            ws()
            var nums: [UInt64] = []
            var strs: [String] = []
            if c.peek() == UInt8(ascii: "]") {
                c.pos += 1
                return .numbers([])
            }
            while true {
                ws()
                if c.peek() == UInt8(ascii: "\"") {
                    strs.append(try string())
                } else if c.peek() == UInt8(ascii: "{") {
                    try skipNested()
                } else {
                    guard let n = c.digits() else { throw ParseError("expected an unsigned number in array at column \(c.pos + 1)") }
                    nums.append(n)
                }
                ws()
                guard let t = c.peek() else { throw ParseError("record is cut short inside an array") }
                c.pos += 1
                if t == UInt8(ascii: "]") { break }
                guard t == UInt8(ascii: ",") else { throw ParseError("expected ',' or ']' at column \(c.pos)") }
            }
            return strs.isEmpty ? .numbers(nums) : .strings(strs)
        case UInt8(ascii: "{"):
            try skipNested()
            return .other
        default:
            for word in ["true", "false", "null"] where c.atWordPrefix(word) {
                c.pos += word.utf8.count
                return .other
            }
            throw ParseError("unexpected character at column \(c.pos + 1)")
        }
    }

    private mutating func skipNested() throws(ParseError) {
        var depth = 0
        var inString = false
        while let b = c.peek() {
            c.pos += 1
            if inString {
                if b == 92 { c.pos += 1 } else if b == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch b {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
                if depth == 0 { return }
            default: break
            }
        }
        throw ParseError("record is cut short inside a nested value")
    }
}

extension Cursor {
    func atWordPrefix(_ w: String) -> Bool {
        var i = pos
        for b in w.utf8 {
            guard i < end, bytes[i] == b else { return false }
            i += 1
        }
        return true
    }
}
