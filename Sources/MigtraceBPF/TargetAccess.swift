// SPDX-License-Identifier: Apache-2.0

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Why the kernel would not let this process look at (or trace) a target, found from what can still be read when
/// `/proc/<pid>/exe` is refused: a missing capability is only one of the causes, and the message must name the
/// one that applies.
public enum TargetAccess {
    /// What stands between this process and the target.
    public enum Cause: Sendable, Equatable {
        /// This process lacks CAP_SYS_PTRACE, and the target belongs to another user or is more privileged.
        case missingPtrace
        /// The target is a kernel thread: it has no executable at all.
        case kernelThread(name: String)
        /// Yama's `ptrace_scope` is 3: no process may inspect another, whatever its capabilities.
        case yamaNoAttach
        /// CAP_SYS_PTRACE is effective, yet the kernel refused: the target holds capabilities this process lacks
        /// (named), is not dumpable, lives in another user namespace, or an LSM forbids the access.
        case refusedDespitePtrace(targetOnly: [String])
    }

    /// CAP_SYS_PTRACE (19).
    public static let sysPtrace = 19

    /// The cause for target `pid`, given this process's effective capabilities and `/proc` (a parameter for tests).
    public static func diagnose(pid: Int32, effective: CapabilitySet, proc: String = "/proc") -> Cause {
        let target = read("\(proc)/\(pid)/status") ?? ""
        if isKernelThread(pid: pid, proc: proc) { return .kernelThread(name: field("Name:", in: target) ?? "?") }
        if read("\(proc)/sys/kernel/yama/ptrace_scope")?.hasPrefix("3") == true { return .yamaNoAttach }
        guard effective.contains(sysPtrace) else { return .missingPtrace }
        let own = CapabilitySet(permittedIn: read("\(proc)/self/status") ?? "")
        let theirs = CapabilitySet(permittedIn: target)
        var extra: [String] = []
        if let own, let theirs {
            for cap in 0..<64 where theirs.contains(cap) && !own.contains(cap) { extra.append(capabilityName(cap)) }
        }
        return .refusedDespitePtrace(targetOnly: extra)
    }

    /// Whether `pid` is a kernel thread (PF_KTHREAD in `/proc/<pid>/stat`): its `exe` link resolves to nothing.
    public static func isKernelThread(pid: Int32, proc: String = "/proc") -> Bool {
        guard let flags = statFlags(read("\(proc)/\(pid)/stat")) else { return false }
        return flags & 0x0020_0000 != 0
    }

    /// The message for a refused `/proc/<pid>/exe`, saying what to do next.
    public static func message(pid: Int32, _ cause: Cause) -> String {
        let what = "cannot resolve /proc/\(pid)/exe: Permission denied"
        switch cause {
        case .missingPtrace:
            return "\(what): reading another user's /proc/<pid>/exe needs CAP_SYS_PTRACE (missing); run as root or add CAP_SYS_PTRACE"
        case .kernelThread(let name):
            return "pid \(pid) (\(name)) is a kernel thread, not a QEMU; give the pid of the source QEMU (`pgrep -a qemu`)"
        case .yamaNoAttach:
            return
                "\(what): kernel.yama.ptrace_scope is 3, which forbids inspecting any other process whatever the capabilities; it can only be lowered by a reboot"
        case .refusedDespitePtrace(let extra):
            let held = extra.isEmpty ? "" : "; the target also holds capabilities this process lacks (\(extra.joined(separator: ", ")))"
            return
                "\(what), although CAP_SYS_PTRACE is effective: no capability migtrace could add lifts this\(held). The kernel refuses a target that is not dumpable (prctl PR_SET_DUMPABLE 0) or lives in another user namespace (run migtrace inside the target's container), and an LSM (AppArmor, SELinux, Landlock) can forbid it. Check that pid \(pid) is the source QEMU (`pgrep -a qemu`)"
        }
    }

    /// The kernel's name of capability `n`.
    static func capabilityName(_ n: Int) -> String {
        let names = [
            "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
            "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN",
            "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
            "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
            "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
            "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND",
            "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
        ]
        return n < names.count ? names[n] : "capability \(n)"
    }

    /// The `flags` field (9th) of a `/proc/<pid>/stat` text: after the command's closing parenthesis.
    static func statFlags(_ stat: String?) -> UInt64? {
        guard let stat, let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 6 ? UInt64(fields[6]) : nil
    }

    static func field(_ name: String, in status: String) -> String? {
        for line in status.split(separator: "\n") where line.hasPrefix(name) {
            return line.dropFirst(name.count).trimmingPrefix(while: { $0 == " " || $0 == "\t" }).description
        }
        return nil
    }

    /// A small text file's contents (a /proc or /sys file), nil when it cannot be read.
    public static func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count < 1 << 16 {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

extension CapabilitySet {
    /// The `CapPrm:` line of a `/proc/<pid>/status` text.
    init?(permittedIn status: String) {
        guard let hex = TargetAccess.field("CapPrm:", in: status), let v = UInt64(hex, radix: 16) else { return nil }
        self.init(rawValue: v)
    }
}
