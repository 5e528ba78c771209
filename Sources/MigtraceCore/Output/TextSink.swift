// SPDX-License-Identifier: Apache-2.0

/// The human view: a table per series, findings as they are made, a summary at the end.
public final class TextSink: AnalysisSink {
    private let out: any ByteOutput
    private let names: InputNames
    private let showWindows: Bool
    private let flushEachLine: Bool
    /// Show the arithmetic of every window (the traced and rebuilt values) instead of the operator's columns.
    private let verify: Bool
    private var seriesStart: [Int: Double] = [:]
    /// Windows per series whose threshold did not rebuild exactly (marked ≠ in the table).
    private var inexact: [Int: Int] = [:]
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
    public init(out: any ByteOutput, names: InputNames, showWindows: Bool = true, flushEachLine: Bool = false, verify: Bool = false) {
        self.out = out
        self.names = names
        self.showWindows = showWindows
        self.flushEachLine = flushEachLine
        self.verify = verify
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

    /// The columns of `--verify`: every traced value and the rebuilt threshold.
    public static let verifyHeader =
        "   win    t(s)     sent(B)     ms   bw(B/ms)    MB/s  Mbit/s   sw(B/ms)   max_size(tr)    rebuilt  limit ok  pending(B)\n"
    /// The operator's columns: when, how fast, pending against the threshold, the downtime a switchover now would
    /// take, the limit, and flags (≠ a threshold that did not rebuild exactly, s a pending size after a dirty sync).
    public static let tableHeader =
        "   win          time     MB/s   pending MB    threshold MB   downtime now   limit  flags\n"

    public func seriesStarted(_ info: SeriesInfo) {
        var s = "\nseries \(info.index) · \(names[info.input])"
        if let t = info.threadID { s += " · thread \(t)" }
        if let p = info.processID { s += " · pid \(p)" }
        s += "\n"
        if showWindows { s += verify ? Self.verifyHeader : Self.tableHeader }
        put(s)
    }

    public func window(_ w: AnalyzedWindow, in series: SeriesInfo) {
        if w.index == 0 { seriesStart[w.series] = w.startTime }
        if !w.rebuild.exact { inexact[w.series, default: 0] += 1 }
        guard showWindows else { return }
        put(verify ? verifyRow(w) : row(w, in: series))
    }

    /// The operator's row of window `w`.
    private func row(_ w: AnalyzedWindow, in series: SeriesInfo) -> String {
        var s = Self.pad(String(w.index), 6)
        let time: String
        if series.timeBase == .epoch {
            // UTC time of day of the window's end, to the tenth of a second.
            let tenths = Int((w.endTime * 10).rounded(.down))
            let day = (tenths / 10) % 86_400
            func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
            time = "\(two(day / 3600)):\(two(day / 60 % 60)):\(two(day % 60)).\(tenths % 10)"
        } else {
            time = "+" + NumberText.fixed(w.endTime - (seriesStart[w.series] ?? 0), 2) + " s"
        }
        s += Self.pad(time, 14)
        s += Self.pad(NumberText.fixed(w.megabytesPerSecond, 2), 9)
        let pending = w.pendingBytes
        s += Self.pad(pending.map { NumberText.fixed(Double($0) / 1_000_000, 2) } ?? "-", 13)
        s += pending.map { $0 <= w.thresholdTraced ? "  ≤" : "  >" } ?? "   "
        s += Self.pad(NumberText.fixed(Double(w.thresholdTraced) / 1_000_000, 2), 13)
        // What QEMU would need to send with the VM stopped, at the rate its threshold assumes.
        let downtime: String =
            if let p = pending, w.rebuild.expectedPerMs > 0 { NumberText.fixed(Double(p) / w.rebuild.expectedPerMs, 0) + " ms" } else {
                "-"
            }
        s += Self.pad(downtime, 15)
        s += Self.pad(w.rebuild.downtimeLimitMs.map { "\($0) ms" } ?? "?", 8)
        var flags = ""
        if !w.rebuild.exact { flags += "≠" }
        if w.pendingExact && pending != nil { flags += "s" }
        s += flags.isEmpty ? "" : "  " + flags
        return s + "\n"
    }

    /// The `--verify` row of window `w`: the traced values and the rebuilt threshold.
    private func verifyRow(_ w: AnalyzedWindow) -> String {
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
        return s + "\n"
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
        if let n = inexact[s.info.index], n > 0, showWindows, !verify {
            t += "\n  ≠ marks the \(n) window(s) whose threshold did not rebuild exactly: --verify shows their arithmetic"
        }
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
            var h = "migtrace \(a.migtraceVersion): attached to pid \(a.pid) (\(TerminalText.escaped(a.binary)))"
            h += (a.vmName.map { ", vm \(TerminalText.escaped($0))" } ?? "") + "\n"
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
                "no migrate_transferred events found: trace the source QEMU with `\(TracingRecipe.commandLine())` (or QMP trace-event-set-state) and analyse FILE\n"
        }
        if let e = captureEnd {
            t +=
                "capture ended (\(e.reason)): \(e.eventsReceived) events received; lost \(e.kernelDrops) events (kernel), \(e.consumerDrops) (consumer)\n"
        }
        put(t)
        out.flush()
    }
}
