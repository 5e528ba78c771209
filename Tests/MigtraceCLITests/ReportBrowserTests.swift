// SPDX-License-Identifier: Apache-2.0
import Foundation
import MigtraceTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `migtrace report` on two real QEMU traces (7.2 with a SIGSTOP stall, 10.0 that never converges), looked at in
/// Debian's headless chromium by Tests/ui/check_report.py: valid HTML (html5lib strict, tidy), no request but the
/// file itself (net log, with a control page showing that the net log does catch one), every chart drawn (its
/// lines' colours inside each plot area of the screenshot), and the page's elements against `analyze`'s JSON.
@Suite(.serialized) struct ReportBrowserTests {
    static let fixtures = ["7.2-stall.log", "10.0-nonconverge.log"]
    static let chartKinds = ["bandwidth", "pending", "window", "limit"]
    /// The lines each chart draws (`s-…` classes), in the order check_report.py lists them (sorted).
    static let chartLines = [
        "bandwidth": ["s-bandwidth"], "pending": ["s-pending", "s-threshold"], "window": ["s-window"], "limit": ["s-limit"],
    ]

    @Test func reportOfRealTracesDrawsEveryChartOfflineAndValid() throws {
        let work = CLI.temporaryPath("report-browser")
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let html = work + "/report.html"
        let paths = Self.fixtures.map(CLI.fixture)
        let made = try CLI.run(["report"] + paths + ["-o", html])
        #expect(made.status == 0, "\(made.stderr)")
        #expect(made.stderr.contains("wrote \(html): 2 migration(s) drawn"))

        // What the page must show, from analyze's JSON of the same traces.
        let analysis = try CLI.run(["analyze", "--format", "json"] + paths)
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(analysis.stdout.utf8)) as? [String: Any])
        let migrations = try #require(doc["migrations"] as? [[String: Any]])
        let anomalies = try #require(doc["anomalies"] as? [[String: Any]])
        let verdicts = migrations.compactMap { $0["verdict"] as? String }
        #expect(verdicts == ["completed", "stalled"])
        let withSwitchover = migrations.filter { ($0["switchover"] as? [String: Any])?["time"] is Double }.count
        let seriesFindings = anomalies.filter { $0["series"] is Int }.count

        let started = Date()
        let check = Process()
        check.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        check.arguments = [CLI.repository.appendingPathComponent("Tests/ui/check_report.py").path, html, work + "/check"]
        let out = Pipe()
        let err = Pipe()
        check.standardOutput = out
        check.standardError = err
        try check.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        check.waitUntilExit()
        let seconds = Date().timeIntervalSince(started)
        try #require(check.terminationStatus == 0, "check_report.py failed: \(errors)")
        let seen = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        print("report browser check: \(String(format: "%.1f", seconds)) s in all; chromium runs \(seen["timings"] ?? "")")

        // Valid HTML.
        #expect((seen["html5lib_errors"] as? [String]) == [])
        #expect(seen["tidy_status"] as? Int == 0)
        #expect((seen["tidy_messages"] as? [String]) == [])
        // Offline: nothing external in the file, a policy forbidding fetches, and no request in the net log,
        // which did record the control page's one external image.
        #expect((seen["external_references"] as? [String]) == [])
        #expect((seen["csp"] as? String)?.hasPrefix("default-src 'none';") == true)
        #expect((seen["control_requests"] as? [String]) == ["http://192.0.2.1/net-log-control.png"])
        #expect((seen["requests"] as? [String]) == [])
        // Every chart of every migration, with its lines, in the DOM.
        #expect(seen["migrations"] as? Int == 2)
        let charts = try #require(seen["charts"] as? [String])
        #expect(charts == Self.chartKinds + Self.chartKinds)
        #expect(charts.count == Self.chartKinds.count * Self.fixtures.count)
        let lines = try #require(seen["chart_lines"] as? [[String]])
        #expect(lines == charts.map { Self.chartLines[$0]! })
        #expect(seen["verdicts"] as? [String] == verdicts)
        #expect(seen["finding_rows"] as? Int == anomalies.count)
        #expect(seen["bands"] as? Int == seriesFindings * Self.chartKinds.count)
        #expect(seen["switchover_marks"] as? Int == withSwitchover * Self.chartKinds.count)
        #expect((seen["notes"] as? [String]) == [], "no downsampling for traces this short")
        // Clicking the first band shows its finding's message and remedy and marks its row; moving over the
        // middle of the first chart reads out the values there.
        let clicked = try #require(seen["clicked"] as? [String: Any])
        let first = anomalies[0]
        #expect(clicked["finding"] as? String == "0")
        #expect(clicked["hidden"] as? Bool == false)
        #expect(clicked["row"] as? String == "f0")
        let tip = clicked["text"] as? String ?? ""
        #expect(tip.hasPrefix("CRITICAL thread-stall (window 14)"))
        #expect(tip.contains(first["message"] as? String ?? "?") && tip.contains("→ " + (first["remedy"] as? String ?? "?")))
        let readout = seen["readout"] as? String ?? ""
        #expect(readout.hasPrefix("t 3.") && readout.contains(" · bandwidth 16.") && readout.contains(" · limit 300 ms"), "\(readout)")
        // Every chart drew: each of its lines' colours inside its plot area of the screenshot.
        let pixels = try #require(seen["chart_pixels"] as? [[String: Any]])
        #expect(pixels.count == charts.count)
        for p in pixels {
            let chart = p["chart"] as? String ?? "?"
            let box = p["box"] as? [Int] ?? []
            #expect(box.count == 4 && box[2] == 1000 && box[3] == 130, "\(chart) plot area \(box)")
            #expect((p["non_background"] as? Int ?? 0) > 1000, "\(chart): nearly empty plot area")
            let counts = p["line_pixels"] as? [String: Int] ?? [:]
            #expect(counts.count == Self.chartLines[chart]?.count)
            for (line, n) in counts {
                #expect(n >= 150, "\(chart) chart: only \(n) pixels of the \(line) line's colour")
            }
        }
        #expect(seconds < 60, "the browser check took \(seconds) s")
    }
}

/// `report` of a migtrace recording: the demo's live capture recorded, then drawn as `analyze` reads it.
@Suite(.requiresRoot) struct ReportOfRecordingTests {
    @Test func recordingOfTheDemoIsDrawn() throws {
        let rec = CLI.temporaryPath("demo.rec")
        let html = CLI.temporaryPath("demo.html")
        defer {
            unlink(rec)
            unlink(html)
        }
        let demo = try CLI.run(["demo", "--speed", "8", "--record", rec])
        #expect(demo.status == 0, "\(demo.stderr)")
        let made = try CLI.run(["report", rec, "-o", html])
        #expect(made.status == 0, "\(made.stderr)")
        let page = try String(contentsOfFile: html, encoding: .utf8)
        let analysis = try CLI.run(["analyze", "--format", "json", rec])
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(analysis.stdout.utf8)) as? [String: Any])
        let m = try #require((doc["migrations"] as? [[String: Any]])?.first)
        let windows = try #require(((doc["series"] as? [[String: Any]])?.first?["summary"] as? [String: Any])?["windows"] as? Int)
        #expect(windows == 56)
        #expect(page.contains("data-columns=\"56\""))
        #expect(page.components(separatedBy: "<svg class=\"chart\"").count - 1 == 4)
        #expect(page.contains("<span class=\"verdict v-\(m["verdict"] as? String ?? "?")\">\(m["verdict"] as? String ?? "?")</span>"))
        #expect(page.contains("; started 20"), "a recording has wall-clock times: the start is shown")
        #expect(page.contains("bandwidth-shift"))
    }
}
