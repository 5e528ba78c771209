// SPDX-License-Identifier: Apache-2.0

import CMigtraceBPF
import MigtraceCore

/// Turns one ring-buffer record (`struct mt_event`) into a ``TraceEvent``.
public enum LiveEventDecoder {
    /// Size of `struct mt_event` (the shared header's `MT_EVENT_SIZE`).
    public static let recordSize = Int(MT_EVENT_SIZE)

    /// Decodes a record; `nil` if it is too short or has an unknown probe id.
    ///
    /// - Parameters:
    ///   - data: The record; need not be aligned (it is copied).
    ///   - size: Its size in bytes.
    public static func decode(_ data: UnsafeRawPointer, size: Int) -> TraceEvent? {
        guard size >= MemoryLayout<mt_event>.size else { return nil }
        let e = data.loadUnaligned(as: mt_event.self)
        guard let kind = ProbeKind(rawValue: e.probe) else { return nil }
        let count = min(Int(e.arg_cnt), Int(MT_MAX_ARGS))
        var args = ProbeArguments(count: count, e.args.0, e.args.1, e.args.2, e.args.3, e.args.4)
        // Slots past the count are zero by construction in the BPF program; enforce it anyway.
        for i in count..<5 { args[i] = 0 }
        var state: MigrationState?
        if kind == .migrateSetState {
            state = withUnsafeBytes(of: e.state) { raw in
                let bytes = raw.bindMemory(to: UInt8.self)
                let end = bytes.firstIndex(of: 0) ?? bytes.count
                return MigrationState(bytes: bytes[0..<end]) ?? .unrecognized
            }
        }
        return TraceEvent(
            kind: kind, arguments: args, timestampNanoseconds: e.ts_ns, clock: .monotonic, threadID: e.tid,
            processID: e.pid, state: state, origin: .live)
    }

    /// The `flags` of a record (`MT_FLAG_*`): argument read errors, state read errors.
    public static func flags(_ data: UnsafeRawPointer, size: Int) -> UInt16? {
        guard size >= MemoryLayout<mt_event>.size else { return nil }
        return data.loadUnaligned(as: mt_event.self).flags
    }
}
