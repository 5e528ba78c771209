// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: one recording line through RecordingFormat.parse.
import MigtraceCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let buf = UnsafeBufferPointer(start: data, count: data == nil ? 0 : size)
    _ = RecordingFormat.parse(buf, input: 0, line: 1)
    return 0
}
