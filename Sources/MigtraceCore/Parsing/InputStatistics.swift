// SPDX-License-Identifier: Apache-2.0

/// What reading one input found: its format, how many lines, events and rejections, and what a recording
/// said of itself.
public struct InputStatistics: Sendable, Equatable {
    /// The format the first bytes showed.
    public var format: TraceFileFormat = .qemuLog
    /// Lines read (records, for a recording).
    public var lines: UInt64 = 0
    /// Events accepted.
    public var events: UInt64 = 0
    /// Lines or records rejected.
    public var rejected: UInt64 = 0
    /// Bytes read.
    public var bytes: UInt64 = 0
    /// The recording's header, for recordings.
    public var header: RecordingFormat.Header?
    /// The recording's closing reason, if it has one (a killed recorder leaves none).
    public var endReason: String?
    /// Loss counts the recording reported.
    public var kernelDrops: UInt64 = 0
    public var consumerDrops: UInt64 = 0
    /// Events the tracer itself dropped and counted (QEMU's simple backend, its trace buffer full).
    public var droppedByTracer: UInt64 = 0
    /// What the input is when it was not analysed because it is no trace (``InputKind/refusal`` says why).
    public var refused: InputKind?

    /// Every event the input says was lost: by the kernel or migtrace's consumer (recordings), by the tracer.
    public var lostEvents: UInt64 { kernelDrops &+ consumerDrops &+ droppedByTracer }

    /// Nothing read yet.
    public init() {}
}
