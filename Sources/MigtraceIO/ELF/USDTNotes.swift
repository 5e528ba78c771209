// SPDX-License-Identifier: Apache-2.0

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// One USDT (SystemTap SDT) probe site, read from an ELF file's `.note.stapsdt` section.
///
/// Each `DTRACE_PROBEn`/`STAP_PROBEn` call site in the binary yields one note, so a probe the compiler
/// duplicated (inlining) appears several times with the same provider and name but different ``pc``.
public struct USDTProbe: Sendable, Equatable {
    /// One argument operand, as the assembler spelled it (`8@%rax`, `-4@-20(%rbp)`).
    public struct Argument: Sendable, Equatable {
        /// Size in bytes (1, 2, 4 or 8); 8 when the note gives no size.
        public var size: Int
        /// Whether the size prefix was negative (a signed value).
        public var isSigned: Bool
        /// Whether the size prefix ended with `f` (a floating-point value).
        public var isFloat: Bool
        /// The operand after `@` (register, memory or `$constant`).
        public var location: String

        /// An operand with every field given.
        public init(size: Int, isSigned: Bool, isFloat: Bool, location: String) {
            self.size = size
            self.isSigned = isSigned
            self.isFloat = isFloat
            self.location = location
        }
    }

    /// The provider (`qemu` for QEMU's dtrace backend).
    public var provider: String
    /// The probe name (the QEMU trace event name, unmangled).
    public var name: String
    /// The probe's virtual address, adjusted by `.stapsdt.base` (prelink).
    public var pc: UInt64
    /// The file offset of ``pc``, when a section maps it.
    public var pcFileOffset: UInt64?
    /// The semaphore's virtual address (adjusted like ``pc``), or 0 when the probe has none.
    public var semaphore: UInt64
    /// The file offset of the semaphore, when a section maps it (`.probes`, `.data`).
    public var semaphoreFileOffset: UInt64?
    /// The raw argument string of the note (e.g. `8@%rdi 8@%rsi`).
    public var argumentString: String
    /// The parsed operands of ``argumentString``.
    public var arguments: [Argument]

    /// Number of arguments the probe passes.
    public var argumentCount: Int { arguments.count }
    /// Whether the probe is guarded by a semaphore (`_ENABLED()` counter).
    public var hasSemaphore: Bool { semaphore != 0 }
}

/// Why an ELF file's USDT notes could not be read.
public enum USDTNotesError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file could not be opened or read (`errno`).
    case io(path: String, operation: String, errno: Int32)
    /// The file does not start with the ELF magic.
    case notELF(path: String)
    /// The ELF class or byte order is not supported (only 64-bit little-endian is).
    case unsupported(path: String, reason: String)
    /// A header, section or note points outside the file.
    case malformed(path: String, reason: String)

    public var description: String {
        switch self {
        case let .io(path, operation, errno):
            "\(operation) \(path) failed: \(String(cString: strerror(errno)))"
        case let .notELF(path): "\(path) is not an ELF file"
        case let .unsupported(path, reason): "\(path): unsupported ELF: \(reason)"
        case let .malformed(path, reason): "\(path): malformed ELF: \(reason)"
        }
    }
}

