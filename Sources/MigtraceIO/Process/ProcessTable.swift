// SPDX-License-Identifier: Apache-2.0

#if canImport(Glibc)
    import Glibc
#endif

/// The identity of a file: its device and inode. A path names a file only until it is replaced (a package upgrade
/// writes a new QEMU binary under the same path), and uprobes belong to the file, not the path.
public struct FileIdentity: Hashable, Sendable {
    /// `st_dev`.
    public var device: UInt64
    /// `st_ino`.
    public var inode: UInt64

    /// The identity of what `path` names now (following links, `/proc/PID/exe` included), or nil.
    public init?(path: String) {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
    }

    /// An identity from its two numbers.
    public init(device: UInt64, inode: UInt64) {
        self.device = device
        self.inode = inode
    }
}

/// The processes of this host as `attach --all` follows them, read again from `/proc` at each ``scan()``.
///
/// A scan lists `/proc` and reads the executable of a pid only while it is new: at its first sight and, because a
/// fork runs its parent's binary until it calls exec (libvirt forks, then execs QEMU), again at each scan during
/// ``execGrace`` scans after it. A pid the caller ``watch(_:)``es is checked at every scan, so that a process that
/// has exited but is not yet reaped (a zombie has no executable) counts as ended. The cost stays with the new
/// pids: on a host of 1,000 processes an idle scan is one directory listing.
public struct ProcessTable {
    /// A process and the binary it runs.
    public struct Process: Equatable, Sendable {
        /// The process id.
        public var pid: Int32
        /// The path of its executable (without the kernel's " (deleted)" mark).
        public var executable: String
        /// Whether that file was deleted or replaced since the process started it: its path now names another
        /// file or none, and only `/proc/PID/exe` still reaches the one it runs.
        public var executableDeleted: Bool
        /// The file it runs.
        public var file: FileIdentity
    }

    /// What changed since the previous scan.
    public struct Changes: Equatable, Sendable {
        /// Processes seen for the first time, or seen running another executable than before (an exec).
        public var started: [Process] = []
        /// Watched pids that have exited (gone from `/proc`, or a zombie), and unwatched ones gone from `/proc`.
        public var ended: [Int32] = []

        /// No change.
        public init() {}
    }

    private struct Entry {
        var process: Process?
        var scansLeft: Int
        var watched = false
    }

    /// The `/proc` directory read (another one in tests).
    public let proc: String
    /// Scans after its first sight during which a pid's executable is read again.
    public let execGrace: Int
    private var entries: [Int32: Entry] = [:]

    /// A table of nothing yet; the first ``scan()`` reports every process.
    public init(proc: String = "/proc", execGrace: Int = 5) {
        self.proc = proc
        self.execGrace = execGrace
    }

    /// Checks `pid` at every scan from now on, so that it is reported in ``Changes/ended`` when it exits, zombie or not.
    public mutating func watch(_ pid: Int32) {
        entries[pid, default: Entry(process: nil, scansLeft: 0)].watched = true
    }

    /// Reads `/proc` and returns what changed since the previous scan.
    public mutating func scan() -> Changes {
        var changes = Changes()
        var present = Set<Int32>()
        for pid in Self.pids(in: proc) {
            present.insert(pid)
            var entry = entries[pid] ?? Entry(process: nil, scansLeft: execGrace + 1)
            if entry.scansLeft == 0 && entry.watched {
                // One readlink: a zombie has no executable (its exec, past the grace scans, is not looked for).
                if !Self.hasExecutable(pid, in: proc) {
                    changes.ended.append(pid)
                    entries[pid] = nil
                    continue
                }
            } else if entry.scansLeft > 0 {
                let now = Self.process(pid, in: proc)
                if entry.watched && now == nil {
                    changes.ended.append(pid)
                    entries[pid] = nil
                    continue
                }
                if let now, now.file != entry.process?.file || now.executable != entry.process?.executable {
                    entry.process = now
                    changes.started.append(now)
                }
                if entry.scansLeft > 0 { entry.scansLeft -= 1 }
            }
            entries[pid] = entry
        }
        for pid in entries.keys where !present.contains(pid) {
            if entries[pid]?.process != nil || entries[pid]?.watched == true { changes.ended.append(pid) }
            entries[pid] = nil
        }
        changes.started.sort { $0.pid < $1.pid }
        changes.ended.sort()
        return changes
    }

    /// The pids in `/proc` (its numeric entries).
    public static func pids(in proc: String = "/proc") -> [Int32] {
        guard let dir = opendir(proc) else { return [] }
        defer { closedir(dir) }
        var pids: [Int32] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if let pid = Int32(name), pid > 0 { pids.append(pid) }
        }
        return pids
    }

    /// What the symbolic link at `path` points to (for `/proc/PID/exe`, the executable's path, " (deleted)" and all),
    /// or nil with `errno` set.
    public static func linkTarget(_ path: String) -> String? {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(path, &buf, buf.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Whether `pid` has an executable (a process that has exited, zombie or gone, has none).
    static func hasExecutable(_ pid: Int32, in proc: String) -> Bool {
        var buf = [CChar](repeating: 0, count: 8)
        return readlink("\(proc)/\(pid)/exe", &buf, buf.count) > 0
    }

    /// The executable of `pid`, or nil (no such process, a kernel thread, a zombie, or no permission).
    public static func process(_ pid: Int32, in proc: String = "/proc") -> Process? {
        let link = "\(proc)/\(pid)/exe"
        guard var path = linkTarget(link), let file = FileIdentity(path: link) else { return nil }
        let deleted = path.hasSuffix(" (deleted)")
        if deleted { path.removeLast(10) }
        // A replaced file keeps its path but not its identity: what the path names now is another file.
        let replaced = !deleted && FileIdentity(path: path) != file
        return Process(pid: pid, executable: path, executableDeleted: deleted || replaced, file: file)
    }
}
