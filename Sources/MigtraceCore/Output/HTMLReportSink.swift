// SPDX-License-Identifier: Apache-2.0

/// `migtrace report`: one self-contained HTML page (inline SVG, inline CSS, a small inline script, nothing
/// fetched) with, per migration, its assessment and four charts on one time axis — bandwidth, pending against
/// threshold, window length, downtime limit — and its findings as shaded time ranges.
///
/// Windows are kept as they come while a series has at most ``rawWindowLimit`` of them; past that they are
/// folded into time buckets that keep each value's first, last, minimum and maximum (the bucket width doubles
/// as the series grows, so memory stays bounded), and each chart draws one column per pixel with its extremes.
/// The page is written by ``finished(_:)``, once the assessments are known.
public final class HTMLReportSink: AnalysisSink {
    /// Plot width in pixels, and so the most columns a downsampled chart draws.
    public static let plotWidth = 1000
    /// A series with more windows than this is drawn downsampled (min/max per pixel column).
    public static let rawWindowLimit = 2 * plotWidth
    /// Series drawn with charts; later ones are listed by their summary only (a trace with thousands of
    /// migrations would otherwise give a page no browser opens quickly).
    public static let maxDrawnSeries = 100
    /// The four charts of each migration, in page order (the `data-chart` attribute of each `<svg>`).
    public static let chartKinds = ["bandwidth", "pending", "window", "limit"]

    private let out: any ByteOutput
    private let names: InputNames
    private let version: String
    private var plots: [Int: SeriesPlot] = [:]
    private var summaries: [Int: SeriesSummary] = [:]
    private var seriesOrder: [Int] = []
    /// Series seen beyond ``maxDrawnSeries``.
    private var undrawnSeries = 0
    /// The finished report.
    public private(set) var report: AnalysisReport?

    /// A report writer; nothing is written before ``finished(_:)``.
    public init(out: any ByteOutput, names: InputNames, version: String) {
        self.out = out
        self.names = names
        self.version = version
    }

    public func seriesStarted(_ info: SeriesInfo) {
        seriesOrder.append(info.index)
        if plots.count < Self.maxDrawnSeries {
            plots[info.index] = SeriesPlot()
        } else {
            undrawnSeries += 1
        }
    }

    public func window(_ w: AnalyzedWindow, in series: SeriesInfo) {
        plots[w.series]?.add(w)
    }

    public func finding(_ finding: Finding) {}

    public func seriesEnded(_ summary: SeriesSummary) {
        summaries[summary.info.index] = summary
    }

    public func finished(_ r: AnalysisReport) {
        report = r
        var page = HTMLPage()
        page.document(
            report: r, names: names, version: version, order: seriesOrder, summaries: summaries, plots: plots,
            undrawn: undrawnSeries)
        out.write(page.bytes)
        out.flush()
    }
}

// MARK: - Data kept per series

/// One value's first, last, minimum and maximum over a bucket, and whether the minimum came first: enough to
/// draw the bucket's column as a line would pass through it.
struct BucketStat {
    var count = 0
    var first = 0.0
    var last = 0.0
    var min = 0.0
    var max = 0.0
    /// Positions of the minimum and maximum within the bucket (to draw them in the order they happened).
    var minAt = 0
    var maxAt = 0

    mutating func add(_ v: Double) {
        if count == 0 {
            first = v
            min = v
            max = v
            minAt = 0
            maxAt = 0
        } else {
            if v < min { min = v; minAt = count }
            if v > max { max = v; maxAt = count }
        }
        last = v
        count += 1
    }

    /// `self` followed by `next`.
    mutating func merge(_ next: BucketStat) {
        guard next.count > 0 else { return }
        guard count > 0 else { self = next; return }
        if next.min < min { min = next.min; minAt = count + next.minAt }
        if next.max > max { max = next.max; maxAt = count + next.maxAt }
        last = next.last
        count += next.count
    }

    /// The values a line through this bucket passes, in order (first, the extremes as they came, last),
    /// without repeats.
    var path: [Double] {
        guard count > 0 else { return [] }
        var p = [first]
        let extremes = minAt <= maxAt ? [min, max] : [max, min]
        for v in extremes + [last] where v != p.last! { p.append(v) }
        return p
    }
}

/// The windows of one bucket (or one window): its time span and the five drawn values.
struct Bucket {
    /// Seconds from the series' first window start: the first window's start, its end and the last one's end.
    var firstStart = 0.0
    var firstTime = 0.0
    var lastTime = 0.0
    var windows = 0
    var bandwidth = BucketStat()  // MB/s
    var pending = BucketStat()  // MB
    var threshold = BucketStat()  // MB
    var length = BucketStat()  // ms
    var limit = BucketStat()  // ms

    init() {}

    init(_ w: AnalyzedWindow, at t: Double, from start: Double) {
        add(w, at: t, from: start)
    }

    mutating func add(_ w: AnalyzedWindow, at t: Double, from start: Double) {
        if windows == 0 {
            firstTime = t
            firstStart = start
        }
        lastTime = t
        windows += 1
        bandwidth.add(w.megabytesPerSecond)
        if let p = w.pendingBytes { pending.add(Double(p) / 1e6) }
        threshold.add(w.thresholdMegabytes)
        length.add(Double(w.timeSpentMs))
        if let l = w.rebuild.downtimeLimitMs { limit.add(Double(l)) }
    }

    mutating func merge(_ b: Bucket) {
        guard b.windows > 0 else { return }
        if windows == 0 { self = b; return }
        lastTime = b.lastTime
        windows += b.windows
        bandwidth.merge(b.bandwidth)
        pending.merge(b.pending)
        threshold.merge(b.threshold)
        length.merge(b.length)
        limit.merge(b.limit)
    }
}

