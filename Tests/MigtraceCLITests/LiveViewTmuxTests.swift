// SPDX-License-Identifier: Apache-2.0
import Foundation
import MigtraceTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `migtrace demo` on a real terminal: tmux (a server of its own) runs it, capture-pane reads the screen as a
/// user sees it. The demo replays the real QEMU 10.0 migration of Fixtures/qemu/10.0-demo.log through BPF.
@Suite(.serialized, .requiresRoot) struct LiveViewTmuxTests {
    /// One tmux server on a socket of its own, killed (by that socket) when done.
    final class Terminal {
        let socket = FileManager.default.temporaryDirectory.appendingPathComponent("migtrace-tmux-\(UUID().uuidString.prefix(8))").path

        init(_ command: String, columns: Int = 120, rows: Int = 40) throws {
            let r = try tmux(["new-session", "-d", "-s", "t", "-x", "\(columns)", "-y", "\(rows)", command])
            try #require(r.status == 0, "tmux new-session: \(r.output)")
        }

        deinit { close() }

        /// Ends the server and the pane (by this terminal's socket).
        func close() {
            _ = try? tmux(["kill-server"])
            unlink(socket)
        }

        /// Runs a tmux client and waits for it alone. Spawned and reaped here rather than through `Process`, whose
        /// wait also lasts until every process that inherited its bookkeeping descriptor is gone: the tmux server
        /// the first client starts, and its pane.
        @discardableResult
        func tmux(_ args: [String]) throws -> (status: Int32, output: String) {
            let outPath = socket + "-\(UUID().uuidString.prefix(8)).out"
            defer { unlink(outPath) }
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
            let argv = ["/usr/bin/tmux", "-S", socket, "-f", "/dev/null"] + args
            let cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
            defer { for a in cargs { free(a) } }
            // Signals as a login shell has them: the test runner ignores or blocks some, which the tmux server
            // and its pane would inherit (and then outlive `kill-server`).
            var attributes = posix_spawnattr_t()
            posix_spawnattr_init(&attributes)
            defer { posix_spawnattr_destroy(&attributes) }
            var all = sigset_t()
            sigfillset(&all)
            var none = sigset_t()
            sigemptyset(&none)
            posix_spawnattr_setsigdefault(&attributes, &all)
            posix_spawnattr_setsigmask(&attributes, &none)
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
            var pid: pid_t = 0
            let rc = posix_spawn(&pid, argv[0], &actions, &attributes, cargs, environ)
            try #require(rc == 0, "cannot run tmux: \(String(cString: strerror(rc))); scripts/setup installs it")
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            let output = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
            return ((status >> 8) & 0xFF, output)
        }

        /// The screen's text, one string per row.
        func screen() throws -> [String] {
            try tmux(["capture-pane", "-p", "-t", "t"]).output.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        }

        /// Waits (up to `seconds`) until the screen satisfies `done`; returns the screen then, and every screen seen.
        func wait(_ seconds: Double, until done: ([String]) -> Bool) throws -> (last: [String], seen: [[String]]) {
            var seen: [[String]] = []
            let end = Date().addingTimeInterval(seconds)
            while Date() < end {
                let s = try screen()
                seen.append(s)
                if done(s) { return (s, seen) }
                usleep(150_000)
            }
            return (try screen(), seen)
        }
    }

    static func demo(_ args: String) -> String {
        "\(CLI.binary) demo \(args); echo migtrace-exit=$?; sleep 120"
    }

    static func lines(_ screen: [String], _ prefix: String) -> [String] { screen.filter { $0.hasPrefix(prefix) } }

