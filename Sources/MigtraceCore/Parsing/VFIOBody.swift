// SPDX-License-Identifier: Apache-2.0

extension QEMULogParser {
    /// A VFIO migration event at the cursor (after the prefix), or nil when the line holds none.
    ///
    /// VFIO formats its events as ` (%s) label value label value …` (10.0 prints `precopy initial size %PRIu64`,
    /// older releases `0x%PRIx64`). The 11.1 format strings are not pinned down here, so the body is read as
    /// labels and numbers in any order: a label is one or more words, a value decimal, `0x` hexadecimal or (for
    /// `ret`) negative, with `=`, `:` or `,` between them taken as spaces; each value goes to the field its label
    /// names (`stopcopy`/`stop copy`, `init`/`initial`, `dirty`, `ack`, `exact`, `final`, `reinit`, `ret`, …).
    func parseDevice(_ c: inout Cursor, prefix: Prefix, line: UInt64) -> LineResult? {
        guard c.end - c.pos > 5, c.bytes[c.pos] == UInt8(ascii: "v"), c.take("vfio_") else { return nil }
        c.pos -= 5
        let start = c.pos
        while c.pos < c.end, c.bytes[c.pos] != 32 { c.pos += 1 }
        let name = String(decoding: UnsafeBufferPointer(rebasing: c.bytes[start..<c.pos]), as: UTF8.self)
        guard let kind = DeviceEvent.Kind(rawValue: name) else { return nil }
        var event = DeviceEvent(kind: kind, name: "", origin: EventOrigin(input: input, line: line))
        event.timestampNanoseconds = prefix.timestamp
        event.threadID = prefix.thread
        do {
            try Self.deviceBody(&c, into: &event)
        } catch {
            return .malformed("\(kind.rawValue): \(error.reason)")
        }
        return .device(event)
    }

    private static func deviceBody(_ c: inout Cursor, into e: inout DeviceEvent) throws(ParseError) {
        c.skipSpaces()
        guard c.peek() == UInt8(ascii: "(") else { throw ParseError("expected '(device name)' at column \(c.pos + 1)") }
        // The name ends at the last ") " or ")" at the end: a name may itself hold parentheses.
        var close = -1
        var i = c.pos + 1
        while i < c.end {
            if c.bytes[i] == UInt8(ascii: ")"), i + 1 == c.end || c.bytes[i + 1] == 32 { close = i }
            i += 1
        }
        guard close > c.pos else { throw ParseError("the device name has no closing ')'") }
        e.name = String(decoding: UnsafeBufferPointer(rebasing: c.bytes[(c.pos + 1)..<close]), as: UTF8.self)
        c.pos = close + 1
        var label: [UInt8] = []
        var values = 0
        while true {
            while c.pos < c.end, [32, 44, 58, 61].contains(c.bytes[c.pos]) { c.pos += 1 }  // space , : =
            guard c.pos < c.end else { break }
            let b = c.bytes[c.pos]
            let isNumber = b &- 48 < 10 || (b == UInt8(ascii: "-") && c.pos + 1 < c.end && c.bytes[c.pos + 1] &- 48 < 10)
            if !isNumber {
                if !label.isEmpty { label.append(32) }
                while c.pos < c.end, ![32, 44, 58, 61].contains(c.bytes[c.pos]) {
                    label.append(c.bytes[c.pos])
                    c.pos += 1
                }
                continue
            }
            let at = c.pos + 1
            guard !label.isEmpty else { throw ParseError("a number without a label at column \(at)") }
            let text = String(decoding: label, as: UTF8.self)
            let value = try number(&c, label: text)
            try assign(value, to: text, in: &e, column: at)
            label.removeAll(keepingCapacity: true)
            values += 1
        }
        guard label.isEmpty else { throw ParseError("'\(MigrationState.escaped(label))' has no value") }
        guard values > 0 else { throw ParseError("no values after the device name") }
    }

    /// A decimal, `0x` hexadecimal or negative decimal number ending at a separator or the end of the line.
    private static func number(_ c: inout Cursor, label: String) throws(ParseError) -> Int128 {
        let negative = c.bytes[c.pos] == UInt8(ascii: "-")
        if negative { c.pos += 1 }
        var v: UInt64 = 0
        if c.end - c.pos > 2, c.bytes[c.pos] == 48, c.bytes[c.pos + 1] | 0x20 == UInt8(ascii: "x") {
            c.pos += 2
            let start = c.pos
            while c.pos < c.end, let d = hexDigit(c.bytes[c.pos]) {
                guard v >> 60 == 0 else { throw ParseError("value of '\(label)' does not fit in 64 bits") }
                v = v << 4 | d
                c.pos += 1
            }
            guard c.pos > start else { throw ParseError("expected hexadecimal digits after '\(label) 0x'") }
        } else {
            guard let d = c.digits() else { throw ParseError("value of '\(label)' does not fit in 64 bits") }
            v = d
        }
        if c.pos < c.end, ![32, 44, 58, 61].contains(c.bytes[c.pos]) {
            throw ParseError("unexpected character after the value of '\(label)' at column \(c.pos + 1)")
        }
        return negative ? -Int128(v) : Int128(v)
    }

    private static func hexDigit(_ b: UInt8) -> UInt64? {
        switch b {
        case 48...57: UInt64(b - 48)
        case 97...102: UInt64(b - 87)
        case 65...70: UInt64(b - 55)
        default: nil
        }
    }

    /// Put `value` in the field `label` names; labels this does not know are skipped (a newer QEMU may add some).
    private static func assign(_ value: Int128, to label: String, in e: inout DeviceEvent, column: Int) throws(ParseError) {
        let l = label.lowercased().replacing("_", with: " ")
        if l == "ret" {
            guard let r = Int64(exactly: value) else { throw ParseError("value of 'ret' does not fit in 64 bits") }
            e.ret = r
            return
        }
        guard value >= 0, let v = UInt64(exactly: value) else {
            throw ParseError("negative value for unsigned '\(label)' at column \(column)")
        }
        func flag() throws(ParseError) -> Bool {
            guard v <= 1 else { throw ParseError("'\(label)' is \(v); QEMU prints this flag as 0 or 1") }
            return v == 1
        }
        let words = l.split(separator: " ")
        // Whole words first: `reinit` is no initial size.
        if words == ["exact"] {
            e.exact = try flag()
        } else if words == ["final"] {
            e.final = try flag()
        } else if words == ["reinit"] {
            e.reinit = try flag()
        } else if l.contains("stopcopy") || l.contains("stop copy") || (e.kind == .queryStopCopySize && words == ["size"]) {
            e.stopCopyBytes = v
        } else if l.contains("init") {
            e.precopyInitialBytes = v
        } else if l.contains("dirty") {
            e.precopyDirtyBytes = v
        } else if l.contains("ack") {
            e.requestSwitchoverAck = try flag()
        } else if words == ["precopy"] {
            e.precopyBytes = v
        } else if words == ["postcopy"] {
            e.postcopyBytes = v
        }
    }
}
