// StoreBench: the store's throughput and opening cost (default), or large objects (`large-objects`).
if CommandLine.arguments.dropFirst().first == "large-objects" {
    try runLargeObjects()
} else {
    try runThroughput()
}
