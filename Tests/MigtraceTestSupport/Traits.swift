// SPDX-License-Identifier: Apache-2.0

import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension Trait where Self == ConditionTrait {
    /// BPF load and uprobe attach need root (CI runs as root); skipped, with the reason shown, only when not root.
    public static var requiresRoot: Self {
        .enabled(if: geteuid() == 0, "needs root for BPF load and uprobe attach (run as root; CI does)")
    }
}
