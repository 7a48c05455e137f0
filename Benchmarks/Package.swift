// swift-tools-version: 6.1
// Benchmarks live in their own package so the main build and the test suite stay fast.
// Each benchmark is an executable that measures ours and the alternative side by side in one run
// and prints the ratio; run them with `swift run -c release --package-path Benchmarks NAME`.
import PackageDescription

let package = Package(
    name: "crdtd-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "crdtd", path: "../"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        // Timing helpers shared by every benchmark: monotonic clock, medians, table printing.
        .target(name: "BenchSupport"),
        .executableTarget(name: "CRDTBench", dependencies: [
            "BenchSupport", .product(name: "CRDT", package: "crdtd"),
        ]),
        // A large set grown through the engine into a real store: staged snapshots against one-commit ones.
        .executableTarget(name: "LargeObjectBench", dependencies: [
            "BenchSupport", .product(name: "Engine", package: "crdtd"), .product(name: "Store", package: "crdtd"),
            .product(name: "CRDT", package: "crdtd"), .product(name: "RESP", package: "crdtd"),
        ]),
        // A C11 SPSC ring compiled from these sources: the hardware reference for RingBench.
        .target(name: "CRingReference"),
        .executableTarget(name: "RingBench", dependencies: [
            "BenchSupport", "CRingReference",
            .product(name: "Rings", package: "crdtd"),
            .product(name: "DequeModule", package: "swift-collections"),
        ]),
        // The thesis suite's load client (Benchmarks/scripts/thesis.sh): crdtd against a 3-member etcd
        // cluster and Redis; starts the servers, measures, writes docs/benchmarks.md's thesis section.
        .executableTarget(name: "Thesis", dependencies: [
            "BenchSupport",
            .product(name: "RESP", package: "crdtd"),
            .product(name: "RESPClient", package: "crdtd"),
            .product(name: "NodeControl", package: "crdtd"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Histogram", package: "hdrhistogram-swift"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)
