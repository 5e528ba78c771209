// SPDX-License-Identifier: Apache-2.0

import CMigtraceBPF
import MigtraceCore

/// Turns one ring-buffer record (`struct mt_event`) into a ``TraceEvent``.
public enum LiveEventDecoder {
    /// Size of `struct mt_event` (the shared header's `MT_EVENT_SIZE`).
    public static let recordSize = Int(MT_EVENT_SIZE)

    /// Decodes a record; `nil` if it is too short, has an unknown probe id, or holds a value in a 32-bit slot
    /// (arguments 7 and 8) that does not fit it.
    ///
    /// - Parameters:
    ///   - data: The record; need not be aligned (it is copied).
    ///   - size: Its size in bytes.
    public static func decode(_ data: UnsafeRawPointer, size: Int) -> TraceEvent? {
        guard size >= MemoryLayout<mt_event>.size else { return nil }
        let e = data.loadUnaligned(as: mt_event.self)
        guard let kind = ProbeKind(rawValue: e.probe) else { return nil }
        let count = min(Int(e.arg_cnt), Int(MT_MAX_ARGS))
        let raw = e.args
        // Slots past the count are zero by construction in the BPF program; they are left out anyway (and
        // migrate_set_state's string lies over slots 1–4).
        @inline(__always) func slot(_ i: Int, _ v: UInt64) -> UInt64 { i < count ? v : 0 }
        let a6 = slot(6, raw.6)
        let a7 = slot(7, raw.7)
        guard let a6 = UInt32(exactly: a6), let a7 = UInt32(exactly: a7) else { return nil }
        let args = ProbeArguments(
            count: count, slot(0, raw.0), slot(1, raw.1), slot(2, raw.2), slot(3, raw.3), slot(4, raw.4), slot(5, raw.5),
            a6, a7)
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
