// SPDX-License-Identifier: Apache-2.0

/// Appends ASCII to caller-owned memory with no bounds growth and no allocation: the number
/// formatting behind `NumberText`, and the CSV row builder. The caller guarantees the room
/// (a number takes at most 32 bytes, counting the up to 7 bytes the digit writers may store past its end).
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
        digits(value, width: Self.digitCount(value))
    }

    /// 10^0 ... 10^19: every power of ten a `UInt64` holds.
    static let powersOfTen: [UInt64] = [
        1, 10, 100, 1000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000, 1_000_000_000, 10_000_000_000,
        100_000_000_000, 1_000_000_000_000, 10_000_000_000_000, 100_000_000_000_000, 1_000_000_000_000_000,
        10_000_000_000_000_000, 100_000_000_000_000_000, 1_000_000_000_000_000_000, 10_000_000_000_000_000_000,
    ]

    /// How many decimal digits `value` has (1 for 0), from its bit length: no division.
    @inline(__always) static func digitCount(_ value: UInt64) -> Int {
        // 1233 / 4096 ≈ log10(2): a lower estimate of the digit count minus one, corrected by one comparison.
        let estimate = ((64 &- (value | 1).leadingZeroBitCount) &* 1233) &>> 12
        return estimate &+ (value | 1 >= powersOfTen[estimate] ? 1 : 0)
    }

    /// "00", "01", ..., "99": two digits per division by 100.
    private static let digitPairs: StaticString =
        "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"

    /// The `width` decimal digits of `value` (< 10^`width`, `width` ≤ 20), zero-padded on the left.
    ///
    /// Up to four digits as two pairs in one store; more in groups of eight (`eightDigitValues`: multiplications,
    /// no chain of divisions), written left to right with 8-byte stores, the leading group shifted to its width
    /// (beyond 16 digits, the leading 1 to 4 as pairs). A store may reach 7 bytes past its digits, into the next
    /// group's place or past the number (within the 32 bytes a number is given).
    @inline(__always) private mutating func digits(_ value: UInt64, width: Int) {
        let out = UnsafeMutableRawPointer(base + count)
        count &+= width
        // The last `width` (1...4) digits of `v` < 10^4 at `out`.
        @inline(__always) func fourOrFewer(_ v: UInt32, width: Int) {
            let pairs = UnsafeRawPointer(Self.digitPairs.utf8Start)
            let high = v / 100
            let four =
                UInt32(pairs.loadUnaligned(fromByteOffset: Int(high) &* 2, as: UInt16.self))
                | UInt32(pairs.loadUnaligned(fromByteOffset: Int(v &- high &* 100) &* 2, as: UInt16.self)) &<< 16
            out.storeBytes(of: four &>> ((4 &- width) &* 8), as: UInt32.self)
        }
        @inline(__always) func store(_ values: UInt64, at offset: Int) {
            out.storeBytes(of: values | 0x3030_3030_3030_3030, toByteOffset: offset, as: UInt64.self)
        }
        if width <= 4 {
            fourOrFewer(UInt32(truncatingIfNeeded: value), width: width)
        } else if width <= 8 {
            store(Self.eightDigitValues(UInt32(truncatingIfNeeded: value)) &>> ((8 &- width) &* 8), at: 0)
        } else if width <= 16 {
            let high = value / 100_000_000
            store(Self.eightDigitValues(UInt32(truncatingIfNeeded: high)) &>> ((16 &- width) &* 8), at: 0)
            store(Self.eightDigitValues(UInt32(truncatingIfNeeded: value &- high &* 100_000_000)), at: width &- 8)
        } else {
            let high = value / 10_000_000_000_000_000  // 1 to 4 digits
            let rest = value &- high &* 10_000_000_000_000_000
            let middle = rest / 100_000_000
            fourOrFewer(UInt32(truncatingIfNeeded: high), width: width &- 16)
            store(Self.eightDigitValues(UInt32(truncatingIfNeeded: middle)), at: width &- 16)
            store(Self.eightDigitValues(UInt32(truncatingIfNeeded: rest &- middle &* 100_000_000)), at: width &- 8)
        }
    }

    private static let powers: (Double, Double, Double, Double, Double, Double, Double, Double, Double) =
        (1, 10, 100, 1000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000)
    private static let intPowers: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) =
        (1, 10, 100, 1000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000)

    /// The text of the whole seconds `fixed6(_:reusing:)` wrote last: consecutive CSV times mostly share it.
    struct WholeSecondsText {
        /// None yet: no time that takes the fast path has this many seconds.
        var seconds = UInt64.max
        /// The digits (at most 13), in writing order; the bytes after them are whatever followed.
        var text: (UInt64, UInt64) = (0, 0)
        var length = 0
    }

    /// `fixed(value, 6)` (the CSV times), inlined into the row writer; the whole seconds are copied from `last`
    /// when they are the same as last time.
    @inline(__always) mutating func fixed6(_ value: Double, reusing last: inout WholeSecondsText) {
        let scaled = value * 1e6
        // Non-negative (or -0.0, written as 0 either way) and below 2^63: `Int64` conversions, cheaper than the
        // unsigned ones and the same here. NaN, negative and larger values take the general path.
        guard scaled >= 0, scaled < 9.2e18 else {
            fixed(value, 6)  // a call, so that this inlines small
            return
        }
        // `scaled.rounded()` (half away from zero), as in `fixed(_:decimals:scale:intScale:)`.
        let whole = Int64(scaled)
        let n = UInt64(bitPattern: scaled - Double(whole) >= 0.5 ? whole &+ 1 : whole)
        let seconds = n / 1_000_000
        let micros = UInt32(truncatingIfNeeded: n &- seconds &* 1_000_000)
        let out = UnsafeMutableRawPointer(base + count)
        if seconds == last.seconds {
            out.storeBytes(of: last.text.0, as: UInt64.self)
            out.storeBytes(of: last.text.1, toByteOffset: 8, as: UInt64.self)
            count &+= last.length
        } else {
            let start = count
            unsigned(seconds)  // < 9.2·10^12: 13 digits at most
            last.seconds = seconds
            last.text = (out.loadUnaligned(as: UInt64.self), out.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
            last.length = count &- start
        }
        base[count] = UInt8(ascii: ".")
        let fraction = Self.eightDigitValues(micros) &>> 16  // the 6 digits in bytes 0...5
        UnsafeMutableRawPointer(base + (count &+ 1)).storeBytes(of: fraction | 0x3030_3030_3030_3030, as: UInt64.self)
        count &+= 7
    }

    /// `value` with `decimals` (0...8) digits after the point, rounded half away from zero.
    mutating func fixed(_ value: Double, _ decimals: Int) {
        precondition((0...8).contains(decimals), "0...8 decimals")
        if decimals == 6 {
            // With the scale a constant, the division by 10^6 becomes a multiplication.
            fixed(value, decimals: 6, scale: 1e6, intScale: 1_000_000)
        } else {
            let scale = withUnsafeBytes(of: Self.powers) { $0.load(fromByteOffset: decimals * 8, as: Double.self) }
            let intScale = withUnsafeBytes(of: Self.intPowers) { $0.load(fromByteOffset: decimals * 8, as: UInt64.self) }
            fixed(value, decimals: decimals, scale: scale, intScale: intScale)
        }
    }

    /// `fixed(_:_:)` with 10^decimals given as a double and as an integer.
    @inline(__always) private mutating func fixed(_ value: Double, decimals: Int, scale: Double, intScale: UInt64) {
        guard value.isFinite else {
            if value.isNaN { bytes("nan") } else if value < 0 { bytes("-inf") } else { bytes("inf") }
            return
        }
        var v = value
        if v < 0 {
            byte(UInt8(ascii: "-"))
            v = -v
        }
        let scaled = v * scale
        // Values this large are whole numbers, so the test on `scaled` equals the old one on `scaled.rounded()`.
        guard scaled < 1.8e19 else {
            NumberText.writeDescription(v, &self)
            return
        }
        // `scaled.rounded()` (half away from zero) without the libm call: `whole` is the truncation, exact in a
        // double, so `scaled - Double(whole)` is the exact fraction.
        let whole = UInt64(scaled)
        let n = scaled - Double(whole) >= 0.5 ? whole &+ 1 : whole
        unsigned(n / intScale)
        if decimals > 0 {
            byte(UInt8(ascii: "."))
            digits(n % intScale, width: decimals)
        }
    }

    /// The shortest decimal form of `value` that reads back to the same double; `null` when not finite.
    ///
    /// Byte for byte `value.description`, except that whole numbers below 10^15 have no `.0`.
    mutating func exact(_ value: Double) {
        guard value.isFinite else {
            bytes("null")
            return
        }
        let magnitude = abs(value)
        // Whole (`Int64(value)` is exact below 10^15), the same test as `value == value.rounded()` without libm.
        if magnitude < 1e15, Double(Int64(value)) == value {
            if value < 0 { byte(UInt8(ascii: "-")) }
            unsigned(UInt64(magnitude))
            return
        }
        if magnitude >= ShortestDecimal.lowerBound, magnitude < 1e15, let (digits, exponent) = ShortestDecimal.digits(magnitude) {
            if value < 0 { byte(UInt8(ascii: "-")) }
            decimal(digits, exponent)
            return
        }
        NumberText.writeDescription(value, &self)
    }

    /// The `length` (≤ 24) bytes written at `offset`, once more: a field that repeats an earlier one.
    @inline(__always) mutating func repeated(at offset: Int, length: Int) {
        let from = UnsafeRawPointer(base + offset)
        let words = (
            from.loadUnaligned(as: UInt64.self), from.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
            from.loadUnaligned(fromByteOffset: 16, as: UInt64.self)
        )
        let to = UnsafeMutableRawPointer(base + count)
        to.storeBytes(of: words.0, as: UInt64.self)
        to.storeBytes(of: words.1, toByteOffset: 8, as: UInt64.self)
        to.storeBytes(of: words.2, toByteOffset: 16, as: UInt64.self)
        count &+= length
    }

    /// `exactMillionths(millionths)` when `unsigned(millionths)` wrote its `length` digits at `offset`: from
    /// 7 to 15 digits (10^6 ≤ `millionths` < 10^15) that text with the point before the last six, by word copies.
    @inline(__always) mutating func exactMillionths(_ millionths: UInt64, digitsAt offset: Int, length: Int) {
        guard length >= 7, length <= 15 else {
            exactMillionths(millionths)
            return
        }
        let from = UnsafeRawPointer(base + offset)
        let to = UnsafeMutableRawPointer(base + count)
        let whole = length &- 6
        // The six fraction digits as values 0...9 in bytes 0...5 (the top two bytes cleared).
        let text = from.loadUnaligned(fromByteOffset: whole, as: UInt64.self)
        let fraction = (text &- 0x3030_3030_3030_3030) & 0xFFFF_FFFF_FFFF
        let head = (from.loadUnaligned(as: UInt64.self), from.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        to.storeBytes(of: head.0, as: UInt64.self)
        to.storeBytes(of: head.1, toByteOffset: 8, as: UInt64.self)  // the whole part is at most 9 digits
        guard fraction != 0 else {
            count &+= whole  // a whole number of MB: no point
            return
        }
        to.storeBytes(of: UInt8(ascii: "."), toByteOffset: whole, as: UInt8.self)
        to.storeBytes(of: fraction | 0x3030_3030_3030_3030, toByteOffset: whole &+ 1, as: UInt64.self)
        count &+= whole &+ 9 &- fraction.leadingZeroBitCount &>> 3  // whole, point, digits to the last non-zero
    }

    /// `exact(Double(millionths) / 1_000_000)` (a byte count in MB), written from the integer.
    ///
    /// Below 10^15 the double is exact and the quotient is the double nearest `millionths`·10^-6, a decimal of
    /// at most 15 significant digits: that decimal is the unique shortest string reading back to it (DBL_DIG
    /// is 15), so Swift prints `millionths`' own digits with the point moved 6 places, trailing zeros dropped.
    /// Below 100 (under 10^-4, exponent notation) and from 10^15 on the general path keeps the text. Inlined
    /// into the row writer.
    @inline(__always) mutating func exactMillionths(_ millionths: UInt64) {
        guard millionths >= 100, millionths < 1_000_000_000_000_000 else {
            exact(Double(millionths) / 1_000_000)
            return
        }
        let whole = millionths / 1_000_000
        let fraction = UInt32(truncatingIfNeeded: millionths &- whole &* 1_000_000)
        unsigned(whole)
        guard fraction != 0 else { return }  // whole: no point, as `exact` writes it
        byte(UInt8(ascii: "."))
        // The six fraction digits in bytes 0...5 (the last two bytes zero), then without the trailing zeros.
        let values = Self.eightDigitValues(fraction) &>> 16
        (UnsafeMutableRawPointer(base + count)).storeBytes(of: values | 0x3030_3030_3030_3030, as: UInt64.self)
        count &+= 8 &- values.leadingZeroBitCount &>> 3
    }

    /// The digits of `value` (< 10^8, zero-padded to 8) as byte values 0...9 in a little-endian word, the first
    /// digit in the lowest byte (in writing order): all eight from a few multiplications on 32-, 16- and 8-bit
    /// lanes instead of one division per pair.
    @inline(__always) static func eightDigitValues(_ value: UInt32) -> UInt64 {
        let upper = value / 10_000
        let lower = value &- upper &* 10_000
        let quads = UInt64(upper) | UInt64(lower) &<< 32  // 4 digits per 32-bit lane
        let hundreds = (quads &* 10486) &>> 20 & (0x7F &<< 32 | 0x7F)  // lane / 100, exact below 10^4
        let pairs = (quads &- hundreds &* 100) &<< 16 | hundreds  // 2 digits per 16-bit lane
        let tens = (pairs &* 103) &>> 10 & 0x000F_000F_000F_000F  // lane / 10, exact below 100
        return tens | (pairs &- tens &* 10) &<< 8
    }

    /// `digits` · 10^`exponent` (`exponent` < 0, at most 17 digits) in positional notation, as Swift prints
    /// a double between 10^-4 and 2^53: `123.45`, `0.00012`.
    ///
    /// Inlined into `exact`, its only caller: no call and register saving per double.
    @inline(__always) mutating func decimal(_ digits: UInt64, _ exponent: Int) {
        let n = Self.digitCount(digits)
        let whole = n &+ exponent  // digits before the point
        if whole > 0 {
            // Every digit one place to the right, the whole part back one place left, the point between:
            // no division by a variable power of ten.
            let start = count
            count &+= 1
            self.digits(digits, width: n)
            if whole < 8 {
                // One word: bytes 0..<whole from one place right, the point, the rest (to byte 7) as they are.
                let at = UnsafeMutableRawPointer(base + start)
                let shifted = at.loadUnaligned(fromByteOffset: 1, as: UInt64.self)
                let inPlace = at.loadUnaligned(as: UInt64.self)
                let wholeBytes = (UInt64(1) &<< (whole &* 8)) &- 1
                let merged =
                    shifted & wholeBytes | UInt64(UInt8(ascii: ".")) &<< (whole &* 8)
                    | inPlace & ~(wholeBytes &<< 8 | 0xFF)
                at.storeBytes(of: merged, as: UInt64.self)
            } else {
                for i in 0..<whole { base[start &+ i] = base[start &+ i &+ 1] }
                base[start &+ whole] = UInt8(ascii: ".")
            }
        } else {
            byte(UInt8(ascii: "0"))
            byte(UInt8(ascii: "."))
            for _ in 0..<(-whole) { byte(UInt8(ascii: "0")) }
            self.digits(digits, width: n)
        }
    }
}