/// What a report keeps of one series: every window up to ``HTMLReportSink/rawWindowLimit``, then buckets of a
/// width that doubles whenever they would exceed twice the plot width.
final class SeriesPlot {
    /// The first window's start on the series' time base.
    private(set) var origin: Double?
    /// One bucket per window while `width` is nil; time buckets of `width` seconds after.
    private(set) var buckets: [Bucket] = []
    private(set) var width: Double?
    private(set) var windows = 0
    /// The latest window end, seconds from `origin`.
    private(set) var end = 0.0

    func add(_ w: AnalyzedWindow) {
        let t0 = origin ?? w.startTime
        origin = t0
        let t = w.endTime - t0
        let start = w.startTime - t0
        windows += 1
        if t > end { end = t }
        guard let width else {
            buckets.append(Bucket(w, at: t, from: start))
            if buckets.count > HTMLReportSink.rawWindowLimit { fold() }
            return
        }
        var i = Self.index(t, width)
        while i >= 2 * HTMLReportSink.plotWidth {
            coarsen()
            i = Self.index(t, self.width!)
        }
        // Out-of-order time stamps (a garbled trace) land in the last bucket rather than reorder the line.
        if i < buckets.count - 1 { i = buckets.count - 1 }
        while buckets.count <= i { buckets.append(Bucket()) }
        buckets[i].add(w, at: t, from: start)
    }

    private static func index(_ t: Double, _ width: Double) -> Int {
        let i = (max(0, t) / width).rounded(.down)
        return i < Double(Int.max / 2) ? Int(i) : Int.max / 2
    }

    /// Windows become time buckets, one per pixel column of the span so far.
    private func fold() {
        let w = max(end / Double(HTMLReportSink.plotWidth), 1e-3)
        width = w
        var folded: [Bucket] = []
        folded.reserveCapacity(2 * HTMLReportSink.plotWidth)
        for b in buckets {
            var i = min(Self.index(b.lastTime, w), 2 * HTMLReportSink.plotWidth - 1)
            if i < folded.count - 1 { i = folded.count - 1 }
            while folded.count <= i { folded.append(Bucket()) }
            folded[i].merge(b)
        }
        buckets = folded
    }

    /// Buckets twice as wide: each pair merged.
    private func coarsen() {
        width! *= 2
        var merged: [Bucket] = []
        merged.reserveCapacity(HTMLReportSink.plotWidth)
        var i = 0
        while i < buckets.count {
            var b = buckets[i]
            if i + 1 < buckets.count { b.merge(buckets[i + 1]) }
            merged.append(b)
            i += 2
        }
        buckets = merged
    }

    /// Whether the charts are drawn from buckets rather than from every window.
    var downsampled: Bool { width != nil }

    /// What the charts draw: every window, or one bucket per pixel column of the whole span.
    func columns() -> [Bucket] {
        guard downsampled else { return buckets }
        let span = max(end, 1e-3)
        var cols: [Bucket] = []
        cols.reserveCapacity(HTMLReportSink.plotWidth)
        for b in buckets where b.windows > 0 {
            let c = min(Int((b.lastTime / span * Double(HTMLReportSink.plotWidth)).rounded(.down)), HTMLReportSink.plotWidth - 1)
            if let last = cols.last, Int((last.lastTime / span * Double(HTMLReportSink.plotWidth)).rounded(.down)) >= c {
                cols[cols.count - 1].merge(b)
            } else {
                cols.append(b)
            }
        }
        return cols
    }
}

// MARK: - The page

/// Builds the HTML of the report: escaping, SVG geometry and the document.
struct HTMLPage {
    private(set) var bytes: [UInt8] = []

    // Geometry of every chart (SVG user units = CSS pixels at 100 %).
    static let left = 70.0
    static let right = 20.0
    static let top = 26.0
    static let plotHeight = 130.0
    static let bottom = 24.0
    static var width: Double { left + Double(HTMLReportSink.plotWidth) + right }
    static var height: Double { top + plotHeight + bottom }

    mutating func raw(_ s: String) { bytes.append(contentsOf: s.utf8) }

    /// Text content or attribute value: markup characters as entities, control characters (a terminal's
    /// escape sequences included) shown as `\xNN`, never passed through.
    mutating func text(_ s: String) { bytes.append(contentsOf: Self.escape(s).utf8) }

    static func escape(_ s: String) -> String {
        var o = ""
        o.reserveCapacity(s.utf8.count)
        for u in s.unicodeScalars {
            switch u {
            case "&": o += "&amp;"
            case "<": o += "&lt;"
            case ">": o += "&gt;"
            case "\"": o += "&quot;"
            case "'": o += "&#39;"
            case "\t", "\n": o.unicodeScalars.append(u)
            default:
                let v = u.value
                // C0, DEL, C1, and the noncharacters HTML forbids in its input stream.
                if v < 0x20 || (v >= 0x7F && v < 0xA0) || (v >= 0xFDD0 && v <= 0xFDEF) || v & 0xFFFE == 0xFFFE {
                    o += v <= 0xFF ? "\\x" + hex(v, 2) : "\\u{" + hex(v, 4) + "}"
                } else {
                    o.unicodeScalars.append(u)
                }
            }
        }
        return o
    }

