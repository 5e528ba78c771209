// SPDX-License-Identifier: Apache-2.0

/// One CSV row per window; findings and the summary are left to stderr by the caller.
public final class CSVSink: AnalysisSink {
    /// The header row's columns, in order.
    public static let columns = [
        "series", "index", "line", "era", "start_time", "end_time", "transferred_bytes", "time_spent_ms",
        "bandwidth_traced", "switchover_bw_traced", "threshold_traced_bytes", "bandwidth_bytes_per_ms", "mbps",
        "megabytes_per_second", "bandwidth_exact", "switchover_basis", "threshold_rebuilt_bytes", "threshold_megabytes",
        "downtime_limit_ms", "threshold_exact", "cumulative_bytes", "pending_bytes",
    ]
    private let out: any ByteOutput
    /// Rows are formatted straight into this block, which goes to `out` in one piece once it holds 64 KiB:
    /// no copy per row, and one `write(2)` per block.
    private let block: UnsafeMutablePointer<UInt8>
    /// Bytes in `block`. Exclusivity unchecked: a sink is fed from one thread (the analyzer's), and no access
    /// overlaps a call that could reach it again.
    @exclusivity(unchecked) private var filled = 0
    static let blockSize = 1 << 16
    /// Room left after the block for one more row (a row takes < 600 bytes).
    private static let maxRow = 1024
    /// The whole seconds of the last time written, as text: the next time mostly has the same.
    @exclusivity(unchecked) private var lastSeconds = ASCIIWriter.WholeSecondsText()
    /// The finished report.
    public private(set) var report: AnalysisReport?

    /// A CSV writer; the header row is written at once.
    public init(out: any ByteOutput) {
        self.out = out
        block = .allocate(capacity: Self.blockSize + Self.maxRow)
        out.write(Array((Self.columns.joined(separator: ",") + "\n").utf8))
    }

    deinit { block.deallocate() }

    public func seriesStarted(_ info: SeriesInfo) {}

    public func window(_ w: AnalyzedWindow, in series: SeriesInfo) {
        withUnsafePointer(to: w) { window(at: $0, in: series) }
    }

    public func window(at w: UnsafePointer<AnalyzedWindow>, in series: SeriesInfo) {
        // Fields are read where the window lies (`pointee.`, not a copy of the whole window).
        // Formatted with plain stores: no allocation, no exclusivity checks. `filled` < blockSize, so the row fits.
        var o = ASCIIWriter(block + filled)
        let comma = UInt8(ascii: ",")
        o.unsigned(UInt64(w.pointee.series)); o.byte(comma)
        o.unsigned(UInt64(w.pointee.index)); o.byte(comma)
        o.unsigned(w.pointee.origin.line); o.byte(comma)
        // Era and basis as literals of their raw values (a test holds them to `rawValue`): literals of known length
        // are stored inline, no `memcpy` call.
        switch w.pointee.era {
        case .a: o.bytes("A,")
        case .b: o.bytes("B,")
        case .c: o.bytes("C,")
        case nil: o.byte(comma)
        }
        o.fixed6(w.pointee.startTime, reusing: &lastSeconds); o.byte(comma)
        o.fixed6(w.pointee.endTime, reusing: &lastSeconds); o.byte(comma)
        o.unsigned(w.pointee.transferred); o.byte(comma)
        o.unsigned(w.pointee.timeSpentMs); o.byte(comma)
        o.unsigned(w.pointee.bandwidthTraced); o.byte(comma)
        if let sw = w.pointee.switchoverTraced { o.unsigned(sw) }
        o.byte(comma)
        let thresholdAt = o.count
        o.unsigned(w.pointee.thresholdTraced)
        let thresholdLength = o.count &- thresholdAt
        o.byte(comma)
        o.exact(w.pointee.bandwidth); o.byte(comma)
        o.exact(w.pointee.mbps); o.byte(comma)
        o.exact(w.pointee.megabytesPerSecond); o.byte(comma)
        if w.pointee.bandwidthTracedExact { o.bytes("true,") } else { o.bytes("false,") }
        switch w.pointee.rebuild.basis {
        case .measured: o.bytes("measured,")
        case .userInteger: o.bytes("user-integer,")
        case .userFloat: o.bytes("user-float,")
        case .estimated: o.bytes("estimated,")
        case .userBelowResolution: o.bytes("user-below-resolution,")
        }
        // The rebuilt threshold is mostly the traced one, and the megabytes are its digits with a point: copies.
        if w.pointee.rebuild.threshold == w.pointee.thresholdTraced {
            o.repeated(at: thresholdAt, length: thresholdLength)
        } else {
            o.unsigned(w.pointee.rebuild.threshold)
        }
        o.byte(comma)
        // `thresholdMegabytes`, from the digits written above.
        o.exactMillionths(w.pointee.thresholdTraced, digitsAt: thresholdAt, length: thresholdLength)
        o.byte(comma)
        if let l = w.pointee.rebuild.downtimeLimitMs { o.unsigned(l) }
        o.byte(comma)
        if w.pointee.rebuild.exact { o.bytes("true,") } else { o.bytes("false,") }
        o.unsigned(w.pointee.cumulativeBytes); o.byte(comma)
        if let p = w.pointee.pendingBytes { o.unsigned(p) }
        o.byte(10)
        filled &+= o.count
        if filled >= Self.blockSize { pushBlock() }
    }

