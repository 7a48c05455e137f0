// swift-tools-version: 6.1
// crdtd: a coordination-free replication daemon. The layout follows the architecture:
// CRDT (pure data types) <- Engine (sans-IO replication) <- Daemon (threads, libuv, SQLite) <- crdtd.
import PackageDescription

let package = Package(
    name: "crdtd",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "CRDT", targets: ["CRDT"]),
        .library(name: "Rings", targets: ["Rings"]),
        .library(name: "Store", targets: ["Store"]),
        // The sans-IO engine, for Benchmarks/LargeObjectBench (an engine and a store without the daemon).
        .library(name: "Engine", targets: ["Engine"]),
        // The Redis protocol and the blocking client, for the load generators in Benchmarks/.
        .library(name: "RESP", targets: ["RESP"]),
        .library(name: "RESPClient", targets: ["RESPClient"]),
        // Starting and watching crdtd nodes from another process, for crdtctl and the thesis suite.
        .library(name: "NodeControl", targets: ["NodeControl"]),
        .executable(name: "crdtd", targets: ["crdtd"]),
        .executable(name: "crdtctl", targets: ["crdtctl"]),
        // The LD_PRELOAD shim that fails or stalls a data directory's writes on demand (storage faults), for
        // `crdtctl check --faults disk` and the storage fault tests; never linked into anything.
        .library(name: "crdtd-storage-faults", type: .dynamic, targets: ["CStorageFaults"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        // Delta-state CRDTs, logical time and their binary encoding. Standard library only: no I/O.
        .target(name: "CRDT"),
        // Bounded lock-free rings between the daemon's threads.
        .target(name: "Rings"),
        // The Redis protocol (RESP2/RESP3): incremental parser and reply encoder. No I/O.
        .target(name: "RESP"),
        // A small blocking Redis-protocol client (POSIX sockets) for crdtctl and the integration tests.
        .target(name: "RESPClient", dependencies: ["RESP"]),
        // crdtd nodes seen from outside: their flags, cluster key, membership, digests and metrics.
        .target(name: "NodeControl", dependencies: ["RESP", "RESPClient"]),
        // The peer wire format: frames, their encoding and authentication. No I/O.
        .target(name: "Wire", dependencies: ["CRDT", .product(name: "Crypto", package: "swift-crypto")]),
        // The replication engine: consumes client commands, peer frames and ticks; produces replies,
        // frames and records to persist. Sans-IO, so it runs unchanged in deterministic simulation.
        .target(name: "Engine", dependencies: ["CRDT", "RESP", "Wire"]),
        // Durable storage in SQLite (WAL, group commit, migrations).
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .target(name: "Store", dependencies: ["CSQLite", .product(name: "Logging", package: "swift-log")]),
        // The libuv event loop: TCP, UDP, timers, cross-thread wake-ups, and the /metrics HTTP endpoint.
        .systemLibrary(name: "CLibUV", pkgConfig: "libuv", providers: [.apt(["libuv1-dev"])]),
        .systemLibrary(name: "CHTTPParser", providers: [.apt(["libhttp-parser-dev"])]),
        .target(name: "Transport", dependencies: [
            "CLibUV", "CHTTPParser",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // glibc's malloc statistics and malloc_trim: the daemon library's default allocator.
        .systemLibrary(name: "CMalloc"),
        // jemalloc, linked into the crdtd executable only (tests keep glibc's malloc, which the thread
        // sanitizer intercepts): memory freed by collecting deleted keys goes back to the system.
        .systemLibrary(name: "CJemalloc", providers: [.apt(["libjemalloc-dev"])]),
        // The daemon: configuration, threads and the rings between them, wiring engine, store and transport.
        .target(name: "Daemon", dependencies: [
            "CRDT", "Rings", "RESP", "Wire", "Engine", "Store", "Transport", "CMalloc",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "Yams", package: "Yams"),
            .product(name: "Crypto", package: "swift-crypto"),
            // PBKDF2 for client password hashes.
            .product(name: "_CryptoExtras", package: "swift-crypto"),
        ]),
        .executableTarget(name: "crdtd", dependencies: [
            "Daemon", "CJemalloc",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Operator CLI: local clusters, fault injection, convergence checks.
        .executableTarget(name: "crdtctl", dependencies: [
            "RESP", "RESPClient", "Engine", "NodeControl",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // See the crdtd-storage-faults product. No target may depend on it: it replaces write() and fsync().
        .target(name: "CStorageFaults", linkerSettings: [.linkedLibrary("dl")]),

        // Helpers shared by the test targets (a seeded generator).
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "CRDTTests", dependencies: ["TestSupport", "CRDT"]),
        .testTarget(name: "RingsTests", dependencies: ["TestSupport", "Rings"]),
        .testTarget(name: "RESPTests", dependencies: ["TestSupport", "RESP", "RESPClient"]),
        .testTarget(name: "StoreTests", dependencies: ["TestSupport", "Store", "CSQLite"]),
        .testTarget(name: "TransportTests", dependencies: ["TestSupport", "Transport"]),
        .testTarget(name: "WireTests", dependencies: ["TestSupport", "Wire", "CRDT"]),
        .testTarget(name: "DaemonTests", dependencies: ["Daemon"]),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "CRDT", "RESP", "Wire"]),
        // crdtctl's pure parts (the check harness' checker, the network lab's names and rules) without processes.
        .testTarget(name: "CrdtctlTests", dependencies: ["crdtctl", "NodeControl"]),
        // Start the real crdtd and crdtctl binaries, which `swift build --build-tests` and `swift test` build
        // (every product). They do not depend on the crdtd target: that would link its jemalloc into the
        // test bundle, whose malloc must stay the thread sanitizer's.
        .testTarget(name: "IntegrationTests", dependencies: ["RESP", "RESPClient", "crdtctl"]),
        // The systemd unit and Kubernetes manifests in examples/deploy, checked against the binaries' flags.
        .testTarget(name: "DeploymentTests", dependencies: ["crdtctl", .product(name: "Yams", package: "Yams")]),
    ],
    swiftLanguageModes: [.v6]
)

for target in package.targets where target.type != .system {
    var settings = target.swiftSettings ?? []
    settings.append(.enableUpcomingFeature("ExistentialAny"))
    settings.append(.enableUpcomingFeature("MemberImportVisibility"))
    target.swiftSettings = settings
}
