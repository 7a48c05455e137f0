// swift-tools-version: 6.1
// Measures the SQLite store: rows/s for commit batches of 1, 100 and 1000 under synchronous=NORMAL and
// FULL side by side, and the cost of the integrity check on open. Outside the main build:
//   swift run -c release --package-path examples/StoreBench
import PackageDescription

let package = Package(
    name: "store-bench",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: "crdtd", path: "../..")],
    targets: [
        .executableTarget(name: "StoreBench", dependencies: [.product(name: "Store", package: "crdtd")]),
    ],
    swiftLanguageModes: [.v6]
)
