import TestSupport
import CRDT
import Testing

private let a = replicaIDs[0]
private let b = replicaIDs[1]

@Suite("Expiry")
struct ExpiryTests {
    /// The multi-value register specification: each update is an event that replaces the events
    /// live at its issuer; a replica's live events are those it saw that no event it saw replaced;
    /// the deadline is the greatest live one (`never` above every instant).
    struct Event {
        let deadline: Deadline?   // nil: a clear
        let replaces: Set<Int>
    }

    static func live(_ seen: Set<Int>, _ events: [Int: Event]) -> Set<Int> {
        let replaced = seen.reduce(into: Set<Int>()) { $0.formUnion(events[$1]!.replaces) }
        return seen.subtracting(replaced)
    }

    @Test(arguments: propertySeeds)
    func matchesTheMultiValueSpecification(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let count = 4
        var registers = [ExpiryRegister](repeating: ExpiryRegister(), count: count)
        var seen = [Set<Int>](repeating: [], count: count)
        var events: [Int: Event] = [:]
        var network: [(target: Int, delta: ExpiryRegister, event: Int)] = []
        for step in 0..<600 {
            let actor = rng.below(count)
            let id = events.count
            let replaces = Self.live(seen[actor], events)
            let delta: ExpiryRegister
            switch rng.below(8) {
            case 0:
                delta = registers[actor].clear()
                events[id] = Event(deadline: nil, replaces: replaces)
            case 1:
                delta = registers[actor].persist(replica: replicaIDs[actor])
                events[id] = Event(deadline: .never, replaces: replaces)
            default:
                let instant = UInt64(rng.below(1_000))
                delta = registers[actor].expire(atMilliseconds: instant, replica: replicaIDs[actor])
                events[id] = Event(deadline: .at(milliseconds: instant), replaces: replaces)
            }
            seen[actor].insert(id)
            for target in 0..<count where target != actor && !rng.chance(0.1) {
                network.append((target, delta, id))
                if rng.chance(0.1) { network.append((target, delta, id)) }
            }
            for _ in 0..<rng.below(4) where !network.isEmpty {
                let message = network.remove(at: rng.below(network.count))
                registers[message.target].join(message.delta)
                seen[message.target].insert(message.event)
            }
            for replica in 0..<count {
                let expected = Self.live(seen[replica], events).compactMap { events[$0]!.deadline }.max()
                #expect(registers[replica].deadline == expected,
                        "replica \(replica) disagrees with the specification at step \(step) — seed \(seed)")
            }
        }
    }

    @Test func longestConcurrentDeadlineWins() {
        var replicaA = ExpiryRegister()
        var replicaB = ExpiryRegister()
        let shorter = replicaA.expire(atMilliseconds: 1_000, replica: a)
        let longer = replicaB.expire(atMilliseconds: 2_000, replica: b)
        replicaA.join(longer)
        replicaB.join(shorter)
        #expect(replicaA == replicaB)
        #expect(replicaA.expiresAt == 2_000)
    }

    @Test func persistBeatsAConcurrentExpire() {
        var replicaA = ExpiryRegister()
        var replicaB = ExpiryRegister()
        replicaB.join(replicaA.expire(atMilliseconds: 1_000, replica: a))
        let persist = replicaA.persist(replica: a)
        let expire = replicaB.expire(atMilliseconds: 5_000, replica: b)
        replicaA.join(expire)
        replicaB.join(persist)
        #expect(replicaA == replicaB)
        #expect(replicaA.deadline == .never && replicaA.expiresAt == nil)
        #expect(!replicaA.isExpired(atMilliseconds: .max))
    }

    @Test func aLaterUpdateShortensTheTTL() {
        var replicaA = ExpiryRegister()
        var replicaB = ExpiryRegister()
        replicaB.join(replicaA.expire(atMilliseconds: 9_000, replica: a))
        replicaA.join(replicaB.expire(atMilliseconds: 3_000, replica: b))
        #expect(replicaA.expiresAt == 3_000, "B saw the 9,000 deadline, so its update replaces it")
        replicaB.join(replicaA.persist(replica: a))
        replicaA.join(replicaB.expire(atMilliseconds: 4_000, replica: b))
        #expect(replicaA.expiresAt == 4_000, "an expire after a PERSIST it saw sets a TTL again")
    }

    @Test func clearingForARemovedKeyKeepsAConcurrentDeadline() {
        var replicaA = ExpiryRegister()
        var replicaB = ExpiryRegister()
        replicaB.join(replicaA.expire(atMilliseconds: 1_000, replica: a))
        let clear = replicaA.clear()
        let concurrent = replicaB.expire(atMilliseconds: 7_000, replica: b)
        replicaA.join(concurrent)
        replicaB.join(clear)
        #expect(replicaA == replicaB && replicaA.expiresAt == 7_000)
        #expect(ExpiryRegister().deadline == nil)
    }

    @Test func expiredStrictlyAfterTheDeadlineAsInRedis() {
        var register = ExpiryRegister()
        register.expire(atMilliseconds: 10_000, replica: a)
        #expect(!register.isExpired(atMilliseconds: 10_000))
        #expect(register.isExpired(atMilliseconds: 10_001))
        #expect(register.remaining(atMilliseconds: 9_000) == 1_000)
        #expect(register.remaining(atMilliseconds: 11_000) == 0)
        #expect(ExpiryRegister().remaining(atMilliseconds: 0) == nil)
    }

    @Test func updateDeltaIsOneDeadline() {
        var register = ExpiryRegister()
        for instant in 0..<100 as Range<UInt64> { register.expire(atMilliseconds: instant, replica: replicaIDs[Int(instant % 3)]) }
        let delta = register.expire(atMilliseconds: 1_700_000_000_000, replica: a)
        #expect(delta.store.entries.count == 1)
        #expect(delta.serializedBytes().count < 48)
    }
}
