// SPDX-License-Identifier: Apache-2.0

/// The text block per migration: converging?, when done?, what downtime?, what to change?
public enum MigrationText {
    /// `  device NAME: stop-copy N B (max M B), precopy initial N B, dirty N B; K events`, the name escaped.
    static func deviceLine(_ d: DeviceSummary) -> String {
        var parts: [String] = []
        if let s = d.stopCopyBytes {
            parts.append("stop-copy \(s) B" + (d.maxStopCopyBytes.map { $0 != s ? " (max \($0) B)" : "" } ?? ""))
        }
        if let i = d.precopyInitialBytes { parts.append("precopy initial \(i) B") }
        if let dirty = d.precopyDirtyBytes { parts.append("precopy dirty \(dirty) B") }
        if d.switchoverAckRequested == true { parts.append("asks for a switchover ack") }
        if d.failedQueries > 0 { parts.append("\(d.failedQueries) failed size queries (last \(d.lastError ?? 0))") }
        let summary = parts.isEmpty ? "" : " " + parts.joined(separator: ", ") + ";"
        return "  device \"\(MigrationState.escaped(Array(d.name.utf8)))\":\(summary) \(d.events) events\n"
    }

    /// Every migration's block, after a blank line; empty when there is none.
    public static func blocks(_ migrations: [MigrationAssessment], _ names: InputNames) -> String {
        migrations.map { block($0, names) }.joined()
    }

    /// One line for a live capture: the verdict, then when, what downtime, and what to change, as far as known.
    public static func statusLine(_ m: MigrationAssessment) -> String {
        var t: String
        switch m.verdict {
        case .completed: t = "completed"
        case .converging: t = "converging"
        case .stalled: t = "stalled"
        case .diverging: t = "diverging"
        case nil: t = "verdict unknown so far"
        }
        if m.verdict == .converging, let eta = m.etaSeconds {
            t += ", switchover in ≈ \(NumberText.fixed(eta, 0)) s"
            if let lo = m.etaLowSeconds, let hi = m.etaHighSeconds {
                t += " (\(NumberText.fixed(lo, 0))–\(NumberText.fixed(hi, 0)) s)"
            }
        }
        if let d = m.downtimeMs {
            t += "; downtime \(NumberText.fixed(d, 1)) ms"
        } else if let e = m.expectedDowntimeMs, e.isFinite {
            t += "; expected downtime \(NumberText.fixed(e, 0)) ms"
        }
        if let limit = m.downtimeLimitMs { t += " (limit \(limit) ms)" }
        if m.verdict == .stalled || m.verdict == .diverging, let a = m.advice {
            var change: [String] = []
            if let l = a.downtimeLimitMs { change.append("downtime-limit ≥ \(l) ms") }
            if let b = a.bandwidthBytesPerSecond { change.append("bandwidth ≥ \(NumberText.fixed(Double(b) / 1e6, 1)) MB/s") }
            if !change.isEmpty { t += "; to converge: " + change.joined(separator: " or ") }
        }
        return t
    }

    /// One migration's four lines.
    public static func block(_ m: MigrationAssessment, _ names: InputNames) -> String {
        let which = m.series.map { "series \($0)" } ?? "no windows"
        var t = "\nmigration · \(names[m.input]) · \(which) · \(m.outcome.rawValue)"
        t += m.iterations > 0 ? " after \(m.iterations) \(m.iterationsAreQueries ? "iterations" : "dirty syncs")\n" : "\n"
        // 1. Converging?
        t += "  converging? "
        switch m.verdict {
        case .completed: t += "yes, completed"
        case .converging: t += "yes"
        case .stalled: t += "no, stalled"
        case .diverging: t += "no, diverging"
        case nil: t += "unknown (too few dirty syncs traced)"
        }
        if let f = m.pendingFloorBytes, m.verdict != .completed { t += "; pending floor \(f) B" }
        if let sc = m.stopCopyBytes, sc > 0 { t += "; device stop-copy data \(sc) B" }
        if let r = m.dirtyRateBytesPerSecond { t += "; dirty rate \(NumberText.fixed(r / 1e6, 2)) MB/s" }
        t += "\n  when done?   "
        if m.verdict == .completed {
            if let s = m.switchover {
                t += "switched over"
                if let w = s.window { t += " after window \(w)" }
                if let p = s.pendingBytes { t += " with \(p) B pending" }
                if let thr = s.thresholdBytes { t += " (threshold \(thr) B)" }
            } else {
                t += "done"
            }
            if let tt = m.totalTimeMs { t += "; total \(NumberText.fixed(tt / 1000, 2)) s" }
        } else if let e = m.etaSeconds {
            t += "in about \(NumberText.fixed(e, 1)) s"
            if let lo = m.etaLowSeconds {
                t += " (\(NumberText.fixed(lo, 1))–" + (m.etaHighSeconds.map { NumberText.fixed($0, 1) } ?? "?") + " s)"
            }
        } else {
            t += "not at this rate"
        }
        t += "\n  downtime?    "
        if let d = m.downtimeMs {
            t += "\(NumberText.fixed(d, 1)) ms measured"
        } else if let e = m.expectedDowntimeMs, m.verdict == .completed {
            t += "not measured (the trace has no timestamps); \(NumberText.fixed(e, 0)) ms expected at the last sync"
        } else if let e = m.expectedDowntimeMs {
            t += "\(NumberText.fixed(e, 0)) ms expected if it switched over now"
        } else {
            t += "unknown"
        }
        if let l = m.downtimeLimitMs { t += " (limit \(l) ms)" }
        t += "\n  change?      "
        if let a = m.advice {
            t += a.reason
            if m.verdict == .stalled || m.verdict == .diverging {
                if let l = a.downtimeLimitMs { t += "; set downtime-limit ≥ \(l) ms" }
                if let b = a.bandwidthBytesPerSecond { t += " or give it ≥ \(NumberText.fixed(Double(b) / 1e6, 2)) MB/s" }
            }
        } else {
            t += "nothing to say yet"
        }
        t += "\n"
        for d in m.devices { t += deviceLine(d) }
        if m.otherDeviceEvents > 0 { t += "  (\(m.otherDeviceEvents) events of further devices not shown)\n" }
        return t
    }
}
