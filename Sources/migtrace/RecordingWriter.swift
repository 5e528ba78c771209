// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import MigtraceCore

/// Writes a migtrace recording: created 0600, never through a symlink, never over an existing file
/// unless forced; one `write(2)` per record so a killed migtrace leaves every complete record on disk.
/// A failed or short write (disk full) truncates the partial record away and stops recording.
final class RecordingWriter {
    let path: String
    private let fd: Int32
    private var offset: off_t = 0
    /// The error that stopped recording, if any.
    private(set) var failure: String?

    /// Create the file. Throws a message that says what to do.
    init(path: String, force: Bool) throws(RecordingOpenError) {
        self.path = path
        var flags = O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC
        flags |= force ? O_TRUNC : O_EXCL
        let fd = open(path, flags, 0o600)
        guard fd >= 0 else {
            let e = errno
            switch e {
            case EEXIST: throw RecordingOpenError("\(path) already exists; choose another name or pass --force to overwrite it")
            case ELOOP: throw RecordingOpenError("\(path) is a symbolic link; migtrace never writes through one, give the real path")
            default: throw RecordingOpenError("cannot create \(path): \(String(cString: strerror(e)))")
            }
        }
        if force { _ = fchmod(fd, 0o600) }
        self.fd = fd
    }

    /// Append one record; after a failure, does nothing.
    func append(_ bytes: [UInt8]) {
        guard failure == nil else { return }
        var written = 0
        bytes.withUnsafeBytes { raw in
            while written < raw.count {
                let n = write(fd, raw.baseAddress! + written, raw.count - written)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = String(cString: strerror(errno))
                    return
                }
                written += n
            }
        }
        if failure != nil {
            // Drop the partial record so the file stays valid up to its last complete one.
            _ = ftruncate(fd, offset)
        } else {
            offset += off_t(written)
        }
    }

    deinit { close(fd) }
}

/// Why a recording could not be created.
struct RecordingOpenError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
