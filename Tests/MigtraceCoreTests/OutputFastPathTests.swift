// SPDX-License-Identifier: Apache-2.0
import Testing

@testable import MigtraceCore

/// The CSV writer's shortcuts against the general writers they replace: the text must be the same byte for
/// byte, so each is compared with the general path on every value of a small range and on millions of others.
@Suite struct OutputFastPathTests {
    /// What `body` writes, into memory that holds other bytes before (as a CSV block holds earlier rows): a
    /// writer that reads back what it did not write would show it.
    static func written(_ body: (inout ASCIIWriter) -> Void) -> String {
        let scratch = UnsafeMutablePointer<UInt8>.allocate(capacity: 128)
        defer { scratch.deallocate() }
        for i in 0..<128 { scratch[i] = UInt8(truncatingIfNeeded: 0x5A &+ i &* 37) }
        var w = ASCIIWriter(scratch)
        body(&w)
        return String(decoding: UnsafeBufferPointer(start: scratch, count: w.count), as: UTF8.self)
    }

    /// `exactMillionths(n)` against `exact(Double(n) / 1_000_000)`, what the column was written with before.
    static func checkMillionths(_ values: [UInt64]) {
        var mismatches = 0
        for n in values {
            let fast = written { $0.exactMillionths(n) }
            let general = written { $0.exact(Double(n) / 1_000_000) }
            if fast != general {
                mismatches += 1
                Issue.record("\(n): \(fast) instead of \(general)")
                if mismatches > 10 { return }
            }
        }
    }

    @Test func millionthsBelowOneMillionAll() {
        Self.checkMillionths(Array(0..<1_000_000))
    }

    /// The CSV row's copies: the threshold's digits written once, then repeated, and turned into megabytes
    /// from that text; against writing each from the integer.
    @Test func millionthsFromWrittenDigitsAndRepeatedDigits() {
        var values: [UInt64] = Array(0..<2_000_000) + [.max, 1 << 53]
        var p: UInt64 = 1
        for _ in 0..<19 {
            p *= 10
            values += [p - 1, p, p + 1, p / 2 * 3, p / 2 + 1, p / 10 * 7]
        }
        var rng = SplitMix64(seed: 0x434f_5059)
        for _ in 0..<1_000_000 {
            let n = rng.next() >> (rng.next() % 64)
            values += [n, n / 1_000_000 * 1_000_000, n / 1000 * 1000, n / 10 * 10]
        }
        var mismatches = 0
        for n in values {
            let copied = Self.written {
                $0.unsigned(n)
                let length = $0.count
                $0.byte(UInt8(ascii: ","))
                $0.repeated(at: 0, length: length)
                $0.byte(UInt8(ascii: ","))
                $0.exactMillionths(n, digitsAt: 0, length: length)
                $0.byte(UInt8(ascii: ","))
            }
            let general = Self.written {
                $0.unsigned(n)
                $0.byte(UInt8(ascii: ","))
                $0.unsigned(n)
                $0.byte(UInt8(ascii: ","))
                $0.exactMillionths(n)
                $0.byte(UInt8(ascii: ","))
            }
            if copied != general {
                mismatches += 1
                Issue.record("\(n): \(copied) instead of \(general)")
                if mismatches > 10 { return }
            }
        }
    }

    @Test func millionthsEdgesAndRandomUpTo10To15() {
        var values: [UInt64] = [.max, .max - 1, 1 << 53, (1 << 53) + 1, (1 << 53) - 1]
        var p: UInt64 = 1
        for _ in 0..<19 {
            p *= 10
            values += [p - 1, p, p + 1, p / 2 * 3, p / 2 + 1]
        }
        var rng = SplitMix64(seed: 0x4d42)
        for _ in 0..<1_000_000 {
            let n = UInt64.random(in: 0..<1_000_000_000_000_000, using: &rng)
            // Any size, and values with trailing zeros (whole MB, a few fraction digits).
            values += [n, n >> (rng.next() % 50), n / 1000 * 1000]
        }
        Self.checkMillionths(values)
        // The oracle itself is `description` (whole values without `.0`) on a sample.
        for n in values.prefix(100_000) {
            #expect(Self.written { $0.exactMillionths(n) } == NumberTextTests.reference(Double(n) / 1_000_000), "\(n)")
        }
    }

    /// Every width from 1 to 20 (the 4-, 8-, 16- and 20-digit groupings and their edges), each number followed
    /// by a comma written after it: what the digit writer stores past a number must not survive the next write.
    @Test func unsignedAtEveryWidthFollowedByMoreText() {
        var values: [UInt64] = [0, 1, 9, 10, 99, 100, 9999, 10_000, .max, .max - 1]
        var p: UInt64 = 1
        for _ in 0..<19 {
            p *= 10
            values += [p - 1, p, p + 1, p / 10 * 9 + p / 100 * 7]
        }
        var rng = SplitMix64(seed: 20)
        for _ in 0..<1_000_000 { values.append(rng.next() >> (rng.next() % 64)) }
        var mismatches = 0
        for v in values {
            let text = Self.written {
                $0.unsigned(v)
                $0.byte(UInt8(ascii: ","))
                $0.unsigned(v / 3)
                $0.byte(UInt8(ascii: "."))
                $0.fixed(Double(v % 100_000_000) / 1e6, 6)
            }
            let expected = "\(v),\(v / 3).\(NumberTextTests.referenceFixed(Double(v % 100_000_000) / 1e6, 6))"
            if text != expected {
                mismatches += 1
                Issue.record("\(text) instead of \(expected)")
                if mismatches > 10 { return }
            }
        }
    }

