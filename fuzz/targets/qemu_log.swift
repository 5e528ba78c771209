// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: one QEMU log line through QEMULogParser.parse, and through the reader's fast path, which
// must read any line it accepts exactly as parse does (a trap here is a disagreement).
@testable import MigtraceCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let buf = UnsafeBufferPointer(start: data, count: data == nil ? 0 : size)
    let parser = QEMULogParser(input: 0)
    _ = parser.parse(buf, line: 1)

    // The fast path reads up to fastPathReach bytes from a line's start, as the reader guarantees it may.
    let padded = UnsafeMutableRawPointer.allocate(byteCount: size + QEMULogParser.fastPathReach, alignment: 8)
    defer { padded.deallocate() }
    if size > 0 { padded.copyMemory(from: data!, byteCount: size) }
    (padded + size).initializeMemory(as: UInt8.self, repeating: 0, count: QEMULogParser.fastPathReach)
    guard let fast = QEMULogParser.fastLine(UnsafeRawPointer(padded)) else { return 0 }
    precondition(fast.length <= size, "fast path read past its line")
    let line = UnsafeBufferPointer(start: data, count: fast.length)
    precondition(line[fast.length - 1] == 10 && !line[..<(fast.length - 1)].contains(10), "fast path line end")
    let withoutNewline = UnsafeBufferPointer(rebasing: line[..<(fast.length - 1)])
    guard case .event(let e) = parser.parse(withoutNewline, line: 1) else { preconditionFailure("exact parser rejects") }
    precondition(
        e
            == TraceEvent(
                kind: fast.kind, arguments: fast.arguments, timestampNanoseconds: fast.timestamp, clock: .wall,
                threadID: fast.thread, origin: EventOrigin(input: 0, line: 1)), "fast and exact events differ")
    return 0
}
