// SPDX-License-Identifier: Apache-2.0
import Testing

@testable import MigtraceCore

/// QEMU's arithmetic per era, against values computed independently (Python's IEEE doubles).
@Suite struct ArithmeticTests {
    @Test func eraAWindowRebuildsQEMUsThreshold() {
        let args = ProbeArguments(count: 4, 33_554_432, 107, 313_592, 94_077_846)
        #expect(EraFit.classify(args) == EraFit(era: .a, ambiguous: false))
        let bw = QEMUArithmetic.bandwidth(transferred: 33_554_432, timeSpent: 107)
        #expect(bw == 313_592.8224299065)
        let r = ThresholdRebuild.rebuild(era: .a, arguments: args, bandwidth: bw, mbps: 0, fixedLimit: nil, preferredLimit: nil)
        #expect(r.exact)
        #expect(r.downtimeLimitMs == 300)
        #expect(r.limitRange == 300...300)
        #expect(r.basis == .measured)
        // With a 100 ms limit QEMU would have traced 31359282.
        let fixed = ThresholdRebuild.rebuild(era: .a, arguments: args, bandwidth: bw, mbps: 0, fixedLimit: 100, preferredLimit: nil)
        #expect(fixed.threshold == 31_359_282)
        #expect(!fixed.exact)
    }

    @Test func oneByteOffThresholdIsAMismatch() {
        // 1048576 / 101 * 300 = 3114582.17…: QEMU traces 3114582, never 3114581.
        let good = ProbeArguments(count: 4, 1_048_576, 101, 10381, 3_114_582)
        let bad = ProbeArguments(count: 4, 1_048_576, 101, 10381, 3_114_581)
        let bw = QEMUArithmetic.bandwidth(transferred: 1_048_576, timeSpent: 101)
        #expect(ThresholdRebuild.rebuild(era: .a, arguments: good, bandwidth: bw, mbps: 0, fixedLimit: 300, preferredLimit: nil).exact)
        let r = ThresholdRebuild.rebuild(era: .a, arguments: bad, bandwidth: bw, mbps: 0, fixedLimit: 300, preferredLimit: nil)
        #expect(!r.exact)
        #expect(r.threshold == 3_114_582)
    }

    @Test func eraBUserSetSwitchoverIntegerDivision() {
        // avail-switchover-bandwidth = 1234567 B/s → arg 4 = 1234; QEMU 10.0: threshold = 1234 * 300.
        let args = ProbeArguments(count: 5, 5_000_000, 100, 50_000, 1234, 370_200)
        #expect(EraFit.classify(args).era == .b)
        let r = ThresholdRebuild.rebuild(era: .b, arguments: args, bandwidth: 50_000, mbps: 400, fixedLimit: nil, preferredLimit: nil)
        #expect(r.basis == .userInteger)
        #expect(r.downtimeLimitMs == 300)
        #expect(r.exact)
        #expect(r.switchoverBytesPerSecond == 1_234_000...1_234_999)
    }

