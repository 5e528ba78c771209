// SPDX-License-Identifier: Apache-2.0

/// The kinds of trace file migtrace reads.
public enum TraceFileFormat: String, Sendable {
    /// QEMU's log trace backend (text), possibly mixed with other lines.
    case qemuLog = "qemu-log"
    /// migtrace's own recording (JSON Lines).
    case recording
    /// QEMU's simple trace backend (binary, header version 4).
    case simpletrace
}
