import CJemalloc
import Daemon

extension Allocator {
    /// jemalloc, linked into this executable (CJemalloc) so that it serves every malloc of the process.
    /// Its statistics are refreshed by writing `epoch`; `arena.<all>.purge` returns dirty and lazily freed
    /// pages at once rather than after its ten-second decay.
    ///
    /// jemalloc's background thread is started too. Without it, an arena returns its freed pages only when
    /// the thread that owns it allocates again, so memory freed by a thread that then goes quiet (the
    /// writer's page cache, the transport's catch-up buffers) stayed resident however long the node idled.
    static func jemalloc() -> Allocator {
        var enable = true
        _ = mallctl("background_thread", nil, nil, &enable, MemoryLayout<Bool>.size)
        return jemallocInterface
    }

    private static let jemallocInterface = Allocator(
        name: "jemalloc-" + jemallocVersion(),
        allocatedBytes: {
            var epoch: UInt64 = 1
            _ = mallctl("epoch", nil, nil, &epoch, MemoryLayout<UInt64>.size)
            var allocated = 0
            var size = MemoryLayout<Int>.size
            return mallctl("stats.allocated", &allocated, &size, nil, 0) == 0 ? allocated : 0
        },
        releaseFreeMemory: {
            // MALLCTL_ARENAS_ALL (jemalloc.h) names every arena.
            _ = mallctl("arena.4096.purge", nil, nil, nil, 0)
        })

    private static func jemallocVersion() -> String {
        var version: UnsafePointer<CChar>?
        var size = MemoryLayout<UnsafePointer<CChar>?>.size
        guard mallctl("version", &version, &size, nil, 0) == 0, let version else { return "unknown" }
        // "5.3.0-0-g54eaed1d8b56b1aa528be3bdd1877e59c56fa90c": the release is enough.
        return String(String(cString: version).prefix { $0 != "-" })
    }
}
