import Transport

/// Peers known by host name (seeds such as `crdtd-0.crdtd.default.svc:7946`): the addresses each name
/// resolved to, when to look it up again, and the back-off after failures. A pure state machine the
/// frontend drives with the loop's clock and `NameResolver`'s answers; tested without DNS.
///
/// A name is looked up when first used, then every `refreshMilliseconds` while frames are still sent to
/// it, so a peer whose address changed (a rescheduled pod) is followed. A failed lookup keeps the last
/// good addresses and is retried after 1 s, 2 s, 4 s ... up to `maximumBackoffMilliseconds`.
struct PeerNames {
    struct Entry {
        var addresses: [SocketAddress] = []
        /// Rotates through the addresses of a name that has several (a headless service's own name).
        var nextAddress = 0
        var lookingUp = false
        var nextLookupAt: UInt64 = 0
        var failures = 0
    }

    let refreshMilliseconds: UInt64
    let maximumBackoffMilliseconds: UInt64
    private(set) var entries: [HostAndPort: Entry] = [:]

    init(refreshMilliseconds: UInt64 = 30_000, maximumBackoffMilliseconds: UInt64 = 60_000) {
        self.refreshMilliseconds = refreshMilliseconds
        self.maximumBackoffMilliseconds = maximumBackoffMilliseconds
    }

    /// What to do to send to `name` at `now`.
    struct Route: Equatable {
        /// Where to send; nil while the name has never resolved (the frame is dropped: the engine repeats
        /// seed probes every protocol period).
        var address: SocketAddress?
        /// Whether to start a lookup now.
        var lookUp: Bool
    }

    mutating func route(_ name: HostAndPort, now: UInt64) -> Route {
        var entry = entries[name] ?? Entry()
        let lookUp = !entry.lookingUp && now >= entry.nextLookupAt
        if lookUp { entry.lookingUp = true }
        var address: SocketAddress?
        if !entry.addresses.isEmpty {
            address = entry.addresses[entry.nextAddress % entry.addresses.count]
            entry.nextAddress &+= 1
        }
        entries[name] = entry
        return Route(address: address, lookUp: lookUp)
    }

    /// The lookup answered; returns whether the addresses changed (streams to the old ones should close).
    mutating func resolved(_ name: HostAndPort, to addresses: [SocketAddress], now: UInt64) -> Bool {
        var entry = entries[name] ?? Entry()
        let changed = entry.addresses != addresses
        entry.addresses = addresses
        entry.lookingUp = false
        entry.failures = 0
        entry.nextLookupAt = now + refreshMilliseconds
        entries[name] = entry
        return changed
    }

    /// The lookup failed; returns how long until the next attempt.
    mutating func failed(_ name: HostAndPort, now: UInt64) -> UInt64 {
        var entry = entries[name] ?? Entry()
        entry.lookingUp = false
        entry.failures += 1
        let backoff = min(maximumBackoffMilliseconds, 1000 << UInt64(min(entry.failures - 1, 16)))
        entry.nextLookupAt = now + backoff
        entries[name] = entry
        return backoff
    }
}
