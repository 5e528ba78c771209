// SPDX-License-Identifier: Apache-2.0

/// Live JSON output: one object per line, each with a `type` (`header`, `series`, `window`, `anomaly`,
/// `state`, `lost`, `series_end`, `summary`); `window` objects carry the same fields as `analyze`'s windows.
public final class JSONLinesSink: AnalysisSink {
    private let out: any ByteOutput
    /// The finished report.
    public private(set) var report: AnalysisReport?
    /// How the live capture ended, for the summary object.
    private var captureEnd: CaptureEnd?

    /// Whether every object is flushed on its own (otherwise the caller flushes, e.g. once per batch).
    private let flushEachObject: Bool

    /// A writer to `out`; `flushEachObject: false` leaves flushing to the caller (live capture flushes
    /// once per ring-buffer batch, so a burst costs one write, not one per line).
    public init(out: any ByteOutput, flushEachObject: Bool = true) {
        self.out = out
        self.flushEachObject = flushEachObject
    }

    /// One writer for every object: its memory is reused, so an object allocates nothing.
    private var writer = JSONWriter()

    /// Write one object built by `body` (which writes the fields after `"type"`).
    public func object(_ type: String, _ body: (inout JSONWriter) -> Void) {
        writer.reset()
        writer.raw("{\"type\":\"")
        writer.raw(type)
        writer.raw("\"")
        body(&writer)
        writer.raw("}\n")
        writer.bytes.withUnsafeBytes { out.write($0) }
        if flushEachObject { out.flush() }
    }

    public func seriesStarted(_ info: SeriesInfo) {
        object("series") { o in
            o.raw(",")
            WindowJSON.seriesInfo(info, &o, includeEra: false)
        }
    }

    public func window(_ w: AnalyzedWindow, in series: SeriesInfo) {
        object("window") { o in
            o.raw(",\"series\":")
            o.unsigned(UInt64(w.series))
            o.raw(",")
            WindowJSON.fields(w, &o)
        }
    }

    public func finding(_ f: Finding) {
        var o = JSONWriter()
        WindowJSON.finding(f, &o)
        var bytes = Array("{\"type\":\"anomaly\",".utf8)
        bytes.append(contentsOf: o.bytes.dropFirst())
        bytes.append(10)
        out.write(bytes)
        if flushEachObject { out.flush() }
    }

    public func seriesEnded(_ s: SeriesSummary) {
        object("series_end") { o in
            o.raw(",\"series\":")
            o.unsigned(UInt64(s.info.index))
            o.raw(",\"era\":")
            if let e = s.info.era { o.string(e.rawValue) } else { o.raw("null") }
            o.raw(",")
            WindowJSON.seriesSummary(s, &o)
        }
    }

    public func live(_ event: LiveEvent) {
        switch event {
        case .attached(let a):
            object("header") { o in
                o.raw(",\"pid\":"); o.signed(Int64(a.pid))
                o.raw(",\"binary\":"); o.string(a.binary)
                if let vm = a.vmName { o.raw(",\"vm\":"); o.string(vm) }
                o.raw(",\"ring_buffer_bytes\":"); o.unsigned(UInt64(a.ringBufferBytes))
                o.raw(",\"probes\":[")
                for (i, p) in a.probes.enumerated() {
                    if i > 0 { o.raw(",") }
                    o.raw("{\"name\":"); o.string(p.name)
                    o.raw(",\"attached\":"); o.raw(p.attached ? "true" : "false")
                    o.raw(",\"args\":"); if let n = p.argumentCount { o.unsigned(UInt64(n)) } else { o.raw("null") }
                    o.raw(",\"sites\":"); o.unsigned(UInt64(p.siteCount))
                    o.raw("}")
                }
                o.raw("]")
                if let record = a.recordPath { o.raw(",\"record\":"); o.string(record) }
            }
            out.flush()
        case .state(let state, let time):
            object("state") { o in
                o.raw(",\"state\":"); o.string(state)
                if let ts = time { o.raw(",\"time\":"); o.number(Double(ts) / 1e9) }
            }
        case .captured: break
        case .migration(let m):
            object("migration") { o in
                o.raw(",\"migration\":")
                MigrationJSON.object(m, &o)
            }
        case .lost(let drops, _):
            object("lost") { o in
                o.raw(",\"kernel_drops\":"); o.unsigned(drops)
            }
        case .ended(let end):
            captureEnd = end
        }
    }

    public func finished(_ r: AnalysisReport) {
        report = r
        defer { out.flush() }
        object("summary") { o in
            o.raw(",\"summary\":")
            WindowJSON.reportSummary(r, &o)
            if let e = captureEnd {
                o.raw(",\"events_received\":"); o.unsigned(e.eventsReceived)
                o.raw(",\"kernel_drops\":"); o.unsigned(e.kernelDrops)
                o.raw(",\"consumer_drops\":"); o.unsigned(e.consumerDrops)
                o.raw(",\"end_reason\":"); o.string(e.reason)
            }
        }
    }
}
