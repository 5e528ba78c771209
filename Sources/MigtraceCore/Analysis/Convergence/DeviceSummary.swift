// SPDX-License-Identifier: Apache-2.0

/// What one VFIO device reported during a migration (its `vfio_*` trace events), by device name.
public struct DeviceSummary: Sendable, Equatable {
    /// The device's name as the log has it (unescaped: outputs escape it).
    public var name: String
    /// How many of its events the migration had.
    public var events: Int
    /// The last stop-copy size it reported (data it can only send while the VM is stopped), bytes, and the largest.
    public var stopCopyBytes: UInt64?
    public var maxStopCopyBytes: UInt64?
    /// The last initial and dirty precopy sizes it reported, bytes.
    public var precopyInitialBytes: UInt64?
    public var precopyDirtyBytes: UInt64?
    /// Whether it asks for a switchover acknowledgement (the last report).
    public var switchoverAckRequested: Bool?
    /// Size queries that returned an error (`ret` ≠ 0), and the last such code.
    public var failedQueries: Int
    public var lastError: Int64?

    /// A device with nothing reported yet.
    public init(name: String) {
        self.name = name
        events = 0
        failedQueries = 0
    }

    /// Take in one of the device's events.
    mutating func add(_ e: DeviceEvent) {
        events += 1
        if let s = e.stopCopyBytes, e.ret ?? 0 == 0 {
            stopCopyBytes = s
            maxStopCopyBytes = max(maxStopCopyBytes ?? 0, s)
        }
        if e.ret ?? 0 == 0 {
            if let v = e.precopyInitialBytes { precopyInitialBytes = v }
            if let v = e.precopyDirtyBytes { precopyDirtyBytes = v }
        }
        if let a = e.requestSwitchoverAck { switchoverAckRequested = a }
        if let r = e.ret, r != 0 {
            failedQueries += 1
            lastError = r
        }
    }
}
