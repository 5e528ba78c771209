// SPDX-License-Identifier: Apache-2.0
import Foundation
import MigtraceCore
import MigtraceTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// What a first-time user meets at `migtrace analyze`: inputs that are no trace, missing files, directories, and
/// files with no migration, each with its exit code and exact message (issue 15).
@Suite struct FrontDoorTests {
    static let hint = "give the QEMU trace log (`-trace migrate_transferred -D FILE`) or a migtrace recording"

    static func json(_ r: CLI.Result) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
    }

    static func write(_ bytes: [UInt8], _ name: String) throws -> String {
        let path = CLI.temporaryPath(name)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// The migtrace binary embeds a real QEMU trace (the demo's): it must be named an ELF file, not analysed.
    @Test func binaryInputIsNamedNotAnalysed() throws {
        let elf = try CLI.run(["analyze", CLI.binary])
        #expect(elf.status == 1)
        #expect(elf.stderr == "migtrace: \(CLI.binary): not a trace but an ELF file (a program, library or core dump); \(Self.hint)\n")
        #expect(elf.stdout == "")
        // Random bytes (a fixed pseudo-random sequence) and a gzip-compressed real trace.
        var state: UInt64 = 42
        let random = (0..<4096).map { _ -> UInt8 in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return UInt8(truncatingIfNeeded: state >> 56)
        }
        let randomPath = try Self.write(random, "random.bin")
        defer { unlink(randomPath) }
        let r = try CLI.run(["analyze", "--format", "json", randomPath])
        #expect(r.status == 1)
        #expect(r.stderr == "migtrace: \(randomPath): not a trace but binary data (its first line is not text); \(Self.hint)\n")
        let inputs = try #require(try Self.json(r)["inputs"] as? [[String: Any]])
        #expect(inputs.count == 1)
        #expect(inputs[0]["format"] as? String == "binary")
        #expect(inputs[0]["error"] as? String == "not a trace but binary data (its first line is not text); \(Self.hint)")
        let gz = CLI.temporaryPath("trace.log.gz")
        defer { unlink(gz) }
        let zip = try CLI.run([CLI.fixture("7.2-converge.log"), gz], prefix: ["/bin/sh", "-c", "gzip -c \"$1\" > \"$2\""])
        try #require(zip.status == 0, "gzip: \(zip.stderr)")
        let z = try CLI.run(["analyze", gz])
        #expect(z.status == 1)
        #expect(z.stderr == "migtrace: \(gz): gzip-compressed data; decompress it first: `zcat FILE | migtrace analyze -`\n")
        // Decompressed through a pipe, the same file is analysed.
        let piped = try CLI.run([gz], prefix: ["/bin/sh", "-c", "zcat \"$1\" | \"$0\" analyze --no-windows -"])
        #expect(piped.status == 0)
        #expect(piped.stdout.contains("\(try CLI.windowLines("7.2-converge.log")) windows"))
    }

    /// A missing file and a directory: the error, no empty summary or tracing hint, and in JSON each input listed
    /// with its error; beside a good input, the good one is analysed and the run still fails.
    @Test func missingFileAndDirectoryAreListedWithTheirErrors() throws {
        let dir = FileManager.default.temporaryDirectory.path
        let text = try CLI.run(["analyze", "/nonexistent/trace.log", dir])
        #expect(text.status == 1)
        #expect(
            text.stderr
                == "migtrace: cannot open /nonexistent/trace.log: No such file or directory; check the path and permissions\n"
                + "migtrace: \(dir) is a directory; give the trace files in it (e.g. \(dir)/*.log)\n")
        #expect(text.stdout == "")
        let json = try CLI.run(["analyze", "--format", "json", "/nonexistent/trace.log", dir, CLI.fixture("7.2-converge.log")])
        #expect(json.status == 1)
        let doc = try Self.json(json)
        let inputs = try #require(doc["inputs"] as? [[String: Any]])
        #expect(inputs.map { $0["name"] as? String } == ["/nonexistent/trace.log", dir, CLI.fixture("7.2-converge.log")])
        #expect(inputs.map { $0["error"] as? String } == ["cannot open: No such file or directory", "is a directory", nil])
        #expect(inputs[0]["format"] is NSNull && inputs[2]["format"] as? String == "qemu-log")
        let summary = try #require(doc["summary"] as? [String: Any])
        #expect(summary["windows"] as? Int == (try CLI.windowLines("7.2-converge.log")))
        #expect(!json.stderr.contains("no migrate_transferred events found"))
    }

    /// Nothing to analyse is not a pass: exit 8 whatever `--fail-on` says, with the hint.
    @Test func noMigrationExitsEight() throws {
        let empty = try Self.write([], "empty.log")
        defer { unlink(empty) }
        let passwd = try Self.write(
            Array("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n".utf8), "passwd")
        defer { unlink(passwd) }
        for file in [empty, passwd] {
            for gate in ["none", "warning", "info"] {
                let r = try CLI.run(["analyze", "--fail-on", gate, file])
                #expect(r.status == 8, "\(file) --fail-on \(gate)")
                #expect(
                    r.stdout.hasSuffix(
                        "no migrate_transferred events found: trace the source QEMU with `\(TracingRecipe.commandLine())` (or QMP trace-event-set-state) and analyse FILE\n"
                    ))
            }
            let csv = try CLI.run(["analyze", "--format", "csv", file])
            #expect(csv.status == 8)
            #expect(
                csv.stderr
                    == "migtrace: no migrate_transferred events found; trace the source QEMU with `\(TracingRecipe.commandLine())`\n")
        }
        // A migration without any window (it completed before the first window) is a migration found.
        #expect(try CLI.run(["analyze", CLI.fixture("convergence/7.2-idle-ts.log")]).status == 0)
        // Beside a file with a migration, an empty one does not change the exit code.
        #expect(try CLI.run(["analyze", empty, CLI.fixture("7.2-converge.log")]).status == 0)
    }
}

