// SPDX-License-Identifier: Apache-2.0

/// Live JSON output: one object per line, each with a `type` (`header`, `series`, `window`, `anomaly`,
/// `state`, `lost`, `series_end`, `summary`); `window` objects carry the same fields as `analyze`'s windows.
public final class JSONLinesSink: AnalysisSink {
    private let out: any ByteOutput
    /// The finished report.
    public private(set) var report: AnalysisReport?
    /// Extra fields for the summary object (drop counts, end reason), set by the caller before `finish`.
    public var summaryExtras: [(String, UInt64)] = []
    /// Why the capture ended, for the summary.
    public var endReason: String?

    /// A writer to `out`, flushed after every object.
    public init(out: any ByteOutput) { self.out = out }

    /// Write one object built by `body` (which writes the fields after `"type"`).
    public func object(_ type: String, _ body: (inout JSONWriter) -> Void) {
        var o = JSONWriter()
        o.raw("{\"type\":\"\(type)\"")
        body(&o)
        o.raw("}\n")
        out.write(o.bytes)
        out.flush()
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
        out.flush()
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

    public func finished(_ r: AnalysisReport) {
        report = r
        object("summary") { o in
            o.raw(",\"summary\":")
            WindowJSON.reportSummary(r, &o)
            for (k, v) in summaryExtras {
                o.raw(",")
                o.string(k)
                o.raw(":")
                o.unsigned(v)
            }
            if let endReason {
                o.raw(",\"end_reason\":")
                o.string(endReason)
            }
        }
    }
}
