import CRDT
import RESP
import Synchronization

/// `SSCAN`, `HSCAN`, `ZSCAN`: cursors over one collection that cost O(log n + page) per call.
///
/// The order is that of a stable 64-bit hash of each element (then its bytes), and the cursor is the
/// hash a call resumes at, so it means the same thing on every node and after a restart, as Redis's
/// cursor does. A page is the `count` elements from the cursor on, plus every element with the same
/// hash as the last one, and the next cursor is that hash plus one (0 at the end). An element present
/// for the whole iteration has one fixed hash, which the cursors pass exactly once: it is returned
/// (once, unless a page is asked for again). A collection of at most `scanWholeElements` elements is
/// returned whole by the first call with cursor 0, in byte order, as Redis does for its small
/// encodings.
///
/// A large collection's order (hashes sorted, with the elements) is built once and kept per key,
/// tagged with the key's digest. A call with cursor 0 rebuilds it if the key changed since; a later
/// call uses the order kept, skipping elements removed since. So the order a page is read from holds
/// every element present when its iteration began: it was built then, or later, or the key had not
/// changed since it was built. Elements added during an iteration may be returned or not, as Redis
/// allows. Building costs O(n log n) (hashing and sorting integers), once per iteration of a changed
/// key: O(log n) per element returned over a full iteration; the pages themselves O(log n + page). For
/// a collection of `deferredReplyElements` or more, that first page is built off the engine thread
/// (`deferredScan`), so the engine's part of every page is O(log n + page).
extension Engine {
    /// At most this many elements: the whole collection in one reply (Redis: `*-max-listpack-entries`).
    static let scanWholeElements = 128
    /// Large collections whose order is kept; beyond it, the order kept longest is dropped.
    static let keptScanOrders = 4

    /// The stable hash of the scan order: FNV-1a over the bytes, finished by SplitMix64's mixer (FNV alone
    /// clusters short keys that share a prefix).
    static func scanHash(_ bytes: Bytes) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        hash = (hash ^ (hash >> 30)) &* 0xbf58_476d_1ce4_e5b9
        hash = (hash ^ (hash >> 27)) &* 0x94d0_49bb_1331_11eb
        return hash ^ (hash >> 31)
    }

    /// One page of `elements` (the collection's elements, in any order) from `cursor`; `contains` says
    /// whether an element is still present, `render` gives its reply entries.
    mutating func collectionScan<Elements: Collection<Bytes>>(
        key: Bytes, _ elements: Elements, version: Digest128, cursor: UInt64, match: Bytes?, count: Int,
        contains: (Bytes) -> Bool, _ render: (Bytes) -> [RESPReply]
    ) -> RESPReply {
        let glob = match.map(GlobPattern.init)
        var page: [RESPReply] = []
        guard elements.count > Self.scanWholeElements else {
            scanOrders[KeyName(key)] = nil
            for element in ByteOrder.sorted(elements) where glob?.matches(element) ?? true { page += render(element) }
            return .array([.bulkString("0"), .array(page)])
        }
        let name = KeyName(key)
        adoptPendingScanOrder(name)
        let order: ScanOrder
        if let kept = scanOrders[name], cursor != 0 || kept.version == version {
            order = kept
        } else {
            order = ScanOrder(elements, version: version)
            scanOrderBuilds += 1
            keep(order, for: name)
        }
        return order.page(from: cursor, glob: glob, count: count, contains: contains, render)
    }

    /// Keeps `order` for the later pages of `name`'s iteration, dropping the order kept longest if full.
    private mutating func keep(_ order: ScanOrder, for name: KeyName) {
        if scanOrders[name] == nil, scanOrders.count >= Self.keptScanOrders, let oldest = scanOrders.min(by: { $0.value.built < $1.value.built }) {
            scanOrders[oldest.key] = nil
        }
        scanOrdersKept += 1
        scanOrders[name] = order
        scanOrders[name]!.built = scanOrdersKept
    }

    /// Takes over the order a worker built for `name`'s first page, once it is there.
    private mutating func adoptPendingScanOrder(_ name: KeyName) {
        guard let pending = pendingScanOrders[name], let order = pending.take() else { return }
        pendingScanOrders[name] = nil
        keep(order, for: name)
    }

    /// The first page (cursor 0) of a collection of `deferredReplyElements` or more whose kept order is
    /// missing or older than the key, answered off the engine thread (`Effect.deferredReply`): building
    /// the order hashes and sorts every element, 0.2 to 0.5 s for a million, which every other client
    /// waited behind. The engine keeps a copy-on-write copy of the elements (a retain); the worker builds
    /// the order from it, leaves it in a `PendingScanOrder` and encodes the page. The engine adopts the
    /// order at the key's next scan, so the later pages cost O(log n + page) as before. Nil when the
    /// page is cheap here (the kept order is current) or the collection is small.
    mutating func deferredScan<Elements: Collection<Bytes> & Sendable>(
        key: Bytes, _ elements: Elements, version: Digest128, match: Bytes?, count: Int, id: UInt64,
        protocol protocolVersion: RESPVersion, _ render: @escaping @Sendable (Bytes) -> [RESPReply]
    ) -> DeferredReply? {
        guard elements.count >= Self.deferredReplyElements else { return nil }
        let name = KeyName(key)
        adoptPendingScanOrder(name)
        if let kept = scanOrders[name], kept.version == version { return nil }
        if pendingScanOrders[name] == nil, pendingScanOrders.count >= Self.keptScanOrders,
           let oldest = pendingScanOrders.min(by: { $0.value.requested < $1.value.requested }) {
            pendingScanOrders[oldest.key] = nil
        }
        let pending = PendingScanOrder(requested: id)
        pendingScanOrders[name] = pending
        // The stale order goes with the work, to be freed off the engine thread too (a million releases).
        let retired = scanOrders.removeValue(forKey: name)
        return DeferredReply(id: id, elements: elements.count) {
            withExtendedLifetime(retired) {}
            let order = ScanOrder(elements, version: version)
            pending.fill(order)
            // Every element of the copy is in the collection the page is of.
            return order.page(from: 0, glob: match.map(GlobPattern.init), count: count, contains: { _ in true }, render)
                .encoded(protocol: protocolVersion)
        }
    }
}

