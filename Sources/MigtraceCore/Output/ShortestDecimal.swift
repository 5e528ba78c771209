// SPDX-License-Identifier: Apache-2.0

/// The shortest round-trip digits of a double, as Swift's `description` chooses them, for the values analysis
/// output is made of: finite, not whole, 10^-4 ≤ |v| < 10^15 (where Swift writes positional notation).
///
/// Swift prints the shortest digit string that reads back to the same double and, among several of that
/// length, the one closest to the value. That is decided here exactly, with integers: for `v = c·2^q` and
/// `e = -⌊q·log10 2⌋`, `v·10^e = 4c·5^e / 2^shift` is a ratio of integers below 2^102, and the candidates
/// (Schubfach's selection: Giulietti, "The Schubfach way to render doubles") are compared with the rounding
/// interval without error. The interval's ends belong to it when `c` is even, as round-half-even reading
/// makes them. A power of two (its lower neighbour is nearer) and an exact tie between two candidates are
/// left to the standard library: `digits` returns `nil`.
enum ShortestDecimal {
    /// The smallest magnitude handled: below it Swift switches to exponent notation.
    static let lowerBound = 1e-4

    /// 5^0 ... 5^22, as literals: a constant array needs no lazy initialization (`swift_once`) per access.
    static let powersOfFive: [UInt64] = [
        1, 5, 25, 125, 625, 3125, 15625, 78125, 390_625, 1_953_125, 9_765_625, 48_828_125, 244_140_625, 1_220_703_125,
        6_103_515_625, 30_517_578_125, 152_587_890_625, 762_939_453_125, 3_814_697_265_625, 19_073_486_328_125,
        95_367_431_640_625, 476_837_158_203_125, 2_384_185_791_015_625,
    ]

    /// `(digits, exponent)` with `magnitude` ≈ `digits`·10^`exponent` and no trailing zero in `digits`, or `nil`
    /// when the value is outside this fast path. `magnitude` must be positive, not whole, and in
    /// `lowerBound..<1e15`.
    @inline(__always) static func digits(_ magnitude: Double) -> (UInt64, Int)? {
        let bits = magnitude.bitPattern
        let fraction = bits & ((1 << 52) &- 1)
        let biased = Int(truncatingIfNeeded: bits &>> 52)
        // A power of two has a nearer lower neighbour (irregular spacing); subnormals are out of range.
        guard fraction != 0, biased > 0 else { return nil }
        let c = fraction | (1 << 52)
        let q = biased &- 1075  // magnitude = c·2^q, q in -66...-3 here
        let k = (q &* 78913) &>> 18  // ⌊q·log10 2⌋, exact for |q| ≤ 1650
        let e = -k  // 10^e·2^q is in [1, 10): v·10^e = x is in [c, 10c), so ⌊x⌋ has 16 or 17 digits
        let shift = 2 &- (e &+ q)  // x = 4c·5^e / 2^shift
        guard e >= 1, e < powersOfFive.count, shift >= 2, shift < 60 else { return nil }
        let five = powersOfFive[e]
        let (high, low) = (c &<< 2).multipliedFullWidth(by: five)
        let unit = UInt64(1) &<< shift  // 1 in units of 2^-shift
        let s = high &<< (64 &- shift) | low &>> shift  // ⌊x⌋
        let rest = low & (unit &- 1)  // x - s
        // The interval's half-width is 2·5^e units: a candidate at distance `d` lies in it when d ≤ reach.
        let reach = (five &<< 1) &- (c & 1)
        // One digit fewer: the multiples of 10 around s (at most one lies in the interval, narrower than 10).
        let tens = s / 10
        let lastDigit = s &- tens &* 10
        let belowIn = rest &+ lastDigit &* unit <= reach
        let aboveIn = (10 &- lastDigit) &* unit &- rest <= reach
        // The multiple of 10 ends in 0: passed on already divided by 10 (`tens` or `tens + 1`), one place up.
        if belowIn != aboveIn { return stripped(belowIn ? tens : tens &+ 1, k &+ 1) }
        let sIn = rest <= reach
        let nextIn = unit &- rest <= reach
        if sIn != nextIn { return stripped(sIn ? s : s &+ 1, k) }
        // Both (the interval is wider than 1): the nearer one; a tie is left to the standard library.
        let half = unit &>> 1
        guard sIn, rest != half else { return nil }
        return stripped(rest < half ? s : s &+ 1, k)
    }

    @inline(__always) private static func stripped(_ digits: UInt64, _ exponent: Int) -> (UInt64, Int)? {
        var d = digits
        var x = exponent
        guard d != 0 else { return nil }
        while d % 10 == 0 {
            d /= 10
            x &+= 1
        }
        // A whole result means the input was whole: not this path's job.
        return x < 0 ? (d, x) : nil
    }
}
