// SPDX-License-Identifier: Apache-2.0

#if canImport(Glibc)
    import Glibc
#endif

/// What a QEMU's command line says about it: the VM name libvirt and users give with `-name`.
public enum QEMUCommandLine {
    /// The VM name of process `pid` (from `/proc/PID/cmdline`); nil when it has none or the file is unreadable.
    ///
    /// A process caught in its exec already shows its new executable but not yet its arguments (the kernel sets
    /// them a moment later: 1 of 5,036 processes of a soak run was read so). An empty command line is read again,
    /// every millisecond for up to `execWait` milliseconds.
    public static func vmName(pid: Int32, proc: String = "/proc", execWait: Int = 50) -> String? {
        var bytes = commandLine("\(proc)/\(pid)/cmdline")
        var waited = 0
        while bytes?.isEmpty == true && waited < execWait {
            usleep(1000)
            waited += 1
            bytes = commandLine("\(proc)/\(pid)/cmdline")
        }
        guard let bytes else { return nil }
        return vmName(arguments: bytes.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) })
    }

    /// The bytes of a `cmdline` file, or nil when it cannot be opened.
    private static func commandLine(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        // A command line is at most a few hundred KiB (ARG_MAX); stop at 1 MiB whatever /proc says.
        while bytes.count < 1 << 20 {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { break }
            bytes += chunk[0..<n]
        }
        return bytes
    }

    /// The VM name in QEMU arguments: `-name NAME`, `-name guest=NAME,…` or `-name NAME,debug-threads=on` (QEMU's
    /// option syntax: the first field without a key is `guest`, `,,` is a literal comma); the last `-name` wins.
    public static func vmName(arguments: [String]) -> String? {
        var name: String?
        var i = 0
        while i < arguments.count {
            let a = arguments[i]
            var value: String?
            if a == "-name" || a == "--name" {
                if i + 1 < arguments.count { value = arguments[i + 1] }
                i += 1
            } else if a.hasPrefix("-name=") || a.hasPrefix("--name=") {
                value = String(a[a.index(after: a.firstIndex(of: "=")!)...])
            }
            if let value, let guest = guestField(value) { name = guest }
            i += 1
        }
        return name
    }

    /// The `guest` field of a `-name` value.
    private static func guestField(_ value: String) -> String? {
        // Split on single commas; ",," stands for a comma inside a field.
        var fields: [String] = []
        var current = ""
        var chars = Array(value)[...]
        while let c = chars.popFirst() {
            if c == "," {
                if chars.first == "," {
                    current.append(",")
                    chars = chars.dropFirst()
                } else {
                    fields.append(current)
                    current = ""
                }
            } else {
                current.append(c)
            }
        }
        fields.append(current)
        for (index, field) in fields.enumerated() {
            if field.hasPrefix("guest=") { return String(field.dropFirst(6)) }
            if index == 0 && !field.contains("=") { return field }
        }
        return nil
    }
}
