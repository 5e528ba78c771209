// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import MigtraceCore
@testable import MigtraceIO

/// The number writers behind CSV and JSON: byte-identical to what the standard library prints, since the
/// outputs are compared byte for byte across versions.
@Suite struct NumberTextTests {
    /// What `exact` has always meant: whole numbers below 10^15 as integers, everything else `description`.
    static func reference(_ v: Double) -> String {
        guard v.isFinite else { return "null" }
        if v == v.rounded(), abs(v) < 1e15 { return (v < 0 ? "-" : "") + String(UInt64(abs(v))) }
        return v.description
    }

    /// The former `fixed`: `rounded()` and divisions, kept here as the specification.
    static func referenceFixed(_ value: Double, _ decimals: Int) -> String {
        guard value.isFinite else { return value.isNaN ? "nan" : value < 0 ? "-inf" : "inf" }
        let v = abs(value)
        let sign = value < 0 ? "-" : ""
        let scale = (0..<decimals).reduce(1.0) { p, _ in p * 10 }
        let scaled = (v * scale).rounded()
        guard scaled < 1.8e19 else { return sign + v.description }
        let n = UInt64(scaled)
        let intScale = (0..<decimals).reduce(UInt64(1)) { p, _ in p * 10 }
        guard decimals > 0 else { return sign + String(n) }
        let fraction = String(n % intScale)
        return sign + String(n / intScale) + "." + String(repeating: "0", count: decimals - fraction.count) + fraction
    }

