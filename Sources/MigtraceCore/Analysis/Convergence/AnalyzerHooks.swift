// SPDX-License-Identifier: Apache-2.0

/// The analyzer's side of the convergence model: one ``MigrationTracker`` per input, replaced at each `setup`.
extension MigrationAnalyzer {
    /// The tracker of the migration `input` is in (started on first use).
    func migrationTracker(_ input: Int) -> MigrationTracker {
        if let t = trackers[input] { return t }
        let t = MigrationTracker(input: input)
        trackers[input] = t
        return t
    }

    /// The switchover decision and dirty syncs.
    func track(_ kind: ProbeKind, _ a0: UInt64, input: Int, timestamp: UInt64?) {
        switch kind {
        case .migrationThreadLowPending: migrationTracker(input).lowPending(a0, timestamp: timestamp)
        case .bitmapSyncEnd: migrationTracker(input).bitmapSyncEnd()
        default: break
        }
    }

    /// Feed a VFIO device's event: it belongs to the migration its input is in.
    public func consume(_ device: DeviceEvent) {
        migrationTracker(device.origin.input).device(device)
    }

    /// A state change; `setup` ends the input's migration and starts the next.
    func trackState(_ state: String, input: Int, timestamp: UInt64?) {
        if state == "setup" { endMigration(input) }
        migrationTracker(input).state(state, timestamp: timestamp)
    }

    /// The migration of `input` is over: its assessment is kept for the report.
    func endMigration(_ input: Int) {
        guard let t = trackers.removeValue(forKey: input), t.seen else { return }
        endedMigrations.append(t.assess())
    }

    /// The assessment of the migration `input` is in now, or of its last one once it ended: what a live view
    /// shows as each window arrives (the report's assessments are made at the end).
    public func currentAssessment(input: Int) -> MigrationAssessment? {
        if let t = trackers[input], t.seen { return t.assess() }
        return endedMigrations.last { $0.input == input }
    }

    /// Pass the current assessment of `input`'s migration to the sink (live captures).
    func updateMigration(_ input: Int) {
        if let a = currentAssessment(input: input) { live(.migration(a)) }
    }

    /// Every assessment, in order of input and then of start.
    var migrationAssessments: [MigrationAssessment] {
        endedMigrations.enumerated().sorted { ($0.element.input, $0.offset) < ($1.element.input, $1.offset) }.map(\.element)
    }
}
