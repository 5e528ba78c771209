// SPDX-License-Identifier: Apache-2.0

import Foundation

/// Builds the test programs of Tests/testprogs the way QEMU builds its dtrace trace backend, and runs the
/// commands that tests need: shared by the BPF and the CLI test suites.
public enum TestProgramBuilder {
    /// A command that could not run or exited non-zero, with its output.
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    /// Tests/testprogs of this checkout.
    public static let sourceDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("testprogs")

    /// Builds fake_qemu.c with the USDT probes declared in `probes` (a .d file of Tests/testprogs) into the
    /// existing `directory`: `dtrace -h` for the header, `dtrace -G` for the probe object with its semaphores,
    /// then `cc`, as QEMU's build does. Returns the binary's path.
    @discardableResult
    public static func buildFakeQEMU(
        probes: String, into directory: String, optimization: String = "-O2", defines: [String] = []
    ) throws -> String {
        let d = sourceDirectory.appendingPathComponent(probes).path
        let header = "\(directory)/fake_qemu_probes.h"
        let object = "\(directory)/probes.o"
        let binary = "\(directory)/fake_qemu"
        try run("/usr/bin/env", ["dtrace", "-DSTAP_SDT_V2", "-h", "-s", d, "-o", header])
        try run("/usr/bin/env", ["dtrace", "-DSTAP_SDT_V2", "-G", "-s", d, "-o", object])
        try run(
            "/usr/bin/env",
            ["cc", optimization, "-Wall", "-pthread", "-DSTAP_SDT_V2"] + defines + [
                "-I", directory, sourceDirectory.appendingPathComponent("fake_qemu.c").path, object, "-o", binary,
            ])
        return binary
    }

    /// Runs `executable` with `arguments` and returns what it printed (stdout and stderr together); throws a
    /// ``Failure`` with that output when it exits non-zero.
    @discardableResult
    public static func run(_ executable: String, _ arguments: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard p.terminationStatus == 0 else {
            throw Failure(
                "\(executable) \(arguments.joined(separator: " ")) failed (\(p.terminationStatus)): \(text)")
        }
        return text
    }
}
