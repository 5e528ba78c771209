// SPDX-License-Identifier: Apache-2.0

/// Number formatting without Foundation or per-call allocation beyond the result.
public enum NumberText {
    /// `value` with exactly `decimals` digits after the point, rounded half away from zero.
    public static func fixed(_ value: Double, _ decimals: Int) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(24)
        appendFixed(value, decimals, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Append `value` with `decimals` (0...8) digits after the point.
    public static func appendFixed(_ value: Double, _ decimals: Int, to out: inout [UInt8]) {
        var w = ASCIIWriter.Stack()
        w.withWriter { $0.fixed(value, decimals) }
        w.append(to: &out)
    }

    /// Append the decimal digits of `value`.
    @inline(__always)
    public static func appendUnsigned(_ value: UInt64, to out: inout [UInt8]) {
        if value < 10 {
            out.append(UInt8(ascii: "0") &+ UInt8(value))
            return
        }
        var w = ASCIIWriter.Stack()
        w.withWriter { $0.unsigned(value) }
        w.append(to: &out)
    }

    /// Append the shortest decimal form of `value` that reads back to the same double (JSON-safe).
    public static func appendExact(_ value: Double, to out: inout [UInt8]) {
        var w = ASCIIWriter.Stack()
        w.withWriter { $0.exact(value) }
        w.append(to: &out)
    }

    /// `Double.description` (shortest round-trip form), without building a String.
    @inline(__always)
    static func writeDescription(_ value: Double, _ w: inout ASCIIWriter) {
        value.write(to: &w)  // the stdlib hands its digit buffer to `_writeASCII`
    }
}
