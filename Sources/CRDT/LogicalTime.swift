/// The identity of one replica: a random 64-bit number chosen at a node's first start and persisted,
/// so that a wiped node comes back under a new identity and never reissues a dot it issued before.
public struct ReplicaID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The raw identifier.
    public let rawValue: UInt64

    /// Wraps a raw identifier.
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }

    public static func < (lhs: ReplicaID, rhs: ReplicaID) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { "r" + String(rawValue, radix: 16) }
}

/// A Lamport timestamp: totally ordered by counter, then by replica id, so that two distinct events
/// never compare equal and every replica orders them the same way.
public struct LamportTimestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The logical time; strictly increasing along each replica's events.
    public let counter: UInt64
    /// The replica that issued the timestamp; breaks ties between equal counters.
    public let replica: ReplicaID

    /// A timestamp with the given parts.
    public init(counter: UInt64, replica: ReplicaID) {
        self.counter = counter
        self.replica = replica
    }

    public static func < (lhs: LamportTimestamp, rhs: LamportTimestamp) -> Bool {
        (lhs.counter, lhs.replica) < (rhs.counter, rhs.replica)
    }

    public var description: String { "\(counter)@\(replica)" }
}

/// A Lamport clock owned by one replica. Tick on every local event, observe every remote timestamp.
public struct LamportClock: Hashable, Sendable {
    /// The replica this clock stamps for.
    public let replica: ReplicaID
    /// The greatest counter issued or observed so far.
    public private(set) var counter: UInt64

    /// A clock for `replica`, resuming from a persisted `counter` (0 for a new replica).
    public init(replica: ReplicaID, counter: UInt64 = 0) {
        self.replica = replica
        self.counter = counter
    }

    /// Advances the clock and returns a timestamp greater than every one issued or observed before.
    ///
    /// The counter saturates at `UInt64.max` rather than trapping; reaching it would need 2^64 events.
    public mutating func tick() -> LamportTimestamp {
        if counter < .max { counter += 1 }
        return LamportTimestamp(counter: counter, replica: replica)
    }

    /// Records a timestamp seen elsewhere, so that the next `tick()` is ordered after it.
    public mutating func observe(_ timestamp: LamportTimestamp) {
        counter = max(counter, timestamp.counter)
    }
}

/// One event of one replica: the replica's `counter`-th event (counting from 1).
/// Dots name the contributions that causal CRDTs keep and remove.
public struct Dot: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The replica that created the event.
    public let replica: ReplicaID
    /// The event's sequence number at that replica, starting at 1.
    public let counter: UInt64

    /// A dot with the given parts.
    public init(replica: ReplicaID, counter: UInt64) {
        self.replica = replica
        self.counter = counter
    }

    public static func < (lhs: Dot, rhs: Dot) -> Bool {
        (lhs.replica, lhs.counter) < (rhs.replica, rhs.counter)
    }

    public var description: String { "(\(replica),\(counter))" }
}