    /// CSV times through one seconds cache, as a CSV sink writes them (runs of the same whole second, jumps,
    /// values that leave the fast path in between), against `fixed(_, 6)`.
    @Test func fixed6ReusingTheSecondsMatchesFixed() {
        var values: [Double] = [
            0, -0.0, 0.5, 0.4999999, 0.0000005, 0.00000049999, 1, 9.9999995, 9.9999994, 10, -1, -0.0000004, .nan,
            .infinity, -.infinity, 1_700_000_000.140891, 1_700_000_000.1408915, 1.8e13, 9.1e12, 9.3e12, 9.2e12, 1.9e13,
            1e300, 5e-324, 999_999.9999995, 999_999.9999994,
        ]
        var rng = SplitMix64(seed: 6)
        var t = 1_699_999_990.0
        for _ in 0..<300_000 {
            t += Double.random(in: 0...0.3, using: &rng)  // windows of up to 300 ms: mostly the same second
            values.append(t)
            switch rng.next() % 16 {
            case 0: values.append(Double(bitPattern: rng.next()))  // anything, then back to the run
            case 1: values.append(Double(rng.next() % 100_000_000_000) / 1000)
            case 2: values.append(Double.random(in: 0...100, using: &rng))
            default: break
            }
        }
        var last = ASCIIWriter.WholeSecondsText()
        var mismatches = 0
        for v in values {
            let fast = Self.written {
                $0.fixed6(v, reusing: &last)
                $0.byte(UInt8(ascii: ","))
            }
            let general = Self.written {
                $0.fixed(v, 6)
                $0.byte(UInt8(ascii: ","))
            }
            if fast != general {
                mismatches += 1
                Issue.record("\(v.bitPattern): \(fast) instead of \(general)")
                if mismatches > 10 { return }
            }
        }
    }

    /// The row writer spells era and basis out by cases: each must be the name, as the other outputs write it.
    @Test func csvRowsSpellEveryEraAndBasisAsTheirNames() {
        let bases: [SwitchoverBasis] = [.measured, .userInteger, .userFloat, .estimated, .userBelowResolution]
        let eras: [ProbeEra?] = [.a, .b, .c, nil]
        let out = MemoryOutput()
        let sink = CSVSink(out: out)
        let info = SeriesInfo(index: 0, input: 0, threadID: nil, processID: nil, era: nil, timeBase: .epoch)
        for basis in bases {
            for era in eras {
                let rebuild = ThresholdRebuild(
                    basis: basis, expectedPerMs: 1000, downtimeLimitMs: 300, limitRange: nil,
                    switchoverBytesPerSecond: nil, threshold: 300_000, exact: true)
                let w = AnalyzedWindow(
                    series: 0, index: 0, origin: EventOrigin(input: 0, line: 1), threadID: nil, startTime: 1,
                    endTime: 1.1, transferred: 100_000, timeSpentMs: 100, bandwidthTraced: 1000, switchoverTraced: nil,
                    thresholdTraced: 300_000, era: era, bandwidth: 1000, mbps: 8, bandwidthTracedExact: true,
                    rebuild: rebuild, cumulativeBytes: 100_000, pendingBytes: nil, pendingExact: false)
                sink.window(w, in: info)
            }
        }
        sink.finished(
            AnalysisReport(
                series: [], findings: [], diagnostics: [], rejectedCount: 0, eventCounts: [:], suppressedFindings: [:]))
        let rows = out.text.split(separator: "\n").dropFirst().map {
            $0.split(separator: ",", omittingEmptySubsequences: false)
        }
        #expect(rows.count == bases.count * eras.count)
        for (i, row) in rows.enumerated() {
            #expect(row.count == CSVSink.columns.count)
            #expect(row[3] == Substring(eras[i % eras.count]?.rawValue ?? ""))
            #expect(row[15] == Substring(bases[i / eras.count].rawValue))
        }
    }

    /// `exact` for every count of digits before the point (the one-word point insertion below 8, the byte loop
    /// from 8) and after it, against `description`.
    @Test func exactAtEveryPointPosition() {
        var rng = SplitMix64(seed: 17)
        var mismatches = 0
        for _ in 0..<200_000 {
            let k = Int(rng.next() % 20) - 4  // 10^-4 ... 10^15
            let v = Double.random(in: 1..<10, using: &rng) * Double("1e\(k)")!
            for x in [v, -v, (v * 1000).rounded() / 1000] {
                let text = Self.written { $0.exact(x) }
                guard text != NumberTextTests.reference(x) else { continue }
                mismatches += 1
                Issue.record("\(x.bitPattern): \(text) instead of \(NumberTextTests.reference(x))")
                if mismatches > 10 { return }
            }
        }
    }

    @Test func eightDigitValuesAreTheDecimalDigits() {
        var mismatches = 0
        func check(_ v: UInt32) {
            let word = ASCIIWriter.eightDigitValues(v)
            let ascii = withUnsafeBytes(of: (word | 0x3030_3030_3030_3030).littleEndian) { Array($0) }
            let text = String(decoding: ascii, as: UTF8.self)
            let expected = String(repeating: "0", count: 8 - String(v).count) + String(v)
            if text != expected, mismatches < 10 {
                mismatches += 1
                Issue.record("\(v): \(text) instead of \(expected)")
            }
        }
        for v in UInt32(0)..<200_000 { check(v) }
        var rng = SplitMix64(seed: 8)
        for _ in 0..<2_000_000 { check(UInt32(rng.next() % 100_000_000)) }
        for v: UInt32 in [99_999_999, 99_999_998, 10_000_000, 9_999_999, 50_000_000, 12_345_678, 87_654_321] {
            check(v)
        }
    }
}