    /// Hands the rows formatted so far to `out`.
    private func pushBlock() {
        guard filled > 0 else { return }
        out.write(UnsafeRawBufferPointer(start: block, count: filled))
        filled = 0
    }

    public func finding(_ finding: Finding) {}
    public func seriesEnded(_ summary: SeriesSummary) {}
    public func finished(_ report: AnalysisReport) {
        self.report = report
        pushBlock()
        out.flush()
    }
}

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

/// The human view: a table per series, findings as they are made, a summary at the end.
public final class TextSink: AnalysisSink {
    private let out: any ByteOutput
    private let names: InputNames
    private let showWindows: Bool
    private let flushEachLine: Bool
    private var seriesStart: [Int: Double] = [:]
    /// How the live capture ended: said after the summary.
    private var captureEnd: CaptureEnd?
    /// The finished report.
    public private(set) var report: AnalysisReport?
    /// Set before `finish` when no input could be analysed (each said why on stderr): an empty run then prints
    /// no summary and no tracing hint, which would only repeat that nothing was read.
    public var nothingRead = false

    /// A text renderer. `flushEachLine` is for live use.
    public init(out: any ByteOutput, names: InputNames, showWindows: Bool = true, flushEachLine: Bool = false) {
        self.out = out
        self.names = names
        self.showWindows = showWindows
        self.flushEachLine = flushEachLine
    }

    private func put(_ s: String) {
        out.write(Array(s.utf8))
        if flushEachLine { out.flush() }
    }

    static func eraName(_ e: ProbeEra?) -> String {
        switch e {
        case .a: "A (QEMU ≤ 8.1, 4 args)"
        case .b: "B (QEMU 8.2–10.x, 5 args)"
        case .c: "C (switchover-helper patch, arg 3 in Mbit/s)"
        case nil: "undetermined"
        }
    }

    private static func pad(_ s: String, _ w: Int, left: Bool = false) -> String {
        let n = s.count
        if n >= w { return s }
        let p = String(repeating: " ", count: w - n)
        return left ? s + p : p + s
    }

    public static let tableHeader =
        "   win    t(s)     sent(B)     ms   bw(B/ms)    MB/s  Mbit/s   sw(B/ms)   max_size(tr)    rebuilt  limit ok  pending(B)\n"

    public func seriesStarted(_ info: SeriesInfo) {
        var s = "\nseries \(info.index) · \(names[info.input])"
        if let t = info.threadID { s += " · thread \(t)" }
        if let p = info.processID { s += " · pid \(p)" }
        s += "\n"
        if showWindows { s += Self.tableHeader }
        put(s)
    }

    public func window(_ w: AnalyzedWindow, in series: SeriesInfo) {
        if w.index == 0 { seriesStart[w.series] = w.startTime }
        guard showWindows else { return }
        let t0 = seriesStart[w.series] ?? 0
        var s = Self.pad(String(w.index), 6)
        s += Self.pad(Format.fixed(w.endTime - t0, 2), 8)
        s += Self.pad(String(w.transferred), 12)
        s += Self.pad(String(w.timeSpentMs), 7)
        s += Self.pad(String(w.bandwidthTraced), 11)
        s += Self.pad(Format.fixed(w.megabytesPerSecond, 2), 8)
        s += Self.pad(Format.fixed(w.mbps, 1), 8)
        s += Self.pad(w.switchoverTraced.map(String.init) ?? "-", 11)
        s += Self.pad(String(w.thresholdTraced), 15)
        s += Self.pad(String(w.rebuild.threshold), 11)
        s += Self.pad(w.rebuild.downtimeLimitMs.map(String.init) ?? "?", 7)
        s += w.rebuild.exact ? "  =" : " ≠!"
        s += Self.pad(w.pendingBytes.map(String.init) ?? "", 12)
        s += "\n"
        put(s)
    }

