// SPDX-License-Identifier: Apache-2.0

/// Text from input (file names, state strings, a recording's fields, reasons quoting them) made safe for a
/// terminal: no byte of it can move the cursor, change colours or end a line.
public enum TerminalText {
    /// `text` with every control character (C0, DEL and the C1 range U+0080–U+009F) written as `\xNN` or
    /// `\u{NNNN}`; everything else as it is.
    public static func escaped(_ text: some StringProtocol) -> String {
        var needs = false
        for u in text.unicodeScalars where isControl(u) {
            needs = true
            break
        }
        guard needs else { return String(text) }
        var out = ""
        out.unicodeScalars.reserveCapacity(text.unicodeScalars.count + 8)
        for u in text.unicodeScalars {
            if isControl(u) {
                let hex = String(u.value, radix: 16)
                out += u.value < 0x100 ? "\\x" + (u.value < 16 ? "0" : "") + hex : "\\u{\(hex)}"
            } else {
                out.unicodeScalars.append(u)
            }
        }
        return out
    }

    /// A control character: C0, DEL, C1, and the bidirectional overrides and isolates that reorder what follows.
    @inline(__always)
    static func isControl(_ u: Unicode.Scalar) -> Bool {
        let v = u.value
        return v < 0x20 || (v >= 0x7f && v < 0xa0) || (v >= 0x202a && v <= 0x202e) || (v >= 0x2066 && v <= 0x2069)
    }
}
