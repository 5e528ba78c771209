// swift-tools-version:6.0
import PackageDescription

// MARK: - Targets
//
// Rooms with clear doors:
//  - MigtraceCore: pure Swift. Events, QEMU's arithmetic per probe era, series, anomaly rules,
//    trace-format readers/writers. No BPF, no root, no I/O policy.
//  - migtrace: the thin executable (swift-argument-parser) that wires things together and renders.
//  The live path (BPF program, libbpf shim, ring-buffer AsyncSequence) adds its own targets below.

// The analyzer, its rules and the readers' per-input state are each confined to one thread (BatchPipe.swift), and
// no access to their state overlaps another: the compiler proves that statically wherever it can. Release builds
// drop the run-time check of class properties (a thread-local access set per access; 13 % of `analyze` in
// profiles, bench/README.md); debug builds, and so the tests, keep it.
let confinedToOneThread: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "migtrace",
    products: [
        .executable(name: "migtrace", targets: ["migtrace"]),
        .library(name: "MigtraceCore", targets: ["MigtraceCore"]),
        .library(name: "MigtraceBPF", targets: ["MigtraceBPF"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0")
    ],
    targets: [
        // The rule registry is generated from Analysis/Rules/ (a new rule is one file).
        .target(name: "MigtraceCore", swiftSettings: confinedToOneThread, plugins: ["RuleRegistryPlugin"]),
        .plugin(name: "RuleRegistryPlugin", capability: .buildTool()),
        // Reading trace files and the one concurrency room (Concurrency/BatchPipe.swift explains the threading model).
        .target(name: "MigtraceIO", dependencies: ["MigtraceCore"], swiftSettings: confinedToOneThread),
        .executableTarget(
            name: "migtrace",
            dependencies: [
                "MigtraceCore",
                "MigtraceIO",
                "MigtraceBPF",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // A stand-in source QEMU with QEMU's USDT probes, replaying a recorded migration for `migtrace demo`.
        .executableTarget(name: "migtrace-demo-target"),
        .testTarget(
            name: "MigtraceCLITests",
            dependencies: ["migtrace", "migtrace-demo-target", "MigtraceTestSupport", "MigtraceCore"]
        ),
        // What the BPF and CLI suites share: building Tests/testprogs like QEMU's dtrace backend, running commands.
        .target(name: "MigtraceTestSupport", path: "Tests/MigtraceTestSupport"),
        .testTarget(
            name: "MigtraceCoreTests",
            dependencies: ["MigtraceCore", "MigtraceIO"],
            resources: [.copy("Fixtures")]
        ),

        // MARK: - Live attach (BPF)
        // bpf/migtrace.bpf.c is compiled by BPFObjectPlugin at build time and embedded into MigtraceBPF;
        // CMigtraceBPF owns every libbpf call; CLibbpf brings libbpf in through pkg-config.
        .systemLibrary(name: "CLibbpf", pkgConfig: "libbpf", providers: [.apt(["libbpf-dev"])]),
        .target(name: "CMigtraceBPF", dependencies: ["CLibbpf"]),
        .plugin(name: "BPFObjectPlugin", capability: .buildTool()),
        .target(
            name: "MigtraceBPF",
            dependencies: ["MigtraceCore", "MigtraceIO", "CMigtraceBPF"],
            plugins: ["BPFObjectPlugin"]
        ),
        .testTarget(
            name: "MigtraceBPFTests",
            dependencies: ["MigtraceBPF", "MigtraceCore", "CMigtraceBPF", "MigtraceTestSupport"]
        ),
    ]
)
