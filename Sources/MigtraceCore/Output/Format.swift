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

/// Appends ASCII to caller-owned memory with no bounds growth and no allocation: the number
/// formatting behind `Format`, and the CSV row builder. The caller guarantees the room
/// (a number takes at most 32 bytes).
struct ASCIIWriter: TextOutputStream {
    let base: UnsafeMutablePointer<UInt8>
    var count = 0

    init(_ base: UnsafeMutablePointer<UInt8>) { self.base = base }

    /// 64 bytes on the stack, for one number.
    struct Stack {
        var storage: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0

        mutating func withWriter(_ body: (inout ASCIIWriter) -> Void) {
            count = withUnsafeMutableBytes(of: &storage) { raw in
                var w = ASCIIWriter(raw.baseAddress!.assumingMemoryBound(to: UInt8.self))
                body(&w)
                return w.count
            }
        }

        mutating func append(to out: inout [UInt8]) {
            let n = count
            withUnsafeBytes(of: &storage) { raw in
                out.append(contentsOf: UnsafeBufferPointer(start: raw.baseAddress!.assumingMemoryBound(to: UInt8.self), count: n))
            }
        }
    }

    @inline(__always) mutating func byte(_ b: UInt8) {
        base[count] = b
        count &+= 1
    }

    @inline(__always) mutating func bytes(_ s: StaticString) {
        let n = s.utf8CodeUnitCount
        (base + count).update(from: s.utf8Start, count: n)
        count &+= n
    }

    mutating func write(_ string: String) {
        var s = string
        s.withUTF8 { u in
            (base + count).update(from: u.baseAddress!, count: u.count)
            count &+= u.count
        }
    }

    mutating func _writeASCII(_ buffer: UnsafeBufferPointer<UInt8>) {
        guard let p = buffer.baseAddress else { return }
        (base + count).update(from: p, count: buffer.count)
        count &+= buffer.count
    }

    /// The decimal digits of `value`.
    @inline(__always) mutating func unsigned(_ value: UInt64) {
        if value < 10 {
            byte(UInt8(ascii: "0") &+ UInt8(value))
            return
        }
        var n = 1
        var t = value
        while t >= 10 {
            t /= 10
            n &+= 1
        }
        digits(value, width: n)
    }

    /// The last `width` decimal digits of `value`, zero-padded on the left.
    @inline(__always) private mutating func digits(_ value: UInt64, width: Int) {
        var v = value
        var i = count &+ width &- 1
        while i >= count {
            base[i] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: v % 10)
            v /= 10
            i &-= 1
        }
        count &+= width
    }

    private static let powers: (Double, Double, Double, Double, Double, Double, Double, Double, Double) =
        (1, 10, 100, 1000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000)
    private static let intPowers: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) =
        (1, 10, 100, 1000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000)

    /// `value` with `decimals` (0...8) digits after the point, rounded half away from zero.
    mutating func fixed(_ value: Double, _ decimals: Int) {
        precondition((0...8).contains(decimals), "0...8 decimals")
        guard value.isFinite else {
            if value.isNaN { bytes("nan") } else if value < 0 { bytes("-inf") } else { bytes("inf") }
            return
        }
        var v = value
        if v < 0 {
            byte(UInt8(ascii: "-"))
            v = -v
        }
        let scale = withUnsafeBytes(of: Self.powers) { $0.load(fromByteOffset: decimals * 8, as: Double.self) }
        let scaled = (v * scale).rounded()
        guard scaled < 1.8e19 else {
            Format.writeDescription(v, &self)
            return
        }
        let n = UInt64(scaled)
        let intScale = withUnsafeBytes(of: Self.intPowers) { $0.load(fromByteOffset: decimals * 8, as: UInt64.self) }
        unsigned(n / intScale)
        if decimals > 0 {
            byte(UInt8(ascii: "."))
            digits(n % intScale, width: decimals)
        }
    }

    /// The shortest decimal form of `value` that reads back to the same double; `null` when not finite.
    mutating func exact(_ value: Double) {
        guard value.isFinite else {
            bytes("null")
            return
        }
        if value == value.rounded(), abs(value) < 1e15 {
            if value < 0 { byte(UInt8(ascii: "-")) }
            unsigned(UInt64(abs(value)))
            return
        }
        Format.writeDescription(value, &self)
    }
}