/// Reads the `.note.stapsdt` section of an ELF file (64-bit little-endian), per the SystemTap SDT note format:
/// owner `stapsdt`, type 3, descriptor = pc, `_.stapsdt.base` address, semaphore address (each 8 bytes), then
/// provider, name and argument string, each NUL-terminated.
///
/// Pure Swift, no libbpf: it tells "QEMU built without the dtrace backend" (no `qemu` notes at all) apart from
/// attach failures.
public enum USDTNotes {
    /// All probe sites in the ELF file at `path`, in note order.
    ///
    /// - Throws: ``USDTNotesError``.
    public static func read(path: String) throws(USDTNotesError) -> [USDTProbe] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw .io(path: path, operation: "open", errno: errno) }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) != 0 { throw .io(path: path, operation: "fstat", errno: errno) }
        let fileSize = UInt64(st.st_size)
        return try parse(path: path, fileSize: fileSize) { offset, count throws(USDTNotesError) in
            var bytes = [UInt8](repeating: 0, count: count)
            var done = 0
            while done < count {
                let n = bytes.withUnsafeMutableBytes { buf in
                    pread(fd, buf.baseAddress! + done, count - done, off_t(offset) + off_t(done))
                }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw .io(path: path, operation: "pread", errno: errno)
                }
                if n == 0 { throw .malformed(path: path, reason: "unexpected end of file at \(offset + UInt64(done))") }
                done += n
            }
            return bytes
        }
    }

    /// All probe sites in an ELF image held in memory (tests, already-mapped files).
    public static func parse(bytes: [UInt8], name: String = "<memory>") throws(USDTNotesError) -> [USDTProbe] {
        try parse(path: name, fileSize: UInt64(bytes.count)) { offset, count throws(USDTNotesError) in
            guard offset <= UInt64(bytes.count), UInt64(count) <= UInt64(bytes.count) - offset else {
                throw .malformed(path: name, reason: "range \(offset)+\(count) beyond end of file")
            }
            return Array(bytes[Int(offset)..<Int(offset) + count])
        }
    }

    /// Probe sites of one provider, e.g. `qemu`.
    public static func probes(_ all: [USDTProbe], provider: String) -> [USDTProbe] {
        all.filter { $0.provider == provider }
    }

    // MARK: - Parsing

    private struct Section {
        var name: String
        var type: UInt32
        var addr: UInt64
        var offset: UInt64
        var size: UInt64
    }

    private static let shtNobits: UInt32 = 8
    private static let ntStapsdt: UInt32 = 3

    /// The GNU build ID (`.note.gnu.build-id`, lowercase hex) of the ELF file at `path`, or `nil` if it has none.
    ///
    /// Recordings can store it so that a trace names the exact QEMU build it came from.
    public static func buildID(path: String) throws(USDTNotesError) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw .io(path: path, operation: "open", errno: errno) }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) != 0 { throw .io(path: path, operation: "fstat", errno: errno) }
        let read = { (offset: UInt64, count: Int) throws(USDTNotesError) -> [UInt8] in
            var bytes = [UInt8](repeating: 0, count: count)
            let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, count, off_t(offset)) }
            if n < 0 { throw .io(path: path, operation: "pread", errno: errno) }
            if n != count { throw .malformed(path: path, reason: "unexpected end of file at \(offset)") }
            return bytes
        }
        let fileSize = UInt64(st.st_size)
        let sections = try loadSections(path: path, fileSize: fileSize, read: read)
        guard let sec = sections.first(where: { $0.name == ".note.gnu.build-id" }) else { return nil }
        let data = try readSection(sec, path: path, fileSize: fileSize, read: read)
        guard data.count >= 16 else { return nil }
        let namesz = Int(u32(data, 0))
        let descsz = Int(u32(data, 4))
        let descStart = 12 + align4(namesz)
        guard u32(data, 8) == 3, descStart + descsz <= data.count else { return nil }  // NT_GNU_BUILD_ID
        let hex = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for b in data[descStart..<descStart + descsz] {
            out.append(hex[Int(b >> 4)])
            out.append(hex[Int(b & 0xf)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func parse(
        path: String, fileSize: UInt64, read: (UInt64, Int) throws(USDTNotesError) -> [UInt8]
    ) throws(USDTNotesError) -> [USDTProbe] {
        let sections = try loadSections(path: path, fileSize: fileSize, read: read)
        return try parseNotes(path: path, fileSize: fileSize, sections: sections, read: read)
    }

    /// The section table with names resolved; empty when the file has no section headers.
    private static func loadSections(
        path: String, fileSize: UInt64, read: (UInt64, Int) throws(USDTNotesError) -> [UInt8]
    ) throws(USDTNotesError) -> [Section] {
        guard fileSize >= 64 else { throw .notELF(path: path) }
        let eh = try read(0, 64)
        guard eh[0] == 0x7f, eh[1] == 0x45, eh[2] == 0x4c, eh[3] == 0x46 else { throw .notELF(path: path) }
        guard eh[4] == 2 else { throw .unsupported(path: path, reason: "32-bit ELF (EI_CLASS \(eh[4]))") }
        guard eh[5] == 1 else { throw .unsupported(path: path, reason: "big-endian ELF (EI_DATA \(eh[5]))") }

        let shoff = u64(eh, 0x28)
        let shentsize = Int(u16(eh, 0x3A))
        var shnum = UInt64(u16(eh, 0x3C))
        var shstrndx = UInt64(u16(eh, 0x3E))
        if shoff == 0 { return [] }  // no section headers (stripped to the bone): no notes
        guard shentsize >= 64 else { throw .malformed(path: path, reason: "e_shentsize \(shentsize)") }
        // Extended numbering: counts live in section 0.
        if shnum == 0 || shstrndx == 0xffff {
            let s0 = try read(shoff, 64)
            if shnum == 0 { shnum = u64(s0, 32) }
            if shstrndx == 0xffff { shstrndx = UInt64(u32(s0, 40)) }
        }
        guard shnum < 1 << 20, shoff <= fileSize, shnum * UInt64(shentsize) <= fileSize - shoff else {
            throw .malformed(path: path, reason: "section header table beyond end of file")
        }
        let table = try read(shoff, Int(shnum) * shentsize)
        var raw: [(nameOff: UInt32, section: Section)] = []
        raw.reserveCapacity(Int(shnum))
        for i in 0..<Int(shnum) {
            let b = i * shentsize
            raw.append(
                (
                    u32(table, b),
                    Section(
                        name: "", type: u32(table, b + 4), addr: u64(table, b + 16), offset: u64(table, b + 24),
                        size: u64(table, b + 32))
                ))
        }
        guard shstrndx < shnum else { throw .malformed(path: path, reason: "e_shstrndx \(shstrndx)") }
        let strsec = raw[Int(shstrndx)].section
        let strtab = try readSection(strsec, path: path, fileSize: fileSize, read: read)
        return raw.map { entry in
            var s = entry.section
            s.name = cString(strtab, Int(entry.nameOff))
            return s
        }
    }

    private static func parseNotes(
        path: String, fileSize: UInt64, sections: [Section],
        read: (UInt64, Int) throws(USDTNotesError) -> [UInt8]
    ) throws(USDTNotesError) -> [USDTProbe] {
        guard let notes = sections.first(where: { $0.name == ".note.stapsdt" }) else { return [] }
        let base = sections.first(where: { $0.name == ".stapsdt.base" })
        let data = try readSection(notes, path: path, fileSize: fileSize, read: read)

        var probes: [USDTProbe] = []
        var pos = 0
        while pos + 12 <= data.count {
            let namesz = Int(u32(data, pos))
            let descsz = Int(u32(data, pos + 4))
            let type = u32(data, pos + 8)
            let nameStart = pos + 12
            let descStart = nameStart + align4(namesz)
            let next = descStart + align4(descsz)
            guard namesz <= data.count, descsz <= data.count, descStart + descsz <= data.count else {
                throw .malformed(path: path, reason: "note at offset \(pos) of .note.stapsdt overruns the section")
            }
            defer { pos = next }
            let owner = cString(data, nameStart, limit: nameStart + namesz)
            guard type == ntStapsdt, owner == "stapsdt", descsz >= 24 + 3 else { continue }

            var pc = u64(data, descStart)
            let noteBase = u64(data, descStart + 8)
            var semaphore = u64(data, descStart + 16)
            let end = descStart + descsz
            var p = descStart + 24
            let provider = cString(data, p, limit: end)
            p += provider.utf8.count + 1
            let probeName = cString(data, p, limit: end)
            p += probeName.utf8.count + 1
            let argString = p < end ? cString(data, p, limit: end) : ""

            // SystemTap: when the file was prelinked, .stapsdt.base moved; shift pc and semaphore alike.
            if let base, noteBase != 0, base.addr != noteBase {
                pc = pc &+ (base.addr &- noteBase)
                if semaphore != 0 { semaphore = semaphore &+ (base.addr &- noteBase) }
            }
            probes.append(
                USDTProbe(
                    provider: provider, name: probeName, pc: pc, pcFileOffset: fileOffset(of: pc, in: sections),
                    semaphore: semaphore,
                    semaphoreFileOffset: semaphore == 0 ? nil : fileOffset(of: semaphore, in: sections),
                    argumentString: argString, arguments: parseArguments(argString)))
        }
        return probes
    }

    /// Parses a note's argument string: operands separated by spaces, each `[-]N[f]@operand`.
    public static func parseArguments(_ s: String) -> [USDTProbe.Argument] {
        s.split(separator: " ", omittingEmptySubsequences: true).map { token in
            guard let at = token.firstIndex(of: "@") else {
                return .init(size: 8, isSigned: false, isFloat: false, location: String(token))
            }
            var spec = Substring(token[token.startIndex..<at])
            let location = String(token[token.index(after: at)...])
            var isFloat = false
            if spec.hasSuffix("f") {
                isFloat = true
                spec = spec.dropLast()
            }
            // A size outside ±16 bytes is not one a compiler emits (and abs(Int.min) traps): read it as the default.
            let signedSize = Int(spec).flatMap { (-16...16).contains($0) ? $0 : nil } ?? 8
            return .init(size: abs(signedSize), isSigned: signedSize < 0, isFloat: isFloat, location: location)
        }
    }

    private static func readSection(
        _ s: Section, path: String, fileSize: UInt64, read: (UInt64, Int) throws(USDTNotesError) -> [UInt8]
    ) throws(USDTNotesError) -> [UInt8] {
        if s.type == shtNobits || s.size == 0 { return [] }
        guard s.offset <= fileSize, s.size <= fileSize - s.offset, s.size < 1 << 31 else {
            throw .malformed(path: path, reason: "section \(s.name.isEmpty ? "?" : s.name) beyond end of file")
        }
        return try read(s.offset, Int(s.size))
    }

    private static func fileOffset(of address: UInt64, in sections: [Section]) -> UInt64? {
        for s in sections where s.addr != 0 && s.type != shtNobits && address >= s.addr && address - s.addr < s.size {
            let (offset, overflow) = (address - s.addr).addingReportingOverflow(s.offset)
            return overflow ? nil : offset
        }
        return nil
    }

    private static func align4(_ n: Int) -> Int { (n + 3) & ~3 }

    private static func u16(_ b: [UInt8], _ o: Int) -> UInt16 { UInt16(b[o]) | UInt16(b[o + 1]) << 8 }
    private static func u32(_ b: [UInt8], _ o: Int) -> UInt32 {
        var v: UInt32 = 0
        for i in 0..<4 { v |= UInt32(b[o + i]) << (8 * UInt32(i)) }
        return v
    }
    private static func u64(_ b: [UInt8], _ o: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(b[o + i]) << (8 * UInt64(i)) }
        return v
    }

    private static func cString(_ b: [UInt8], _ start: Int, limit: Int? = nil) -> String {
        let end = min(limit ?? b.count, b.count)
        guard start < end else { return "" }
        var i = start
        while i < end && b[i] != 0 { i += 1 }
        return String(decoding: b[start..<i], as: UTF8.self)
    }
}
