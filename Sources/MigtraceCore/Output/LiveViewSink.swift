// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
    import Glibc
#endif

/// The live terminal view of `attach` and `demo`: one compact frame redrawn in place with plain ANSI (cursor up,
/// erase line; no alternate screen, nothing beyond the frame's lines is touched) — sparklines of bandwidth and of
/// pending against threshold, the verdict and ETA, the latest findings — and, at the end, the text summary below
/// the last frame, which stays on the screen.
///
/// Fed by the same calls as ``TextSink``. Everything that comes from the input (binary path, messages, states)
/// is shown with its control characters escaped, and every line is cut to the terminal's width so that the
/// frame never wraps (a wrapped line would break the in-place redraw).
public final class LiveViewSink: AnalysisSink {
    /// Windows kept for the sparklines (the widest terminal shows this many).
    static let history = 240
    /// Redraws at most this often (ns), but for findings, state changes and the end.
    static let minRedrawInterval: UInt64 = 50_000_000

    private let out: any ByteOutput
    private let names: InputNames
    private let size: () -> (columns: Int, rows: Int)
    private let clock: () -> UInt64
    /// The capture's migration as the analyzer last assessed it (``LiveEvent/migration(_:)``); `nil` shows no
    /// verdict until the end.
    private var assessment: MigrationAssessment?
    /// Whether the analyzer sends assessments (then each window's frame waits for its assessment).
    private var assessed = false

    private var attachment: LiveAttachment?
    private var state: String?
    private var series: SeriesInfo?
    private var seriesOrigin: Double?
    private var bandwidth: [Double] = []  // MB/s
    private var pending: [Double?] = []  // bytes
    private var threshold: [Double] = []  // bytes
    private var last: AnalyzedWindow?
    private var windows = 0
    private var sentBytes: UInt64 = 0
    private var findings: [Finding] = []
    private var findingCount = 0
    private var lost: UInt64 = 0
    private var ended: [SeriesSummary] = []
    private var captureEnd: CaptureEnd?
    /// Lines of the frame on the screen (the cursor is on the line below them).
    private var drawnLines = 0
    private var lastDraw: UInt64 = 0
    /// The finished report.
    public private(set) var report: AnalysisReport?

    /// A live view on `out`, a terminal of `size()` (``terminalSize(fd:)`` by default, asked at each redraw).
    public init(
        out: any ByteOutput, names: InputNames, size: (() -> (columns: Int, rows: Int))? = nil, clock: (() -> UInt64)? = nil
    ) {
        self.out = out
        self.names = names
        self.size = size ?? { LiveViewSink.terminalSize(fd: 1) ?? (80, 24) }
        self.clock = clock ?? LiveViewSink.monotonicNanoseconds
    }

    /// Columns and rows of the terminal on `fd`, if it is one.
    public static func terminalSize(fd: Int32) -> (columns: Int, rows: Int)? {
        var ws = winsize()
        guard ioctl(fd, UInt(TIOCGWINSZ), &ws) == 0, ws.ws_col > 0, ws.ws_row > 0 else { return nil }
        return (Int(ws.ws_col), Int(ws.ws_row))
    }

    /// Whether `fd` is a terminal the view can draw on (not a pipe or file, not TERM=dumb).
    public static func canDraw(fd: Int32) -> Bool {
        guard isatty(fd) == 1 else { return false }
        if let term = getenv("TERM"), String(cString: term) == "dumb" { return false }
        return true
    }

    private static func monotonicNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    // MARK: Sink calls

    public func seriesStarted(_ info: SeriesInfo) {
        series = info
        seriesOrigin = nil
        bandwidth.removeAll(keepingCapacity: true)
        pending.removeAll(keepingCapacity: true)
        threshold.removeAll(keepingCapacity: true)
        windows = 0
        sentBytes = 0
        last = nil
        redraw()
    }

    public func window(_ w: AnalyzedWindow, in series: SeriesInfo) {
        if seriesOrigin == nil { seriesOrigin = w.startTime }
        windows += 1
        sentBytes = w.cumulativeBytes
        last = w
        push(&bandwidth, w.megabytesPerSecond)
        push(&pending, w.pendingBytes.map { Double($0) })
        push(&threshold, Double(w.thresholdTraced))
        // With assessments coming, the one after this window draws the frame, verdict and window together.
        if !assessed { redraw() }
    }

