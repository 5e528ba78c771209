// SPDX-License-Identifier: Apache-2.0

/// Follows one migration (from `setup` to the next `setup` or the end of its input) and builds its
/// ``MigrationAssessment``: outcome, switchover, downtime, and the convergence model of its post-sync pending.
///
/// Fed by ``MigrationAnalyzer``: windows, pending events, bitmap syncs, the switchover decision and state
/// changes. State is bounded: the last few post-sync levels and windows only.
final class MigrationTracker {
    let input: Int
    /// The series whose windows arrive here (the first one).
    var series: Int?
    /// Whether any event arrived at all.
    private(set) var seen = false

    private var lastState: String?
    private var setupNs: UInt64?
    private var switchStartNs: UInt64?
    private var endNs: UInt64?

    // Windows.
    private var lastWindow: Int?
    private var lastEnd: Double?
    private var lastThreshold: UInt64?
    private var lastSwitchoverPerMs: Double?
    private var lastBasis: SwitchoverBasis = .measured
    private var limit: UInt64?
    /// The last 10 windows' bytes and lengths, as a ring (`recentNext` is the oldest once full): order does not
    /// matter to the sums read from it, and overwriting in place spares a shift per window.
    private var recent: [(bytes: UInt64, ms: UInt64)] = []
    private var recentNext = 0
    private var totalBytes: UInt64 = 0
    private var totalMs: UInt64 = 0

    // Pending and syncs.
    private var lastPending: UInt64?
    private var awaitingLevel = false
    private var preSync: UInt64?
    private var syncs = 0
    private var exacts = 0
    /// The levels after each dirty sync (the setup sync's included), the last `keep`.
    private var levels: [(bytes: UInt64, time: Double, before: UInt64?)] = []
    private var levelCount = 0
    private static let keep = 8
    private var verdicts: [(window: Int, verdict: ConvergenceVerdict)] = []
    private var switchover: Switchover?
    private var stopCopy: UInt64?
    /// The trace has QEMU 11.1's `qemu_savevm_query_pending`: iterations are its exact queries (11.1 counts them in
    /// the core loop), not RAM bitmap syncs, and each exact query's total is a post-iteration level.
    private var queryMode = false
    private var queryIterations = 0

    init(input: Int) { self.input = input }

    private var now: Double { lastEnd ?? 0 }

    func window(_ w: AnalyzedWindow) {
        seen = true
        if series == nil { series = w.series }
        guard series == w.series else { return }
        lastWindow = w.index
        lastEnd = w.endTime
        lastThreshold = w.thresholdTraced
        lastSwitchoverPerMs = w.rebuild.expectedPerMs
        lastBasis = w.rebuild.basis
        if let l = w.rebuild.downtimeLimitMs, w.rebuild.exact, l != limit {
            let changed = limit != nil
            limit = l
            // A new limit moves the threshold: the same levels may now converge (or stall).
            if changed { noteVerdict() }
        }
        if recent.count < 10 {
            recent.append((w.transferred, w.timeSpentMs))
        } else {
            recent[recentNext] = (w.transferred, w.timeSpentMs)
            recentNext = recentNext == 9 ? 0 : recentNext + 1
        }
        totalBytes &+= w.transferred
        totalMs &+= w.timeSpentMs
    }

    func pending(_ bytes: UInt64, exact: Bool) {
        seen = true
        if exact { exacts += 1 }
        if switchover == nil, !queryMode, awaitingLevel || (exact && syncs == 0) {
            awaitingLevel = false
            levelCount += 1
            levels.append((bytes, now, preSync))
            if levels.count > Self.keep { levels.removeFirst() }
            noteVerdict()
        }
        lastPending = bytes
    }

    private func noteVerdict() {
        if switchover == nil, let v = model().verdict, verdicts.last?.verdict != v, verdicts.count < 64 {
            verdicts.append((lastWindow ?? -1, v))
        }
    }

