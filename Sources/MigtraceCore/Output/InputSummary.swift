// SPDX-License-Identifier: Apache-2.0

/// One input of a post-mortem run as the report lists it: what reading it found, or why it was not analysed.
public struct InputSummary: Sendable {
    /// The input's name as given (`<stdin>` for `-`).
    public var name: String
    /// What reading it found; nil when it could not be opened or read.
    public var statistics: InputStatistics?
    /// Why it was not analysed (cannot be opened, a directory, not a trace); nil when it was.
    public var error: String?

    /// An input that was read (and analysed, unless `statistics.refused` says it is no trace).
    public init(name: String, statistics: InputStatistics) {
        self.name = name
        self.statistics = statistics
        self.error = statistics.refused?.refusal
    }

    /// An input that could not be read, and why.
    public init(name: String, error: String, statistics: InputStatistics? = nil) {
        self.name = name
        self.statistics = statistics
        self.error = error
    }

    /// The `inputs[]` object of the JSON report: `name`, `format`, `lines`, `events`, `rejected`, and `error` when
    /// the input was not analysed (`format` is then what it is, or null when it could not be read at all).
    func writeJSON(_ o: inout JSONWriter) {
        o.raw("{\"name\":"); o.string(name)
        o.raw(",\"format\":")
        if let s = statistics { o.string(s.refused?.name ?? s.format.rawValue) } else { o.raw("null") }
        o.raw(",\"lines\":"); o.unsigned(statistics?.lines ?? 0)
        o.raw(",\"events\":"); o.unsigned(statistics?.events ?? 0)
        o.raw(",\"rejected\":"); o.unsigned(statistics?.rejected ?? 0)
        o.raw(",\"lost_events\":"); o.unsigned(statistics?.lostEvents ?? 0)
        if let error {
            o.raw(",\"error\":"); o.string(error)
        }
        o.raw("}")
    }
}