/// Nothing from input reaches a terminal unescaped (issue 15 bug 1): file names, rejected lines' reasons and
/// paths in messages show control characters as `\xNN`; JSON escapes them as `\u00NN`, C1 and DEL included.
@Suite struct TerminalEscapingTests {
    /// Bytes below 0x20 other than newline, DEL, and UTF-8 C1 controls (C2 80–C2 9F).
    static func controlBytes(_ s: String) -> [UInt8] {
        let b = Array(s.utf8)
        var found: [UInt8] = []
        for (i, x) in b.enumerated() {
            if (x < 0x20 && x != 10) || x == 0x7f { found.append(x) }
            if x == 0xc2, i + 1 < b.count, (0x80...0x9f).contains(b[i + 1]) { found.append(b[i + 1]) }
        }
        return found
    }

    @Test func fileNamesAndRejectedLinesAreEscaped() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("migtrace-esc-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("mig\u{1b}[31mred\nx\u{9b}.log").path
        let crafted: [UInt8] =
            Array("migrate_set_state new state completed".utf8) + [0, 0x1b] + Array("[31m\u{85}boom\n".utf8)
            + Array(try String(contentsOfFile: CLI.fixture("7.2-converge.log"), encoding: .utf8).utf8)
        try Data(crafted).write(to: URL(fileURLWithPath: path))
        let shown = dir.path + "/mig\\x1b[31mred\\x0ax\\x9b.log"
        let text = try CLI.run(["analyze", "--no-windows", path])
        #expect(text.status == 0)
        #expect(Self.controlBytes(text.stdout) == [] && Self.controlBytes(text.stderr) == [])
        #expect(text.stdout.contains("\nseries 0 · \(shown)\n"))
        #expect(
            text.stderr
                == "\(shown):1: migrate_set_state: new state \"completed\\x00\\x1b[31m\\xc2\\x85boom\" is not a QEMU migration state (MigrationStatus)\n"
        )
        let json = try CLI.run(["analyze", "--format", "json", path])
        #expect(Self.controlBytes(json.stdout) == [])
        #expect(json.stdout.contains(#"mig\u001b[31mred\nx\u009b.log"#))
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let inputs = try #require(doc["inputs"] as? [[String: Any]])
        #expect(inputs.first?["name"] as? String == path)
        // A missing file with such a name, and `probes` on a binary at such a path.
        let missing = try CLI.run(["analyze", path + "\u{7}gone"])
        #expect(missing.stderr == "migtrace: cannot open \(shown)\\x07gone: No such file or directory; check the path and permissions\n")
        let binary = dir.appendingPathComponent("sl\u{1b}]0;title\u{7}eep").path
        try FileManager.default.copyItem(atPath: "/bin/sleep", toPath: binary)
        let probes = try CLI.run(["probes", binary])
        #expect(Self.controlBytes(probes.stdout) == [] && Self.controlBytes(probes.stderr) == [])
        #expect(probes.stdout.hasPrefix(dir.path + "/sl\\x1b]0;title\\x07eep: "))
    }
}

