// SPDX-License-Identifier: Apache-2.0

/// One JSON document: `series[]` (each with `windows[]`), `anomalies[]`, `diagnostics[]`, `summary`.
///
/// Windows are streamed as they come for the series being written; a series whose windows interleave
/// with it is buffered until its turn, so a single-migration trace needs constant memory.
public final class JSONSink: AnalysisSink {
    private let out: any ByteOutput
    private let names: InputNames
    private let version: String
    private var current: Int?
    private var firstSeries = true
    private var buffered: [Int: [UInt8]] = [:]
    private var bufferedOrder: [Int] = []
    private var finishedBuffered: Set<Int> = []
    private var windowCount: [Int: Int] = [:]
    /// Statistics of each input, filled in by the caller before `finish`.
    public var inputs: [InputSummary] = []
    /// The finished report.
    public private(set) var report: AnalysisReport?

    /// A JSON writer; the document's opening is written at once.
    public init(out: any ByteOutput, names: InputNames, version: String) {
        self.out = out
        self.names = names
        self.version = version
        var o = JSONWriter()
        o.raw("{\"migtrace_version\":")
        o.string(version)
        o.raw(",\"series\":[")
        out.write(o.bytes)
    }

    private func emit(_ index: Int, _ bytes: [UInt8]) {
        if current == nil { current = index }
        if current == index {
            out.write(bytes)
        } else {
            if buffered[index] == nil { bufferedOrder.append(index) }
            buffered[index, default: []].append(contentsOf: bytes)
        }
    }

    public func seriesStarted(_ info: SeriesInfo) {
        var o = JSONWriter()
        if current == nil || current == info.index {
            if !firstSeries { o.raw(",") }
            firstSeries = false
        }
        o.raw("{")
        // The era is known only once a window fits one: it is written with the series' end.
        WindowJSON.seriesInfo(info, &o, includeEra: false)
        o.raw(",\"input_name\":")
        o.string(names[info.input])
        o.raw(",\"windows\":[")
        emit(info.index, o.bytes)
    }

    public func window(_ w: AnalyzedWindow, in series: SeriesInfo) {
        var o = JSONWriter()
        let n = windowCount[series.index, default: 0]
        o.raw(n == 0 ? "{" : ",{")
        windowCount[series.index] = n + 1
        WindowJSON.fields(w, &o)
        o.raw("}")
        emit(series.index, o.bytes)
    }

    public func finding(_ finding: Finding) {}

    public func seriesEnded(_ s: SeriesSummary) {
        var o = JSONWriter()
        o.raw("],\"era\":")
        if let e = s.info.era { o.string(e.rawValue) } else { o.raw("null") }
        o.raw(",\"summary\":{")
        WindowJSON.seriesSummary(s, &o)
        o.raw("}}")
        emit(s.info.index, o.bytes)
        if current == s.info.index {
            current = nil
            // Series buffered meanwhile follow, in order of first appearance.
            while let next = bufferedOrder.first {
                bufferedOrder.removeFirst()
                var bytes = buffered.removeValue(forKey: next) ?? []
                if !firstSeries { bytes.insert(44, at: 0) }
                firstSeries = false
                out.write(bytes)
                if !finishedBuffered.contains(next) {
                    current = next
                    break
                }
            }
        } else {
            finishedBuffered.insert(s.info.index)
        }
    }

    public func finished(_ r: AnalysisReport) {
        report = r
        var o = JSONWriter()
        o.raw("],"); MigrationJSON.field(r.migrations, &o)
        o.raw(",\"anomalies\":[")
        for (i, f) in r.findings.enumerated() {
            if i > 0 { o.raw(",") }
            WindowJSON.finding(f, &o)
        }
        o.raw("],\"inputs\":[")
        for (i, input) in inputs.enumerated() {
            if i > 0 { o.raw(",") }
            input.writeJSON(&o)
        }
        o.raw("],\"diagnostics\":[")
        for (i, d) in r.diagnostics.enumerated() {
            if i > 0 { o.raw(",") }
            o.raw("{\"input\":"); o.string(names[d.input])
            o.raw(",\"line\":"); o.unsigned(d.line)
            o.raw(",\"reason\":"); o.string(d.reason)
            o.raw("}")
        }
        o.raw("],\"summary\":")
        WindowJSON.reportSummary(r, &o)
        o.raw("}\n")
        out.write(o.bytes)
        out.flush()
    }
}
