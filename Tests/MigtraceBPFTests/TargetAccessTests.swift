// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import MigtraceBPF

/// A refused `/proc/<pid>/exe` is diagnosed from what can still be read (issue 15 bug 6): a missing CAP_SYS_PTRACE
/// only when it is missing. These cases use a hand-made /proc tree; the CLI tests run the real ones.
@Suite struct TargetAccessTests {
    static let full = CapabilitySet(rawValue: 0x1ff_ffff_ffff)

    /// A fake /proc with `self` and target 4242 (status with CapPrm, stat with flags) and optionally Yama.
    static func proc(selfPrm: String, targetPrm: String, flags: UInt64 = 0x40_0100, yama: String? = nil) throws -> String {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("migtrace-proc-\(UUID().uuidString)").path
        for dir in ["self", "4242", "sys/kernel/yama"] {
            try FileManager.default.createDirectory(atPath: "\(root)/\(dir)", withIntermediateDirectories: true)
        }
        try "Name:\tprocess_api\nUid:\t0\t0\t0\t0\nCapPrm:\t\(selfPrm)\n".write(
            toFile: "\(root)/self/status", atomically: true, encoding: .utf8)
        try "Name:\tqemu (a) b\nCapPrm:\t\(targetPrm)\n".write(toFile: "\(root)/4242/status", atomically: true, encoding: .utf8)
        try "4242 (qemu (a) b) S 1 4242 4242 0 -1 \(flags) 100 0 0 0\n".write(
            toFile: "\(root)/4242/stat", atomically: true, encoding: .utf8)
        if let yama { try yama.write(toFile: "\(root)/sys/kernel/yama/ptrace_scope", atomically: true, encoding: .utf8) }
        return root
    }

    @Test func causesAreTold() throws {
        let p = try Self.proc(selfPrm: "000001fffeffffff", targetPrm: "000001ffffffffff")
        defer { try? FileManager.default.removeItem(atPath: p) }
        // CAP_SYS_PTRACE effective: not a missing capability; the capability the target holds beyond ours is named.
        #expect(TargetAccess.diagnose(pid: 4242, effective: Self.full, proc: p) == .refusedDespitePtrace(targetOnly: ["CAP_SYS_RESOURCE"]))
        // Without it: the missing capability.
        let noPtrace = CapabilitySet(rawValue: Self.full.rawValue & ~(1 << 19))
        #expect(TargetAccess.diagnose(pid: 4242, effective: noPtrace, proc: p) == .missingPtrace)
        #expect(
            TargetAccess.message(pid: 4242, .missingPtrace)
                == "cannot resolve /proc/4242/exe: Permission denied: reading another user's /proc/<pid>/exe needs CAP_SYS_PTRACE (missing); run as root or add CAP_SYS_PTRACE"
        )
        let yama = try Self.proc(selfPrm: "000001ffffffffff", targetPrm: "000001ffffffffff", yama: "3\n")
        defer { try? FileManager.default.removeItem(atPath: yama) }
        #expect(TargetAccess.diagnose(pid: 4242, effective: Self.full, proc: yama) == .yamaNoAttach)
        // PF_KTHREAD (0x00200000) in the flags field, after a command name with parentheses and spaces.
        let kthread = try Self.proc(selfPrm: "0", targetPrm: "0", flags: 0x20_8040)
        defer { try? FileManager.default.removeItem(atPath: kthread) }
        #expect(TargetAccess.diagnose(pid: 4242, effective: noPtrace, proc: kthread) == .kernelThread(name: "qemu (a) b"))
        #expect(TargetAccess.isKernelThread(pid: 4242, proc: kthread) && !TargetAccess.isKernelThread(pid: 4242, proc: p))
    }
}