/// `attach` and `probes` on a process migtrace cannot inspect say why, with the right code (issue 15 bug 6).
@Suite struct AttachRefusalTests {
    /// pid 2 (kthreadd) is a kernel thread on every Linux: not a QEMU, exit 6.
    @Test(.requiresRoot) func kernelThreadIsNotAQEMU() throws {
        for command in ["attach", "probes"] {
            let r = try CLI.run([command, "2"])
            #expect(r.status == 6, "\(command)")
            #expect(
                r.stderr == "migtrace: pid 2 (kthreadd) is a kernel thread, not a QEMU; give the pid of the source QEMU (`pgrep -a qemu`)\n"
            )
        }
    }

    /// pid 1 as root, whose CAP_SYS_PTRACE is effective: never "CAP_SYS_PTRACE is missing". Where the kernel
    /// refuses /proc/1/exe anyway (a sandbox, as on the machine this was written on) the refusal is exit 9 and
    /// says CAP_SYS_PTRACE is effective; where it does not, pid 1 is simply not a QEMU (exit 6).
    @Test(.requiresRoot) func refusalDespiteSysPtraceIsNotAMissingCapability() throws {
        var buf = [CChar](repeating: 0, count: 4096)
        let refused = readlink("/proc/1/exe", &buf, buf.count) < 0 && (errno == EACCES || errno == EPERM)
        let r = try CLI.run(["attach", "1"])
        #expect(!r.stderr.contains("CAP_SYS_PTRACE (missing)"))
        if refused {
            #expect(r.status == 9)
            #expect(r.stderr.hasPrefix("migtrace: cannot resolve /proc/1/exe: Permission denied, although CAP_SYS_PTRACE is effective: "))
            #expect(r.stderr.contains("not dumpable") && r.stderr.contains("another user namespace"))
        } else {
            print("/proc/1/exe resolves here: pid 1 is checked as a process that is not QEMU")
            #expect(r.status == 6)
        }
    }
}

/// The small things of issue 15 bug 7, each as the user meets it.
@Suite struct FrontDoorDetailTests {
    @Test func probesOnAProgramThatIsNotQEMUSaysSo() throws {
        let r = try CLI.run(["probes", "/bin/sleep"])
        #expect(r.status == 6)
        #expect(
            r.stdout
                == "/bin/sleep: 0 USDT probe sites, 0 with provider qemu\nqemu:migrate_transferred is missing: this is not a QEMU (no qemu USDT probes); give a qemu-system-* / qemu-kvm binary or the pid of the source QEMU (`pgrep -af qemu`)\n"
        )
    }

    @Test func csvFindingsNameTheFileAndSeries() throws {
        let stall = CLI.fixture("7.2-stall.log")
        let r = try CLI.run(["analyze", "--format", "csv", stall])
        #expect(r.status == 0)
        #expect(
            r.stderr
                == "\(stall): series 0 window 14: critical thread-stall: Window 14 lasted 1599 ms instead of ~100 ms: the migration thread was blocked.\n"
                + "\(stall): series 0 window 14: warning threshold-collapse: Window 14 ran at 1.05 MB/s, 6 % of the 16.79 MB/s baseline; the threshold fell to 314925 bytes.\n"
        )
    }

    @Test func helpTextsOfferOnlyWhatWorks() throws {
        for command in ["attach", "demo"] {
            let help = try CLI.run([command, "--help"], prefix: ["/usr/bin/env", "COLUMNS=80"])
            #expect(help.stdout.contains("--format <format>"), "\(command)")
            #expect(!help.stdout.contains("csv"), "\(command) --help offers csv, which it refuses")
        }
        let speed = try CLI.run(["demo", "--speed", "0"])
        #expect(speed.status == 64)
        #expect(speed.stderr.hasPrefix("Error: --speed must be above 0 and at most 1000 (e.g. --speed 4 replays four times faster).\n"))
        let attach = try CLI.run(["attach", "--help"], prefix: ["/usr/bin/env", "COLUMNS=80"])
        #expect(!attach.stdout.contains("pidof") && attach.stdout.contains("pgrep -af qemu"))
        let analyze = try CLI.run(["analyze", "--help"], prefix: ["/usr/bin/env", "COLUMNS=80"])
        #expect(!analyze.stdout.contains("journalctl") && analyze.stdout.contains("/var/log/libvirt/qemu/vm1.log"))
    }
}

/// QEMU's simple backend, decoded by `analyze` from a file or a pipe (issue 15 item 8), on the project's real file.
@Suite struct SimpletraceCommandTests {
    @Test func simpletraceIsAnalysedFromAFileAndAPipe() throws {
        let file = CLI.fixture("usdt-10.0-converge.simpletrace")
        let json = try CLI.run(["analyze", "--format", "json", file])
        #expect(json.status == 0)
        #expect(json.stderr == "")
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let inputs = try #require(doc["inputs"] as? [[String: Any]])
        #expect(inputs.first?["format"] as? String == "simpletrace")
        #expect(inputs.first?["lost_events"] as? Int == 0)
        let summary = try #require(doc["summary"] as? [String: Any])
        #expect(summary["windows"] as? Int == (try CLI.windowLines("usdt-10.0-converge.log")))
        #expect(summary["threshold_exact_percent"] as? Int == 100)
        let piped = try CLI.run([file], prefix: ["/bin/sh", "-c", "cat \"$1\" | \"$0\" analyze --no-windows -"])
        #expect(piped.status == 0)
        #expect(piped.stdout.contains("\(try CLI.windowLines("usdt-10.0-converge.log")) windows, "))
    }
}
