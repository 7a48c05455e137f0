import CMalloc

/// The memory allocator, as far as the daemon needs to know it: what it has handed out (`used_memory` in
/// `INFO memory`) and how to give the free memory it keeps back to the system once a large collection of
/// deleted keys settles. The library defaults to glibc's; the crdtd executable links jemalloc, whose
/// size classes fragment far less under the mass frees of a collection, and passes `Allocator` for it.
public struct Allocator: Sendable {
    /// As Redis's `mem_allocator`: "libc", or "jemalloc-" and its version.
    public var name: String
    /// Bytes handed out to the program and not yet freed.
    public var allocatedBytes: @Sendable () -> Int
    /// Returns free memory kept in the allocator's arenas to the system (a few milliseconds).
    public var releaseFreeMemory: @Sendable () -> Void

    public init(name: String, allocatedBytes: @escaping @Sendable () -> Int,
                releaseFreeMemory: @escaping @Sendable () -> Void) {
        self.name = name
        self.allocatedBytes = allocatedBytes
        self.releaseFreeMemory = releaseFreeMemory
    }

    /// glibc's malloc: `mallinfo2` counts, `malloc_trim` returns what it can (fragmented arenas keep much).
    public static let libc = Allocator(
        name: "libc",
        allocatedBytes: {
            let heap = mallinfo2()
            return Int(heap.uordblks + heap.hblkhd)
        },
        releaseFreeMemory: { _ = malloc_trim(0) })
}
