// SPDX-License-Identifier: Apache-2.0

/// Decimal digits and fixed text compared eight bytes at a time (SWAR: SIMD within a register), for the
/// fast path of the log parser.
///
/// Every load is an unaligned 8-byte little-endian load: callers guarantee that the bytes they ask about
/// lie in memory they own (see ``QEMULogParser/fastPathReach``).
enum SWAR {
    /// The 8 bytes at `p + offset` as a little-endian word (the first byte in the low bits).
    @inline(__always)
    static func load(_ p: UnsafeRawPointer, _ offset: Int) -> UInt64 {
        UInt64(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// A word with bits 4...7 of a byte set where that byte of `w` is not an ASCII digit.
    ///
    /// A byte is a digit when its high nibble is 3 and adding 6 leaves it 3 (low nibble ≤ 9). Adding 6 to a
    /// byte ≥ 0xFA carries into the next byte, but that byte is itself flagged, and callers only look at the
    /// bytes before the first flagged one.
    @inline(__always)
    static func nonDigits(_ w: UInt64) -> UInt64 {
        let high = (w & 0xF0F0_F0F0_F0F0_F0F0) ^ 0x3030_3030_3030_3030
        let low = ((w &+ 0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0) ^ 0x3030_3030_3030_3030
        return high | low
    }

    /// How many bytes of `w`, from the first, are ASCII digits (0...8).
    @inline(__always)
    static func leadingDigits(_ w: UInt64) -> Int {
        nonDigits(w).trailingZeroBitCount &>> 3
    }

    /// The value of the 8 ASCII digits in `w`, the first byte the most significant; bytes that are zero
    /// count as the digit 0, so a shorter number shifted up to the high bytes reads as itself.
    @inline(__always)
    static func eightDigits(_ w: UInt64) -> UInt64 {
        // Pairs of digits, then pairs of pairs, then the two halves: three multiplies instead of eight.
        var v = w & 0x0F0F_0F0F_0F0F_0F0F
        v = (v &* (10 << 8 + 1)) &>> 8
        v = ((v & 0x00FF_00FF_00FF_00FF) &* (100 << 16 + 1)) &>> 16
        return ((v & 0x0000_FFFF_0000_FFFF) &* (10_000 << 32 + 1)) &>> 32
    }

    /// The first `n` (1...7) bytes of `w` as digits.
    @inline(__always)
    static func firstDigits(_ w: UInt64, _ n: Int) -> UInt64 {
        eightDigits(w &<< (64 &- 8 &* n))
    }

    /// 10 to the power `n`, 0...9.
    @inline(__always)
    static func power10(_ n: Int) -> UInt64 {
        switch n {
        case 0: 1
        case 1: 10
        case 2: 100
        case 3: 1_000
        case 4: 10_000
        case 5: 100_000
        case 6: 1_000_000
        case 7: 10_000_000
        case 8: 100_000_000
        default: 1_000_000_000
        }
    }

    /// The unsigned decimal number at `p` and how many digits it has, when it has 1...19 (which always fit in
    /// 64 bits); length 0 when `p` holds no digit or 20 or more, which the exact parser then judges.
    ///
    /// Reads at most 24 bytes from `p`.
    @inline(__always)
    static func number(_ p: UnsafeRawPointer) -> (value: UInt64, length: Int) {
        let w0 = load(p, 0)
        let n0 = leadingDigits(w0)
        if n0 < 8 {
            return n0 == 0 ? (0, 0) : (firstDigits(w0, n0), n0)
        }
        let first = eightDigits(w0)
        let w1 = load(p, 8)
        let n1 = leadingDigits(w1)
        if n1 < 8 {
            return n1 == 0 ? (first, 8) : (first &* power10(n1) &+ firstDigits(w1, n1), 8 &+ n1)
        }
        let sixteen = first &* 100_000_000 &+ eightDigits(w1)
        let w2 = load(p, 16)
        let n2 = leadingDigits(w2)
        guard n2 < 4 else { return (0, 0) }
        return n2 == 0 ? (sixteen, 16) : (sixteen &* power10(n2) &+ firstDigits(w2, n2), 16 &+ n2)
    }
}

extension SWAR {
    /// Whether the `length` (1...19) bytes at `p + a` equal the bytes at `p + b`.
    ///
    /// Reads at most 24 bytes from each.
    @inline(__always)
    static func sameBytes(_ p: UnsafeRawPointer, _ a: Int, _ b: Int, _ length: Int) -> Bool {
        var difference = load(p, a) ^ load(p, b)
        if length > 8 {
            if difference != 0 { return false }
            difference = load(p, a &+ 8) ^ load(p, b &+ 8)
            if length > 16 {
                if difference != 0 { return false }
                difference = load(p, a &+ 16) ^ load(p, b &+ 16)
            }
        }
        // Of the last word only the first 1...8 bytes belong to the run.
        let lastBytes = (length &- 1) & 7 &+ 1
        return difference & (UInt64.max &>> (64 &- 8 &* lastBytes)) == 0
    }

    /// The number at `p + start` when it repeats the `knownLength` digits of `known` read at `p + knownStart`;
    /// else what ``number(_:)`` reads there.
    ///
    /// Without postcopy a pending line's `pre` is its size, digit for digit: comparing the digits costs a
    /// fifth of converting them. Should the number go on past the repeated digits, the length returned stops
    /// short of them and the caller's check of the text after it fails, leaving the line to the exact parser.
    @inline(__always)
    static func repeatedNumber(
        _ p: UnsafeRawPointer, _ start: Int, known: UInt64, at knownStart: Int, length knownLength: Int
    ) -> (value: UInt64, length: Int) {
        sameBytes(p, knownStart, start, knownLength) ? (known, knownLength) : number(p + start)
    }
}

/// The text the fast path compares, as little-endian words (tests check each against its spelling).
enum FastPathWords {
    static let migrate: UInt64 = 0x5f65_7461_7267_696d  // "migrate_"
    static let pendingSpace: UInt64 = 0x2067_6e69_646e_6570  // "pending "
    static let ngSize: UInt64 = 0x2065_7a69_7320_676e  // "ng size "
    static let max: UInt64 = 0x20_7861_6d20  // " max " (5 bytes: mask5)
    static let pre: UInt64 = 0x203d_2065_7270_2820  // " (pre = "
    static let compat: UInt64 = 0x3d74_6170_6d6f_6320  // " compat="
    static let post: UInt64 = 0x3d74_736f_7020  // " post=" (6 bytes: mask6)
    static let transfer: UInt64 = 0x7265_6673_6e61_7274  // "transfer"
    static let redTran: UInt64 = 0x6e61_7274_2064_6572  // "red tran"
    static let sferred: UInt64 = 0x2064_6572_7265_6673  // "sferred "
    static let timeSp: UInt64 = 0x7073_5f65_6d69_7420  // " time_sp"
    static let ent: UInt64 = 0x2074_6e65  // "ent " (4 bytes: mask4)
    static let bandwid: UInt64 = 0x6469_7764_6e61_6220  // " bandwid"
    static let ndwidth: UInt64 = 0x2068_7464_6977_646e  // "ndwidth " (bytes 3...10 of " bandwidth ")
    static let maxSiz: UInt64 = 0x7a69_735f_7861_6d20  // " max_siz"
    static let e: UInt64 = 0x2065  // "e " (2 bytes: mask2)
    static let switcho: UInt64 = 0x6f68_6374_6977_7320  // " switcho"
    static let overBw: UInt64 = 0x2077_625f_7265_766f  // "over_bw " (bytes 7...14 of " switchover_bw ")
    static let pendingUnderscore: UInt64 = 0x5f67_6e69_646e_6570  // "pending_"
    static let estimate: UInt64 = 0x6574_616d_6974_7365  // "estimate"
    static let spaceEstimat: UInt64 = 0x7461_6d69_7473_6520  // " estimat"
    static let ePendin: UInt64 = 0x6e69_646e_6570_2065  // "e pendin"
    static let exactEx: UInt64 = 0x7865_2074_6361_7865  // "exact ex"
    static let actPend: UInt64 = 0x646e_6570_2074_6361  // "act pend"
    static let ingSize: UInt64 = 0x657a_6973_2067_6e69  // "ing size"
    static let mask2: UInt64 = 0xFFFF
    static let mask4: UInt64 = 0xFFFF_FFFF
    static let mask5: UInt64 = 0xFF_FFFF_FFFF
    static let mask6: UInt64 = 0xFFFF_FFFF_FFFF
}

/// Values ``QEMULogParser/fastLine(_:memo:)`` read from earlier lines, by the words they were read from. The
/// initial values are those of a word of zero bytes, so they hold from the start.
package struct FastLineMemo {
    package init() {}
    package var firstWord: UInt64 = 0
    package var tid: UInt64 = 0
    package var tidLength = 0
    package var secondsHead: UInt64 = 0
    package var secondsHeadNanoseconds: UInt64 = 0
}

/// One line the fast path read: the event's fields and how many bytes the line took, newline included.
package struct FastLine {
    package var kind: ProbeKind
    package var arguments: ProbeArguments
    package var timestamp: UInt64
    package var thread: UInt32
    package var length: Int
}

extension QEMULogParser {
    /// How many bytes from a line's start ``fastLine(_:)`` may read: callers run it only where that many
    /// bytes of input follow. A line it accepts has at most 19 digits per number, so it reads at most
    /// 50 (prefix) + 32 (name) + 5 × 19 (numbers) + 48 (labels) + 8 (last load) = 233 bytes.
    package static let fastPathReach = 256

    /// The line at `p`, when it is `migrate_pending` (QEMU < 8.0), `migrate_pending_estimate`,
    /// `migrate_pending_exact` (QEMU ≥ 8.0) or `migrate_transferred` in QEMU's exact layout behind a
    /// `tid@sec.usec:` prefix, ending in `\n` or `\r\n`: the ~99 % of a real trace. `nil` for every other line,
    /// which the exact parser ``parse(_:line:)`` then reads.
    ///
    /// Every line it accepts, ``parse(_:line:)`` accepts too, with the same event: it finds the same fields
    /// (1...19 digits each, a 1...9 digit fraction), only faster, and declines everything else.
    ///
    /// SAFETY: `p` must be followed by at least ``fastPathReach`` readable bytes.
    @inline(__always)
    package static func fastLine(_ p: UnsafeRawPointer) -> FastLine? {
        var memo = FastLineMemo()
        return fastLine(p, memo: &memo)
    }

    /// ``fastLine(_:)`` remembering, in `memo`, the values of the line's first word and of its seconds' first
    /// 8 digits: consecutive lines mostly share both (one thread, the same 100 seconds).
    @inline(__always)
    package static func fastLine(_ p: UnsafeRawPointer, memo: inout FastLineMemo) -> FastLine? {
        typealias W = FastPathWords
        // tid@sec.usec: (the log backend with -msg timestamp=on)
        let first = SWAR.load(p, 0)
        let tid: UInt64
        let tidLength: Int
        if first == memo.firstWord {
            (tid, tidLength) = (memo.tid, memo.tidLength)
        } else {
            (tid, tidLength) = SWAR.number(p)
            // Below 8 digits the number is read from the first word alone.
            if tidLength < 8 { (memo.firstWord, memo.tid, memo.tidLength) = (first, tid, tidLength) }
        }
        guard tidLength > 0, p.load(fromByteOffset: tidLength, as: UInt8.self) == UInt8(ascii: "@") else { return nil }
        var i = tidLength &+ 1
        let timestamp: UInt64
        // QEMU prints "%zu.%06zu:", and seconds have 10 digits from 2001 to 2286: "SSSSSSSSSS.UUUUUU:" is read
        // as two words of 8 digits, the second gathered from the last 2 second digits and the 6 of the fraction.
        let head = SWAR.load(p, i)
        let tail = SWAR.load(p, i &+ 8) & W.mask2 | SWAR.load(p, i &+ 11) &<< 16
        if SWAR.nonDigits(head) | SWAR.nonDigits(tail) == 0,
            p.load(fromByteOffset: i &+ 10, as: UInt8.self) == UInt8(ascii: "."),
            p.load(fromByteOffset: i &+ 17, as: UInt8.self) == UInt8(ascii: ":")
        {
            // (head × 100 + s) × 10^9 + usec × 10^3 = head × 10^11 + tail × 10^3, with tail = s × 10^6 + usec
            if head != memo.secondsHead {
                (memo.secondsHead, memo.secondsHeadNanoseconds) = (head, SWAR.eightDigits(head) &* 100_000_000_000)
            }
            timestamp = memo.secondsHeadNanoseconds &+ SWAR.eightDigits(tail) &* 1_000
            i &+= 18
        } else {
            let (seconds, secondsLength) = SWAR.number(p + i)
            guard secondsLength > 0, p.load(fromByteOffset: i &+ secondsLength, as: UInt8.self) == UInt8(ascii: ".")
            else { return nil }
            i &+= secondsLength &+ 1
            let (fraction, fractionLength) = SWAR.number(p + i)
            guard fractionLength > 0, fractionLength <= 9,
                p.load(fromByteOffset: i &+ fractionLength, as: UInt8.self) == UInt8(ascii: ":")
            else { return nil }
            i &+= fractionLength &+ 1
            timestamp = seconds &* 1_000_000_000 &+ fraction &* SWAR.power10(9 &- fractionLength)
        }
        let thread = UInt32(truncatingIfNeeded: tid)

        guard SWAR.load(p, i) == W.migrate else { return nil }
        let second = SWAR.load(p, i &+ 8)
        var arguments: ProbeArguments
        let kind: ProbeKind
        if second == W.pendingSpace {
            // "migrate_pending pending size N max N (pre = N compat=N post=N)"
            guard SWAR.load(p, i &+ 16) == W.pendingSpace, SWAR.load(p, i &+ 21) == W.ngSize else { return nil }
            i &+= 29
            let sizeStart = i
            let (size, n0) = SWAR.number(p + i)
            guard n0 > 0, SWAR.load(p, i &+ n0) & W.mask5 == W.max else { return nil }
            i &+= n0 &+ 5
            let (max, n1) = SWAR.number(p + i)
            guard n1 > 0, SWAR.load(p, i &+ n1) == W.pre else { return nil }
            i &+= n1 &+ 8
            let (pre, n2) = SWAR.repeatedNumber(p, i, known: size, at: sizeStart, length: n0)
            guard n2 > 0, SWAR.load(p, i &+ n2) == W.compat else { return nil }
            i &+= n2 &+ 8
            let (compat, n3) = SWAR.number(p + i)
            guard n3 > 0, SWAR.load(p, i &+ n3) & W.mask6 == W.post else { return nil }
            i &+= n3 &+ 6
            let (post, n4) = SWAR.number(p + i)
            guard n4 > 0, p.load(fromByteOffset: i &+ n4, as: UInt8.self) == UInt8(ascii: ")") else { return nil }
            i &+= n4 &+ 1
            kind = .migratePending
            arguments = ProbeArguments(count: 5, size, max, pre, compat, post)
        } else if second == W.pendingUnderscore {
            // QEMU ≥ 8.0: "migrate_pending_estimate estimate pending size N (pre = N post=N)" (47 bytes before the
            // size) or "migrate_pending_exact exact pending size N (pre = N post=N)" (41 bytes).
            let third = SWAR.load(p, i &+ 16)
            if third == W.estimate {
                guard SWAR.load(p, i &+ 24) == W.spaceEstimat, SWAR.load(p, i &+ 32) == W.ePendin,
                    SWAR.load(p, i &+ 39) == W.ngSize
                else { return nil }
                i &+= 47
                kind = .migratePendingEstimate
            } else if third == W.exactEx {
                guard SWAR.load(p, i &+ 24) == W.actPend, SWAR.load(p, i &+ 32) == W.ingSize,
                    SWAR.load(p, i &+ 33) == W.ngSize
                else { return nil }
                i &+= 41
                kind = .migratePendingExact
            } else {
                return nil
            }
            let sizeStart = i
            let (size, n0) = SWAR.number(p + i)
            guard n0 > 0, SWAR.load(p, i &+ n0) == W.pre else { return nil }
            i &+= n0 &+ 8
            let (pre, n1) = SWAR.repeatedNumber(p, i, known: size, at: sizeStart, length: n0)
            guard n1 > 0, SWAR.load(p, i &+ n1) & W.mask6 == W.post else { return nil }
            i &+= n1 &+ 6
            let (post, n2) = SWAR.number(p + i)
            guard n2 > 0, p.load(fromByteOffset: i &+ n2, as: UInt8.self) == UInt8(ascii: ")") else { return nil }
            i &+= n2 &+ 1
            arguments = ProbeArguments(count: 3, size, pre, post)
        } else if second == W.transfer {
            // "migrate_transferred transferred N time_spent N bandwidth N [switchover_bw N] max_size N"
            guard SWAR.load(p, i &+ 16) == W.redTran, SWAR.load(p, i &+ 24) == W.sferred else { return nil }
            i &+= 32
            let (transferred, n0) = SWAR.number(p + i)
            guard n0 > 0, SWAR.load(p, i &+ n0) == W.timeSp, SWAR.load(p, i &+ n0 &+ 8) & W.mask4 == W.ent else {
                return nil
            }
            i &+= n0 &+ 12
            let (timeSpent, n1) = SWAR.number(p + i)
            guard n1 > 0, SWAR.load(p, i &+ n1) == W.bandwid, SWAR.load(p, i &+ n1 &+ 3) == W.ndwidth else { return nil }
            i &+= n1 &+ 11
            let (bandwidth, n2) = SWAR.number(p + i)
            guard n2 > 0 else { return nil }
            i &+= n2
            var switchover: UInt64?
            if SWAR.load(p, i) == W.switcho {
                guard SWAR.load(p, i &+ 7) == W.overBw else { return nil }
                i &+= 15
                let (sw, n) = SWAR.number(p + i)
                guard n > 0 else { return nil }
                i &+= n
                switchover = sw
            }
            guard SWAR.load(p, i) == W.maxSiz, SWAR.load(p, i &+ 8) & W.mask2 == W.e else { return nil }
            i &+= 10
            let (maxSize, n3) = SWAR.number(p + i)
            // A max_size past Int64.max is malformed (QEMU prints an int64_t): the exact parser says so.
            guard n3 > 0, maxSize <= UInt64(Int64.max) else { return nil }
            i &+= n3
            kind = .migrateTransferred
            if let switchover {
                arguments = ProbeArguments(count: 5, transferred, timeSpent, bandwidth, switchover, maxSize)
            } else {
                arguments = ProbeArguments(count: 4, transferred, timeSpent, bandwidth, maxSize)
            }
        } else {
            return nil
        }
        // The end of the line: "\n" or "\r\n" (the exact parser ignores a trailing \r too).
        let end = SWAR.load(p, i)
        if end & 0xFF == 10 {
            i &+= 1
        } else if end & W.mask2 == 0x0A0D {
            i &+= 2
        } else {
            return nil
        }
        return FastLine(kind: kind, arguments: arguments, timestamp: timestamp, thread: thread, length: i)
    }
}
