/// The keys that carry an expiry deadline, ordered by deadline, so each tick finds the keys whose
/// deadline passed in O(expired · log n) instead of walking the keyspace.
///
/// A min-heap with lazy deletion: a key whose deadline changes gets a new heap entry, and an entry
/// that no longer matches its key's current deadline is dropped when it reaches the top. The heap is
/// rebuilt when stale entries outnumber live ones, so its size stays within twice the keys plus a
/// constant.
struct ExpiryIndex {
    private var deadlines: [KeyName: UInt64] = [:]
    private var heap: [Entry] = []

    private struct Entry {
        var deadline: UInt64
        var key: Bytes
    }

    /// Keys with a deadline (`INFO keyspace`'s `expires`).
    var count: Int { deadlines.count }

    /// `key`'s deadline, as its object's `expiry.expiresAt` holds it (kept in step on every change).
    func deadline(of key: Bytes) -> UInt64? {
        deadlines.isEmpty ? nil : deadlines[KeyName(key)]
    }

    /// Records `key`'s deadline after a change (`nil`: none, or persisted).
    mutating func update(_ key: Bytes, deadline: UInt64?) {
        // Most writes touch keys without a deadline, in a keyspace that has none: no lookup then.
        if deadline == nil && deadlines.isEmpty { return }
        let name = KeyName(key)
        guard deadlines[name] != deadline else { return }
        deadlines[name] = deadline
        guard let deadline else { return }
        push(Entry(deadline: deadline, key: key))
        if heap.count > 2 * deadlines.count + 64 { rebuild() }
    }

    /// Up to `limit` keys whose deadline is before `now`, earliest first. They stay indexed until
    /// their removal changes them (then `update` clears them).
    mutating func due(before now: UInt64, limit: Int) -> [Bytes] {
        var keys: [Bytes] = []
        var kept: [Entry] = []
        while keys.count < limit, let top = heap.first, top.deadline < now {
            popTop()
            guard deadlines[KeyName(top.key)] == top.deadline else { continue }
            keys.append(top.key)
            kept.append(top)
        }
        // Still due until their removal is applied: found again next time if it is not.
        for entry in kept { push(entry) }
        return keys
    }

    private mutating func rebuild() {
        heap = []
        for (name, deadline) in deadlines { push(Entry(deadline: deadline, key: name.bytes)) }
    }

    private mutating func push(_ entry: Entry) {
        heap.append(entry)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].deadline < heap[parent].deadline else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    private mutating func popTop() {
        heap.swapAt(0, heap.count - 1)
        heap.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < heap.count && heap[left].deadline < heap[smallest].deadline { smallest = left }
            if right < heap.count && heap[right].deadline < heap[smallest].deadline { smallest = right }
            guard smallest != parent else { return }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