    @Test func eraBUserSetSwitchoverFloatDivision() {
        // After 10.0: (double)1234567 / 1000 * 300 = 370370.1 → 370370.
        let args = ProbeArguments(count: 5, 5_000_000, 100, 50_000, 1234, 370_370)
        let r = ThresholdRebuild.rebuild(era: .b, arguments: args, bandwidth: 50_000, mbps: 400, fixedLimit: nil, preferredLimit: 300)
        #expect(r.basis == .userFloat)
        #expect(r.exact)
        #expect(r.downtimeLimitMs == 300)
        let s = try! #require(r.switchoverBytesPerSecond)
        #expect(s.contains(1_234_567))
        #expect(
            QEMUArithmetic.threshold(expectedPerMs: QEMUArithmetic.userSwitchoverPerMs(bytesPerSecond: s.lowerBound), downtimeLimitMs: 300)
                == 370_370)
    }

    @Test func eraBUnsetUsesMeasuredBandwidth() {
        let args = ProbeArguments(count: 5, 33_554_432, 107, 313_592, 0, 94_077_846)
        #expect(EraFit.classify(args).era == .b)
        let bw = QEMUArithmetic.bandwidth(transferred: 33_554_432, timeSpent: 107)
        let r = ThresholdRebuild.rebuild(era: .b, arguments: args, bandwidth: bw, mbps: 0, fixedLimit: nil, preferredLimit: nil)
        #expect(r.basis == .measured)
        #expect(r.downtimeLimitMs == 300)
    }

    @Test func eraCEstimatedSwitchover() {
        let mb = QEMUArithmetic.mbps(transferred: 7_777_777, timeSpent: 113)
        #expect(mb == 550.6390796460176)
        let est = QEMUArithmetic.estimatedSwitchoverPerMs(mbps: mb)
        #expect(est == 68_829.8849557522)
        let args = ProbeArguments(count: 5, 7_777_777, 113, 550, 68_829, 20_648_965)
        #expect(EraFit.classify(args) == EraFit(era: .c, ambiguous: false))
        let r = ThresholdRebuild.rebuild(era: .c, arguments: args, bandwidth: 0, mbps: mb, fixedLimit: nil, preferredLimit: nil)
        #expect(r.basis == .estimated)
        #expect(r.exact)
        #expect(r.downtimeLimitMs == 300)
    }

    @Test func eraCRoundNumbers() {
        // 12.5 MB in 100 ms = 1000 Mbit/s; estimate 125000 bytes/ms; 300 ms → 37.5 MB.
        let args = ProbeArguments(count: 5, 12_500_000, 100, 1000, 125_000, 37_500_000)
        #expect(EraFit.classify(args).era == .c)
        let mb = QEMUArithmetic.mbps(transferred: 12_500_000, timeSpent: 100)
        let r = ThresholdRebuild.rebuild(era: .c, arguments: args, bandwidth: 125_000, mbps: mb, fixedLimit: nil, preferredLimit: nil)
        #expect(r.exact && r.downtimeLimitMs == 300 && r.basis == .estimated)
    }

    @Test func eraCUserSetSwitchover() {
        // User set 50 MB/s: arg 4 = 50000; threshold = 50000.0 * 300 = 15e6, while the link ran at 1000 Mbit/s.
        let args = ProbeArguments(count: 5, 12_500_000, 100, 1000, 50_000, 15_000_000)
        let mb = QEMUArithmetic.mbps(transferred: 12_500_000, timeSpent: 100)
        let r = ThresholdRebuild.rebuild(era: .c, arguments: args, bandwidth: 125_000, mbps: mb, fixedLimit: nil, preferredLimit: nil)
        #expect(r.basis == .userFloat)
        #expect(r.exact)
        #expect(r.downtimeLimitMs == 300)
    }

    @Test func lowTrafficIsAmbiguousAndLimitIsARange() {
        let args = ProbeArguments(count: 5, 50, 100, 0, 0, 150)
        #expect(EraFit.classify(args) == EraFit(era: .b, ambiguous: true))
        #expect(QEMUArithmetic.downtimeLimits(reproducing: 150, expectedPerMs: 0.5) == 300...301)
        let r = ThresholdRebuild.rebuild(era: .b, arguments: args, bandwidth: 0.5, mbps: 0.004, fixedLimit: nil, preferredLimit: 301)
        #expect(r.downtimeLimitMs == 301)
    }

    @Test func valuesThatFitNoEra() {
        #expect(EraFit.classify(ProbeArguments(count: 4, 1_000_000, 100, 77, 3_000_000)).era == nil)
        #expect(EraFit.classify(ProbeArguments(count: 5, 1_000_000, 100, 5000, 0, 3_000_000)).era == nil)
        #expect(EraFit.classify(ProbeArguments(count: 4, 1_000_000, 0, 0, 0)).era == nil)
    }

    @Test func noLimitReproducesAnImpossibleThreshold() {
        // 10000 bytes/ms can never give an odd threshold below 10000.
        #expect(QEMUArithmetic.downtimeLimits(reproducing: 9999, expectedPerMs: 10_000) == nil)
        #expect(QEMUArithmetic.downtimeLimits(reproducing: 0, expectedPerMs: 0) == 0...QEMUArithmetic.maxDowntimeLimitMs)
        #expect(QEMUArithmetic.truncate(-1) == 0)
        #expect(QEMUArithmetic.truncate(.nan) == 0)
        #expect(QEMUArithmetic.truncate(1e30) == .max)
    }

    @Test func zeroAvailBelowResolutionGivesZeroThreshold() {
        // Era B, 0 < avail-switchover-bandwidth < 1000 B/s: arg 4 = 0 and threshold 0 while bandwidth > 0.
        let args = ProbeArguments(count: 5, 1_000_000, 100, 10_000, 0, 0)
        let r = ThresholdRebuild.rebuild(era: .b, arguments: args, bandwidth: 10_000, mbps: 80, fixedLimit: nil, preferredLimit: 300)
        #expect(r.basis == .userBelowResolution)
        #expect(r.exact)
    }
}
