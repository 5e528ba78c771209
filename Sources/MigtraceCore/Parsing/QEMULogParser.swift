// SPDX-License-Identifier: Apache-2.0

/// What one line of a QEMU log turned out to be.
public enum LineResult: Sendable, Equatable {
    /// A migration trace event.
    case event(TraceEvent)
    /// Not a migration event (other trace events, libvirt chatter, blank lines).
    case ignored
    /// A migration event that cannot be read, with the reason.
    case malformed(String)
    /// A VFIO device's migration event (``DeviceEvent``).
    case device(DeviceEvent)
}

/// Parses QEMU log-backend lines (any version 6.x–11.x and later) byte by byte, without allocating
/// for lines that are not migration events.
///
/// Prefixes understood: none; `tid@sec.usec:` (≤ 10.0, `-msg timestamp=on`); ISO-8601 `…Z ` (10.1+);
/// `pid@ns ` (qemu-trace-stap, and bpftrace one-liners in the same shape, whose `nsecs` is a monotonic clock);
/// `name(tid:thread): ` (proposed); and, as a fall-back, the event body anywhere in the line (syslog, ftrace's
/// trace_marker). Besides QEMU's labelled bodies, the bare arguments in probe order are read
/// (`migrate_transferred 3423628 100 34236 0 10270884`, `migrate_set_state active`): what a bpftrace one-liner
/// printing `arg0`… writes.
public struct QEMULogParser: Sendable {
    /// Index of the input the lines come from, stored in each event's origin.
    public var input: Int

    /// A parser for input number `input`.
    public init(input: Int) {
        self.input = input
    }

    /// Parse a line given without its newline (a trailing `\r` is ignored).
    public func parse(_ bytes: UnsafeBufferPointer<UInt8>, line: UInt64) -> LineResult {
        var c = Cursor(bytes)
        while c.end > 0 && (bytes[c.end - 1] == 13 || bytes[c.end - 1] == 32) { c.end -= 1 }
        guard c.end > 0 else { return .ignored }
        var prefix = Prefix()
        prefix.parse(&c)
        if let device = parseDevice(&c, prefix: prefix, line: line) { return device }
        var kind = c.eventName()
        if kind == nil {
            // Fall back: the body of migrate_transferred anywhere in the line (syslog, ftrace).
            guard let at = c.find(Self.transferredBody) else { return .ignored }
            prefix = Prefix()
            c.pos = at
            kind = c.eventName()
        }
        guard let kind else { return .ignored }
        var event = TraceEvent(
            kind: kind, arguments: ProbeArguments(count: 0), timestampNanoseconds: prefix.timestamp,
            clock: prefix.monotonic ? .monotonic : .wall,
            threadID: prefix.thread, processID: prefix.process, origin: EventOrigin(input: input, line: line))
        do {
            try Self.parseBody(kind, &c, into: &event)
        } catch {
            return .malformed("\(kind.eventName): \(error.reason)")
        }
        return .event(event)
    }

    static let transferredBody: [UInt8] = Array("migrate_transferred transferred ".utf8)