    private func push<T>(_ a: inout [T], _ v: T) {
        if a.count == Self.history { a.removeFirst() }
        a.append(v)
    }

    public func finding(_ f: Finding) {
        findingCount += 1
        findings.append(f)
        if findings.count > 3 { findings.removeFirst() }
        redraw(force: true)
    }

    public func seriesEnded(_ summary: SeriesSummary) {
        ended.append(summary)
    }

    /// The analyzer's latest assessment: drawn with the next frame.
    private func migrationUpdated(_ m: MigrationAssessment) {
        assessment = m
        assessed = true
        redraw()
    }

    public func live(_ event: LiveEvent) {
        switch event {
        case .attached(let a):
            attachment = a
            // The header stays above the frame, as in the text view.
            var h = "migtrace \(a.migtraceVersion): attached to pid \(a.pid) (\(a.binary))" + (a.vmName.map { ", vm \($0)" } ?? "") + "\n"
            let args = { (n: Int?) in n.map { $0 == 1 ? "1 arg" : "\($0) args" } ?? "?" }
            h += "probes: " + a.probes.filter(\.attached).map { "\($0.name) (\(args($0.argumentCount)))" }.joined(separator: ", ") + "\n"
            let missing = a.probes.filter { !$0.attached }
            if !missing.isEmpty { h += "not attached: " + missing.map { "\($0.name) (\($0.reason ?? ""))" }.joined(separator: ", ") + "\n" }
            if let record = a.recordPath { h += "recording to \(record)\n" }
            h += "live view, redrawn in place (--plain: a line per window); Ctrl-C ends with a summary\n"
            for line in h.split(separator: "\n") { put(Self.fit(Self.escape(String(line)), size().columns) + "\n") }
            redraw(force: true)
        case .state(let s, _):
            state = s
            redraw(force: true)
        case .captured: break
        case .migration(let m): migrationUpdated(m)
        case .lost(let drops, _):
            lost = drops
            redraw(force: true)
        case .ended(let e):
            captureEnd = e
        }
    }

    public func finished(_ r: AnalysisReport) {
        report = r
        // The last frame with the final verdict, then the summary below it.
        let final = r.migrations.last
        redraw(force: true, final: final)
        let text = TextSink(out: EscapingOutput(out), names: names, showWindows: false)
        for s in ended { text.seriesEnded(s) }
        if let e = captureEnd { text.live(.ended(e)) }
        text.finished(r)
        out.flush()
    }

    /// Redraws the frame with the assessment as it is now (at most every ``minRedrawInterval``). The live capture
    /// calls this after each batch of events: the pending sizes and syncs that followed the last window reach the
    /// analyzer, not the sink, and show without waiting for the next window.
    public func refresh() {
        redraw()
    }

    // MARK: Drawing

    private func put(_ s: String) { out.write(Array(s.utf8)) }

    private func redraw(force: Bool = false, final: MigrationAssessment? = nil) {
        let now = clock()
        // A frame skipped here is drawn by the next call, the next refresh, or at the end.
        if !force && now &- lastDraw < Self.minRedrawInterval { return }
        lastDraw = now
        let (columns, rows) = size()
        var lines = frame(width: max(40, columns), assessment: final ?? assessment)
        // Never taller than the screen: the cursor could not go back up past its top.
        if lines.count > rows - 1 { lines = Array(lines.prefix(max(1, rows - 1))) }
        var s = "\r"
        if drawnLines > 0 { s += "\u{1B}[\(drawnLines)A" }
        for l in lines { s += "\u{1B}[2K" + l + "\n" }
        s += "\u{1B}[J"
        put(s)
        drawnLines = lines.count
        out.flush()
    }

