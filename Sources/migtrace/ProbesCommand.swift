// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import MigtraceBPF
import MigtraceCore
import MigtraceIO

#if canImport(Glibc)
    import Glibc
#endif

/// `migtrace probes <pid|binary>`: the migration-related USDT probes a QEMU binary carries.
struct ProbesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "probes",
        abstract: "List a QEMU binary's migration USDT probes (arg counts, semaphores).",
        discussion: """
            EXAMPLES:
              migtrace probes /usr/libexec/qemu-kvm
              migtrace probes $(pgrep -f 'guest=vm1,')   # `pgrep -af qemu` lists them
            Exit code 6 when qemu:migrate_transferred is missing (e.g. Debian's
            QEMU, built with the log backend only).
            """
    )

    @Argument(help: "A pid of a running QEMU, or the path of a QEMU binary.")
    var target: String

    func run() throws {
        let path: String
        if let pid = Int32(target) {
            do { path = try LivePreconditions.executablePath(pid: pid) } catch {
                let failure = LiveFailure(error, pid: pid)
                printError("migtrace: \(failure.message)")
                throw failure.code
            }
        } else {
            path = target
        }
        let probes: [USDTProbe]
        do { probes = try USDTNotes.read(path: path) } catch {
            printError("migtrace: \(error)")
            throw MigtraceExit.error
        }
        let names = Set(ProbeKind.allCases.map(\.eventName))
        let qemu = probes.filter { $0.provider == "qemu" }
        let migration = qemu.filter { names.contains($0.name) }
        var s = "\(TerminalText.escaped(path)): \(probes.count) USDT probe sites, \(qemu.count) with provider qemu\n"
        for p in migration {
            let sem = p.hasSemaphore ? "semaphore 0x" + String(p.semaphore, radix: 16) : "no semaphore"
            s +=
                "  qemu:\(p.name)  \(p.argumentCount) args  pc 0x\(String(p.pc, radix: 16))  \(sem)  [\(TerminalText.escaped(p.argumentString))]\n"
        }
        let hasTransferred = migration.contains { $0.name == "migrate_transferred" }
        s +=
            hasTransferred
            ? "qemu:migrate_transferred is present: `migtrace attach` works with this binary\n"
            : qemu.isEmpty && !path.contains("qemu")
                ? "qemu:migrate_transferred is missing: this is not a QEMU (no qemu USDT probes); give a qemu-system-* / qemu-kvm binary or the pid of the source QEMU (`pgrep -af qemu`)\n"
                : "qemu:migrate_transferred is missing: \(qemu.isEmpty ? "QEMU was built without the dtrace trace backend" : "this build lacks the probe"); trace with `\(TracingRecipe.commandLine())` and run `migtrace analyze FILE`\n"
        FileDescriptorOutput.standardOutput.write(Array(s.utf8))
        FileDescriptorOutput.standardOutput.flush()
        if !hasTransferred { throw AttachExit.notQEMUWithProbe }
    }
}
