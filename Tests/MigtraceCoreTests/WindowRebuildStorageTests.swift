// SPDX-License-Identifier: Apache-2.0
import Testing

@testable import MigtraceCore

/// `ThresholdRebuild` stores its optionals as values with presence flags: each must read back as it was set.
@Suite struct WindowRebuildStorageTests {
    func rebuild(limit: UInt64?, range: ClosedRange<UInt64>?, switchover: ClosedRange<UInt64>?) -> ThresholdRebuild {
        ThresholdRebuild(
            basis: .userFloat, expectedPerMs: 1234.5, downtimeLimitMs: limit, limitRange: range,
            switchoverBytesPerSecond: switchover, threshold: 370_350, exact: true)
    }

    @Test func optionalsReadBackAsGivenIncludingZeroValues() {
        for limit in [nil, 0, 300] as [UInt64?] {
            for range in [nil, 0...0, 300...300] as [ClosedRange<UInt64>?] {
                for switchover in [nil, 0...0, 1...999] as [ClosedRange<UInt64>?] {
                    let r = rebuild(limit: limit, range: range, switchover: switchover)
                    #expect(r.downtimeLimitMs == limit)
                    #expect(r.limitRange == range)
                    #expect(r.switchoverBytesPerSecond == switchover)
                    #expect(r.basis == .userFloat && r.expectedPerMs == 1234.5 && r.threshold == 370_350 && r.exact)
                }
            }
        }
    }

    @Test func settingAndClearingEachOptionalChangesOnlyIt() {
        var r = rebuild(limit: nil, range: nil, switchover: nil)
        r.downtimeLimitMs = 0
        #expect(r.downtimeLimitMs == 0 && r.limitRange == nil && r.switchoverBytesPerSecond == nil)
        r.switchoverBytesPerSecond = 0...0
        #expect(r.downtimeLimitMs == 0 && r.limitRange == nil && r.switchoverBytesPerSecond == 0...0)
        r.limitRange = 0...0
        #expect(r.downtimeLimitMs == 0 && r.limitRange == 0...0 && r.switchoverBytesPerSecond == 0...0)
        r.downtimeLimitMs = nil
        #expect(r.downtimeLimitMs == nil && r.limitRange == 0...0 && r.switchoverBytesPerSecond == 0...0)
        r.switchoverBytesPerSecond = nil
        r.limitRange = nil
        #expect(r == rebuild(limit: nil, range: nil, switchover: nil))
        #expect(r != rebuild(limit: 0, range: nil, switchover: nil))
        #expect(r != rebuild(limit: nil, range: 0...0, switchover: nil))
        #expect(r != rebuild(limit: nil, range: nil, switchover: 0...0))
    }

    @Test func aDeferredLimitRangeIsTheOneComputedEagerly() {
        // The fast path defers limitRange; it must equal the bisection and survive a change of its inputs.
        let args = ProbeArguments(count: 4, 1_000_000, 100, 10_000, 3_000_000)
        var fast = ThresholdRebuild.rebuild(
            era: .a, arguments: args, bandwidth: 10_000, mbps: 80, fixedLimit: nil, preferredLimit: 300)
        let slow = ThresholdRebuild.rebuild(
            era: .a, arguments: args, bandwidth: 10_000, mbps: 80, fixedLimit: nil, preferredLimit: nil)
        #expect(fast.exact && fast.downtimeLimitMs == 300)
        #expect(fast.limitRange == QEMUArithmetic.downtimeLimits(reproducing: 3_000_000, expectedPerMs: 10_000))
        #expect(fast.limitRange == slow.limitRange)
        let range = fast.limitRange
        fast.threshold = 0
        #expect(fast.limitRange == range)
    }

    @Test func theRebuildIsSmallerThanWithSwiftOptionals() {
        // 8 + 8 + 8 + 16 + 16 bytes of values and 6 one-byte fields: 62; with Swift optionals it was 90.
        #expect(MemoryLayout<ThresholdRebuild>.size <= 64)
    }
}