/// A scan order a worker is building for a first page (`Engine.deferredScan`); the engine takes it once
/// it is there. Filled on the worker thread, taken on the engine thread: the mutex orders the two.
final class PendingScanOrder: Sendable {
    /// The deferred reply's id: the oldest pending order is dropped first.
    let requested: UInt64
    private let order = Mutex<ScanOrder?>(nil)

    init(requested: UInt64) { self.requested = requested }

    func fill(_ built: ScanOrder) { order.withLock { $0 = built } }

    func take() -> ScanOrder? { order.withLock { $0.take() } }
}

/// A large collection's elements in scan order (see `Engine.collectionScan`).
struct ScanOrder {
    var hashes: [UInt64]
    /// The elements as they were read, and where each position of the order finds its element: a page
    /// reads its few elements through `positions`, so building the order moves no element.
    var unordered: [Bytes]
    var positions: [Int32]
    /// The key's digest when it was built.
    var version: Digest128
    /// When it was kept (`Engine.scanOrdersKept`): the oldest is dropped first.
    var built: UInt64 = 0

    init<Elements: Collection<Bytes>>(_ collection: Elements, version: Digest128) {
        // Integers are sorted, not the elements: (hash, position) pairs, ties (rare) broken by the bytes.
        let unordered = Array(collection)
        var keyed: [(hash: UInt64, position: Int32)] = []
        keyed.reserveCapacity(unordered.count)
        for (position, element) in unordered.enumerated() { keyed.append((Engine.scanHash(element), Int32(position))) }
        keyed.sort { $0.hash < $1.hash }
        // Equal hashes (rare) in byte order, so the order does not depend on the order elements were read in.
        var start = 0
        while start < keyed.count {
            var end = start + 1
            while end < keyed.count, keyed[end].hash == keyed[start].hash { end += 1 }
            if end - start > 1 {
                keyed[start..<end].sort { unordered[Int($0.position)].lexicographicallyPrecedes(unordered[Int($1.position)]) }
            }
            start = end
        }
        hashes = keyed.map(\.hash)
        positions = keyed.map(\.position)
        self.unordered = unordered
        self.version = version
    }

    func element(at index: Int) -> Bytes { unordered[Int(positions[index])] }

    /// One page from `cursor`: `count` elements (and every later one with the last one's hash) that are
    /// still present and match, and the next cursor (0 at the end). O(log n + page).
    func page(from cursor: UInt64, glob: GlobPattern?, count: Int, contains: (Bytes) -> Bool,
              _ render: (Bytes) -> [RESPReply]) -> RESPReply {
        var page: [RESPReply] = []
        var index = firstIndex(atOrAfter: cursor)
        var examined = 0
        while index < hashes.count, examined < max(1, count) || (examined > 0 && hashes[index] == hashes[index - 1]) {
            let element = element(at: index)
            if contains(element), glob?.matches(element) ?? true { page += render(element) }
            index += 1
            examined += 1
        }
        let next: UInt64 = index >= hashes.count ? 0 : hashes[index - 1] &+ 1
        return .array([.bulkString(String(next)), .array(page)])
    }

    /// The first position whose hash is `cursor` or more (binary search).
    func firstIndex(atOrAfter cursor: UInt64) -> Int {
        var low = 0, high = hashes.count
        while low < high {
            let middle = (low + high) / 2
            if hashes[middle] < cursor { low = middle + 1 } else { high = middle }
        }
        return low
    }
}
