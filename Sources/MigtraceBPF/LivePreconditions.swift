// SPDX-License-Identifier: Apache-2.0

import CMigtraceBPF
import MigtraceIO

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A set of Linux capabilities (bit `n` = capability number `n`), as in `CapEff:` of `/proc/<pid>/status`.
public struct CapabilitySet: Sendable, Equatable, CustomStringConvertible {
    /// The capability bits.
    public var rawValue: UInt64

    /// A set from raw bits.
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// `CAP_SYS_ADMIN` (21).
    public static let sysAdmin = 21
    /// `CAP_PERFMON` (38).
    public static let perfmon = 38
    /// `CAP_BPF` (39).
    public static let bpf = 39

    /// Whether capability number `cap` is in the set.
    public func contains(_ cap: Int) -> Bool { cap >= 0 && cap < 64 && rawValue & (1 << UInt64(cap)) != 0 }

    /// The effective capabilities of this process (`capget(2)`).
    public static func currentEffective() throws(LibbpfError) -> CapabilitySet {
        var bits: UInt64 = 0
        let rc = mt_capget_effective(&bits)
        if rc < 0 { throw LibbpfError(operation: "capget", errno: rc) }
        return CapabilitySet(rawValue: bits)
    }

    /// The `CapEff:` line of a `/proc/<pid>/status` text, or `nil` if there is none.
    public init?(procStatus: String) {
        for line in procStatus.split(separator: "\n") where line.hasPrefix("CapEff:") {
            let hex = line.dropFirst("CapEff:".count).trimmingPrefix(while: { $0 == " " || $0 == "\t" })
            guard let v = UInt64(hex, radix: 16) else { return nil }
            self.init(rawValue: v)
            return
        }
        return nil
    }

    public var description: String { "0x" + String(rawValue, radix: 16) }
}

/// Why live attach cannot work here.
public enum LivePreconditionError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Neither CAP_SYS_ADMIN nor both CAP_BPF and CAP_PERFMON are effective.
    case insufficientPrivileges(euid: UInt32, effective: CapabilitySet, missing: [String])
    /// `/proc/<pid>` does not exist.
    case noSuchProcess(pid: Int32)
    /// `/proc/<pid>/exe` cannot be resolved (errno), e.g. a kernel thread or no ptrace access.
    case executableUnresolvable(pid: Int32, errno: Int32)
    /// The kernel has no uprobe PMU (`/sys/bus/event_source/devices/uprobe` is missing: CONFIG_UPROBE_EVENTS off).
    case uprobesUnavailable

    public var description: String {
        switch self {
        case let .insufficientPrivileges(euid, effective, missing):
            "live tracing needs root or CAP_BPF+CAP_PERFMON (kernels since Linux 6.16 and its 2025 stable backports "
                + "also want CAP_SYS_ADMIN for uprobes, and another user's QEMU needs CAP_SYS_PTRACE); running as uid \(euid) with effective capabilities "
                + "\(effective), missing \(missing.joined(separator: ", ")). Run with sudo or grant the capabilities."
        case let .noSuchProcess(pid): "no process with pid \(pid) (/proc/\(pid) does not exist)"
        case let .executableUnresolvable(pid, errno):
            "cannot resolve /proc/\(pid)/exe: \(String(cString: strerror(errno)))"
        case .uprobesUnavailable:
            "the kernel has no uprobe support (/sys/bus/event_source/devices/uprobe is missing)"
        }
    }
}

/// Checks that live tracing can work before any BPF is loaded, with one clear error each.
public enum LivePreconditions {
    /// Runs every check for `pid` and returns the resolved executable path of the process.
    ///
    /// - Throws: ``LivePreconditionError``.
    public static func check(pid: Int32) throws(LivePreconditionError) -> String {
        let caps: CapabilitySet
        do { caps = try CapabilitySet.currentEffective() } catch { caps = CapabilitySet(rawValue: 0) }
        try checkPrivileges(euid: geteuid(), effective: caps)
        try checkUprobes()
        return try executablePath(pid: pid)
    }

    /// Privilege rule: CAP_SYS_ADMIN, or CAP_BPF and CAP_PERFMON together (root normally has all).
    ///
    /// Pure, so it can be tested with crafted sets.
    public static func checkPrivileges(euid: UInt32, effective: CapabilitySet) throws(LivePreconditionError) {
        if effective.contains(CapabilitySet.sysAdmin) { return }
        var missing: [String] = []
        if !effective.contains(CapabilitySet.bpf) { missing.append("CAP_BPF") }
        if !effective.contains(CapabilitySet.perfmon) { missing.append("CAP_PERFMON") }
        if missing.isEmpty { return }
        throw .insufficientPrivileges(euid: euid, effective: effective, missing: missing)
    }

    /// The kernel exposes the uprobe PMU.
    public static func checkUprobes(sysfsPath: String = "/sys/bus/event_source/devices/uprobe")
        throws(LivePreconditionError)
    {
        if access(sysfsPath, F_OK) != 0 { throw .uprobesUnavailable }
    }

    /// The target of `/proc/<pid>/exe`, or `/proc/<pid>/exe` itself when the file was deleted or replaced.
    public static func executablePath(pid: Int32) throws(LivePreconditionError) -> String {
        if pid <= 0 || access("/proc/\(pid)", F_OK) != 0 { throw .noSuchProcess(pid: pid) }
        let link = "/proc/\(pid)/exe"
        guard let path = ProcessTable.linkTarget(link) else { throw .executableUnresolvable(pid: pid, errno: errno) }
        // A replaced binary reads "... (deleted)"; the magic link still opens the mapped file.
        if path.hasSuffix(" (deleted)") || access(path, R_OK) != 0 { return link }
        return path
    }
}
