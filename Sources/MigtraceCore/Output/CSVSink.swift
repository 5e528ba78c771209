// SPDX-License-Identifier: Apache-2.0

/// One CSV row per window; findings and the summary are left to stderr by the caller.
public final class CSVSink: AnalysisSink {
    /// The header row's columns, in order.
    public static let columns = [
        "series", "index", "line", "era", "start_time", "end_time", "transferred_bytes", "time_spent_ms",
        "bandwidth_traced", "switchover_bw_traced", "threshold_traced_bytes", "bandwidth_bytes_per_ms", "mbps",
        "megabytes_per_second", "bandwidth_exact", "switchover_basis", "threshold_rebuilt_bytes", "threshold_megabytes",
        "downtime_limit_ms", "threshold_exact", "cumulative_bytes", "pending_bytes",
        "pending_precopy_bytes", "pending_stopcopy_bytes", "pending_postcopy_bytes",
    ]
    private let out: any ByteOutput
    /// Rows are formatted straight into this block, which goes to `out` in one piece once it holds 64 KiB:
    /// no copy per row, and one `write(2)` per block.
    private let block: UnsafeMutablePointer<UInt8>
    /// Bytes in `block`. Exclusivity unchecked: a sink is fed from one thread (the analyzer's), and no access
    /// overlaps a call that could reach it again.
    @exclusivity(unchecked) private var filled = 0
    static let blockSize = 1 << 16
    /// Room left after the block for one more row (a row takes < 680 bytes).
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
        if let split = w.pointee.pendingSplit {
            o.byte(comma); o.unsigned(split.precopy)
            o.byte(comma); o.unsigned(split.stopcopy)
            o.byte(comma); o.unsigned(split.postcopy)
        } else {
            o.bytes(",,,")
        }
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