    /// The frame's lines, each already escaped and cut to `width` columns (colours do not count).
    func frame(width: Int, assessment m: MigrationAssessment?) -> [String] {
        let label = 11
        var lines: [String] = []
        func add(_ plain: String, color: String? = nil) {
            let cut = Self.fit(plain, width)
            lines.append(color.map { "\u{1B}[\($0)m" + cut + "\u{1B}[0m" } ?? cut)
        }
        func pad(_ s: String) -> String { s.count >= label ? s : s + String(repeating: " ", count: label - s.count) }

        var status = "── live"
        if let s = series { status += " · series \(s.index)" }
        status += " · state \(Self.escape(state ?? "?"))"
        if let w = last, let t0 = seriesOrigin {
            status +=
                " · window \(w.index) · \(NumberText.fixed(w.endTime - t0, 1)) s · \(NumberText.fixed(Double(sentBytes) / 1e6, 1)) MB sent"
        }
        if lost > 0 { status += " · lost \(lost) events" }
        add(status + " " + String(repeating: "─", count: max(0, width - status.count - 1)))

        // Sparklines: one character per window, the latest at the right.
        let valueRoom = 34
        let room = max(8, min(Self.history, width - label - valueRoom))
        let bw = Array(bandwidth.suffix(room))
        if bw.isEmpty {
            add(pad("bandwidth") + "waiting for the first migrate_transferred window…")
        } else {
            let top = bw.max() ?? 0
            let now = bw.last ?? 0
            var line = pad("bandwidth") + Self.sparkline(bw, low: 0, high: top)
            line += "  \(NumberText.fixed(now, 2)) MB/s (peak \(NumberText.fixed(top, 2)))"
            add(line)
            // Pending and threshold share one logarithmic scale: pending is often 100× the threshold.
            let p = Array(pending.suffix(room))
            let th = Array(threshold.suffix(room))
            let known = p.compactMap { $0 } + th
            let lo = log10(max(1, known.filter { $0 > 0 }.min() ?? 1))
            let hi = log10(max(1, known.max() ?? 1))
            let logP = p.map { $0.map { log10(max(1, $0)) } }
            let pendingLine = Self.sparkline(logP, low: lo, high: hi)
            if let current = p.last ?? nil {
                let above = current > (th.last ?? 0)
                var l = pad("pending") + pendingLine + "  \(NumberText.fixed(current / 1e6, 1)) MB"
                l += above ? " above threshold" : " below threshold"
                add(l, color: above ? nil : "32")
            } else {
                add(pad("pending") + "(no pending events traced)")
            }
            add(
                pad("threshold") + Self.sparkline(th.map { log10(max(1, $0)) }, low: lo, high: hi)
                    + "  \(NumberText.fixed((th.last ?? 0) / 1e6, 1)) MB (log scale, as pending)")
        }

        // Verdict, ETA, downtime.
        if let m {
            var v = pad("verdict")
            let verdict = m.verdict?.rawValue ?? "not yet known (needs two dirty syncs)"
            v += verdict
            if m.verdict == .converging, let e = m.etaSeconds {
                v += " · ETA \(NumberText.fixed(e, 1)) s"
                if let lo = m.etaLowSeconds, let hi = m.etaHighSeconds { v += " (\(NumberText.fixed(lo, 1))–\(NumberText.fixed(hi, 1)) s)" }
            } else if m.verdict == .converging {
                v += " · no ETA yet"
            } else if m.verdict == .stalled || m.verdict == .diverging {
                v += " · no switchover at this rate"
            }
            if let d = m.downtimeMs {
                v += " · downtime \(NumberText.fixed(d, 1)) ms"
            } else if let e = m.expectedDowntimeMs, e > 0 {
                v += " · expected downtime \(NumberText.fixed(e, 0)) ms"
            }
            if let l = m.downtimeLimitMs { v += " (limit \(l) ms)" }
            let color: String? =
                switch m.verdict {
                case .converging, .completed: "32"
                case .stalled, .diverging: "33"
                case nil: nil
                }
            add(v, color: color)
            if let a = m.advice, m.verdict == .stalled || m.verdict == .diverging {
                var t = pad("advice") + Self.escape(a.reason)
                if let l = a.downtimeLimitMs { t += "; downtime-limit ≥ \(l) ms" }
                if let b = a.bandwidthBytesPerSecond { t += " or ≥ \(NumberText.fixed(Double(b) / 1e6, 2)) MB/s" }
                add(t)
            }
        } else {
            add(pad("verdict") + "not yet known")
        }

        // The latest findings.
        if findings.isEmpty {
            add(pad("findings") + "none so far")
        } else {
            for (i, f) in findings.enumerated() {
                var t = pad(i == 0 ? "findings" : "")
                t += "▲ \(f.severity.description.uppercased()) \(Self.escape(f.rule))"
                if f.series >= 0 { t += f.firstWindow == f.lastWindow ? " [w \(f.firstWindow)]" : " [w \(f.firstWindow)–\(f.lastWindow)]" }
                t += ": " + Self.escape(f.message)
                add(t, color: f.severity == .critical ? "31" : f.severity == .warning ? "33" : nil)
            }
            if findingCount > findings.count { add(pad("") + "(\(findingCount) in all; the summary lists them)") }
        }
        return lines
    }

