import MigtraceCore

// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
    import Glibc
#endif

/// Writes a migtrace recording: created 0600, never through a symlink, never over an existing file
/// unless forced; one `write(2)` per record so a killed migtrace leaves every complete record on disk.
/// A failed or short write (disk full) truncates the partial record away and stops recording.
/// Room for the end record is kept allocated past the end of the file (fallocate, FALLOC_FL_KEEP_SIZE), so a
/// recording stopped by a full disk still ends with its end record.
final class RecordingWriter: RecordStore {
    let path: String
    private let fd: Int32
    private var offset: off_t = 0
    /// The error that stopped recording, if any.
    private(set) var failure: String?
    /// Bytes kept allocated past the end of the file for the end record.
    static let reserve: off_t = 4096
    /// Allocated up to here (FALLOC_FL_KEEP_SIZE; the file size stays `offset`).
    private var allocatedEnd: off_t = 0
    /// False on filesystems without fallocate: plain writes, no reserved room.
    private var canReserve = true
    /// Recording stopped because no room could be reserved, with the end record's room still allocated.
    private var stoppedWithRoom = false

    /// Create the file. Throws a message that says what to do.
    init(path: String, force: Bool) throws(RecordingOpenError) {
        self.path = path
        var flags = O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC
        flags |= force ? O_TRUNC : O_EXCL
        let fd = open(path, flags, 0o600)
        guard fd >= 0 else {
            let e = errno
            switch e {
            case EEXIST:
                var st = stat()
                if lstat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFLNK {
                    throw RecordingOpenError("\(path) is a symbolic link; migtrace never writes through one, give the real path")
                }
                throw RecordingOpenError("\(path) already exists; choose another name or pass --force to overwrite it")
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
        guard reserveRoom(for: bytes.count) else {
            failure = String(cString: strerror(errno))
            stoppedWithRoom = allocatedEnd - offset >= Self.reserve
            return
        }
        writeRecord(bytes)
    }

    /// Append the closing record (into the reserved room if the disk filled up) and free the unused room.
    func finish(_ endRecord: [UInt8]) {
        if failure == nil {
            append(endRecord)
        } else if stoppedWithRoom, endRecord.count <= Int(Self.reserve) {
            let stopped = failure
            failure = nil
            writeRecord(endRecord)
            failure = failure ?? stopped
        }
        if allocatedEnd > offset {
            // Growing then shrinking frees the preallocated blocks past the end on every filesystem.
            _ = ftruncate(fd, offset + 1)
            _ = ftruncate(fd, offset)
        }
    }

    /// Makes sure `n` bytes plus the end record's room are allocated from `offset`; false when the disk is full.
    private func reserveRoom(for n: Int) -> Bool {
        guard canReserve, offset + off_t(n) + Self.reserve > allocatedEnd else { return true }
        for length in [max(off_t(1 << 16), off_t(n) + Self.reserve), off_t(n) + Self.reserve] {
            if let fallocate = Self.fallocate, fallocate(fd, 1 /* FALLOC_FL_KEEP_SIZE */, offset, length) == 0 {
                allocatedEnd = offset + length
                return true
            }
            if Self.fallocate == nil || (errno != ENOSPC && errno != EDQUOT) {
                canReserve = false  // not supported here: plain writes
                return true
            }
        }
        return false
    }

    /// glibc's fallocate(2) wrapper: Glibc's module hides it (it is _GNU_SOURCE), so it is looked up by name.
    private static let fallocate: (@convention(c) (Int32, Int32, off_t, off_t) -> Int32)? = {
        // SAFETY: fallocate64 has exactly this C signature (int, int, off64_t, off64_t) -> int, and off_t is
        // 64-bit here; RTLD_DEFAULT (nil) searches the libc already loaded.
        guard MemoryLayout<off_t>.size == 8, let sym = dlsym(nil, "fallocate64") else { return nil }
        return unsafeBitCast(sym, to: (@convention(c) (Int32, Int32, off_t, off_t) -> Int32).self)
    }()

    /// One record in as many write(2) calls as needed; a failure truncates it away and sets `failure`.
    private func writeRecord(_ bytes: [UInt8]) {
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