    private static func parseBody(_ kind: ProbeKind, _ c: inout Cursor, into e: inout TraceEvent) throws(ParseError) {
        // Fast paths for the two lines that make up nearly every trace, in QEMU's exact layout (single spaces,
        // nothing after the last field). Anything else, including every malformed line, takes the general
        // path below, which accepts these same lines with the same values and explains the others.
        switch kind {
        case .migratePending:
            if let args = c.exactPendingBody() {
                e.arguments = args
                return
            }
        case .migrateTransferred:
            if let args = c.exactTransferredBody() {
                e.arguments = args
                return
            }
        default:
            break
        }
        if let args = try c.positionalBody(kind) {
            e.arguments = args
            return
        }
        switch kind {
        case .migrateTransferred:
            let transferred = try c.labelled("transferred")
            let timeSpent = try c.labelled("time_spent")
            let bandwidth = try c.labelled("bandwidth")
            c.skipSpaces()
            if c.atWord("switchover_bw") {
                let sw = try c.labelled("switchover_bw")
                let max = try c.labelled("max_size", signed: true)
                e.arguments = ProbeArguments(count: 5, transferred, timeSpent, bandwidth, sw, max)
            } else {
                let max = try c.labelled("max_size", signed: true)
                e.arguments = ProbeArguments(count: 4, transferred, timeSpent, bandwidth, max)
            }
        case .migratePendingEstimate, .migratePendingExact:
            try c.word(kind == .migratePendingExact ? "exact" : "estimate")
            try c.word("pending")
            let size = try c.labelled("size")
            try c.literal(" (pre = ")
            let pre = try c.number(after: "pre")
            try c.literal(" post=")
            let post = try c.number(after: "post")
            try c.literal(")")
            e.arguments = ProbeArguments(count: 3, size, pre, post)
        case .migratePending:
            try c.word("pending")
            let size = try c.labelled("size")
            let max = try c.labelled("max")
            try c.literal(" (pre = ")
            let pre = try c.number(after: "pre")
            try c.literal(" compat=")
            let compat = try c.number(after: "compat")
            try c.literal(" post=")
            let post = try c.number(after: "post")
            try c.literal(")")
            e.arguments = ProbeArguments(count: 5, size, max, pre, compat, post)
        case .migrationThreadLowPending:
            c.skipSpaces()
            e.arguments = ProbeArguments(count: 1, try c.number(after: "migration_thread_low_pending"))
        case .bitmapSyncStart:
            e.arguments = ProbeArguments(count: 0)
        case .bitmapSyncEnd:
            e.arguments = ProbeArguments(count: 1, try c.labelled("dirty_pages"))
        case .qemuSavevmQueryPending:
            e.arguments = try c.queryPendingBody()
        case .migrateSetState:
            c.skipSpaces()
            // `new state X` as QEMU logs it, or the bare state a one-liner prints (`str(arg0)`).
            if c.atWord("new") {
                try c.word("new")
                try c.word("state")
            }
            c.skipSpaces()
            guard c.pos < c.end else { throw ParseError("missing the new state") }
            var last = c.end
            while last > c.pos, c.bytes[last - 1] == 0x20 || c.bytes[last - 1] == 0x09 { last -= 1 }
            let text = UnsafeBufferPointer(rebasing: c.bytes[c.pos..<last])
            guard let state = MigrationState(bytes: text) else { throw ParseError(MigrationState.refusal(text)) }
            e.state = state
            e.arguments = ProbeArguments(count: 0)
            c.pos = c.end
        }
        c.skipSpaces()
        guard c.pos >= c.end else {
            throw ParseError("unexpected text after the last field at column \(c.pos + 1)")
        }
    }
}

/// Why a line could not be parsed.
struct ParseError: Error {
    var reason: String
    init(_ reason: String) { self.reason = reason }
}

/// The prefix of a log line: timestamp (wall ns), thread and process ids when present.
struct Prefix {
    var timestamp: UInt64?
    var thread: UInt32?
    var process: UInt32?
    /// The timestamp is on a monotonic clock (a `pid@ns` prefix whose ns lie before 2000: bpftrace's `nsecs`).
    var monotonic = false

    /// Nanoseconds since the epoch of 2000-01-01: a wall-clock timestamp below it is a monotonic one.
    static let wallClockFloor: UInt64 = 946_684_800 * 1_000_000_000

    mutating func parse(_ c: inout Cursor) {
        let start = c.pos
        if c.peekDigit() {
            if c.looksLikeISODate(), let ns = c.isoTimestamp() {
                timestamp = ns
                c.skipSpaces()
                if c.peek() == UInt8(ascii: "[") {  // "[guest name] " of the proposed format
                    while c.pos < c.end && c.peek() != UInt8(ascii: "]") { c.pos += 1 }
                    c.pos += 1
                    c.skipSpaces()
                }
                parseThreadName(&c)
                return
            }
            c.pos = start
            guard let first = c.digits(), c.peek() == UInt8(ascii: "@") else {
                c.pos = start
                return
            }
            c.pos += 1
            guard let seconds = c.digits() else {
                c.pos = start
                return
            }
            if c.peek() == UInt8(ascii: "."), c.pos + 1 < c.end {
                // tid@sec.usec:
                c.pos += 1
                let fracStart = c.pos
                guard let frac = c.digits(), c.peek() == UInt8(ascii: ":") else {
                    c.pos = start
                    return
                }
                var ns = frac
                var digits = c.pos - fracStart
                while digits < 9 { ns = ns &* 10; digits += 1 }
                while digits > 9 { ns /= 10; digits -= 1 }
                c.pos += 1
                timestamp = seconds &* 1_000_000_000 &+ ns
                thread = UInt32(truncatingIfNeeded: first)
            } else if c.peek() == UInt8(ascii: " ") {
                // pid@ns (qemu-trace-stap: gettimeofday_ns; bpftrace: nsecs, monotonic)
                c.pos += 1
                timestamp = seconds
                monotonic = seconds < Self.wallClockFloor
                process = UInt32(truncatingIfNeeded: first)
            } else {
                c.pos = start
            }
            return
        }
        parseThreadName(&c)
    }

