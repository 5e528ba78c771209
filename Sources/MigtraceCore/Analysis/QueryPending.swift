// SPDX-License-Identifier: Apache-2.0

/// One `qemu_savevm_query_pending` event (QEMU ≥ 11.1), read from its eight arguments.
public struct QueryPending: Sendable, Equatable {
    /// The slow query that ends an iteration (RAM's dirty bitmap synced); else an estimate.
    public var exact: Bool
    /// The query at switchover.
    public var final: Bool
    /// The pending data by kind.
    public var split: PendingSplit
    /// `precopy + stopcopy + postcopy`: what QEMU compares with the threshold.
    public var total: UInt64
    /// Switchover acknowledgements collected, and how many are needed.
    public var ackPending: UInt32
    public var totalAckPending: UInt32

    /// The query in `a`, which ``refusal(_:)`` accepted.
    public init(_ a: ProbeArguments) {
        exact = a[0] == 1
        final = a[1] == 1
        split = PendingSplit(precopy: a[2], stopcopy: a[3], postcopy: a[4])
        total = a[5]
        ackPending = UInt32(truncatingIfNeeded: a[6])
        totalAckPending = UInt32(truncatingIfNeeded: a[7])
    }

    /// Why `a` cannot be a query QEMU traced, or nil when it can.
    public static func refusal(_ a: ProbeArguments) -> String? {
        guard a.count == 8 else { return "\(a.count) arguments; QEMU traces 8" }
        guard a[0] <= 1, a[1] <= 1 else { return "exact=\(a[0]), final=\(a[1]); QEMU traces each flag as 0 or 1" }
        let (partial, o1) = a[2].addingReportingOverflow(a[3])
        let (sum, o2) = partial.addingReportingOverflow(a[4])
        guard !o1, !o2, sum == a[5] else {
            return "total \(a[5]) is not precopy + stopcopy + postcopy (\(a[2]) + \(a[3]) + \(a[4])); QEMU traces their sum"
        }
        return nil
    }
}
