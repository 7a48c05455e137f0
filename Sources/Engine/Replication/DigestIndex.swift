import CRDT

/// Per-key digests grouped into buckets, for digest-driven repair (a one-level Merkle tree).
///
/// A bucket's digest is the XOR of its keys' digests, each of which covers the key and its whole state,
/// so a changed key updates its bucket in O(1) once its own digest is recomputed. Digests are recomputed
/// lazily, when a comparison needs them: a hot key written many times between rounds is hashed once, and
/// each recomputation costs O(replicas), not O(elements) (`KeyObject.digest(key:)`).
struct DigestIndex {
    let bucketCount: Int
    private var buckets: [(UInt64, UInt64)]
    private var keyDigests: [[Bytes: Digest128]]
    private var dirty: Set<Bytes> = []

    init(bucketCount: Int) {
        self.bucketCount = bucketCount
        buckets = Array(repeating: (0, 0), count: bucketCount)
        keyDigests = Array(repeating: [:], count: bucketCount)
    }

    func bucket(of key: Bytes) -> Int {
        Int(Digest128(hashing: key).low % UInt64(bucketCount))
    }

    /// `key`'s state changed; its digest is recomputed at the next `refresh`.
    mutating func invalidate(_ key: Bytes) { dirty.insert(key) }

    /// Recomputes the digests of changed keys.
    mutating func refresh(_ keyspace: [Bytes: KeyObject]) {
        guard !dirty.isEmpty else { return }
        for key in dirty {
            let b = bucket(of: key)
            if let old = keyDigests[b][key] {
                buckets[b].0 ^= old.high
                buckets[b].1 ^= old.low
            }
            guard let object = keyspace[key] else {
                keyDigests[b][key] = nil
                continue
            }
            let digest = object.digest(key: key)
            keyDigests[b][key] = digest
            buckets[b].0 ^= digest.high
            buckets[b].1 ^= digest.low
        }
        dirty.removeAll(keepingCapacity: true)
    }

    /// Bucket digests (call `refresh` first).
    var bucketDigests: [Digest128] { buckets.map { Digest128(high: $0.0, low: $0.1) } }

    /// One digest for everything: equal on two replicas exactly when they hold equal keys and states
    /// (up to a 128-bit hash collision).
    var root: Digest128 {
        var writer = BinaryWriter(capacity: bucketCount * 16)
        for (high, low) in buckets {
            writer.write(fixed64: high)
            writer.write(fixed64: low)
        }
        return Digest128(hashing: writer.bytes)
    }

    /// Keys of one bucket with their digests, in key order.
    func keys(inBucket b: Int) -> [(key: Bytes, digest: Digest128)] {
        guard b >= 0 && b < bucketCount else { return [] }
        return keyDigests[b].sorted { $0.key.lexicographicallyPrecedes($1.key) }.map { ($0.key, $0.value) }
    }

    func digest(of key: Bytes) -> Digest128? { keyDigests[bucket(of: key)][key] }
}
