import MigtraceCore

// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
    import Glibc
#endif

/// Buffered writes to a file descriptor. A closed pipe (EPIPE, e.g. `| head`) ends output quietly:
/// the flag `closed` lets the caller stop early instead of dying on SIGPIPE.
final class FileDescriptorOutput: ByteOutput {
    private let fd: Int32
    private var buffer: [UInt8] = []
    private let capacity: Int
    /// Set once the reader went away or a write failed: nothing more is written.
    private(set) var closed = false
    /// The errno of a failed write other than a closed pipe (a full disk, an I/O error): the caller reports
    /// it and exits non-zero, since the output is incomplete. A closed pipe (`| head`) is not an error.
    private(set) var writeError: Int32?

    init(fd: Int32, capacity: Int = 1 << 16) {
        self.fd = fd
        self.capacity = capacity
        buffer.reserveCapacity(capacity)
    }

    func write(_ bytes: [UInt8]) {
        guard !closed else { return }
        buffer.append(contentsOf: bytes)
        if buffer.count >= capacity { flush() }
    }

    /// A block that does not fit in the buffer goes out directly (after what is buffered): no copy.
    func write(_ bytes: UnsafeRawBufferPointer) {
        guard !closed else { return }
        if buffer.count + bytes.count < capacity {
            buffer.append(contentsOf: bytes)
            return
        }
        flush()
        writeAll(bytes)
    }

    func flush() {
        guard !closed, !buffer.isEmpty else { return }
        buffer.withUnsafeBytes { writeAll($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    private func writeAll(_ raw: UnsafeRawBufferPointer) {
        var off = 0
        while off < raw.count {
            let n = Glibc.write(fd, raw.baseAddress! + off, raw.count - off)
            if n < 0 {
                if errno == EINTR { continue }
                if errno != EPIPE { writeError = errno }
                closed = true
                return
            }
            off += n
        }
    }

    // SAFETY: the CLI writes to these from one task at a time (the command's run loop).
    /// Standard output.
    nonisolated(unsafe) static let standardOutput = FileDescriptorOutput(fd: 1)
    /// Standard error, unbuffered in practice (flushed per message).
    nonisolated(unsafe) static let standardError = FileDescriptorOutput(fd: 2, capacity: 1)
}

/// The message for a failed standard output write, if one failed (see `FileDescriptorOutput.writeError`).
func outputWriteFailure() -> String? {
    guard let e = FileDescriptorOutput.standardOutput.writeError else { return nil }
    return "migtrace: writing the output failed: \(String(cString: strerror(e))); the output is incomplete: free space or write elsewhere"
}

/// Print a line to standard error.
func printError(_ message: String) {
    FileDescriptorOutput.standardError.write(Array((message + "\n").utf8))
    FileDescriptorOutput.standardError.flush()
}