    public func finding(_ f: Finding) {
        var s = "  ▲ \(f.severity.description.uppercased()) \(f.rule)"
        if f.series >= 0 {
            s +=
                f.firstWindow == f.lastWindow
                ? " [series \(f.series) window \(f.firstWindow)]" : " [series \(f.series) windows \(f.firstWindow)–\(f.lastWindow)]"
        }
        s += ": \(f.message)\n    → \(f.remedy)\n"
        put(s)
    }

    public func seriesEnded(_ s: SeriesSummary) {
        let pct = s.windows == 0 ? 0 : Double(s.exactThresholds) * 100 / Double(s.windows)
        var t = "series \(s.info.index): era \(Self.eraName(s.info.era)), \(s.windows) windows, "
        t += "\(Format.fixed(Double(s.totalBytes) / 1_000_000, 1)) MB in \(Format.fixed(Double(s.totalTimeMs) / 1000, 2)) s "
        t +=
            "(mean \(Format.fixed(s.meanBandwidth / 1000, 2)) MB/s); threshold rebuilt exactly in \(s.exactThresholds)/\(s.windows) windows (\(Format.fixed(pct, 1)) %)"
        if !s.downtimeLimits.isEmpty {
            t += "; downtime limit " + s.downtimeLimits.map { "\($0.limitMs) ms from window \($0.window)" }.joined(separator: ", ")
        }
        if let st = s.finalState { t += "; final state \(st)" }
        put(t + "\n")
    }

    public func live(_ event: LiveEvent) {
        switch event {
        case .attached(let a):
            var h = "migtrace \(a.migtraceVersion): attached to pid \(a.pid) (\(TerminalText.escaped(a.binary)))\n"
            let args = { (n: Int?) in n.map { $0 == 1 ? "1 arg" : "\($0) args" } ?? "?" }
            h += "probes: " + a.probes.filter(\.attached).map { "\($0.name) (\(args($0.argumentCount)))" }.joined(separator: ", ") + "\n"
            let missing = a.probes.filter { !$0.attached }
            if !missing.isEmpty { h += "not attached: " + missing.map { "\($0.name) (\($0.reason ?? ""))" }.joined(separator: ", ") + "\n" }
            if let record = a.recordPath { h += "recording to \(TerminalText.escaped(record))\n" }
            h += "waiting for migrate_transferred windows… (Ctrl-C ends with a summary)\n"
            put(h)
            out.flush()
        case .state(let state, _):
            put("  · migration state: \(state)\n")
        case .captured: break
        case .lost(let drops, _):
            put("  ▲ lost \(drops) events so far (kernel ring buffer full; try --ring-buffer-size)\n")
        case .ended(let end):
            captureEnd = end
        }
    }

    public func finished(_ r: AnalysisReport) {
        report = r
        if nothingRead && r.windowCount == 0 && r.migrations.isEmpty && r.findings.isEmpty {
            out.flush()
            return
        }
        var t = "\nsummary: \(r.series.count) series, \(r.windowCount) windows, thresholds exact in \(r.exactCount)/\(r.windowCount)"
        let counts = Severity.allCases.reversed().map { sev in "\(r.findings.filter { $0.severity == sev }.count) \(sev)" }
        t += "; findings: " + counts.joined(separator: ", ")
        if r.rejectedCount > 0 { t += "; \(r.rejectedCount) line(s) rejected" }
        t += "\n"
        t += MigrationText.blocks(r.migrations, names)
        if r.windowCount == 0, r.migrations.isEmpty {
            t +=
                "no migrate_transferred events found: trace the source QEMU with `-trace migrate_transferred -D FILE` (or QMP trace-event-set-state) and analyse FILE\n"
        }
        if let e = captureEnd {
            t +=
                "capture ended (\(e.reason)): \(e.eventsReceived) events received; lost \(e.kernelDrops) events (kernel), \(e.consumerDrops) (consumer)\n"
        }
        put(t)
        out.flush()
    }
}
