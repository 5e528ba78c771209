// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import MigtraceCore

/// The rules run by concrete type (``BuiltinRules``); the registry, the order of findings and what the
/// rules keep of windows must stay as they were with an array of existentials.
@Suite struct RuleDispatchTests {
    /// The ids and report orders the rule files declare, read from the files themselves.
    static func ruleFiles() throws -> [(order: Int, id: String)] {
        let dir = Paths.repository.appendingPathComponent("Sources/MigtraceCore/Analysis/Rules")
        return try FileManager.default.contentsOfDirectory(atPath: dir.path).filter {
            $0.hasSuffix("Rule.swift") && $0 != "AnomalyRule.swift"
        }
        .map { name in
            let text = try String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)
            func value(_ key: String) -> String? {
                guard let r = text.range(of: "public static let \(key) = ") else { return nil }
                return String(text[r.upperBound...].prefix { $0 != "\n" }).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            }
            return (Int(value("reportOrder") ?? "") ?? -1, value("id") ?? name)
        }.sorted { $0.order < $1.order }
    }

    @Test func registryListsTheBuiltinRulesInRunOrder() throws {
        // Generated from the rule files: a new file is a new entry, in its report order, with nothing else to edit.
        #expect(RuleRegistry.ids == (try Self.ruleFiles()).map(\.id))
        #expect(RuleRegistry.ids.first == "thread-stall" && RuleRegistry.ids.contains("pending-unseen"))
        let rules = BuiltinRules(thresholds: RuleThresholds(), disabled: ["rate-capped", "trace-integrity"])
        #expect(rules.rateCapped == nil && rules.traceIntegrity == nil)
        #expect(rules.threadStall != nil && rules.unknownEra != nil)
    }

    /// One window that several rules report: their findings come in registry order.
    @Test func findingsOfOneWindowFollowTheRegistryOrder() throws {
        func line(_ t: String, _ transferred: UInt64, _ ms: UInt64, bandwidth: UInt64? = nil) -> String {
            let bw = Double(transferred) / Double(ms)
            return
                "11@\(t):migrate_transferred transferred \(transferred) time_spent \(ms) bandwidth \(bandwidth ?? UInt64(bw)) max_size \(UInt64(bw * 300))"
        }
        let log = [
            line("1700000000.100000", 1_000_000, 100),
            line("1700000000.200000", 1_000_000, 100),
            // 1500 ms (thread-stall), 20 s after the previous window (trace-integrity gap), a bandwidth
            // argument that fits no era (unknown-era, reported when the run ends).
            line("1700000021.700000", 1_000_000, 1500, bandwidth: 123),
            line("1700000021.800000", 1_000_000, 100),
        ].joined(separator: "\n")
        let sink = try analyze(text: log)
        let rules = sink.findings.map(\.rule)
        #expect(rules.contains("thread-stall") && rules.contains("trace-integrity") && rules.contains("unknown-era"))
        let order = RuleRegistry.ids
        let positions = rules.map { order.firstIndex(of: $0)! }
        // thread-stall and the gap are found on window 2, unknown-era when window 3 ends its run.
        #expect(rules.prefix(2) == ["thread-stall", "trace-integrity"])
        #expect(positions.prefix(2).elementsEqual(positions.prefix(2).sorted()))
        let gap = try #require(sink.findings.first { $0.rule == "trace-integrity" })
        #expect(gap.firstWindow == 1 && gap.lastWindow == 2)
        #expect(gap.startTime == sink.windows[1].startTime && gap.endTime == sink.windows[2].endTime)
    }

    @Test func windowRunKeepsTheFirstWindowAndWhereTheLastLies() throws {
        var run = WindowRun()
        #expect(run.take() == nil)
        #expect(run.isEmpty)
        let sink = try analyze(
            text: (0..<3).map { "migrate_transferred transferred \($0 + 1) time_spent 100 bandwidth 0 max_size 0" }.joined(separator: "\n"))
        for w in sink.windows { run.add(w) }
        let result = run.take()
        let taken = try #require(result)
        #expect(taken.first == sink.windows[0])
        #expect(taken.last == sink.windows[2].mark)
        #expect(taken.windows == 3 && taken.durationMs == 300)
        #expect(run.isEmpty)
        #expect(run.take() == nil)
    }

    /// The ring and the hand-shifted sorted copy give the median of the values in insertion order.
    @Test func slidingMedianFollowsTheValuesInInsertionOrder() {
        var rng = SplitMix64(seed: 3)
        for capacity in [0, 1, 3, 10, 25] {
            var m = RuleMath.SlidingMedian(capacity: capacity)
            var values: [Double] = []
            for step in 0..<5_000 {
                // Few distinct values, so that equal values are common.
                let v = Double(rng.next() % 40) * 0.5
                switch rng.next() % 7 {
                case 0 where !values.isEmpty:
                    let n = Int(rng.next() % UInt64(values.count)) + 1
                    m.removeOldest(n)
                    values.removeFirst(n)
                case 1 where step % 50 == 0:
                    let fresh = (0..<Int(rng.next() % 12)).map { _ in Double(rng.next() % 1000) }
                    m.reset(fresh)
                    values = fresh
                case 2 where !values.isEmpty, 3 where !values.isEmpty:
                    m.replaceOldest(with: v)
                    values.removeFirst()
                    values.append(v)
                default:
                    m.append(v)
                    values.append(v)
                }
                #expect(m.count == values.count)
                #expect(m.values == values)
                if !values.isEmpty { #expect(m.median == RuleMath.median(values)) }
            }
        }
    }
}

