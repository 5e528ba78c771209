// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import MigtraceBPF

#if canImport(Glibc)
    import Glibc
#endif

/// Exit codes of `attach` beyond the common ones (README "Exit codes").
enum AttachExit {
    static let noSuchProcess = ExitCode(3)
    static let privileges = ExitCode(4)
    static let kernelSupport = ExitCode(5)
    static let notQEMUWithProbe = ExitCode(6)
    static let recording = ExitCode(7)
}

/// Why a live capture could not start, said so that the user knows what to do next, with its exit code.
///
/// The one place where an error of the live path becomes a message and an exit code.
struct LiveFailure: Error {
    var message: String
    var code: ExitCode

    /// The failure `error` means for a capture of `pid`.
    init(_ error: any Error, pid: Int32) {
        switch error {
        case let e as LivePreconditionError: self = Self.precondition(e)
        case let e as LiveAttachError: self = Self.attach(e, pid: pid)
        default: self.init(message: "\(error)", code: MigtraceExit.error)
        }
    }

    init(message: String, code: ExitCode) {
        self.message = message
        self.code = code
    }

    private static func precondition(_ error: LivePreconditionError) -> LiveFailure {
        switch error {
        case .noSuchProcess: LiveFailure(message: "\(error); check the pid with `pgrep -a qemu`", code: AttachExit.noSuchProcess)
        case .insufficientPrivileges: LiveFailure(message: error.description, code: AttachExit.privileges)
        case .uprobesUnavailable:
            LiveFailure(
                message: "\(error); a kernel with CONFIG_UPROBE_EVENTS and BPF ring buffer (5.8+) is needed", code: AttachExit.kernelSupport
            )
        case .executableUnresolvable(_, let e) where e == EACCES || e == EPERM:
            LiveFailure(
                message:
                    "\(error): reading another user's /proc/<pid>/exe needs CAP_SYS_PTRACE (missing); run as root or add CAP_SYS_PTRACE",
                code: AttachExit.privileges)
        case .executableUnresolvable:
            LiveFailure(message: "\(error); run as root in the target's PID namespace", code: AttachExit.noSuchProcess)
        }
    }

    private static func attach(_ error: LiveAttachError, pid: Int32) -> LiveFailure {
        switch error {
        case .noQEMUProbes(let path):
            // The file name, not the path: a checkout or cache directory may well be called qemu-something.
            guard path.split(separator: "/").last?.contains("qemu") ?? false else {
                return LiveFailure(
                    message:
                        "pid \(pid) (\(path)) is not a QEMU: it has no qemu USDT probes. Give the pid of the source qemu-system-* / qemu-kvm process (`pgrep -a qemu`).",
                    code: AttachExit.notQEMUWithProbe)
            }
            return LiveFailure(
                message: """
                    pid \(pid) (\(path)) has no qemu USDT probes: this QEMU was built without the dtrace trace backend (Debian and Ubuntu build only the log backend). Two ways forward:
                      1. start QEMU with `-trace migrate_transferred -trace 'migrate_pending*' -D FILE`, then `migtrace analyze FILE`;
                      2. on a running QEMU: QMP {"execute":"trace-event-set-state","arguments":{"name":"migrate_transferred","enable":true}} (HMP: `trace-event migrate_transferred on`; it logs to the -D file or stderr), then `migtrace analyze` that log.
                    """, code: AttachExit.notQEMUWithProbe)
        case .requiredProbeMissing(_, _, let e?) where e.errno == EPERM || e.errno == EACCES:
            return LiveFailure(
                message:
                    "\(error): the kernel refused the uprobe; it needs CAP_SYS_ADMIN (missing; CAP_BPF+CAP_PERFMON are not enough since Linux 6.16 and its stable backports), plus CAP_SYS_PTRACE for another user's QEMU. Run as root or add CAP_SYS_ADMIN",
                code: AttachExit.privileges)
        case .requiredProbeMissing:
            return LiveFailure(
                message: "\(error); this QEMU has USDT probes but not migrate_transferred: use its log output with `migtrace analyze`",
                code: AttachExit.notQEMUWithProbe)
        case .libbpf(let e) where e.errno == EPERM || e.errno == EACCES:
            return LiveFailure(message: "\(e); run as root or with CAP_BPF+CAP_PERFMON", code: AttachExit.privileges)
        case .libbpf(let e) where e.errno == EINVAL || e.errno == EOPNOTSUPP || e.errno == ENOSYS:
            return LiveFailure(
                message: "\(e); the kernel lacks BPF ring buffer or uprobe support (5.8+ needed)", code: AttachExit.kernelSupport)
        case .precondition(.noSuchProcess):
            return LiveFailure(message: error.description, code: AttachExit.noSuchProcess)
        default:
            return LiveFailure(message: error.description, code: MigtraceExit.error)
        }
    }
}
