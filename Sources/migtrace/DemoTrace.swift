// SPDX-License-Identifier: Apache-2.0
// Placeholder until scripts/embed-demo-trace writes the real recorded migration here.

/// The recorded migration `migtrace demo` replays.
enum DemoTrace {
    /// The QEMU that produced it.
    static let qemuVersion = "10.0"
    /// The QEMU log text.
    static let text = ""
}