extension RuleDispatchTests {
    /// The steady state of a baseline: each window replaces the oldest value, with concrete medians.
    @Test func slidingMedianReplacesTheOldestValue() {
        var m = RuleMath.SlidingMedian(capacity: 4)
        for v in [5.0, 1.0, 4.0, 2.0] { m.append(v) }
        #expect(m.median == 3.0)
        var medians: [Double] = []
        for v in [3.0, 0.0, 7.5, 7.5, 2.0, 2.0, 0.25, 100.0, 4.0] {
            m.replaceOldest(with: v)
            medians.append(m.median)
        }
        #expect(medians == [2.5, 2.5, 2.5, 5.25, 4.75, 4.75, 2.0, 2.0, 3.0])
        #expect(m.values == [2.0, 0.25, 100.0, 4.0])
        #expect(m.count == 4)
    }

    /// Bandwidth-like values (finite, ≥ 0, many ties) through a 10-window baseline: the branch-free
    /// replacement and the plain median agree on every step, and on a fixed sample of them.
    @Test func slidingMedianReplacementMatchesThePlainMedian() {
        var rng = SplitMix64(seed: 11)
        var m = RuleMath.SlidingMedian(capacity: 10)
        var values: [Double] = []
        var sample: [Double] = []
        for step in 0..<20_000 {
            let v = Double(rng.next() % 5_000_000) / Double(100 + rng.next() % 50)
            if values.count < 10 {
                m.append(v)
                values.append(v)
            } else {
                m.replaceOldest(with: step % 97 == 0 ? 0 : v)
                values.removeFirst()
                values.append(step % 97 == 0 ? 0 : v)
            }
            #expect(m.median == RuleMath.median(values))
            if step % 5_000 == 4_999 { sample.append(m.median) }
        }
        #expect(m.values == values)
        #expect(sample.count == 4)
    }

    /// Negative values, -0 and NaN (never bandwidths) take the general path and keep the order of values.
    @Test func slidingMedianReplacementHandlesIrregularValues() {
        var m = RuleMath.SlidingMedian(capacity: 3)
        for v in [1.0, 2.0, 3.0] { m.append(v) }
        m.replaceOldest(with: -4.0)
        #expect(m.values == [2.0, 3.0, -4.0])
        #expect(m.median == 2.0)
        m.replaceOldest(with: -0.0)
        #expect(m.median == -0.0)
        m.replaceOldest(with: 10.0)
        #expect(m.values == [-4.0, -0.0, 10.0])
        #expect(m.median == 0.0)
        m.replaceOldest(with: .nan)
        #expect(m.count == 3 && m.values[2].isNaN)
        for v in [6.0, 8.0, 9.0] { m.replaceOldest(with: v) }
        #expect(m.values == [6.0, 8.0, 9.0])
        #expect(m.median == 8.0)
    }
}

/// A small deterministic generator, so that a failing sample can be reproduced.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
