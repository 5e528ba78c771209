// SPDX-License-Identifier: Apache-2.0
import ArgumentParser

/// The `migtrace` command: watches and analyses QEMU live migrations.
@main
struct Migtrace: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migtrace",
        abstract: "Watch QEMU live migrations through eBPF and explain what they are really doing.",
        subcommands: []
    )
}
