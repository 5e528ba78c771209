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
