// SPDX-License-Identifier: Apache-2.0

/// A QEMU migration state, as `migrate_set_state` traces it: QEMU's `MigrationStatus` values, spelled as QEMU
/// spells them (`qapi/migration.json`), from every version migtrace reads.
public enum MigrationState: UInt8, Sendable, CaseIterable {
    case none, setup, cancelling, cancelled, active
    /// `postcopy-device` (QEMU ≥ 10.2).
    case postcopyDevice
    case postcopyActive, postcopyPaused
    /// `postcopy-recover-setup` (QEMU ≥ 9.1).
    case postcopyRecoverSetup
    case postcopyRecover, completed
    /// `failing` (QEMU ≥ 11.0).
    case failing
    case failed, colo
    case preSwitchover, device, waitUnplug
    /// A live probe's state string that is none of the above (a QEMU newer than migtrace, or a garbled read):
    /// the analyzer reports it and leaves the migration's state as it was.
    case unrecognized

    /// The state as QEMU spells it.
    public var name: String {
        switch self {
        case .none: "none"
        case .setup: "setup"
        case .cancelling: "cancelling"
        case .cancelled: "cancelled"
        case .active: "active"
        case .postcopyDevice: "postcopy-device"
        case .postcopyActive: "postcopy-active"
        case .postcopyPaused: "postcopy-paused"
        case .postcopyRecoverSetup: "postcopy-recover-setup"
        case .postcopyRecover: "postcopy-recover"
        case .completed: "completed"
        case .failing: "failing"
        case .failed: "failed"
        case .colo: "colo"
        case .preSwitchover: "pre-switchover"
        case .device: "device"
        case .waitUnplug: "wait-unplug"
        case .unrecognized: "unrecognized"
        }
    }

    /// The state QEMU spells `name`; nil for anything else (``unrecognized`` is never a QEMU spelling).
    public init?(name: some StringProtocol) {
        guard let state = Self.allCases.first(where: { $0 != .unrecognized && $0.name == name }) else { return nil }
        self = state
    }

    /// The state spelled by `bytes` (UTF-8); nil when it is not a QEMU state.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count <= 24, let text = String(validating: bytes, as: UTF8.self) else { return nil }
        self.init(name: text)
    }

    /// Why a state string was refused, with the text escaped for a terminal.
    public static func refusal(_ bytes: some Collection<UInt8>) -> String {
        "new state \"\(escaped(bytes))\" is not a QEMU migration state (MigrationStatus)"
    }

    /// `bytes` with every control character, quote, backslash and non-UTF-8 byte escaped, at most 64 bytes shown.
    public static func escaped(_ bytes: some Collection<UInt8>) -> String {
        var out = ""
        for b in bytes.prefix(64) {
            switch b {
            case 0x20..<0x7f where b != 0x22 && b != 0x5c: out.unicodeScalars.append(Unicode.Scalar(b))
            case 0x22: out += "\\\""
            case 0x5c: out += "\\\\"
            default: out += "\\x" + (b < 16 ? "0" : "") + String(b, radix: 16)
            }
        }
        if bytes.count > 64 { out += "…" }
        return out
    }
}
