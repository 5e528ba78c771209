// SPDX-License-Identifier: Apache-2.0

extension Cursor {
    /// `qemu_savevm_query_pending`'s body (QEMU ≥ 11.1), after the event name:
    /// `exact=%d, final=%d, precopy=%PRIu64, stopcopy=%PRIu64, postcopy=%PRIu64, total=%PRIu64,
    /// collected switchover ack pending=%PRIu32, total switchover ack pending=%PRIu32`.
    ///
    /// The two flags are C bools printed with `%d` (0 or 1), the two ack counts `uint32_t`; anything else is refused
    /// with the field it concerns.
    mutating func queryPendingBody() throws(ParseError) -> ProbeArguments {
        skipSpaces()
        let exact = try flag("exact")
        try literal(", ")
        let final = try flag("final")
        try literal(", ")
        let precopy = try assigned("precopy")
        try literal(", ")
        let stopcopy = try assigned("stopcopy")
        try literal(", ")
        let postcopy = try assigned("postcopy")
        try literal(", ")
        let total = try assigned("total")
        try literal(", ")
        let ack = try count32("collected switchover ack pending")
        try literal(", ")
        let totalAck = try count32("total switchover ack pending")
        return ProbeArguments(count: 8, exact, final, precopy, stopcopy, postcopy, total, ack, totalAck)
    }

    /// `label=N` with N unsigned and followed by `,` or the end of the line.
    private mutating func assigned(_ label: StaticString) throws(ParseError) -> UInt64 {
        guard take(label), take("=") else { throw ParseError("expected '\(label)=' at column \(pos + 1)") }
        guard pos < end else { throw ParseError("line ends before the value of '\(label)'") }
        if bytes[pos] == UInt8(ascii: "-") { throw ParseError("negative value for unsigned '\(label)'") }
        let start = pos
        guard let v = digits() else {
            if pos > start || (pos < end && bytes[pos] &- 48 < 10) {
                throw ParseError("value of '\(label)' does not fit in 64 bits")
            }
            throw ParseError("expected a number after '\(label)='")
        }
        if pos < end && bytes[pos] != UInt8(ascii: ",") {
            throw ParseError("unexpected character after the value of '\(label)' at column \(pos + 1)")
        }
        return v
    }

    /// `label=0` or `label=1` (a C bool printed with `%d`).
    private mutating func flag(_ label: StaticString) throws(ParseError) -> UInt64 {
        let v = try assigned(label)
        guard v <= 1 else { throw ParseError("'\(label)' is \(v); QEMU prints this flag as 0 or 1") }
        return v
    }

    /// `label=N` with N a `uint32_t`.
    private mutating func count32(_ label: StaticString) throws(ParseError) -> UInt32 {
        let v = try assigned(label)
        guard let n = UInt32(exactly: v) else { throw ParseError("value of '\(label)' does not fit in 32 bits") }
        return n
    }
}
