// SPDX-License-Identifier: Apache-2.0
import Foundation
import MigtraceIO
import Testing

/// `ProcessTable`, the `/proc` follower of `attach --all`, on a `/proc` of the test's own: pid directories whose
/// `exe` is a symbolic link, as the kernel's is (hand-made, no process behind them). A deleted or replaced executable, which only the kernel's links show, is
/// checked on real processes in EveryProcessSessionTests.
@Suite struct ProcessTableTests {
    final class FakeProc {
        let root: String
        init() throws {
            root = NSTemporaryDirectory() + "migtrace-proc-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            for name in ["qemu", "bash", "other-qemu"] {
                FileManager.default.createFile(atPath: "\(root)/\(name)", contents: Data(name.utf8))
            }
            try FileManager.default.createDirectory(atPath: "\(root)/self", withIntermediateDirectories: true)
        }
        deinit { try? FileManager.default.removeItem(atPath: root) }

        func run(_ pid: Int32, _ exe: String) throws {
            let dir = "\(root)/\(pid)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try? FileManager.default.removeItem(atPath: "\(dir)/exe")
            try FileManager.default.createSymbolicLink(atPath: "\(dir)/exe", withDestinationPath: "\(root)/\(exe)")
        }
        /// An exited process its parent has not reaped: the directory stays, the executable is gone.
        func zombie(_ pid: Int32) throws { try FileManager.default.removeItem(atPath: "\(root)/\(pid)/exe") }
        func reap(_ pid: Int32) throws { try FileManager.default.removeItem(atPath: "\(root)/\(pid)") }
    }

    @Test func firstScanReportsEveryProcessWithItsFile() throws {
        let proc = try FakeProc()
        try proc.run(10, "qemu")
        try proc.run(7, "bash")
        var table = ProcessTable(proc: proc.root)
        let first = table.scan()
        #expect(first.started.map(\.pid) == [7, 10], "numeric entries only (not self), in pid order")
        #expect(first.started.map(\.executable) == ["\(proc.root)/bash", "\(proc.root)/qemu"])
        #expect(first.started[1].file == FileIdentity(path: "\(proc.root)/qemu"))
        #expect(first.started.allSatisfy { !$0.executableDeleted })
        #expect(first.ended.isEmpty)
        #expect(table.scan() == ProcessTable.Changes(), "nothing changed, nothing reported")
    }

    @Test func anExecIsSeenDuringTheGraceScansOnly() throws {
        let proc = try FakeProc()
        try proc.run(20, "bash")
        var table = ProcessTable(proc: proc.root, execGrace: 2)
        #expect(table.scan().started.map(\.executable) == ["\(proc.root)/bash"])
        // libvirt forks, then the child execs QEMU: same pid, another executable.
        try proc.run(20, "qemu")
        #expect(table.scan().started.map(\.executable) == ["\(proc.root)/qemu"])
        _ = table.scan()
        // Past the grace scans a pid is no longer read (an idle scan is one directory listing).
        try proc.run(20, "other-qemu")
        #expect(table.scan().started.isEmpty)
    }

    @Test func watchedProcessesEndAsZombiesOthersWhenGone() throws {
        let proc = try FakeProc()
        try proc.run(30, "qemu")
        try proc.run(31, "qemu")
        var table = ProcessTable(proc: proc.root, execGrace: 0)
        #expect(table.scan().started.count == 2)
        table.watch(30)
        try proc.zombie(30)
        try proc.zombie(31)
        #expect(table.scan().ended == [30], "a watched zombie has ended; an unwatched one is not read again")
        try proc.reap(30)
        try proc.reap(31)
        #expect(table.scan().ended == [31], "gone from /proc")
        #expect(table.scan() == ProcessTable.Changes())
        // The pid comes back (reused): a new process.
        try proc.run(31, "other-qemu")
        #expect(table.scan().started.map(\.pid) == [31])
    }
}

/// `QEMUCommandLine.vmName(pid:)` on a process caught in its exec, on a `/proc` of the test's own: the command line
/// is empty until the kernel has set it (hand-made: a file written 5 ms after the first read).
@Suite struct CommandLineDuringExecTests {
    @Test func anEmptyCommandLineIsReadAgain() throws {
        let root = NSTemporaryDirectory() + "migtrace-cmdline-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: "\(root)/77", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let file = "\(root)/77/cmdline"
        FileManager.default.createFile(atPath: file, contents: Data())
        let writer = Thread {
            usleep(5000)
            try? Data("qemu-system-x86_64\0-name\0guest=vm7,debug-threads=on\0".utf8).write(to: URL(fileURLWithPath: file))
        }
        writer.start()
        #expect(QEMUCommandLine.vmName(pid: 77, proc: root) == "vm7")
        // No waiting: the empty line, read once, has no name.
        FileManager.default.createFile(atPath: file, contents: Data())
        #expect(QEMUCommandLine.vmName(pid: 77, proc: root, execWait: 0) == nil)
        #expect(QEMUCommandLine.vmName(pid: 78, proc: root) == nil, "no such process: nothing to wait for")
    }
}