    /// `qemu-system-x86_64(<tid>:<thread name>): ` (the proposed prefix).
    private mutating func parseThreadName(_ c: inout Cursor) {
        let start = c.pos
        while c.pos < c.end, c.bytes[c.pos] != UInt8(ascii: "("), c.bytes[c.pos] != UInt8(ascii: " ") { c.pos += 1 }
        guard c.pos < c.end, c.bytes[c.pos] == UInt8(ascii: "("), c.pos > start else {
            c.pos = start
            return
        }
        c.pos += 1
        guard let tid = c.digits(), c.peek() == UInt8(ascii: ":") else {
            c.pos = start
            return
        }
        while c.pos + 1 < c.end, !(c.bytes[c.pos] == UInt8(ascii: ")") && c.bytes[c.pos + 1] == UInt8(ascii: ":")) {
            c.pos += 1
        }
        guard c.pos + 1 < c.end else {
            c.pos = start
            return
        }
        c.pos += 2
        c.skipSpaces()
        thread = UInt32(truncatingIfNeeded: tid)
    }
}

/// A read position over one line's bytes.
struct Cursor {
    let bytes: UnsafeBufferPointer<UInt8>
    var pos = 0
    var end: Int

    init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
        end = bytes.count
    }

    @inline(__always) func peek() -> UInt8? { pos < end ? bytes[pos] : nil }
    @inline(__always) func peekDigit() -> Bool { pos < end && bytes[pos] &- 48 < 10 }

    @inline(__always) mutating func skipSpaces() {
        while pos < end && bytes[pos] == 32 { pos += 1 }
    }

    /// Unsigned decimal digits; `nil` when there are none or they overflow.
    mutating func digits() -> UInt64? {
        var v: UInt64 = 0
        let start = pos
        // Up to 19 digits cannot overflow: no overflow checks for them.
        let fastEnd = min(end, pos &+ 19)
        while pos < fastEnd {
            let d = bytes[pos] &- 48
            guard d < 10 else { return pos > start ? v : nil }
            v = v &* 10 &+ UInt64(d)
            pos &+= 1
        }
        while pos < end {
            let d = bytes[pos] &- 48
            guard d < 10 else { break }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(UInt64(d))
            if o1 || o2 { return nil }
            v = a
            pos += 1
        }
        return pos > start ? v : nil
    }

    /// Consumes exactly `s` when the rest of the line starts with it.
    @inline(__always) mutating func take(_ s: StaticString) -> Bool {
        let n = s.utf8CodeUnitCount
        guard n <= end &- pos else { return false }
        let p = s.utf8Start
        var k = 0
        while k < n {
            guard bytes[pos &+ k] == p[k] else { return false }
            k &+= 1
        }
        pos &+= n
        return true
    }

    /// `migrate_pending`'s body exactly as QEMU prints it, up to the end of the line; `nil` (cursor unmoved)
    /// for any other layout, which the general parser then handles.
    mutating func exactPendingBody() -> ProbeArguments? {
        var t = self
        guard t.take(" pending size "), let size = t.digits(), t.take(" max "), let max = t.digits(),
            t.take(" (pre = "), let pre = t.digits(), t.take(" compat="), let compat = t.digits(),
            t.take(" post="), let post = t.digits(), t.take(")"), t.pos == t.end
        else { return nil }
        self = t
        return ProbeArguments(count: 5, size, max, pre, compat, post)
    }

    /// `migrate_transferred`'s body (4 or 5 arguments) exactly as QEMU prints it, up to the end of the line, with
    /// `max_size` within Int64; `nil` (cursor unmoved) otherwise.
    mutating func exactTransferredBody() -> ProbeArguments? {
        var t = self
        guard t.take(" transferred "), let transferred = t.digits(), t.take(" time_spent "), let timeSpent = t.digits(),
            t.take(" bandwidth "), let bandwidth = t.digits()
        else { return nil }
        var sw: UInt64?
        if t.take(" switchover_bw ") {
            guard let v = t.digits() else { return nil }
            sw = v
        }
        guard t.take(" max_size "), let max = t.digits(), max <= UInt64(Int64.max), t.pos == t.end else { return nil }
        self = t
        if let sw { return ProbeArguments(count: 5, transferred, timeSpent, bandwidth, sw, max) }
        return ProbeArguments(count: 4, transferred, timeSpent, bandwidth, max)
    }

    /// The body as bare numbers in probe order (a bpftrace one-liner's `arg0 arg1 …`), when it starts with a digit;
    /// nil (cursor unmoved) for a labelled body. The count must be the probe's (4 or 5 for migrate_transferred).
    mutating func positionalBody(_ kind: ProbeKind) throws(ParseError) -> ProbeArguments? {
        var t = self
        t.skipSpaces()
        guard t.peekDigit(), kind != .migrateSetState else { return nil }
        var values: [UInt64] = []
        while t.pos < t.end {
            guard t.peekDigit() || t.peek() == UInt8(ascii: "-") else {
                throw ParseError("bare argument \(values.count + 1) is not a number (column \(t.pos + 1))")
            }
            let v = try t.number(after: "argument")
            values.append(v)
            t.skipSpaces()
            guard values.count <= 8 else { throw ParseError("more than 8 arguments") }
        }
        let expected = kind.argumentCounts
        guard expected.contains(values.count) else {
            throw ParseError(
                "\(values.count) bare argument(s); \(kind.eventName) has \(expected.map(String.init).joined(separator: " or "))")
        }
        if kind == .migrateTransferred, let max = values.last, max > UInt64(Int64.max) {
            throw ParseError("value of 'max_size' does not fit in a signed 64-bit integer")
        }
        guard values.enumerated().allSatisfy({ ProbeArguments.fits($0.element, at: $0.offset) }) else {
            throw ParseError("a switchover-ack count above 32 bits")
        }
        self = t
        return ProbeArguments(values)
    }

    /// A number after `label`, with a reason when it is missing, negative or too large.
    mutating func number(after label: StaticString, signed: Bool = false) throws(ParseError) -> UInt64 {
        guard pos < end else { throw ParseError("line ends before the value of '\(label)'") }
        if bytes[pos] == UInt8(ascii: "-") {
            throw ParseError(signed ? "negative value for '\(label)'" : "negative value for unsigned '\(label)'")
        }
        let start = pos
        guard let v = digits() else {
            if pos > start || (pos < end && bytes[pos] &- 48 < 10) {
                throw ParseError("value of '\(label)' does not fit in 64 bits")
            }
            throw ParseError("expected a number after '\(label)'")
        }
        if signed && v > UInt64(Int64.max) { throw ParseError("value of '\(label)' does not fit in a signed 64-bit integer") }
        if pos < end && bytes[pos] != 32 && bytes[pos] != UInt8(ascii: ")") {
            throw ParseError("unexpected character after the value of '\(label)'")
        }
        return v
    }

    /// `label N` after optional spaces.
    mutating func labelled(_ label: StaticString, signed: Bool = false) throws(ParseError) -> UInt64 {
        try word(label)
        skipSpaces()
        return try number(after: label, signed: signed)
    }

    /// Whether the next word is `w`.
    func atWord(_ w: StaticString) -> Bool {
        let n = w.utf8CodeUnitCount
        guard n <= end &- pos else { return false }
        let p = w.utf8Start
        var k = 0
        while k < n {
            guard bytes[pos &+ k] == p[k] else { return false }
            k &+= 1
        }
        let i = pos &+ n
        return i == end || bytes[i] == 32
    }

    /// Consume the word `w` (after optional spaces).
    mutating func word(_ w: StaticString) throws(ParseError) {
        skipSpaces()
        guard pos < end else { throw ParseError("line ends where '\(w)' was expected") }
        guard atWord(w) else { throw ParseError("expected '\(w)' at column \(pos + 1)") }
        pos += w.utf8CodeUnitCount
    }

    /// Consume exactly `s`.
    mutating func literal(_ s: StaticString) throws(ParseError) {
        var i = pos
        let p = s.utf8Start
        for k in 0..<s.utf8CodeUnitCount {
            guard i < end else { throw ParseError("line ends where '\(s)' was expected") }
            guard bytes[i] == p[k] else { throw ParseError("expected '\(s)' at column \(pos + 1)") }
            i &+= 1
        }
        pos = i
    }

    /// Position of `needle` in the rest of the line.
    func find(_ needle: [UInt8]) -> Int? {
        guard needle.count <= end - pos else { return nil }
        let first = needle[0]
        var i = pos
        let last = end - needle.count
        while i <= last {
            if bytes[i] == first {
                var j = 1
                while j < needle.count && bytes[i + j] == needle[j] { j += 1 }
                if j == needle.count { return i }
            }
            i += 1
        }
        return nil
    }

    /// The event name at the cursor, consuming it, if it is one migtrace reads.
    mutating func eventName() -> ProbeKind? {
        let start = pos
        var i = pos
        while i < end && bytes[i] != 32 && bytes[i] != UInt8(ascii: ":") { i += 1 }
        let len = i - start
        guard len >= 15, len <= 28, bytes[start] == UInt8(ascii: "m") || bytes[start] == UInt8(ascii: "q") else { return nil }
        // Fast path: the names have distinct lengths, so the length picks the one candidate.
        let candidate: (StaticString, ProbeKind)? =
            switch len {
            case 19: ("migrate_transferred", .migrateTransferred)
            case 15: ("migrate_pending", .migratePending)
            case 24: ("migrate_pending_estimate", .migratePendingEstimate)
            case 21: ("migrate_pending_exact", .migratePendingExact)
            case 17: ("migrate_set_state", .migrateSetState)
            case 28: ("migration_thread_low_pending", .migrationThreadLowPending)
            case 27: ("migration_bitmap_sync_start", .bitmapSyncStart)
            case 25: ("migration_bitmap_sync_end", .bitmapSyncEnd)
            default: nil
            }
        if let (name, kind) = candidate, name.utf8CodeUnitCount == len {
            let p = name.utf8Start
            var k = 0
            while k < len && bytes[start &+ k] == p[k] { k &+= 1 }
            if k == len {
                pos = i
                return kind
            }
        }
        for (name, kind) in EventNames.table where name.count == len {
            var k = 0
            while k < len && bytes[start + k] == name[k] { k += 1 }
            if k == len {
                pos = i
                return kind
            }
        }
        return nil
    }

    func looksLikeISODate() -> Bool {
        pos + 10 < end && bytes[pos + 4] == UInt8(ascii: "-") && bytes[pos + 7] == UInt8(ascii: "-")
            && bytes[pos + 10] == UInt8(ascii: "T")
    }

    /// `YYYY-MM-DDTHH:MM:SS[.ffffff]Z` → ns since the epoch (UTC).
    mutating func isoTimestamp() -> UInt64? {
        func fixed(_ n: Int) -> Int? {
            guard pos + n <= end else { return nil }
            var v = 0
            for k in 0..<n {
                let d = bytes[pos + k] &- 48
                guard d < 10 else { return nil }
                v = v * 10 + Int(d)
            }
            pos += n
            return v
        }
        func expect(_ ch: Character) -> Bool {
            guard pos < end, bytes[pos] == ch.asciiValue! else { return false }
            pos += 1
            return true
        }
        guard let y = fixed(4), expect("-"), let mo = fixed(2), expect("-"), let d = fixed(2), expect("T"),
            let h = fixed(2), expect(":"), let mi = fixed(2), expect(":"), let s = fixed(2),
            (1...12).contains(mo), (1...31).contains(d), h < 24, mi < 60, s < 61
        else { return nil }
        var ns: UInt64 = 0
        if pos < end && bytes[pos] == UInt8(ascii: ".") {
            pos += 1
            let fracStart = pos
            guard let frac = digits() else { return nil }
            var digits = pos - fracStart
            ns = frac
            while digits < 9 { ns = ns &* 10; digits += 1 }
            while digits > 9 { ns /= 10; digits -= 1 }
        }
        guard expect("Z") else { return nil }
        // Days from civil (Howard Hinnant's algorithm).
        let yy = mo <= 2 ? y - 1 : y
        let era = (yy >= 0 ? yy : yy - 399) / 400
        let yoe = yy - era * 400
        let doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        guard days >= 0 else { return nil }
        let secs = UInt64(days) * 86_400 + UInt64(h * 3600 + mi * 60 + s)
        // Years after 2554 do not fit in 64-bit nanoseconds: not a timestamp QEMU writes.
        let (whole, o1) = secs.multipliedReportingOverflow(by: 1_000_000_000)
        let (total, o2) = whole.addingReportingOverflow(ns)
        guard !o1, !o2 else { return nil }
        return total
    }
}

/// The event names migtrace reads, as bytes.
enum EventNames {
    static let table: [([UInt8], ProbeKind)] = ProbeKind.allCases.map { (Array($0.eventName.utf8), $0) }
}
