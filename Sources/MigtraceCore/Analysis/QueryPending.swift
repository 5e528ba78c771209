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
        exact = a.a0 == 1
        final = a.a1 == 1
        split = PendingSplit(precopy: a.a2, stopcopy: a.a3, postcopy: a.a4)
        total = a.a5
        ackPending = a.a6
        totalAckPending = a.a7
    }

    /// Why `a` cannot be a query QEMU traced, or nil when it can.
    public static func refusal(_ a: ProbeArguments) -> String? {
        guard a.count == 8 else { return "\(a.count) arguments; QEMU traces 8" }
        guard a.a0 <= 1, a.a1 <= 1 else { return "exact=\(a.a0), final=\(a.a1); QEMU traces each flag as 0 or 1" }
        let (partial, o1) = a.a2.addingReportingOverflow(a.a3)
        let (sum, o2) = partial.addingReportingOverflow(a.a4)
        guard !o1, !o2, sum == a.a5 else {
            return "total \(a.a5) is not precopy + stopcopy + postcopy (\(a.a2) + \(a.a3) + \(a.a4)); QEMU traces their sum"
        }
        return nil
    }
}
