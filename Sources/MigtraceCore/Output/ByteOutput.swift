// SPDX-License-Identifier: Apache-2.0

/// Where rendered bytes go (a buffered file descriptor in the CLI, an array in tests).
public protocol ByteOutput: AnyObject {
    /// Append bytes.
    func write(_ bytes: [UInt8])
    /// Append bytes from memory the caller owns (e.g. a sink's block of rows), without building an array.
    func write(_ bytes: UnsafeRawBufferPointer)
    /// Push buffered bytes out (at the end, and after each live line).
    func flush()
}

extension ByteOutput {
    /// Outputs without a faster way take the bytes as an array.
    public func write(_ bytes: UnsafeRawBufferPointer) { write(Array(bytes)) }
}

/// Collects output in memory (tests, golden files).
public final class MemoryOutput: ByteOutput {
    /// Everything written so far.
    public private(set) var bytes: [UInt8] = []
    /// An empty buffer.
    public init() {}
    public func write(_ b: [UInt8]) { bytes.append(contentsOf: b) }
    public func flush() {}
    /// The output as text.
    public var text: String { String(decoding: bytes, as: UTF8.self) }
}
