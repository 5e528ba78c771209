// SPDX-License-Identifier: Apache-2.0

/// What a live capture reports besides the analysis: the probes it attached, state changes, lost events and its
/// end. It reaches the sink through the analyzer, in order with the windows, like everything else.
public enum LiveEvent: Sendable {
    /// The capture is attached and waiting for events.
    case attached(LiveAttachment)
    /// QEMU's migration state changed (`migrate_set_state`); the time is wall-clock ns when known.
    case state(String, timeNanoseconds: UInt64?)
    /// An event as captured, before the analyzer reads it (the recording keeps every one); `monotonicNanoseconds`
    /// is the probe's own clock, the event's timestamp already wall-clock.
    case captured(TraceEvent, monotonicNanoseconds: UInt64?)
    /// The kernel ring buffer (`kernelDrops`) and the hand-over to the analyzer (`consumerDrops`) have dropped
    /// this many events so far.
    case lost(kernelDrops: UInt64, consumerDrops: UInt64)
    /// The capture's migration as the analysis sees it now (verdict, ETA, expected downtime, advice): after each
    /// window and state change, when the configuration asks for it (``AnalysisConfiguration/liveUpdates``).
    case migration(MigrationAssessment)
    /// The capture ended; the report follows.
    case ended(CaptureEnd)
}

/// The target and probes of one live capture, for the header.
public struct LiveAttachment: Sendable, Equatable {
    /// One probe of the target and whether it is attached.
    public struct Probe: Sendable, Equatable {
        public var name: String
        public var attached: Bool
        /// Arguments in the probe's note, if known.
        public var argumentCount: Int?
        /// Probe sites in the binary.
        public var siteCount: Int
        /// Why the probe is not attached ("not in binary", …).
        public var reason: String?

        /// A probe as the header lists it.
        public init(name: String, attached: Bool, argumentCount: Int?, siteCount: Int, reason: String?) {
            self.name = name
            self.attached = attached
            self.argumentCount = argumentCount
            self.siteCount = siteCount
            self.reason = reason
        }
    }

    public var migtraceVersion: String
    public var pid: Int32
    public var binary: String
    public var ringBufferBytes: Int
    public var probes: [Probe]
    /// The recording file, when the capture is recorded.
    public var recordPath: String?
    /// The VM's name (`-name guest=NAME` or `-name NAME` on its command line), when it has one.
    public var vmName: String?

    /// The header of a capture of `pid` running `binary`.
    public init(
        migtraceVersion: String, pid: Int32, binary: String, ringBufferBytes: Int, probes: [Probe], recordPath: String?,
        vmName: String? = nil
    ) {
        self.vmName = vmName
        self.migtraceVersion = migtraceVersion
        self.pid = pid
        self.binary = binary
        self.ringBufferBytes = ringBufferBytes
        self.probes = probes
        self.recordPath = recordPath
    }
}

/// How a live capture ended, with its exact event accounting.
public struct CaptureEnd: Sendable, Equatable {
    /// `target-exited`, `sigint`, `output-closed`, `migration-completed`, …
    public var reason: String
    public var eventsReceived: UInt64
    public var kernelDrops: UInt64
    public var consumerDrops: UInt64

    /// The end of a capture.
    public init(reason: String, eventsReceived: UInt64, kernelDrops: UInt64, consumerDrops: UInt64) {
        self.reason = reason
        self.eventsReceived = eventsReceived
        self.kernelDrops = kernelDrops
        self.consumerDrops = consumerDrops
    }
}