    /// QEMU 11.1's pending query: its total feeds pending as `migrate_pending_*`'s size does; an exact query that is
    /// not the final one ends an iteration, and its total is that iteration's level.
    func query(_ q: QueryPending) {
        seen = true
        queryMode = true
        awaitingLevel = false
        stopCopy = q.split.stopcopy
        if q.exact { exacts += 1 }
        if q.exact, !q.final {
            queryIterations += 1
            if switchover == nil {
                levelCount += 1
                levels.append((q.total, now, lastPending))
                if levels.count > Self.keep { levels.removeFirst() }
                noteVerdict()
            }
        }
        lastPending = q.total
    }

    func bitmapSyncEnd() {
        seen = true
        syncs += 1
        if switchover == nil, !queryMode {
            awaitingLevel = true
            preSync = lastPending
        }
    }

    func lowPending(_ bytes: UInt64, timestamp: UInt64?) {
        seen = true
        guard switchover == nil else { return }
        switchover = Switchover(
            window: lastWindow, time: lastEnd ?? timestamp.map(Self.seconds), pendingBytes: bytes,
            thresholdBytes: lastThreshold, event: ProbeKind.migrationThreadLowPending.eventName)
        if switchStartNs == nil { switchStartNs = timestamp }
    }

    /// Each VFIO device's reports, in order of first appearance; at most `maxDevices` (a garbled trace could name
    /// any number), later names are counted in `otherDeviceEvents`.
    private var devices: [DeviceSummary] = []
    private var deviceIndex: [String: Int] = [:]
    private var otherDeviceEvents = 0
    static let maxDevices = 64

    func device(_ e: DeviceEvent) {
        seen = true
        if let i = deviceIndex[e.name] {
            devices[i].add(e)
        } else if devices.count < Self.maxDevices {
            deviceIndex[e.name] = devices.count
            var d = DeviceSummary(name: e.name)
            d.add(e)
            devices.append(d)
        } else {
            otherDeviceEvents += 1
        }
    }

    /// Device data that only moves while the VM is stopped (QEMU 11.1 `stopcopy`), when the trace gives it.
    func stopCopy(_ bytes: UInt64) { stopCopy = bytes }

    func state(_ s: String, timestamp: UInt64?) {
        seen = true
        lastState = s
        switch s {
        case "setup": setupNs = timestamp
        case "device", "pre-switchover":
            if switchover == nil {
                switchover = Switchover(
                    window: lastWindow, time: lastEnd ?? timestamp.map(Self.seconds), pendingBytes: lastPending,
                    thresholdBytes: lastThreshold, event: ProbeKind.migrateSetState.eventName)
            }
            if switchStartNs == nil { switchStartNs = timestamp }
        case "completed", "failed", "cancelled": endNs = timestamp
        default: break
        }
    }

    private static func seconds(_ ns: UInt64) -> Double { Double(ns / 1000) / 1_000_000 + Double(ns % 1000) / 1e9 }

    private var outcome: MigrationOutcome {
        switch lastState {
        case "completed": .completed
        case "cancelled", "cancelling": .cancelled
        case "failed", "failing": .failed
        case nil: .unknown
        default: .running
        }
    }

    /// Bytes/ms the threshold is the product of, for advice: the recent mean for a measured basis, else QEMU's value.
    private var switchoverPerMs: Double? {
        if lastBasis == .measured, let bw = meanPerMs { return bw }
        return lastSwitchoverPerMs
    }

    private var meanPerMs: Double? {
        let ms = recent.reduce(0) { $0 &+ $1.ms }
        guard ms > 0 else { return nil }
        return recent.reduce(0.0) { $0 + Double($1.bytes) } / Double(ms)
    }

    /// The levels of the iterations proper: the setup sync's (all of RAM) is left out once there are others. An
    /// 11.1 trace's levels are all iterations' (the setup sync ends none).
    private var iterationLevels: [(bytes: UInt64, time: Double, before: UInt64?)] {
        !queryMode && levelCount == levels.count && levels.count > 1 ? Array(levels.dropFirst()) : levels
    }

    struct Model {
        var verdict: ConvergenceVerdict?
        var floor: UInt64?
        var ratio: Double?
        /// The coefficient of the fitted recurrence `L' = F + b (L − F)`.
        var coefficient: Double?
    }

