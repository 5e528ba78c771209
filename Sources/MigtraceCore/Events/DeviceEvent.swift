// SPDX-License-Identifier: Apache-2.0

/// A VFIO device's migration trace event, read from a QEMU log: what the device reported about its data.
///
/// Kept apart from ``TraceEvent`` because it carries the device's name (a string of any length), which a
/// ``TraceEvent`` has no room for; such events are rare (a few per iteration and device).
public struct DeviceEvent: Sendable, Equatable {
    /// Which VFIO event it is (`hw/vfio/trace-events`).
    public enum Kind: String, Sendable, CaseIterable {
        /// `vfio_state_pending(name, stopcopy_size, precopy_init_size, precopy_dirty_size, request_switchover_ack,
        /// exact, final)` (QEMU ≥ 11.1).
        case statePending = "vfio_state_pending"
        /// `vfio_query_stop_copy_size(name, size, ret)` (QEMU ≥ 11.1).
        case queryStopCopySize = "vfio_query_stop_copy_size"
        /// `vfio_query_precopy_size(name, init_size, dirty_size, reinit, ret)` (QEMU ≥ 11.1).
        case queryPrecopySize = "vfio_query_precopy_size"
        /// `vfio_state_pending_estimate(name, precopy, postcopy, precopy_init_size, precopy_dirty_size)` (8.x–11.0).
        case statePendingEstimate = "vfio_state_pending_estimate"
        /// `vfio_state_pending_exact(name, precopy, postcopy, stopcopy_size, precopy_init_size, precopy_dirty_size)`
        /// (8.x–11.0).
        case statePendingExact = "vfio_state_pending_exact"
    }

    public var kind: Kind
    /// The device's name (`vbasedev->name`, e.g. a PCI address), as the log has it; unescaped.
    public var name: String
    /// Data the device can only send while the VM is stopped, bytes.
    public var stopCopyBytes: UInt64?
    /// The device's initial and dirty precopy data, bytes.
    public var precopyInitialBytes: UInt64?
    public var precopyDirtyBytes: UInt64?
    /// The must-precopy and can-postcopy totals after this device (the 8.x–11.0 events).
    public var precopyBytes: UInt64?
    public var postcopyBytes: UInt64?
    /// Whether the device asks for a switchover acknowledgement.
    public var requestSwitchoverAck: Bool?
    public var exact: Bool?
    public var final: Bool?
    public var reinit: Bool?
    /// The query's return code (0, or a negative errno).
    public var ret: Int64?
    /// Where and when it was logged.
    public var origin: EventOrigin
    public var timestampNanoseconds: UInt64?
    public var threadID: UInt32?

    /// An event of `kind` for device `name` with no values yet.
    public init(kind: Kind, name: String, origin: EventOrigin) {
        self.kind = kind
        self.name = name
        self.origin = origin
    }
}