    static func hex(_ v: UInt32, _ digits: Int) -> String {
        let s = String(v, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, digits - s.count)) + s
    }

    /// A number for SVG coordinates and data: fixed decimals, 0 for what is not finite.
    mutating func number(_ v: Double, _ decimals: Int = 1) {
        NumberText.appendFixed(v.isFinite ? v : 0, decimals, to: &bytes)
    }

    static func mb(_ bytes: UInt64, _ decimals: Int = 1) -> String { NumberText.fixed(Double(bytes) / 1e6, decimals) + " MB" }

    /// A step of 1, 2 or 5 × 10^k giving about four intervals up to `max`.
    static func niceStep(_ max: Double) -> Double {
        guard max > 0, max.isFinite else { return 1 }
        let raw = max / 4
        var p = 1.0
        while p * 10 <= raw { p *= 10 }
        while p > raw { p /= 10 }
        for m in [1.0, 2.0, 5.0, 10.0] where p * m >= raw { return p * m }
        return p * 10
    }

    /// A tick label; whole numbers of five digits or more grouped by thousands (thin spaces), so that
    /// 6000000 reads as 6 000 000.
    static func tick(_ v: Double, _ decimals: Int) -> String {
        let s = NumberText.fixed(v, decimals)
        guard decimals == 0, s.count > 4 else { return s }
        var out = ""
        for (i, c) in s.enumerated() {
            if i > 0, (s.count - i) % 3 == 0 { out += "\u{2009}" }
            out.append(c)
        }
        return out
    }

    /// Decimals that tell ticks `step` apart.
    static func decimals(_ step: Double) -> Int {
        var d = 0
        var s = step
        while s < 1, d < 6 { s *= 10; d += 1 }
        return d
    }

    /// "2025-01-31 12:34:56 UTC" for seconds since the epoch.
    static func utc(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0, seconds < 1e11 else { return "?" }
        let s = Int(seconds)
        let days = s / 86400
        let rest = s % 86400
        // Days to civil date (proleptic Gregorian), after Howard Hinnant's algorithm.
        let z = days + 719_468
        let era = z / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        func two(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(y)-\(two(m))-\(two(d)) \(two(rest / 3600)):\(two(rest / 60 % 60)):\(two(rest % 60)) UTC"
    }

    static let style = """
        :root{--fg:#1d232b;--muted:#5b6673;--grid:#e3e7ec;--bg:#ffffff;--panel:#f5f7f9}
        *{box-sizing:border-box}
        body{margin:0;padding:16px 20px;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);background:var(--bg)}
        h1{font-size:20px;margin:0 0 4px}
        h2{font-size:17px;margin:0 0 8px}
        .meta,.note,.summary{color:var(--muted)}
        .migration{border-top:2px solid var(--grid);padding:14px 0 18px;margin-top:8px}
        .facts{display:flex;flex-wrap:wrap;gap:8px;margin:6px 0 10px}
        .fact{background:var(--panel);border-radius:6px;padding:6px 10px;min-width:150px}
        .fact b{display:block;font-size:11px;font-weight:600;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
        .verdict{font-weight:700}
        .v-converging,.v-completed{color:#1a7f37}.v-stalled,.v-diverging{color:#c2410c}.v-unknown{color:var(--muted)}
        dl.answers{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:6px 0 10px}
        dl.answers dt{font-weight:600}dl.answers dd{margin:0}
        .readout{font:12px/1.4 ui-monospace,"DejaVu Sans Mono",monospace;color:var(--muted);min-height:1.4em}
        svg{display:block;max-width:100%;height:auto}
        svg text{font:11px system-ui,"DejaVu Sans",sans-serif;fill:var(--muted)}
        svg .title{font-weight:600;fill:var(--fg);font-size:12px}
        svg .plot{fill:var(--bg)}
        svg .grid{stroke:var(--grid);stroke-width:1}
        svg .axis{stroke:#9aa4af;stroke-width:1}
        svg .line{fill:none;stroke-width:1.5;stroke-linejoin:round}
        .s-bandwidth{stroke:#2563eb}.s-pending{stroke:#7c3aed}.s-threshold{stroke:#ea580c}.s-window{stroke:#0f766e}.s-limit{stroke:#be185d}
        .k-bandwidth{fill:#2563eb}.k-pending{fill:#7c3aed}.k-threshold{fill:#ea580c}.k-window{fill:#0f766e}.k-limit{fill:#be185d}
        svg .ref{stroke:#9aa4af;stroke-dasharray:4 3}
        svg text.value{fill:#be185d;font-weight:600}
        svg .switchover{stroke:#15803d;stroke-width:1.5;stroke-dasharray:6 3}
        svg text.sw{fill:#15803d;font-weight:600}
        .band{cursor:pointer}
        .band-critical{fill:#dc2626;fill-opacity:.15}.band-warning{fill:#d97706;fill-opacity:.11}.band-info{fill:#2563eb;fill-opacity:.06}
        .band:hover,.band.on{fill-opacity:.34}
        .tag rect{rx:3}.tag-critical rect{fill:#dc2626}.tag-warning rect{fill:#d97706}.tag-info rect{fill:#2563eb}
        svg .tag text{fill:#fff;font-weight:600}
        .cross{stroke:#1d232b;stroke-opacity:.45;pointer-events:none}
        table.findings{border-collapse:collapse;margin-top:10px;width:100%}
        table.findings th,table.findings td{text-align:left;vertical-align:top;padding:4px 8px;border-bottom:1px solid var(--grid)}
        table.findings tr.on{background:#fff7d6}
        .sev-critical{color:#b91c1c;font-weight:700}.sev-warning{color:#b45309;font-weight:700}.sev-info{color:#1d4ed8}
        #tip{position:fixed;max-width:460px;background:#1d232b;color:#fff;padding:8px 10px;border-radius:6px;font-size:13px;box-shadow:0 4px 14px rgba(0,0,0,.25);z-index:9}
        #tip b{display:block;margin-bottom:2px}#tip .remedy{color:#cbd5e1;margin-top:4px}
        """

    /// Hover or click a finding (band, tag or table row) to see its message and remedy; move over a chart to
    /// read every value at that time. Reads only the page itself.
    static let script = """
        (function(){
        "use strict";
        var tip=document.getElementById("tip"),pinned=null;
        function finding(el){var id=el.getAttribute("data-f");return id&&document.getElementById("f"+id);}
        function show(el,ev){var row=finding(el);if(!row)return;
        tip.textContent="";var b=document.createElement("b");b.textContent=row.getAttribute("data-title");tip.appendChild(b);
        var m=document.createElement("div");m.textContent=row.getAttribute("data-message");tip.appendChild(m);
        var r=document.createElement("div");r.className="remedy";r.textContent="\\u2192 "+row.getAttribute("data-remedy");tip.appendChild(r);
        tip.hidden=false;var x=Math.min(ev.clientX+14,window.innerWidth-480),y=ev.clientY+14;
        if(y+tip.offsetHeight>window.innerHeight)y=Math.max(0,ev.clientY-tip.offsetHeight-10);
        tip.style.left=Math.max(0,x)+"px";tip.style.top=y+"px";}
        function mark(id,on){var all=document.querySelectorAll('[data-f="'+id+'"]');for(var i=0;i<all.length;i++)all[i].classList.toggle("on",on);
        var row=document.getElementById("f"+id);if(row)row.classList.toggle("on",on);}
        var els=document.querySelectorAll("[data-f]");
        for(var i=0;i<els.length;i++){(function(el){
        el.addEventListener("mousemove",function(ev){if(pinned===null)show(el,ev);});
        el.addEventListener("mouseleave",function(){if(pinned===null)tip.hidden=true;});
        el.addEventListener("click",function(ev){var id=el.getAttribute("data-f");
        if(pinned!==null)mark(pinned,false);
        if(pinned===id){pinned=null;tip.hidden=true;return;}
        pinned=id;mark(id,true);show(el,ev);ev.stopPropagation();});})(els[i]);}
        document.addEventListener("click",function(){if(pinned!==null){mark(pinned,false);pinned=null;tip.hidden=true;}});
        var migs=document.querySelectorAll(".migration[data-columns]");
        for(var k=0;k<migs.length;k++){(function(sec){
        var data=JSON.parse(sec.querySelector("script.columns").textContent),out=sec.querySelector(".readout");
        var span=+sec.getAttribute("data-span"),L=+sec.getAttribute("data-left"),W=+sec.getAttribute("data-plot");
        var crosses=sec.querySelectorAll(".cross");var charts=sec.querySelectorAll("svg.chart");
        function fmt(a,b,d,u){if(a===null)return"\\u2013";return(a===b?a.toFixed(d):a.toFixed(d)+"\\u2026"+b.toFixed(d))+u;}
        for(var c=0;c<charts.length;c++){(function(svg){
        svg.addEventListener("mousemove",function(ev){var r=svg.getBoundingClientRect(),vb=svg.viewBox.baseVal;
        var x=(ev.clientX-r.left)*vb.width/r.width;if(x<L||x>L+W)return;var t=(x-L)/W*span;
        var lo=0,hi=data.length-1;while(lo<hi){var mid=(lo+hi)>>1;if(data[mid][0]<t)lo=mid+1;else hi=mid;}
        if(lo>0&&Math.abs(data[lo-1][0]-t)<Math.abs(data[lo][0]-t))lo--;var d=data[lo];if(!d)return;
        var cx=L+d[0]/span*W;for(var j=0;j<crosses.length;j++){crosses[j].setAttribute("x1",cx);crosses[j].setAttribute("x2",cx);crosses[j].style.display="";}
        out.textContent="t "+d[0].toFixed(2)+" s \\u00b7 bandwidth "+fmt(d[1],d[2],2," MB/s")+" \\u00b7 pending "+fmt(d[3],d[4],1," MB")+
        " \\u00b7 threshold "+fmt(d[5],d[6],1," MB")+" \\u00b7 window "+fmt(d[7],d[8],0," ms")+" \\u00b7 limit "+fmt(d[9],d[10],0," ms");});})(charts[c]);}
        })(migs[k]);}
        })();
        """

    mutating func document(
        report r: AnalysisReport, names: InputNames, version: String, order: [Int], summaries: [Int: SeriesSummary],
        plots: [Int: SeriesPlot], undrawn: Int
    ) {
        raw("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
        // Nothing may be fetched: every resource is inline.
        raw(
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'\">\n"
        )
        raw("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<meta name=\"generator\" content=\"migtrace ")
        text(version)
        raw("\">\n<title>migtrace report: ")
        let inputs = Set(order.compactMap { summaries[$0]?.info.input } + r.migrations.map(\.input)).sorted()
        text(inputs.isEmpty ? "no migration" : inputs.map { names[$0] }.joined(separator: ", "))
        raw("</title>\n<style>\n\(Self.style)\n</style>\n</head>\n<body>\n<header>\n<h1>migtrace report</h1>\n<p class=\"meta\">")
        let counts = Severity.allCases.reversed().map { sev in "\(r.findings.filter { $0.severity == sev }.count) \(sev)" }
        text(
            "migtrace \(version) · \(r.series.count) series, \(r.windowCount) windows, thresholds exact in \(r.exactCount)/\(r.windowCount) · findings: "
                + counts.joined(separator: ", "))
        if r.rejectedCount > 0 { text(" · \(r.rejectedCount) line(s) rejected") }
        raw("</p>\n</header>\n")

        var findingID = 0
        var drawn = 0
        var shownMigrations = Set<Int>()
        for index in order {
            guard let summary = summaries[index] else { continue }
            let assessment = r.migrations.firstIndex { $0.series == index }
            if let a = assessment { shownMigrations.insert(a) }
            let seriesFindings = r.findings.filter { $0.series == index }
            migration(
                ordinal: drawn + 1, summary: summary, assessment: assessment.map { r.migrations[$0] }, names: names,
                plot: plots[index], findings: seriesFindings, firstFindingID: findingID)
            findingID += seriesFindings.count
            drawn += 1
        }
        // Migrations without a window (one over before its first window): their answers, no chart.
        for (i, m) in r.migrations.enumerated() where !shownMigrations.contains(i) {
            raw("<section class=\"migration\">\n<h2>")
            text("migration · \(names[m.input]) · no windows · \(m.outcome.rawValue)")
            raw("</h2>\n")
            facts(m, summary: nil)
            answers(m, names)
            raw("<p class=\"note\">No migrate_transferred window: nothing to draw.</p>\n</section>\n")
        }
        if undrawn > 0 {
            raw("<p class=\"note\">")
            text(
                "\(undrawn) more series are not drawn (a report draws the first \(HTMLReportSink.maxDrawnSeries)); `migtrace analyze` lists them all."
            )
            raw("</p>\n")
        }
        let general = r.findings.filter { $0.series < 0 }
        if !general.isEmpty {
            raw("<section class=\"migration\">\n<h2>Findings about the whole input</h2>\n")
            findingsTable(general, firstID: findingID)
            raw("</section>\n")
        }
        if r.series.isEmpty && r.migrations.isEmpty {
            raw("<p class=\"note\">")
            text(
                "No migrate_transferred events found: trace the source QEMU with `\(TracingRecipe.commandLine())` (or QMP trace-event-set-state) and report on FILE."
            )
            raw("</p>\n")
        }
        raw("<div id=\"tip\" hidden></div>\n<script>\n\(Self.script)\n</script>\n</body>\n</html>\n")
    }

    private mutating func facts(_ m: MigrationAssessment?, summary: SeriesSummary?) {
        raw("<div class=\"facts\">\n")
        func fact(_ label: String, _ value: String, cls: String? = nil) {
            raw("<div class=\"fact\"><b>")
            text(label)
            raw("</b><span")
            if let cls { raw(" class=\"\(cls)\"") }
            raw(">")
            text(value)
            raw("</span></div>\n")
        }
        let verdict = m?.verdict?.rawValue ?? "unknown"
        fact("verdict", verdict, cls: "verdict v-\(verdict)")
        fact("outcome", m?.outcome.rawValue ?? summary?.finalState ?? "unknown")
        if let m {
            var d: String
            if let ms = m.downtimeMs {
                d = "\(NumberText.fixed(ms, 1)) ms measured"
            } else if let e = m.expectedDowntimeMs {
                d = "\(NumberText.fixed(e, 0)) ms expected"
            } else {
                d = "unknown"
            }
            if let l = m.downtimeLimitMs { d += " (limit \(l) ms)" }
            fact("downtime", d)
            if let e = m.etaSeconds, m.verdict == .converging {
                var s = "≈ \(NumberText.fixed(e, 1)) s"
                if let lo = m.etaLowSeconds, let hi = m.etaHighSeconds { s += " (\(NumberText.fixed(lo, 1))–\(NumberText.fixed(hi, 1)) s)" }
                fact("ETA", s)
            }
            if let sw = m.switchover {
                var s = sw.window.map { "after window \($0)" } ?? "yes"
                if let p = sw.pendingBytes { s += ", \(Self.mb(p)) pending" }
                if let t = sw.thresholdBytes { s += " vs \(Self.mb(t)) threshold" }
                fact("switchover", s)
            }
            if let a = m.advice {
                var s = a.reason
                if m.verdict == .stalled || m.verdict == .diverging {
                    if let l = a.downtimeLimitMs { s += "; downtime-limit ≥ \(l) ms" }
                    if let b = a.bandwidthBytesPerSecond { s += " or ≥ \(NumberText.fixed(Double(b) / 1e6, 2)) MB/s" }
                }
                fact("advice", s)
            }
        }
        raw("</div>\n")
    }

    /// The four questions of the text output, in the same words.
    private mutating func answers(_ m: MigrationAssessment, _ names: InputNames) {
        raw("<dl class=\"answers\">\n")
        for line in MigrationText.block(m, names).split(separator: "\n").dropFirst() {
            guard let q = line.firstIndex(of: "?") else { continue }
            raw("<dt>")
            text(String(line[..<line.index(after: q)].trimmingSpaces))
            raw("</dt><dd>")
            text(String(line[line.index(after: q)...].trimmingSpaces))
            raw("</dd>\n")
        }
        raw("</dl>\n")
    }

    private mutating func migration(
        ordinal: Int, summary s: SeriesSummary, assessment m: MigrationAssessment?, names: InputNames, plot: SeriesPlot?,
        findings: [Finding], firstFindingID: Int
    ) {
        let columns = plot?.columns() ?? []
        let span = max(plot?.end ?? 0, 0.1)
        raw("<section class=\"migration\" id=\"series-\(s.info.index)\"")
        if plot != nil {
            raw(" data-columns=\"\(columns.count)\" data-span=\"")
            number(span, 6)
            raw("\" data-left=\"\(Int(Self.left))\" data-plot=\"\(HTMLReportSink.plotWidth)\"")
        }
        raw(">\n<h2>")
        var title = "migration \(ordinal) · \(names[s.info.input]) · series \(s.info.index)"
        if let t = s.info.threadID { title += " · thread \(t)" }
        if let m { title += " · \(m.outcome.rawValue)" } else if let st = s.finalState { title += " · \(st)" }
        text(title)
        raw("</h2>\n")
        facts(m, summary: s)
        if let m { answers(m, names) }
        raw("<p class=\"summary\">")
        var t = "era \(TextSink.eraName(s.info.era)), \(s.windows) windows, "
        t += "\(NumberText.fixed(Double(s.totalBytes) / 1_000_000, 1)) MB in \(NumberText.fixed(Double(s.totalTimeMs) / 1000, 2)) s "
        t +=
            "(mean \(NumberText.fixed(s.meanBandwidth / 1000, 2)) MB/s); threshold rebuilt exactly in \(s.exactThresholds)/\(s.windows) windows"
        if !s.downtimeLimits.isEmpty {
            t += "; downtime limit " + s.downtimeLimits.map { "\($0.limitMs) ms from window \($0.window)" }.joined(separator: ", ")
        }
        if s.info.timeBase == .epoch { t += "; started \(Self.utc(s.startTime))" }
        text(t)
        raw("</p>\n")
        guard let plot else {
            raw("<p class=\"note\">Not drawn: the report draws the first \(HTMLReportSink.maxDrawnSeries) series.</p>\n</section>\n")
            return
        }
        if plot.downsampled {
            raw("<p class=\"note\">")
            text(
                "Downsampled for drawing: \(plot.windows) windows shown as \(columns.count) pixel columns, each drawn through its first, lowest, highest and last value (extremes kept)."
            )
            raw("</p>\n")
        }
        let note = plot.downsampled ? "min/max of \(plot.windows) windows per pixel" : nil
        laneOrigin = plot.origin ?? s.startTime
        let sw: Double? = m?.switchover?.time.map { $0 - laneOrigin }
        lane(findings, firstID: firstFindingID, span: span)
        raw("<div class=\"readout\" aria-live=\"polite\"></div>\n")
        chart(
            "bandwidth", title: "Bandwidth (MB/s)", columns: columns, span: span,
            lines: [("bandwidth", "bandwidth", { $0.bandwidth })], step: .overWindow, reference: nil, switchover: sw,
            findings: findings, firstID: firstFindingID, note: note)
        chart(
            "pending", title: "Pending vs threshold (MB)", columns: columns, span: span,
            lines: [("pending", "pending", { $0.pending }), ("threshold", "threshold", { $0.threshold })], step: .atEnd,
            reference: nil, switchover: sw, findings: findings, firstID: firstFindingID, note: note,
            switchoverLabel: m?.switchover.map { s in
                var l = "switchover"
                if let p = s.pendingBytes { l += ": \(Self.mb(p, 2)) pending" }
                if let t = s.thresholdBytes { l += (s.pendingBytes ?? 0 < t ? " < " : " vs ") + "\(Self.mb(t, 2)) threshold" }
                return l
            })
        chart(
            "window", title: "Window length (ms)", columns: columns, span: span,
            lines: [("window", "window length", { $0.length })], step: .overWindow, reference: (100, "100 ms"), switchover: sw,
            findings: findings, firstID: firstFindingID, note: note)
        chart(
            "limit", title: "Downtime limit (ms)", columns: columns, span: span,
            lines: [("limit", "downtime limit", { $0.limit })], step: .step, reference: nil, switchover: sw,
            findings: findings, firstID: firstFindingID, note: note, axisLabel: true,
            labels: plot.downsampled
                ? []
                : s.downtimeLimits.prefix(20).compactMap { change in
                    columns.indices.contains(change.window)
                        ? (columns[change.window].firstStart, Double(change.limitMs), "\(change.limitMs) ms") : nil
                })
        // Per column: time, then (min, max) of bandwidth, pending, threshold, window length, limit.
        raw("<script type=\"application/json\" class=\"columns\">[")
        for (i, c) in columns.enumerated() {
            if i > 0 { raw(",") }
            raw("[")
            number(c.lastTime, 3)
            for (stat, d) in [(c.bandwidth, 3), (c.pending, 3), (c.threshold, 3), (c.length, 0), (c.limit, 0)] {
                if stat.count > 0 {
                    raw(",")
                    number(stat.min, d)
                    raw(",")
                    number(stat.max, d)
                } else {
                    raw(",null,null")
                }
            }
            raw("]")
        }
        raw("]</script>\n")
        if !findings.isEmpty { findingsTable(findings, firstID: firstFindingID) }
        raw("</section>\n")
    }

    private func x(_ t: Double, _ span: Double) -> Double {
        Self.left + min(max(t / span, 0), 1) * Double(HTMLReportSink.plotWidth)
    }

    /// The findings as labelled tags on lanes above the charts (a later one takes the first lane it fits in).
    private mutating func lane(_ findings: [Finding], firstID: Int, span: Double) {
        guard !findings.isEmpty else { return }
        var laneEnds: [Double] = []
        var placed: [(Int, Double, Double, Int)] = []  // finding, x0, x1, lane
        for (i, f) in findings.enumerated() {
            let labelWidth = Double(f.rule.count) * 6.6 + 10
            // A tag too close to the right edge for its label ends at the edge instead.
            let x0 = min(x(f.startTime - laneOrigin, span), Self.left + Double(HTMLReportSink.plotWidth) - labelWidth)
            let x1 = max(x(f.endTime - laneOrigin, span), x0 + labelWidth)
            var l = laneEnds.firstIndex { $0 + 4 <= x0 } ?? laneEnds.count
            if l >= 6 { l = 5 }
            if l == laneEnds.count { laneEnds.append(x1) } else { laneEnds[l] = max(laneEnds[l], x1) }
            placed.append((i, x0, x1, l))
        }
        let h = Double(laneEnds.count) * 20 + 4
        raw("<svg class=\"lane\" viewBox=\"0 0 ")
        number(Self.width, 0)
        raw(" ")
        number(h, 0)
        raw("\" width=\"")
        number(Self.width, 0)
        raw("\" height=\"")
        number(h, 0)
        raw("\" role=\"img\" aria-label=\"findings\">\n<text x=\"4\" y=\"16\">findings</text>\n")
        for (i, x0, x1, l) in placed {
            let f = findings[i]
            raw("<g class=\"tag tag-\(f.severity) band\" data-f=\"\(firstID + i)\"><rect x=\"")
            number(x0)
            raw("\" y=\"")
            number(Double(l) * 20 + 2, 0)
            raw("\" width=\"")
            number(x1 - x0)
            raw("\" height=\"17\"/><text x=\"")
            number(x0 + 5)
            raw("\" y=\"")
            number(Double(l) * 20 + 14.5)
            raw("\">")
            text(f.rule)
            raw("</text><title>")
            text("\(f.rule): \(f.message)")
            raw("</title></g>\n")
        }
        raw("</svg>\n")
    }

    /// Findings' times are on the series' time base; the lane and the charts draw from the first window's start,
    /// which `migration` sets before drawing.
    private var laneOrigin = 0.0

    private mutating func chart(
        _ kind: String, title: String, columns: [Bucket], span: Double, lines: [(String, String, (Bucket) -> BucketStat)],
        step: LineShape, reference: (Double, String)?, switchover: Double?, findings: [Finding], firstID: Int, note: String?,
        switchoverLabel: String? = nil, axisLabel: Bool = false, labels: [(time: Double, value: Double, text: String)] = []
    ) {
        let w = Double(HTMLReportSink.plotWidth)
        var top = 0.0
        for (_, _, value) in lines {
            for c in columns {
                let s = value(c)
                if s.count > 0, s.max.isFinite { top = max(top, s.max) }
            }
        }
        if let r = reference { top = max(top, r.0) }
        let stepValue = Self.niceStep(top * 1.08)
        let yMax = max(stepValue, (top * 1.08 / stepValue).rounded(.up) * stepValue)
        func y(_ v: Double) -> Double { Self.top + Self.plotHeight - min(max(v / yMax, 0), 1) * Self.plotHeight }

        let height = Self.height + (axisLabel ? 14 : 0)
        raw("<svg class=\"chart\" data-chart=\"\(kind)\" viewBox=\"0 0 ")
        number(Self.width, 0)
        raw(" ")
        number(height, 0)
        raw("\" width=\"")
        number(Self.width, 0)
        raw("\" height=\"")
        number(height, 0)
        raw("\" role=\"img\" aria-label=\"")
        text(title)
        raw("\">\n<text class=\"title\" x=\"")
        number(Self.left, 0)
        raw("\" y=\"16\">")
        text(title)
        raw("</text>\n")
        // Legend and note, right-aligned.
        var lx = Self.left + w
        if let note {
            raw("<text class=\"note\" text-anchor=\"end\" x=\"")
            number(lx, 0)
            raw("\" y=\"16\">")
            text(note)
            raw("</text>\n")
            lx -= Double(note.count) * 6.6 + 20
        }
        for (cls, label, _) in lines.reversed() {
            raw("<text text-anchor=\"end\" x=\"")
            number(lx, 0)
            raw("\" y=\"16\">")
            text(label)
            raw("</text><rect class=\"k-\(cls)\" x=\"")
            number(lx - Double(label.count) * 6.6 - 18, 0)
            raw("\" y=\"9\" width=\"12\" height=\"4\"/>\n")
            lx -= Double(label.count) * 6.6 + 34
        }
        // The plot area (what the browser test measures), then grid and y ticks.
        raw("<rect class=\"plot\" x=\"")
        number(Self.left, 0)
        raw("\" y=\"")
        number(Self.top, 0)
        raw("\" width=\"")
        number(w, 0)
        raw("\" height=\"")
        number(Self.plotHeight, 0)
        raw("\"/>\n")
        let d = Self.decimals(stepValue)
        var v = 0.0
        while v <= yMax + stepValue / 1000 {
            raw("<line class=\"grid\" x1=\"")
            number(Self.left, 0)
            raw("\" x2=\"")
            number(Self.left + w, 0)
            raw("\" y1=\"")
            number(y(v))
            raw("\" y2=\"")
            number(y(v))
            raw("\"/><text text-anchor=\"end\" x=\"")
            number(Self.left - 6, 0)
            raw("\" y=\"")
            number(y(v) + 4)
            raw("\">")
            raw(Self.tick(v, d))
            raw("</text>\n")
            v += stepValue
        }
        // Time ticks.
        let tStep = Self.niceStep(span * 0.8 * 4 / 8)
        let td = Self.decimals(tStep)
        var t = 0.0
        while t <= span + tStep / 1000 {
            raw("<line class=\"axis\" x1=\"")
            number(x(t, span))
            raw("\" x2=\"")
            number(x(t, span))
            raw("\" y1=\"")
            number(Self.top + Self.plotHeight, 0)
            raw("\" y2=\"")
            number(Self.top + Self.plotHeight + 4, 0)
            raw("\"/><text text-anchor=\"middle\" x=\"")
            number(x(t, span))
            raw("\" y=\"")
            number(Self.top + Self.plotHeight + 16, 0)
            raw("\">")
            number(t, td)
            raw(t == 0 ? " s</text>\n" : "</text>\n")
            t += tStep
        }
        raw("<line class=\"axis\" x1=\"")
        number(Self.left, 0)
        raw("\" x2=\"")
        number(Self.left + w, 0)
        raw("\" y1=\"")
        number(Self.top + Self.plotHeight, 0)
        raw("\" y2=\"")
        number(Self.top + Self.plotHeight, 0)
        raw("\"/>\n")
        // Findings as shaded time ranges (at least 2 px wide).
        for (i, f) in findings.enumerated() {
            let x0 = x(f.startTime - laneOrigin, span)
            let x1 = max(x(f.endTime - laneOrigin, span), x0 + 2)
            raw("<rect class=\"band band-\(f.severity)\" data-f=\"\(firstID + i)\" x=\"")
            number(x0)
            raw("\" y=\"")
            number(Self.top, 0)
            raw("\" width=\"")
            number(x1 - x0)
            raw("\" height=\"")
            number(Self.plotHeight, 0)
            raw("\"><title>")
            text("\(f.rule): \(f.message)")
            raw("</title></rect>\n")
        }
        if let (rv, label) = reference, rv <= yMax {
            raw("<line class=\"ref\" x1=\"")
            number(Self.left, 0)
            raw("\" x2=\"")
            number(Self.left + w, 0)
            raw("\" y1=\"")
            number(y(rv))
            raw("\" y2=\"")
            number(y(rv))
            raw("\"/><text x=\"")
            number(Self.left + 4, 0)
            raw("\" y=\"")
            number(y(rv) - 3)
            raw("\">")
            text(label)
            raw("</text>\n")
        }
        // The lines: through every window, or through each column's first, extremes and last.
        for (cls, _, value) in lines {
            var points: [(Double, Double)] = []
            points.reserveCapacity(columns.count * 2)
            for c in columns {
                let s = value(c)
                guard s.count > 0 else { continue }
                let cx = x(c.lastTime, span)
                let path = s.path
                switch step {
                case .atEnd:
                    for p in path { points.append((cx, y(p))) }
                case .overWindow:
                    // The value held over the window(s): from the first start to the last end.
                    let x0 = x(c.firstStart, span)
                    points.append((x0, y(path[0])))
                    for p in path { points.append((max(x0, min(cx, (x0 + cx) / 2)), y(p))) }
                    points.append((cx, y(path[path.count - 1])))
                case .step:
                    points.append((points.last?.0 == nil ? x(0, span) : cx, points.last?.1 ?? y(path[0])))
                    for p in path { points.append((cx, y(p))) }
                }
            }
            if step == .step, let last = points.last { points.append((x(span, span), last.1)) }
            guard !points.isEmpty else { continue }
            raw("<polyline class=\"line s-\(cls)\" points=\"")
            for (i, p) in points.enumerated() {
                if i > 0 { raw(" ") }
                number(p.0)
                raw(",")
                number(p.1)
            }
            raw("\"/>\n")
            if points.count == 1 {
                raw("<circle class=\"k-\(cls)\" r=\"2.5\" cx=\"")
                number(points[0].0)
                raw("\" cy=\"")
                number(points[0].1)
                raw("\"/>\n")
            }
        }
        if let sw = switchover, sw >= 0, sw <= span * 1.001 {
            raw("<line class=\"switchover\" x1=\"")
            number(x(sw, span))
            raw("\" x2=\"")
            number(x(sw, span))
            raw("\" y1=\"")
            number(Self.top, 0)
            raw("\" y2=\"")
            number(Self.top + Self.plotHeight, 0)
            raw("\"/>\n")
            if let label = switchoverLabel {
                let anchorEnd = x(sw, span) > Self.left + w * 0.6
                raw("<text class=\"sw\" text-anchor=\"\(anchorEnd ? "end" : "start")\" x=\"")
                number(x(sw, span) + (anchorEnd ? -5 : 5))
                raw("\" y=\"")
                number(Self.top + 12, 0)
                raw("\">")
                text(label)
                raw("</text>\n")
            }
        }
        // Values written at their points (the downtime limit at each change).
        for l in labels {
            let lx = x(l.time, span)
            let end = lx > Self.left + w * 0.85
            raw("<text class=\"value\" text-anchor=\"\(end ? "end" : "start")\" x=\"")
            number(lx + (end ? -4 : 4))
            raw("\" y=\"")
            number(max(Self.top + 10, y(l.value) - 4))
            raw("\">")
            text(l.text)
            raw("</text>\n")
        }
        raw("<line class=\"cross\" style=\"display:none\" x1=\"0\" x2=\"0\" y1=\"")
        number(Self.top, 0)
        raw("\" y2=\"")
        number(Self.top + Self.plotHeight, 0)
        raw("\"/>\n")
        if axisLabel {
            raw("<text text-anchor=\"end\" x=\"")
            number(Self.left + w, 0)
            raw("\" y=\"")
            number(height - 2, 0)
            raw("\">time since the first window (s)</text>\n")
        }
        raw("</svg>\n")
    }

    private mutating func findingsTable(_ findings: [Finding], firstID: Int) {
        raw(
            "<table class=\"findings\">\n<thead><tr><th>finding</th><th>windows</th><th>message</th><th>remedy</th></tr></thead>\n<tbody>\n"
        )
        for (i, f) in findings.enumerated() {
            raw("<tr id=\"f\(firstID + i)\" data-f=\"\(firstID + i)\" data-title=\"")
            let place =
                f.series < 0
                ? "" : f.firstWindow == f.lastWindow ? " (window \(f.firstWindow))" : " (windows \(f.firstWindow)–\(f.lastWindow))"
            text("\(f.severity.description.uppercased()) \(f.rule)\(place)")
            raw("\" data-message=\"")
            text(f.message)
            raw("\" data-remedy=\"")
            text(f.remedy)
            raw("\"><td><span class=\"sev-\(f.severity)\">")
            text(f.severity.description)
            raw("</span> ")
            text(f.rule)
            raw("</td><td>")
            text(f.series < 0 ? "–" : f.firstWindow == f.lastWindow ? "\(f.firstWindow)" : "\(f.firstWindow)–\(f.lastWindow)")
            raw("</td><td>")
            text(f.message)
            raw("</td><td>")
            text(f.remedy)
            raw("</td></tr>\n")
        }
        raw("</tbody>\n</table>\n")
    }
}

/// How a chart's line passes through its windows.
enum LineShape {
    /// A point at each window's end (pending, threshold: values at an instant).
    case atEnd
    /// Held over each window's span (bandwidth, window length: a value of the whole window).
    case overWindow
    /// Held until the next change (the downtime limit).
    case step
}

extension Substring {
    fileprivate var trimmingSpaces: Substring {
        var s = self
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return s
    }
}
