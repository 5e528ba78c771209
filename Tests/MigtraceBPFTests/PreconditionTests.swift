// SPDX-License-Identifier: Apache-2.0

import Foundation
import MigtraceBPF
import MigtraceTestSupport
import Testing

@Suite(.serialized)
struct PreconditionTests {
    @Test func privilegeRuleWithCraftedSets() throws {
        let none = CapabilitySet(rawValue: 0)
        #expect(throws: LivePreconditionError.insufficientPrivileges(euid: 65534, effective: none, missing: ["CAP_BPF", "CAP_PERFMON"])) {
            try LivePreconditions.checkPrivileges(euid: 65534, effective: none)
        }
        let bpfOnly = CapabilitySet(rawValue: 1 << 39)
        #expect(throws: LivePreconditionError.insufficientPrivileges(euid: 1000, effective: bpfOnly, missing: ["CAP_PERFMON"])) {
            try LivePreconditions.checkPrivileges(euid: 1000, effective: bpfOnly)
        }
        try LivePreconditions.checkPrivileges(euid: 1000, effective: CapabilitySet(rawValue: 1 << 39 | 1 << 38))
        try LivePreconditions.checkPrivileges(euid: 0, effective: CapabilitySet(rawValue: 1 << 21))
        #expect(CapabilitySet(procStatus: "Name:\tx\nCapEff:\t000001ffffffffff\n")?.rawValue == 0x1ff_ffff_ffff)
        #expect(CapabilitySet(procStatus: "Name:\tx\n") == nil)
    }

    @Test func unprivilegedProcessFailsClearly() throws {
        let status: String
        if geteuid() == 0 {
            // Drop to nobody with no capabilities and read what the kernel gives such a process.
            status = try TestProgramBuilder.run(
                "/usr/bin/setpriv",
                ["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--inh-caps=-all", "cat", "/proc/self/status"])
        } else {
            status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        }
        let caps = try #require(CapabilitySet(procStatus: status))
        #expect(caps.rawValue == 0)
        let error = #expect(throws: LivePreconditionError.self) {
            try LivePreconditions.checkPrivileges(euid: 65534, effective: caps)
        }
        #expect(error?.description.contains("needs root or CAP_BPF+CAP_PERFMON") == true)
        #expect(error?.description.contains("missing CAP_BPF, CAP_PERFMON") == true)
    }

    @Test func processChecks() throws {
        let exe = try LivePreconditions.executablePath(pid: getpid())
        #expect(exe == (try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")))
        #expect(throws: LivePreconditionError.noSuchProcess(pid: 4_194_305)) {
            try LivePreconditions.executablePath(pid: 4_194_305)
        }
        #expect(throws: LivePreconditionError.uprobesUnavailable) {
            try LivePreconditions.checkUprobes(sysfsPath: "/nonexistent/uprobe")
        }
        try LivePreconditions.checkUprobes()
    }

    @Test(.requiresRoot) func rootPassesEveryCheck() throws {
        #expect(try LivePreconditions.check(pid: getpid()) == (try LivePreconditions.executablePath(pid: getpid())))
        #expect(try CapabilitySet.currentEffective().contains(CapabilitySet.sysAdmin))
    }

    @Test func clockOffset() {
        let offset = MonotonicClock.realtimeOffsetNanoseconds()
        let mono = MonotonicClock.monotonicNanoseconds()
        let real = MonotonicClock.realtimeNanoseconds()
        let wall = MonotonicClock.wallNanoseconds(monotonic: mono, offset: offset)
        // Within 5 ms of a direct reading, and the offset is the epoch-to-boot distance (> year 2020).
        #expect((wall > real ? wall - real : real - wall) < 5_000_000)
        #expect(offset > 1_577_836_800 * 1_000_000_000)
    }
}
