// SPDX-License-Identifier: Apache-2.0

/// How serious a finding is; ordered so that `--fail-on` can compare.
public enum Severity: Int, Sendable, Comparable, CaseIterable, CustomStringConvertible {
    case info = 0
    case warning = 1
    case critical = 2

    public static func < (lhs: Severity, rhs: Severity) -> Bool { lhs.rawValue < rhs.rawValue }

    /// The lower-case name used in every output format.
    public var description: String {
        switch self {
        case .info: "info"
        case .warning: "warning"
        case .critical: "critical"
        }
    }

    /// Parse `info`, `warning` or `critical`.
    public init?(name: String) {
        guard let s = Severity.allCases.first(where: { $0.description == name }) else { return nil }
        self = s
    }
}

/// One piece of evidence behind a finding: a name and a number or text, in a stable order.
public struct Evidence: Sendable, Equatable {
    /// The JSON key.
    public var name: String
    /// The value.
    public var value: Value

    /// A number or a string.
    public enum Value: Sendable, Equatable {
        case integer(Int64)
        case unsigned(UInt64)
        case number(Double)
        case text(String)
    }

    /// Evidence with an unsigned integer value.
    public static func count(_ name: String, _ v: UInt64) -> Evidence { Evidence(name: name, value: .unsigned(v)) }
    /// Evidence with a floating-point value.
    public static func number(_ name: String, _ v: Double) -> Evidence { Evidence(name: name, value: .number(v)) }
    /// Evidence with a text value.
    public static func text(_ name: String, _ v: String) -> Evidence { Evidence(name: name, value: .text(v)) }
}

/// What a rule found: a located, explained anomaly with the QEMU knob that addresses it.
public struct Finding: Sendable, Equatable {
    /// The rule's stable kebab-case id.
    public var rule: String
    /// How serious it is.
    public var severity: Severity
    /// 0-based index of the series (in order of first appearance).
    public var series: Int
    /// First and last window (0-based, within the series) the finding covers.
    public var firstWindow: Int
    public var lastWindow: Int
    /// Start and end of the covered time, on the series' time base (see ``SeriesInfo/timeBase``), seconds.
    public var startTime: Double
    public var endTime: Double
    /// One sentence saying what happened, with the numbers.
    public var message: String
    /// The values behind the message.
    public var evidence: [Evidence]
    /// One sentence of remedy naming the QEMU knob.
    public var remedy: String

    /// A finding with every field given.
    public init(
        rule: String, severity: Severity, series: Int, firstWindow: Int, lastWindow: Int, startTime: Double,
        endTime: Double, message: String, evidence: [Evidence], remedy: String
    ) {
        self.rule = rule
        self.severity = severity
        self.series = series
        self.firstWindow = firstWindow
        self.lastWindow = lastWindow
        self.startTime = startTime
        self.endTime = endTime
        self.message = message
        self.evidence = evidence
        self.remedy = remedy
    }
}