    /// The convergence model of the post-sync levels.
    func model() -> Model {
        let ls = iterationLevels.map { Double($0.bytes) }
        guard let last = ls.last else { return Model() }
        let threshold = Double(lastThreshold ?? 0)
        guard ls.count >= 2 else {
            return Model(verdict: nil, floor: nil, ratio: nil, coefficient: nil)
        }
        let prev = ls[ls.count - 2]
        let ratio = prev > 0 ? last / prev : nil
        if let r = ratio, r > 1.1 { return Model(verdict: .diverging, floor: QEMUArithmetic.truncate(last), ratio: r, coefficient: r) }
        var floor: Double
        var b: Double
        if ls.count >= 3, ls[ls.count - 2] != ls[ls.count - 3] {
            // Aitken: the fixed point of the linear recurrence through the last three levels.
            b = (last - prev) / (prev - ls[ls.count - 3])
            if b >= 0, b < 1, last < prev {
                floor = max(0, last + (last - prev) * b / (1 - b))
            } else if last < prev {
                floor = 0
                b = ratio ?? 0
            } else {
                floor = last
            }
        } else {
            b = ratio ?? 1
            floor = (ratio ?? 1) < 0.9 ? 0 : last
        }
        // Device stop-copy data is part of every level and no iteration moves it: the floor is at least that.
        if let sc = stopCopy { floor = max(floor, Double(sc)) }
        let verdict: ConvergenceVerdict = floor < threshold || last < threshold ? .converging : .stalled
        return Model(verdict: verdict, floor: QEMUArithmetic.truncate(floor), ratio: ratio, coefficient: b)
    }

    /// Seconds until a post-sync level falls below the threshold, with the recurrence coefficient `b`. A floor
    /// below the threshold is reached whatever `b` (a limit raised over a stalled migration): `b` is capped
    /// below 1 so that the levels approach it.
    private func eta(floor: Double, b: Double, perMs: Double) -> Double? {
        guard perMs > 0, let thr = lastThreshold.map({ Double($0) }), floor < thr else { return nil }
        let b = min(b, 0.999)
        var t = max(0, Double(lastPending ?? 0) - thr) / perMs / 1000
        var level = floor + (Double(levels.last?.bytes ?? 0) - floor) * b
        var n = 0
        while level >= thr, n < 1000 {
            t += level / perMs / 1000
            level = floor + (level - floor) * b
            n += 1
        }
        return n == 1000 ? nil : t
    }

    func assess() -> MigrationAssessment {
        let outcome = outcome
        let m = model()
        let perMs = meanPerMs
        let iterations = queryMode ? queryIterations : syncs > 0 ? syncs : exacts
        var a = MigrationAssessment(
            series: series, input: input, outcome: outcome, verdict: outcome == .completed ? .completed : m.verdict,
            verdictChanges: verdicts, etaSeconds: nil, etaLowSeconds: nil, etaHighSeconds: nil,
            expectedDowntimeMs: nil, downtimeMs: nil, downtimeLimitMs: limit, switchover: switchover,
            iterations: iterations, postSyncPending: levels.map(\.bytes), dirtyRateBytesPerSecond: nil,
            pendingRatio: m.ratio, pendingFloorBytes: m.floor, stopCopyBytes: stopCopy,
            bandwidthBytesPerSecond: perMs.map { $0 * 1000 },
            switchoverBytesPerSecond: lastSwitchoverPerMs.map { $0 * 1000 }, totalBytes: totalBytes,
            totalTimeMs: nil, advice: nil)
        if outcome == .completed, verdicts.last?.verdict != .completed, verdicts.count < 64 {
            a.verdictChanges.append((lastWindow ?? -1, .completed))
        }
        if let s = switchStartNs, let e = endNs, outcome == .completed, e >= s { a.downtimeMs = Double(e - s) / 1e6 }
        if let s = setupNs, let e = endNs, e >= s {
            a.totalTimeMs = Double(e - s) / 1e6
        } else if totalMs > 0 {
            a.totalTimeMs = Double(totalMs)
        }
        // Dirty rate: what a pass dirtied (the new level less what was left before the sync) over the pass.
        let ls = iterationLevels
        if ls.count >= 2 {
            let cur = ls[ls.count - 1]
            let prev = ls[ls.count - 2]
            let dt = cur.time - prev.time
            if dt > 0, dt.isFinite { a.dirtyRateBytesPerSecond = Double(cur.bytes - min(cur.bytes, cur.before ?? 0)) / dt }
        }
        // QEMU 11.1 migration_downtime_calc_expected(): the limit while ≤ 1 sync, else last sync's bytes over bw.
        if iterations <= 1 {
            a.expectedDowntimeMs = limit.map { Double($0) }  // not `Double.init`, which picks init(bitPattern:)
        } else if let last = levels.last, let sw = lastSwitchoverPerMs, sw > 0 {
            a.expectedDowntimeMs = Double(last.bytes) / (sw * 1000) * 1000
        }
        if a.verdict == .converging, let f = m.floor, let b = m.coefficient, let bw = perMs {
            a.etaSeconds = eta(floor: Double(f), b: b, perMs: bw)
            a.etaLowSeconds = eta(floor: Double(f), b: b * 0.8, perMs: bw)
            a.etaHighSeconds = eta(floor: Double(f), b: min(b * 1.2, 0.999), perMs: bw)
        }
        a.iterationsAreQueries = queryMode
        a.devices = devices
        a.otherDeviceEvents = otherDeviceEvents
        a.advice = advice(a, m)
        return a
    }

