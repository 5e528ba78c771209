// SPDX-License-Identifier: Apache-2.0

/// The human view: a table per series, findings as they are made, a summary at the end.
public final class TextSink: AnalysisSink {
    private let out: any ByteOutput
    private let names: InputNames
    private let showWindows: Bool
    private let flushEachLine: Bool
    private var seriesStart: [Int: Double] = [:]
    /// How the live capture ended: said after the summary.
    private var captureEnd: CaptureEnd?
    /// The last live status line printed (a new one only when it says something new).
    private var lastStatus: String?
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
        case .b: "B (QEMU 8.2–11.0, 5 args)"
        case .c: "C (QEMU ≥ 11.1, arg 3 in Mbit/s)"
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
        s += Self.pad(NumberText.fixed(w.endTime - t0, 2), 8)
        s += Self.pad(String(w.transferred), 12)
        s += Self.pad(String(w.timeSpentMs), 7)
        s += Self.pad(String(w.bandwidthTraced), 11)
        s += Self.pad(NumberText.fixed(w.megabytesPerSecond, 2), 8)
        s += Self.pad(NumberText.fixed(w.mbps, 1), 8)
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
        t += "\(NumberText.fixed(Double(s.totalBytes) / 1_000_000, 1)) MB in \(NumberText.fixed(Double(s.totalTimeMs) / 1000, 2)) s "
        t +=
            "(mean \(NumberText.fixed(s.meanBandwidth / 1000, 2)) MB/s); threshold rebuilt exactly in \(s.exactThresholds)/\(s.windows) windows (\(NumberText.fixed(pct, 1)) %)"
        if !s.downtimeLimits.isEmpty {
            t += "; downtime limit " + s.downtimeLimits.map { "\($0.limitMs) ms from window \($0.window)" }.joined(separator: ", ")
        }
        if let st = s.finalState { t += "; final state \(st)" }
        put(t + "\n")
    }

    /// A live capture's migration, once per window: a line when the verdict, or what it says to do, changes.
    /// The ETA changes with every window, so it is shown only when the line is printed anyway.
    private func migrationUpdated(_ m: MigrationAssessment) {
        var key = m.verdict?.rawValue ?? "-"
        if let a = m.advice, m.verdict == .stalled || m.verdict == .diverging {
            key += " \(a.downtimeLimitMs.map(String.init) ?? "-") \(a.bandwidthBytesPerSecond.map(String.init) ?? "-")"
        }
        guard key != lastStatus else { return }
        lastStatus = key
        put("  · migration: \(MigrationText.statusLine(m))\n")
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
        case .migration(let m): migrationUpdated(m)
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
