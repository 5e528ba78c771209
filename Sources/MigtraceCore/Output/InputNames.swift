// SPDX-License-Identifier: Apache-2.0

/// Names of the inputs, for locating windows and diagnostics.
public struct InputNames: Sendable {
    public var names: [String]
    public init(_ names: [String]) { self.names = names }
    public subscript(i: Int) -> String { i >= 0 && i < names.count ? names[i] : "input\(i)" }
}