    static let blocks: [Character] = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"]

    /// One block character per value, scaled from `low` (▁) to `high` (█); a gap where a value is missing.
    static func sparkline(_ values: [Double?], low: Double, high: Double) -> String {
        var s = ""
        for v in values {
            guard let v, v.isFinite else {
                s.append(" ")
                continue
            }
            let f = high > low ? (v - low) / (high - low) : 0.5
            let i = Int((min(max(f, 0), 1) * 7).rounded())
            s.append(blocks[i])
        }
        return s
    }

    static func sparkline(_ values: [Double], low: Double, high: Double) -> String {
        sparkline(values.map { Optional($0) }, low: low, high: high)
    }

    /// Control characters (C0, DEL, C1) and bidirectional overrides as visible `\xNN` / `\u{NNNN}`: input never
    /// moves the cursor or recolours the terminal.
    public static func escape(_ s: String) -> String {
        var o = ""
        for u in s.unicodeScalars {
            let v = u.value
            if v < 0x20 || (v >= 0x7F && v < 0xA0) {
                o += "\\x" + HTMLPage.hex(v, 2)
            } else if (0x202A...0x202E).contains(v) || (0x2066...0x2069).contains(v) || v == 0x2028 || v == 0x2029 {
                o += "\\u{" + HTMLPage.hex(v, 4) + "}"
            } else {
                o.unicodeScalars.append(u)
            }
        }
        return o
    }

    /// `s` cut to `width` terminal columns (wide East Asian characters count two), with `…` when cut.
    static func fit(_ s: String, _ width: Int) -> String {
        if s.unicodeScalars.reduce(0, { $0 + columns($1) }) <= width { return s }
        var used = 0
        var o = ""
        for u in s.unicodeScalars {
            let w = columns(u)
            if used + w > width - 1 { break }
            used += w
            o.unicodeScalars.append(u)
        }
        return o + "…"
    }

    static func columns(_ u: Unicode.Scalar) -> Int {
        let v = u.value
        if (0x0300...0x036F).contains(v) || v == 0x200B || (0xFE00...0xFE0F).contains(v) { return 0 }
        if (0x1100...0x115F).contains(v) || (0x2E80...0xA4CF).contains(v) || (0xAC00...0xD7A3).contains(v)
            || (0xF900...0xFAFF).contains(v) || (0xFE30...0xFE4F).contains(v) || (0xFF00...0xFF60).contains(v)
            || (0xFFE0...0xFFE6).contains(v) || (0x1F300...0x1FAFF).contains(v) || (0x20000...0x3FFFD).contains(v)
        {
            return 2
        }
        return 1
    }
}

/// Passes text on with control characters other than newline escaped (the summary block after the frame).
final class EscapingOutput: ByteOutput {
    private let out: any ByteOutput
    init(_ out: any ByteOutput) { self.out = out }

    func write(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        let escaped = text.split(separator: "\n", omittingEmptySubsequences: false).map { LiveViewSink.escape(String($0)) }
        out.write(Array(escaped.joined(separator: "\n").utf8))
    }

    func flush() { out.flush() }
}