    static func exact(_ v: Double) -> String {
        var bytes: [UInt8] = []
        NumberText.appendExact(v, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    @Test func exactPrintsWhatDescriptionPrints() {
        let cases: [(Double, String)] = [
            (64801.07258064516, "64801.07258064516"),
            (518.4085806451612, "518.4085806451612"),
            (64.80107258064515, "64.80107258064515"),
            (19.440321, "19.440321"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1.0 / 3, "0.3333333333333333"),
            (0.0001, "0.0001"),
            (0.000123, "0.000123"),
            (9.999999999999999e-05, "9.999999999999999e-05"),  // below 10^-4: exponent form, from the library
            (1e-05, "1e-05"),
            (0.125, "0.125"),  // a power of two: left to the library
            (4_503_599_627_370_495.5, "4503599627370495.5"),
            (999_999_999_999_999.9, "999999999999999.9"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (123, "123"),
            (-0.5, "-0.5"),
            (-0.0, "0"),
            (5e-324, "5e-324"),
            (.nan, "null"),
            (-.infinity, "null"),
        ]
        for (value, text) in cases {
            #expect(Self.exact(value) == text, "\(value.bitPattern)")
            #expect(Self.exact(value) == Self.reference(value), "\(value.bitPattern)")
        }
    }

    /// A sample of every class of value, against `description` (bench/verify-doubles runs many millions).
    @Test func exactMatchesDescriptionOnSampledValues() {
        var rng = SplitMix64(seed: 0x6d69_6774_7261_6365)
        var values: [Double] = []
        for _ in 0..<20_000 {
            values.append(Double(bitPattern: rng.next()))  // any double
            let v = pow(10, Double.random(in: -4.5...15.5, using: &rng))  // the positional range and its edges
            values += [v, -v, v.nextUp, v.nextDown]
            let a = UInt64.random(in: 0...(1 << 40), using: &rng)
            let b = UInt64.random(in: 1...5000, using: &rng)
            values += [Double(a) / Double(b), ((Double(a) * 8.0) / (Double(b) / 1000.0)) / 1000.0 / 1000.0, Double(a) / 1_000_000]
            let short = Double("\(UInt64.random(in: 1...99_999, using: &rng))e\(Int.random(in: -9...11, using: &rng))")!
            values += [short, short.nextUp, short.nextDown]  // a short decimal sits on the interval's edge
        }
        for k in -6...17 {
            let p = Double("1e\(k)")!
            values += [p, p.nextUp, p.nextDown]
        }
        for k in -20...60 {
            let p = Double(sign: .plus, exponent: k, significand: 1)
            values += [p, p.nextUp, p.nextDown, p * 1.5]
        }
        var mismatches = 0
        for v in values where Self.exact(v) != Self.reference(v) {
            mismatches += 1
            Issue.record("\(v.bitPattern): \(Self.exact(v)) instead of \(Self.reference(v))")
            if mismatches > 10 { break }
        }
    }

    @Test func shortestDecimalTakesMostValuesAndLeavesTiesAndPowersOfTwo() throws {
        // 64801.07258064516: 16 digits, exponent -11.
        let d = try #require(ShortestDecimal.digits(64801.07258064516))
        #expect(d.0 == 6_480_107_258_064_516 && d.1 == -11)
        let third = try #require(ShortestDecimal.digits(1.0 / 3))
        #expect(third.0 == 3_333_333_333_333_333 && third.1 == -16)
        #expect(ShortestDecimal.digits(0.25) == nil)  // a power of two
        #expect(ShortestDecimal.digits(1024.5)! == (10245, -1))
    }

    @Test func log10OfPowersOfTwoIsExactWhereItIsUsed() {
        for q in -1100...1100 {
            let k = (q &* 78913) &>> 18
            // 2^q lies in [10^k, 10^(k+1)); never equal to a power of ten for q ≠ 0.
            let log = Double(q) * log10(2.0)
            #expect(Double(k) <= log && log < Double(k + 1), "q = \(q)")
        }
    }

    @Test func unsignedAndDigitCountAtEveryPowerOfTen() {
        var values: [UInt64] = [0, 1, 9, 10, 11, 99, 100, .max, .max - 1]
        var p: UInt64 = 1
        for _ in 0..<19 {
            p *= 10
            values += [p - 1, p, p + 1]
        }
        var rng = SplitMix64(seed: 7)
        for _ in 0..<10_000 { values.append(rng.next() >> (rng.next() % 64)) }
        for v in values {
            var bytes: [UInt8] = []
            NumberText.appendUnsigned(v, to: &bytes)
            #expect(String(decoding: bytes, as: UTF8.self) == String(v))
            #expect(ASCIIWriter.digitCount(v) == String(v).count)
        }
    }

    @Test func fixedRoundsHalfAwayFromZeroAsBefore() {
        var values: [Double] = [
            0, -0.0, 0.5, 1.5, 2.5, -2.5, 0.125, 0.0625, 1_700_000_000.140891, 1_700_000_000.1408915, 1.8e13, 1.9e13, 1e300, .nan,
            .infinity, -.infinity,
        ]
        var rng = SplitMix64(seed: 11)
        for _ in 0..<20_000 {
            values.append(Double.random(in: 1_699_999_000...1_700_100_000, using: &rng))
            values.append(Double(Int.random(in: 0...1_000_000_000, using: &rng)) / 1000)  // halves at 2 decimals
            values.append(Double(bitPattern: rng.next()))
        }
        for v in values {
            for decimals in [0, 1, 2, 3, 6, 8] {
                #expect(NumberText.fixed(v, decimals) == Self.referenceFixed(v, decimals), "\(v.bitPattern) \(decimals)")
            }
        }
    }
}

/// CSV rows go out in 64 KiB blocks: the bytes are the same whatever the block boundaries.
@Suite struct CSVBlockTests {
    @Test func rowsSpanningManyBlocksArriveWholeAndInOrder() throws {
        var lines: [String] = []
        for i in 0..<3000 {
            let transferred = UInt64(1_000_000 + i * 997)
            let bw = Double(transferred) / 100
            lines.append(
                "migrate_transferred transferred \(transferred) time_spent 100 bandwidth \(UInt64(bw)) max_size \(UInt64(bw * 300))")
        }
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("migtrace-csv-\(UUID().uuidString).log")
        try Data(lines.joined(separator: "\n").utf8).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }

        let out = MemoryOutput()
        let sink = CSVSink(out: out)
        let analyzer = MigrationAnalyzer(sink: sink)
        let fd = open(url.path, O_RDONLY)
        try #require(fd >= 0)
        defer { close(fd) }
        _ = try TraceReader.read(fd: fd, input: 0, into: analyzer)
        analyzer.finish()

        let rows = out.text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(out.bytes.count > 3 * CSVSink.blockSize)
        #expect(rows.count == 3002)  // header, 3000 rows, and the empty piece after the last newline
        #expect(rows[0] == Substring(CSVSink.columns.joined(separator: ",")))
        #expect(rows.last == "")
        for (i, row) in rows.dropFirst().dropLast().enumerated() {
            let fields = row.split(separator: ",", omittingEmptySubsequences: false)
            #expect(fields.count == CSVSink.columns.count)
            #expect(fields[1] == Substring(String(i)))
            #expect(fields[6] == Substring(String(1_000_000 + i * 997)))
        }
        // Row 1: 1000997 bytes in 100 ms, its doubles as `description` prints them.
        let row1 = rows[2].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        #expect(row1[0...5] == ["0", "1", "2", "A", "0.100000", "0.200000"])
        let bw = QEMUArithmetic.bandwidth(transferred: 1_000_997, timeSpent: 100)
        #expect(row1[11] == NumberTextTests.reference(bw))
        #expect(row1[12] == NumberTextTests.reference(QEMUArithmetic.mbps(transferred: 1_000_997, timeSpent: 100)))
        #expect(row1[13] == NumberTextTests.reference(bw / 1000))
        #expect(row1[17] == NumberTextTests.reference(Double(UInt64(bw * 300)) / 1_000_000))
    }
}
