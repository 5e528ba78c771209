// SPDX-License-Identifier: Apache-2.0

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A failed libbpf (or kernel) operation: which call, and the errno it gave.
///
/// The C shim returns negative errno values; they are flipped to positive here, once.
public struct LibbpfError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The libbpf call that failed, e.g. `bpf_object__load` or `bpf_program__attach_usdt`.
    public var operation: String
    /// The probe concerned (`qemu:migrate_transferred`), for attach failures.
    public var probe: String?
    /// The positive errno value.
    public var errno: Int32

    /// An error for `operation` with a positive or negative errno.
    public init(operation: String, errno: Int32, probe: String? = nil) {
        self.operation = operation
        self.errno = errno < 0 ? -errno : errno
        self.probe = probe
    }

    /// `strerror(errno)`.
    public var message: String { String(cString: strerror(errno)) }

    /// E.g. `bpf_program__attach_usdt qemu:migrate_transferred failed: No such file or directory (errno 2)`.
    public var description: String {
        let what = probe.map { "\(operation) \($0)" } ?? operation
        return "\(what) failed: \(message) (errno \(errno))"
    }
}
