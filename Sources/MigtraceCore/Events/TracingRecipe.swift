// SPDX-License-Identifier: Apache-2.0

/// The one set of QEMU trace events migtrace asks for, and how to turn it on: the same words in the README,
/// `--help` and every refusal.
public enum TracingRecipe {
    /// The events, as QEMU's `-trace` patterns: windows, pending data (`migrate_pending*` up to 11.0,
    /// `qemu_savevm_query_pending` from 11.1), states, the switchover decision and the dirty syncs.
    public static let events = [
        "migrate_transferred", "migrate_pending*", "qemu_savevm_query_pending", "migrate_set_state",
        "migration_thread_low_pending", "migration_bitmap_sync_end",
    ]

    /// QEMU's command-line options that log them to `file`.
    public static func commandLine(file: String = "FILE") -> String {
        events.map { $0.contains("*") ? "-trace '\($0)'" : "-trace \($0)" }.joined(separator: " ") + " -D \(file)"
    }

    /// The QMP commands that turn them on in a running QEMU (one per pattern); it logs to its `-D` file or stderr.
    public static var qmp: [String] {
        events.map { #"{"execute":"trace-event-set-state","arguments":{"name":"\#($0)","enable":true}}"# }
    }

    /// The same through libvirt, for domain `domain`: it logs to the domain log (/var/log/libvirt/qemu/DOMAIN.log).
    public static func virsh(domain: String = "DOMAIN") -> [String] {
        events.map { "virsh qemu-monitor-command \(domain) --hmp 'trace-event \($0) on'" }
    }
}
