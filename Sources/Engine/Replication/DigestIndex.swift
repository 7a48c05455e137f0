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
    private var keyDigests: [[KeyName: Digest128]]
    /// Each bucket's keys in byte order, kept sorted as keys arrive (binary search and insert), so that
    /// listing a bucket for repair costs O(bucket) instead of a sort per frame: under continuous writes
    /// every bucket differs at every comparison, and the sorts had come to dominate the engine thread.
    private var ordered: [[Bytes]]
    private var dirty: Set<KeyName> = []

    init(bucketCount: Int) {
        self.bucketCount = bucketCount
        buckets = Array(repeating: (0, 0), count: bucketCount)
        keyDigests = Array(repeating: [:], count: bucketCount)
        ordered = Array(repeating: [], count: bucketCount)
    }

    /// Where `key` is, or would be inserted, in bucket `b`'s order.
    private func position(of key: Bytes, inBucket b: Int) -> Int {
        var low = 0
        var high = ordered[b].count
        while low < high {
            let middle = (low + high) / 2
            if ordered[b][middle].lexicographicallyPrecedes(key) { low = middle + 1 } else { high = middle }
        }
        return low
    }

    func bucket(of key: Bytes) -> Int {
        Int(Digest128(hashing: key).low % UInt64(bucketCount))
    }

    /// Rebuilds the per-bucket tables that hold far fewer keys than their capacity (after a collection).
    mutating func shrink() {
        for b in keyDigests.indices where keyDigests[b].capacity > 4 * max(keyDigests[b].count, 64) {
            keyDigests[b] = Dictionary(keyDigests[b].map { ($0.key, $0.value) }, uniquingKeysWith: { first, _ in first })
        }
        for b in ordered.indices where ordered[b].capacity > 4 * max(ordered[b].count, 64) {
            ordered[b] = Array(ordered[b])
        }
    }

    /// `key`'s state changed; its digest is recomputed at the next `refresh`.
    mutating func invalidate(_ key: Bytes) { dirty.insert(KeyName(key)) }

    /// Recomputes the digests of changed keys.
    mutating func refresh(_ keyspace: [KeyName: KeyObject]) {
        guard !dirty.isEmpty else { return }
        for name in dirty {
            let key = name.bytes
            let b = bucket(of: key)
            let old = keyDigests[b][name]
            if let old {
                buckets[b].0 ^= old.high
                buckets[b].1 ^= old.low
            }
            guard let object = keyspace[name] else {
                if old != nil {
                    keyDigests[b][name] = nil
                    ordered[b].remove(at: position(of: key, inBucket: b))
                }
                continue
            }
            if old == nil { ordered[b].insert(key, at: position(of: key, inBucket: b)) }
            let digest = object.digest(key: key)
            keyDigests[b][name] = digest
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
        return ordered[b].map { ($0, keyDigests[b][KeyName($0)]!) }
    }

    func digest(of key: Bytes) -> Digest128? { keyDigests[bucket(of: key)][KeyName(key)] }
}
