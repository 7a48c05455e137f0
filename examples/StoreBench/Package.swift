// swift-tools-version: 6.1
// Measures the SQLite store: rows/s for commit batches of 1, 100 and 1000 under synchronous=NORMAL and
// FULL side by side, and the cost of the integrity check on open; with `large-objects`, commits next to
// a 5 MB snapshot and the recovery of a 1 M-member set. Outside the main build:
//   swift run -c release --package-path examples/StoreBench [large-objects]
// examples/StoreBench/ab.sh REV runs `large-objects` on REV's store and on this one, side by side.
import PackageDescription

let package = Package(
    name: "store-bench",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: "crdtd", path: "../..")],
    targets: [
        .executableTarget(name: "StoreBench", dependencies: [
            .product(name: "Store", package: "crdtd"), .product(name: "CRDT", package: "crdtd"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)
