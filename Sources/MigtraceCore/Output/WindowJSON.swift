// SPDX-License-Identifier: Apache-2.0

/// The JSON fields of one window, shared by `analyze --format json` and `attach --format json`.
public enum WindowJSON {
    /// Append the window's fields (without braces) to `o`.
    ///
    /// Written into stack memory and appended once (live capture writes one of these per event). Bound:
    /// keys, punctuation and literals take 600 bytes, 20 integers at most 20 digits, 8 doubles at most 24
    /// characters (`exact`), 4 range bounds at most 20: < 1,550 bytes of the 2,048 reserved.
    public static func fields(_ w: AnalyzedWindow, _ o: inout JSONWriter) {
        o.ascii(capacity: 2048) { o in
            @inline(__always) func optional(_ v: UInt64?) { if let v { o.unsigned(v) } else { o.bytes("null") } }
            @inline(__always) func bool(_ b: Bool) { if b { o.bytes("true") } else { o.bytes("false") } }
            o.bytes("\"index\":"); o.unsigned(UInt64(w.index))
            if w.origin.line > 0 { o.bytes(",\"line\":"); o.unsigned(w.origin.line) }
            o.bytes(",\"start_time\":"); o.exact(w.startTime)
            o.bytes(",\"end_time\":"); o.exact(w.endTime)
            // Era and basis raw values are plain ASCII words: quoted without escaping.
            o.bytes(",\"era\":"); if let e = w.era { o.byte(34); o.write(e.rawValue); o.byte(34) } else { o.bytes("null") }
            o.bytes(",\"transferred_bytes\":"); o.unsigned(w.transferred)
            o.bytes(",\"time_spent_ms\":"); o.unsigned(w.timeSpentMs)
            o.bytes(",\"bandwidth_traced\":"); o.unsigned(w.bandwidthTraced)
            o.bytes(",\"switchover_bw_traced\":"); optional(w.switchoverTraced)
            o.bytes(",\"threshold_traced_bytes\":"); o.unsigned(w.thresholdTraced)
            o.bytes(",\"bandwidth_bytes_per_ms\":"); o.exact(w.bandwidth)
            o.bytes(",\"mbps\":"); o.exact(w.mbps)
            o.bytes(",\"megabytes_per_second\":"); o.exact(w.megabytesPerSecond)
            o.bytes(",\"bandwidth_exact\":"); bool(w.bandwidthTracedExact)
            o.bytes(",\"switchover_basis\":\""); o.write(w.rebuild.basis.rawValue); o.byte(34)
            o.bytes(",\"switchover_bytes_per_ms\":"); o.exact(w.rebuild.expectedPerMs)
            if let r = w.rebuild.switchoverBytesPerSecond {
                o.bytes(",\"avail_switchover_bandwidth_range\":["); o.unsigned(r.lowerBound); o.byte(44); o.unsigned(r.upperBound);
                o.byte(93)
            }
            o.bytes(",\"threshold_rebuilt_bytes\":"); o.unsigned(w.rebuild.threshold)
            o.bytes(",\"threshold_megabytes\":"); o.exact(w.thresholdMegabytes)
            o.bytes(",\"downtime_limit_ms\":"); optional(w.rebuild.downtimeLimitMs)
            if let r = w.rebuild.limitRange, r.lowerBound != r.upperBound {
                o.bytes(",\"downtime_limit_range_ms\":["); o.unsigned(r.lowerBound); o.byte(44); o.unsigned(r.upperBound); o.byte(93)
            }
            o.bytes(",\"threshold_exact\":"); bool(w.rebuild.exact)
            o.bytes(",\"cumulative_bytes\":"); o.unsigned(w.cumulativeBytes)
            o.bytes(",\"pending_bytes\":"); optional(w.pendingBytes)
            o.bytes(",\"pending_exact\":"); if w.pendingBytes == nil { o.bytes("null") } else { bool(w.pendingExact) }
            let split = w.pendingSplit
            o.bytes(",\"pending_precopy_bytes\":"); optional(split?.precopy)
            o.bytes(",\"pending_stopcopy_bytes\":"); optional(split?.stopcopy)
            o.bytes(",\"pending_postcopy_bytes\":"); optional(split?.postcopy)
        }
    }