    @Test func demoShowsTheLiveViewInPlaceAndLeavesTheSummary() throws {
        let term = try Terminal(Self.demo("--speed 4"))
        defer { term.close() }
        let (screen, seen) = try term.wait(60) { $0.contains { $0.hasPrefix("migtrace-exit=") } }
        #expect(screen.contains("migtrace-exit=0"), "\(screen.joined(separator: "\n"))")
        #expect(try term.tmux(["display", "-p", "-t", "t", "#{alternate_on}"]).output == "0\n", "no alternate screen")

        // While it ran: the frame, once, below the header, updated in place (the window number moved on while
        // the frame stayed at the same row).
        let running = seen.filter { s in s.contains { $0.hasPrefix("── live · series 0 · state active · window ") } }
        try #require(running.count >= 2, "the live frame was on screen during the replay")
        var rows = Set<Int>()
        var windowsSeen = Set<String>()
        for s in running {
            let frameRows = s.indices.filter { s[$0].hasPrefix("── live") }
            #expect(frameRows.count == 1)
            rows.formUnion(frameRows)
            #expect(Self.lines(s, "bandwidth  ").count == 1)
            #expect(Self.lines(s, "pending    ").count == 1)
            #expect(Self.lines(s, "threshold  ").count == 1)
            #expect(Self.lines(s, "verdict    ").count == 1)
            #expect(!s.contains { $0.hasPrefix("   win    t(s)") }, "no line-per-window table")
            if let l = s.first(where: { $0.hasPrefix("── live") }) { windowsSeen.insert(String(l.prefix(50))) }
        }
        #expect(rows.count == 1, "the frame stays at one row: \(rows)")
        #expect(windowsSeen.count >= 2, "the frame was redrawn with new windows")

        // At the end: the last frame with the final verdict, and the summary below it.
        let frame = try #require(screen.firstIndex { $0.hasPrefix("── live") })
        #expect(screen[frame].hasPrefix("── live · series 0 · state completed · window 55 · "))
        #expect(screen[frame].contains(" · 137.2 MB sent ─"))
        let verdict = try #require(Self.lines(screen, "verdict    ").first)
        let analysis = try CLI.run(["analyze", "--format", "json", CLI.fixture("10.0-demo.log")])
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(analysis.stdout.utf8)) as? [String: Any])
        let expected = try #require((doc["migrations"] as? [[String: Any]])?.first?["verdict"] as? String)
        #expect(expected == "completed")
        #expect(verdict.hasPrefix("verdict    \(expected) · "))
        #expect(verdict.hasSuffix(" (limit 300 ms)"))
        #expect(Self.lines(screen, "findings   ▲ WARNING bandwidth-shift [w 26–35]: Bandwidth fell 66 %").count == 1)
        let summary = try #require(screen.firstIndex { $0.hasPrefix("summary: 1 series, 56 windows, thresholds exact in 56/56") })
        #expect(summary > frame)
        #expect(screen.contains("migration · live · series 0 · completed after 2 dirty syncs"))
        #expect(screen.contains { $0.hasPrefix("capture ended (target-exited): 122 events received; lost 0 events (kernel)") })
    }

    @Test func ctrlCLeavesTheFrameAndTheSummary() throws {
        let term = try Terminal(Self.demo("--speed 1"))
        defer { term.close() }
        let (before, _) = try term.wait(30) { s in s.contains { $0.contains("state active · window 1") } }
        try #require(before.contains { $0.hasPrefix("── live · series 0 · state active · window ") })
        try term.tmux(["send-keys", "-t", "t", "C-c"])
        let (screen, _) = try term.wait(30) { $0.contains { $0.hasPrefix("migtrace-exit=") } }
        #expect(screen.contains("migtrace-exit=0"), "\(screen.joined(separator: "\n"))")
        let frame = try #require(screen.firstIndex { $0.hasPrefix("── live · series 0 · state active · window ") })
        #expect(Self.lines(screen, "bandwidth  ").count == 1)
        let verdict = try #require(Self.lines(screen, "verdict    ").first)
        #expect(verdict.hasPrefix("verdict    not yet known"))
        let summary = try #require(screen.firstIndex { $0.hasPrefix("summary: 1 series, ") })
        #expect(summary > frame)
        #expect(screen.contains("migration · live · series 0 · running"))
        #expect(screen.contains { $0.hasPrefix("capture ended (sigint): ") })
    }

    /// `--plain`, and a terminal that cannot move its cursor (`TERM=dumb`), keep the line per window.
    @Test(arguments: ["--speed 8 --plain", "--speed 8 TERM=dumb"])
    func plainKeepsTheLinePerWindowText(_ how: String) throws {
        let command =
            how.hasSuffix("TERM=dumb")
            ? "TERM=dumb " + Self.demo(String(how.dropLast(" TERM=dumb".count))) : Self.demo(how)
        let term = try Terminal(command, rows: 80)
        defer { term.close() }
        let (screen, _) = try term.wait(60) { $0.contains { $0.hasPrefix("migtrace-exit=") } }
        #expect(screen.contains("migtrace-exit=0"))
        #expect(!screen.contains { $0.hasPrefix("── live") })
        #expect(screen.contains(String(TextSinkHeader.table.dropLast())))
        #expect(screen.contains { $0.hasPrefix("    55 ") }, "the last window's row")
        #expect(screen.contains { $0.hasPrefix("capture ended (target-exited): 122 events received") })
    }
}

/// The text view's table header (TextSink.tableHeader), as the screen shows it.
enum TextSinkHeader {
    static let table =
        "   win          time     MB/s   pending MB    threshold MB   downtime now   limit  flags\n"
}