    private func advice(_ a: MigrationAssessment, _ m: Model) -> ConvergenceAdvice? {
        if a.outcome == .completed {
            var reason = "completed"
            if let d = a.downtimeMs {
                reason += "; downtime \(NumberText.fixed(d, 1)) ms"
                if let l = limit { reason += d <= Double(l) ? " within the \(l) ms limit" : " over the \(l) ms limit" }
            }
            return ConvergenceAdvice(downtimeLimitMs: nil, bandwidthBytesPerSecond: nil, reason: reason + "; no change needed")
        }
        guard let verdict = a.verdict else { return nil }
        // The pending a switchover has to fit: the floor when stalled, else the latest post-sync level.
        let target: UInt64
        switch verdict {
        case .stalled: target = m.floor ?? levels.last?.bytes ?? 0
        default: target = levels.last?.bytes ?? 0
        }
        var limitMs: UInt64?
        if let perMs = switchoverPerMs, perMs > 0 {
            var l = min(QEMUArithmetic.truncate(Double(target) / perMs), QEMUArithmetic.maxDowntimeLimitMs + 1)
            while QEMUArithmetic.threshold(expectedPerMs: perMs, downtimeLimitMs: l) <= target,
                l <= QEMUArithmetic.maxDowntimeLimitMs
            {
                l += 1
            }
            limitMs = l <= QEMUArithmetic.maxDowntimeLimitMs ? l : nil
        }
        var bandwidth: UInt64?
        if let l = limit, l > 0, target < UInt64.max / 2000 { bandwidth = (target + 1) * 1000 / l + 1 }
        var reason: String
        switch verdict {
        case .converging:
            reason = "converging; no change needed (to switch over now, downtime-limit ≥ \(limitMs.map(String.init) ?? "?") ms)"
        case .stalled:
            reason = "pending settles at \(target) bytes, above the \(lastThreshold ?? 0)-byte threshold"
        case .diverging:
            reason = "the guest dirties memory faster than it is sent; consider auto-converge or postcopy"
        case .completed:
            reason = "completed"
        }
        if let sc = stopCopy, sc > 0 {
            if Double(target) <= Double(sc) * 1.05 {
                reason +=
                    "; the floor is device data (stop-copy, \(sc) bytes) that only moves while the VM is stopped: iterating cannot shrink it, only downtime-limit or bandwidth can"
            } else {
                reason +=
                    "; \(sc) of these bytes are device stop-copy data that only moves while the VM is stopped: a floor iterating cannot reduce"
            }
        }
        return ConvergenceAdvice(downtimeLimitMs: limitMs, bandwidthBytesPerSecond: bandwidth, reason: reason)
    }
}