    /// Append a finding as a JSON object.
    public static func finding(_ f: Finding, _ o: inout JSONWriter) {
        o.raw("{\"rule\":"); o.string(f.rule)
        o.raw(",\"severity\":"); o.string(f.severity.description)
        o.raw(",\"series\":"); if f.series >= 0 { o.unsigned(UInt64(f.series)) } else { o.raw("null") }
        o.raw(",\"first_window\":"); if f.firstWindow >= 0 { o.unsigned(UInt64(f.firstWindow)) } else { o.raw("null") }
        o.raw(",\"last_window\":"); if f.lastWindow >= 0 { o.unsigned(UInt64(f.lastWindow)) } else { o.raw("null") }
        o.raw(",\"start_time\":"); if f.series >= 0 { o.number(f.startTime) } else { o.raw("null") }
        o.raw(",\"end_time\":"); if f.series >= 0 { o.number(f.endTime) } else { o.raw("null") }
        o.raw(",\"message\":"); o.string(f.message)
        o.raw(",\"evidence\":{")
        for (i, e) in f.evidence.enumerated() {
            if i > 0 { o.raw(",") }
            o.string(e.name)
            o.raw(":")
            switch e.value {
            case .integer(let v): o.signed(v)
            case .unsigned(let v): o.unsigned(v)
            case .number(let v): o.number(v)
            case .text(let t): o.string(t)
            }
        }
        o.raw("},\"remedy\":"); o.string(f.remedy)
        o.raw("}")
    }

    /// Append a series summary's fields (without braces).
    public static func seriesSummary(_ s: SeriesSummary, _ o: inout JSONWriter) {
        o.raw("\"windows\":"); o.unsigned(UInt64(s.windows))
        o.raw(",\"threshold_exact_windows\":"); o.unsigned(UInt64(s.exactThresholds))
        o.raw(",\"bandwidth_exact_windows\":"); o.unsigned(UInt64(s.exactBandwidths))
        o.raw(",\"total_bytes\":"); o.unsigned(s.totalBytes)
        o.raw(",\"total_time_ms\":"); o.unsigned(s.totalTimeMs)
        o.raw(",\"mean_bandwidth_bytes_per_ms\":"); o.number(s.meanBandwidth)
        o.raw(",\"start_time\":"); o.number(s.startTime)
        o.raw(",\"end_time\":"); o.number(s.endTime)
        o.raw(",\"downtime_limits\":[")
        for (i, d) in s.downtimeLimits.enumerated() {
            if i > 0 { o.raw(",") }
            o.raw("{\"from_window\":"); o.unsigned(UInt64(d.window)); o.raw(",\"limit_ms\":"); o.unsigned(d.limitMs); o.raw("}")
        }
        o.raw("],\"final_state\":"); if let st = s.finalState { o.string(st) } else { o.raw("null") }
    }

    /// Append the series identity fields (without braces).
    public static func seriesInfo(_ s: SeriesInfo, _ o: inout JSONWriter, includeEra: Bool = true) {
        o.raw("\"index\":"); o.unsigned(UInt64(s.index))
        o.raw(",\"input\":"); o.unsigned(UInt64(s.input))
        o.raw(",\"thread_id\":"); if let t = s.threadID { o.unsigned(UInt64(t)) } else { o.raw("null") }
        o.raw(",\"process_id\":"); if let p = s.processID { o.unsigned(UInt64(p)) } else { o.raw("null") }
        if includeEra { o.raw(",\"era\":"); if let e = s.era { o.string(e.rawValue) } else { o.raw("null") } }
        o.raw(",\"time_base\":"); o.string(s.timeBase.rawValue)
    }

    /// Append the report's top-level summary object.
    public static func reportSummary(_ r: AnalysisReport, _ o: inout JSONWriter) {
        o.raw("{\"series\":"); o.unsigned(UInt64(r.series.count))
        o.raw(",\"windows\":"); o.unsigned(UInt64(r.windowCount))
        o.raw(",\"threshold_exact_windows\":"); o.unsigned(UInt64(r.exactCount))
        o.raw(",\"threshold_exact_percent\":"); o.number(r.windowCount == 0 ? 0 : Double(r.exactCount) * 100 / Double(r.windowCount))
        o.raw(",\"rejected_lines\":"); o.unsigned(r.rejectedCount)
        for sev in Severity.allCases {
            o.raw(",\"\(sev.description)_findings\":")
            o.unsigned(UInt64(r.findings.filter { $0.severity == sev }.count))
        }
        o.raw(",\"worst_severity\":"); if let w = r.worstSeverity { o.string(w.description) } else { o.raw("null") }
        o.raw("}")
    }
}
