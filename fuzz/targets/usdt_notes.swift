// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: an ELF image through USDTNotes.parse(bytes:), then each argument string.
@testable import MigtraceIO

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: data == nil ? 0 : size))
    if let probes = try? USDTNotes.parse(bytes: bytes) {
        for p in probes { _ = USDTNotes.parseArguments(p.argumentString) }
    }
    // The argument-string parser on its own, with the input's tail as the string (notes' strings are short).
    _ = USDTNotes.parseArguments(String(decoding: bytes.suffix(160), as: UTF8.self))
    return 0
}
