// SPDX-License-Identifier: Apache-2.0

/// The `migrations` array of `analyze --format json`: one object per migration (see README "Migrations").
public enum MigrationJSON {
    /// Append `"migrations":[…]` (a key and its array, no leading comma).
    public static func field(_ migrations: [MigrationAssessment], _ o: inout JSONWriter) {
        o.raw("\"migrations\":[")
        for (i, m) in migrations.enumerated() {
            if i > 0 { o.raw(",") }
            object(m, &o)
        }
        o.raw("]")
    }

    /// Append one migration as a JSON object.
    public static func object(_ m: MigrationAssessment, _ o: inout JSONWriter) {
        func u(_ v: UInt64?) { if let v { o.unsigned(v) } else { o.raw("null") } }
        func n(_ v: Double?) { if let v, v.isFinite { o.number(v) } else { o.raw("null") } }
        func s(_ v: String?) { if let v { o.string(v) } else { o.raw("null") } }
        o.raw("{\"series\":"); u(m.series.map(UInt64.init))
        o.raw(",\"input\":"); o.unsigned(UInt64(m.input))
        o.raw(",\"outcome\":"); o.string(m.outcome.rawValue)
        o.raw(",\"verdict\":"); s(m.verdict?.rawValue)
        o.raw(",\"verdicts\":[")
        for (i, v) in m.verdictChanges.enumerated() {
            if i > 0 { o.raw(",") }
            o.raw("{\"window\":"); if v.window >= 0 { o.unsigned(UInt64(v.window)) } else { o.raw("null") }
            o.raw(",\"verdict\":"); o.string(v.verdict.rawValue); o.raw("}")
        }
        o.raw("],\"eta_seconds\":"); n(m.etaSeconds)
        o.raw(",\"eta_low_seconds\":"); n(m.etaLowSeconds)
        o.raw(",\"eta_high_seconds\":"); n(m.etaHighSeconds)
        o.raw(",\"expected_downtime_ms\":"); n(m.expectedDowntimeMs)
        o.raw(",\"downtime_ms\":"); n(m.downtimeMs)
        o.raw(",\"downtime_limit_ms\":"); u(m.downtimeLimitMs)
        o.raw(",\"switchover\":")
        if let sw = m.switchover {
            o.raw("{\"window\":"); u(sw.window.map(UInt64.init))
            o.raw(",\"time\":"); n(sw.time)
            o.raw(",\"pending_bytes\":"); u(sw.pendingBytes)
            o.raw(",\"threshold_bytes\":"); u(sw.thresholdBytes)
            o.raw(",\"event\":"); o.string(sw.event); o.raw("}")
        } else {
            o.raw("null")
        }
        o.raw(",\"iterations\":"); o.unsigned(UInt64(m.iterations))
        o.raw(",\"post_sync_pending_bytes\":[")
        for (i, l) in m.postSyncPending.enumerated() {
            if i > 0 { o.raw(",") }
            o.unsigned(l)
        }
        o.raw("],\"pending_ratio\":"); n(m.pendingRatio)
        o.raw(",\"dirty_rate_bytes_per_second\":"); n(m.dirtyRateBytesPerSecond)
        o.raw(",\"pending_floor_bytes\":"); u(m.pendingFloorBytes)
        o.raw(",\"stop_copy_bytes\":"); u(m.stopCopyBytes)
        o.raw(",\"bandwidth_bytes_per_second\":"); n(m.bandwidthBytesPerSecond)
        o.raw(",\"switchover_bytes_per_second\":"); n(m.switchoverBytesPerSecond)
        o.raw(",\"total_bytes\":"); o.unsigned(m.totalBytes)
        o.raw(",\"total_time_ms\":"); n(m.totalTimeMs)
        o.raw(",\"advice\":")
        if let a = m.advice {
            o.raw("{\"downtime_limit_ms\":"); u(a.downtimeLimitMs)
            o.raw(",\"bandwidth_bytes_per_second\":"); u(a.bandwidthBytesPerSecond)
            o.raw(",\"reason\":"); o.string(a.reason); o.raw("}")
        } else {
            o.raw("null")
        }
        o.raw(",\"devices\":[")
        for (i, d) in m.devices.enumerated() {
            if i > 0 { o.raw(",") }
            o.raw("{\"name\":"); o.string(d.name)
            o.raw(",\"events\":"); o.unsigned(UInt64(d.events))
            o.raw(",\"stop_copy_bytes\":"); u(d.stopCopyBytes)
            o.raw(",\"max_stop_copy_bytes\":"); u(d.maxStopCopyBytes)
            o.raw(",\"precopy_initial_bytes\":"); u(d.precopyInitialBytes)
            o.raw(",\"precopy_dirty_bytes\":"); u(d.precopyDirtyBytes)
            o.raw(",\"switchover_ack_requested\":")
            if let a = d.switchoverAckRequested { o.raw(a ? "true" : "false") } else { o.raw("null") }
            o.raw(",\"failed_queries\":"); o.unsigned(UInt64(d.failedQueries))
            o.raw(",\"last_error\":"); if let e = d.lastError { o.signed(e) } else { o.raw("null") }
            o.raw("}")
        }
        o.raw("]")
        if m.otherDeviceEvents > 0 { o.raw(",\"other_device_events\":"); o.unsigned(UInt64(m.otherDeviceEvents)) }
        o.raw("}")
    }
}

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
        if let r = m.dirtyRateBytesPerSecond { t += "; dirty rate \(Format.fixed(r / 1e6, 2)) MB/s" }
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
            if let tt = m.totalTimeMs { t += "; total \(Format.fixed(tt / 1000, 2)) s" }
        } else if let e = m.etaSeconds {
            t += "in about \(Format.fixed(e, 1)) s"
            if let lo = m.etaLowSeconds { t += " (\(Format.fixed(lo, 1))–" + (m.etaHighSeconds.map { Format.fixed($0, 1) } ?? "?") + " s)" }
        } else {
            t += "not at this rate"
        }
        t += "\n  downtime?    "
        if let d = m.downtimeMs {
            t += "\(Format.fixed(d, 1)) ms measured"
        } else if let e = m.expectedDowntimeMs, m.verdict == .completed {
            t += "not measured (the trace has no timestamps); \(Format.fixed(e, 0)) ms expected at the last sync"
        } else if let e = m.expectedDowntimeMs {
            t += "\(Format.fixed(e, 0)) ms expected if it switched over now"
        } else {
            t += "unknown"
        }
        if let l = m.downtimeLimitMs { t += " (limit \(l) ms)" }
        t += "\n  change?      "
        if let a = m.advice {
            t += a.reason
            if m.verdict == .stalled || m.verdict == .diverging {
                if let l = a.downtimeLimitMs { t += "; set downtime-limit ≥ \(l) ms" }
                if let b = a.bandwidthBytesPerSecond { t += " or give it ≥ \(Format.fixed(Double(b) / 1e6, 2)) MB/s" }
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
