// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import MigtraceBPF
import MigtraceCore

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
    /// The kernel refused access to the target for a reason no capability of migtrace lifts (not dumpable, more
    /// privileged, another user namespace, an LSM, Yama).
    static let targetRefused = ExitCode(9)
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
        case .executableUnresolvable(let pid, let e) where e == EACCES || e == EPERM:
            Self.refusedTarget(pid: pid)
        case .executableUnresolvable(let pid, _) where TargetAccess.isKernelThread(pid: pid):
            LiveFailure(
                message: TargetAccess.message(pid: pid, TargetAccess.diagnose(pid: pid, effective: effective())),
                code: AttachExit.notQEMUWithProbe)
        case .executableUnresolvable:
            LiveFailure(message: "\(error); run as root in the target's PID namespace", code: AttachExit.noSuchProcess)
        }
    }

    /// This process's effective capabilities (none when they cannot be read).
    private static func effective() -> CapabilitySet {
        (try? CapabilitySet.currentEffective()) ?? CapabilitySet(rawValue: 0)
    }

    /// `/proc/<pid>/exe` was refused: a missing CAP_SYS_PTRACE is a privilege problem (exit 4); a kernel thread is
    /// not a QEMU (exit 6); a refusal that no capability of migtrace would lift is its own case (exit 9).
    private static func refusedTarget(pid: Int32) -> LiveFailure {
        let cause = TargetAccess.diagnose(pid: pid, effective: effective())
        let code: ExitCode =
            switch cause {
            case .missingPtrace: AttachExit.privileges
            case .kernelThread: AttachExit.notQEMUWithProbe
            case .yamaNoAttach, .refusedDespitePtrace: AttachExit.targetRefused
            }
        return LiveFailure(message: TargetAccess.message(pid: pid, cause), code: code)
    }

    /// What refuses BPF or uprobes to a process that holds CAP_SYS_ADMIN: kernel lockdown (named when active) or
    /// a security module.
    private static func lockdownOrLSM() -> String {
        let lockdown = TargetAccess.read("/sys/kernel/security/lockdown") ?? ""
        if lockdown.contains("[integrity]") || lockdown.contains("[confidentiality]") {
            let mode = lockdown.contains("[confidentiality]") ? "confidentiality" : "integrity"
            return
                "The kernel is in lockdown mode \(mode) (/sys/kernel/security/lockdown), which forbids BPF tracing; boot without lockdown (Secure Boot enforces it on some distributions) or use the QEMU log with `migtrace analyze`."
        }
        return
            "A security module (SELinux, AppArmor, a BPF LSM) or a container's seccomp profile forbids it; check the audit log (`journalctl -k | grep -i denied`), or use the QEMU log with `migtrace analyze`."
    }

    private static func attach(_ error: LiveAttachError, pid: Int32) -> LiveFailure {
        switch error {
        case .noQEMUProbes(let binary):
            let path = TerminalText.escaped(binary)
            // The file name, not the path: a checkout or cache directory may well be called qemu-something.
            guard binary.split(separator: "/").last?.contains("qemu") ?? false else {
                return LiveFailure(
                    message:
                        "pid \(pid) (\(path)) is not a QEMU: it has no qemu USDT probes. Give the pid of the source qemu-system-* / qemu-kvm process (`pgrep -a qemu`).",
                    code: AttachExit.notQEMUWithProbe)
            }
            return LiveFailure(message: LogOnlyQEMU.refusal(pid: pid, binary: binary), code: AttachExit.notQEMUWithProbe)
        case .requiredProbeMissing(_, _, let e?)
        where (e.errno == EPERM || e.errno == EACCES) && effective().contains(CapabilitySet.sysAdmin):
            return LiveFailure(
                message:
                    "\(error): the kernel refused the uprobe although CAP_SYS_ADMIN is effective, so no capability is missing. \(Self.lockdownOrLSM())",
                code: AttachExit.targetRefused)
        case .requiredProbeMissing(_, _, let e?) where e.errno == EPERM || e.errno == EACCES:
            return LiveFailure(
                message:
                    "\(error): the kernel refused the uprobe; it needs CAP_SYS_ADMIN (missing; CAP_BPF+CAP_PERFMON are not enough since Linux 6.16 and its stable backports), plus CAP_SYS_PTRACE for another user's QEMU. Run as root or add CAP_SYS_ADMIN",
                code: AttachExit.privileges)
        case .requiredProbeMissing:
            return LiveFailure(
                message: "\(error); this QEMU has USDT probes but not migrate_transferred: use its log output with `migtrace analyze`",
                code: AttachExit.notQEMUWithProbe)
        case .libbpf(let e) where (e.errno == EPERM || e.errno == EACCES) && effective().contains(CapabilitySet.sysAdmin):
            return LiveFailure(
                message: "\(e): refused although CAP_SYS_ADMIN is effective, so no capability is missing. \(Self.lockdownOrLSM())",
                code: AttachExit.targetRefused)
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

extension LiveFailure {
    /// Run a capture: a ``LiveFailure`` it throws becomes its message on stderr and its exit code (attach,
    /// attach --all, demo); any other error passes on.
    static func reported(_ capture: () async throws -> ExitCode) async throws -> ExitCode {
        do {
            return try await capture()
        } catch let failure as LiveFailure {
            printError("migtrace: \(failure.message)")
            return failure.code
        }
    }
}
