// SPDX-License-Identifier: Apache-2.0
import MigtraceCore
import MigtraceIO

#if canImport(Glibc)
    import Glibc
#endif

/// A QEMU built with the log trace backend only (Debian, Ubuntu): where its trace lines go, and the exact
/// commands that turn the migration events on and follow them live with `migtrace analyze --follow`.
enum LogOnlyQEMU {
    /// The events to turn on: the one set of ``TracingRecipe``.
    static var events: [String] { TracingRecipe.events }

    /// Where QEMU writes its trace lines and how that was learnt.
    struct Destination: Equatable {
        var path: String
        /// `-D` or `stderr`.
        var via: String
    }

    /// The log file of `pid`: its `-D FILE` (relative to its working directory), else its standard error when
    /// that is a regular file (libvirt's `/var/log/libvirt/qemu/DOM.log`); nil when the lines go to a terminal,
    /// a pipe or a socket.
    static func destination(pid: Int32, arguments: [String]) -> Destination? {
        if let i = arguments.firstIndex(where: { $0 == "-D" || $0 == "--D" }), i + 1 < arguments.count {
            var path = arguments[i + 1]
            if !path.hasPrefix("/"), let cwd = ProcessTable.linkTarget("/proc/\(pid)/cwd") { path = cwd + "/" + path }
            return Destination(path: path, via: "-D")
        }
        var st = stat()
        guard stat("/proc/\(pid)/fd/2", &st) == 0, (st.st_mode & S_IFMT) == S_IFREG,
            let path = ProcessTable.linkTarget("/proc/\(pid)/fd/2"),
            path.hasPrefix("/"), !path.hasSuffix(" (deleted)")
        else { return nil }
        return Destination(path: path, via: "stderr")
    }

    /// The libvirt domain of a QEMU started by libvirt (`-name guest=DOM,…`, commas doubled in the name).
    static func domain(arguments: [String]) -> String? {
        guard let i = arguments.firstIndex(where: { $0 == "-name" || $0 == "--name" }), i + 1 < arguments.count else { return nil }
        let value = arguments[i + 1]
        guard value.hasPrefix("guest=") else { return nil }
        // The name runs to the first single comma (`,,` is an escaped comma).
        var name = ""
        var rest = Substring(value.dropFirst("guest=".count))
        while let c = rest.first {
            rest = rest.dropFirst()
            if c == "," {
                guard rest.first == "," else { break }
                rest = rest.dropFirst()
            }
            name.append(c)
        }
        return name.isEmpty ? nil : name
    }

    /// The arguments of `pid` (`/proc/PID/cmdline`).
    static func arguments(pid: Int32) -> [String] {
        guard let data = TargetAccessFile.read("/proc/\(pid)/cmdline") else { return [] }
        return data.split(separator: 0, omittingEmptySubsequences: false).dropLast().map { String(decoding: $0, as: UTF8.self) }
    }

    /// A word as the shell takes it literally (single-quoted unless it is plain).
    static func shellWord(_ s: String) -> String {
        let plain =
            !s.isEmpty
            && s.unicodeScalars.allSatisfy {
                "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+=:@,".unicodeScalars.contains($0)
            }
        return plain ? s : "'" + s.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'"
    }

    /// The refusal of `attach` for this QEMU, with the way forward: the events to turn on (virsh for a libvirt
    /// domain, QMP otherwise) and the `--follow` command on its log, or how to give it one.
    static func refusal(pid: Int32, binary: String) -> String {
        let arguments = arguments(pid: pid)
        var m =
            "pid \(pid) (\(TerminalText.escaped(binary))) has no qemu USDT probes: this QEMU was built without the dtrace trace backend (Debian and Ubuntu build only the log backend), so it cannot be attached to. Follow its trace log live instead:\n"
        let quotedEvents = events.map { $0.contains("*") ? "'\($0)'" : $0 }
        m += "  1. turn the migration events on (nothing is traced by default):\n"
        if let dom = domain(arguments: arguments) {
            let d = TerminalText.escaped(shellWord(dom))
            m +=
                "     for e in \(quotedEvents.joined(separator: " ")); do virsh qemu-monitor-command \(d) --hmp \"trace-event $e on\"; done\n"
            m += "     (QMP: \(TracingRecipe.qmp[0]) and so on for each of them)\n"
        } else {
            m += "     QMP, one command per event (HMP: `trace-event NAME on`):\n"
            for line in TracingRecipe.qmp { m += "     \(line)\n" }
        }
        m +=
            "     (qemu_savevm_query_pending exists from QEMU 11.1 on and migrate_pending* before it: an older QEMU answers \"unknown event\" to the first, harmlessly)\n"
        let traceOptions = TracingRecipe.commandLine()
        if let dest = destination(pid: pid, arguments: arguments) {
            let how = dest.via == "-D" ? "its -D file" : "its standard error, a file"
            m += "  2. its trace lines go to \(how): migtrace analyze --follow \(TerminalText.escaped(shellWord(dest.path)))"
        } else {
            m +=
                "  2. its trace lines go to its standard error, which is no file (a terminal, pipe or socket): start QEMU with `\(traceOptions)`, then `migtrace analyze --follow FILE` (or `migtrace analyze FILE` afterwards)"
        }
        return m
    }
}

/// Whole small files of /proc, read with plain read(2).
enum TargetAccessFile {
    /// The bytes of `path`, or nil when it cannot be read.
    static func read(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            out.append(contentsOf: buf[0..<n])
        }
        return out
    }
}
