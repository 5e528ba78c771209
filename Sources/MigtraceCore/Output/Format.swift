// SPDX-License-Identifier: Apache-2.0

/// Number formatting without Foundation or per-call allocation beyond the result.
public enum Format {
    /// `value` with exactly `decimals` digits after the point, rounded half away from zero.
    public static func fixed(_ value: Double, _ decimals: Int) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(24)
        appendFixed(value, decimals, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    private static let powers: [Double] = [1, 10, 100, 1000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000]

    /// Append `value` with `decimals` (0...8) digits after the point.
    public static func appendFixed(_ value: Double, _ decimals: Int, to out: inout [UInt8]) {
        guard value.isFinite else {
            out.append(contentsOf: value.isNaN ? Array("nan".utf8) : (value < 0 ? Array("-inf".utf8) : Array("inf".utf8)))
            return
        }
        var v = value
        if v < 0 {
            out.append(UInt8(ascii: "-"))
            v = -v
        }
        let scale = powers[decimals]
        let scaled = (v * scale).rounded()
        guard scaled < 1.8e19 else {
            out.append(contentsOf: Array(v.description.utf8))
            return
        }
        let n = UInt64(scaled)
        let whole = n / UInt64(scale)
        appendUnsigned(whole, to: &out)
        if decimals > 0 {
            out.append(UInt8(ascii: "."))
            var frac = n % UInt64(scale)
            var digits = [UInt8](repeating: UInt8(ascii: "0"), count: decimals)
            var i = decimals - 1
            while i >= 0 {
                digits[i] = UInt8(ascii: "0") + UInt8(frac % 10)
                frac /= 10
                i -= 1
            }
            out.append(contentsOf: digits)
        }
    }

    /// Append the decimal digits of `value`.
    @inline(__always)
    public static func appendUnsigned(_ value: UInt64, to out: inout [UInt8]) {
        if value < 10 {
            out.append(UInt8(ascii: "0") &+ UInt8(value))
            return
        }
        var tmp: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: room for 20 digits
        var v = value
        var len = 0
        withUnsafeMutableBytes(of: &tmp) { buf in
            var i = 23
            while v > 0 {
                buf[i] = UInt8(ascii: "0") &+ UInt8(v % 10)
                v /= 10
                i -= 1
                len += 1
            }
            out.append(contentsOf: buf[(24 - len)...])
        }
    }

    /// Append the shortest decimal form of `value` that reads back to the same double (JSON-safe).
    public static func appendExact(_ value: Double, to out: inout [UInt8]) {
        guard value.isFinite else {
            out.append(contentsOf: Array("null".utf8))
            return
        }
        if value == value.rounded(), abs(value) < 1e15 {
            if value < 0 { out.append(UInt8(ascii: "-")) }
            appendUnsigned(UInt64(abs(value)), to: &out)
            return
        }
        out.append(contentsOf: value.description.utf8)
    }
}
