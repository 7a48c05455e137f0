import CRDT
import Testing
@testable import Engine

/// The write path's shortcuts (issue 9) must decide exactly what the slow forms decided: `isBottom`
/// what `== KeyObject()` did, the encoding's slot mask what `!= T()` did, and `removeObserved`, which
/// skips empty slots, the delta and state the full removal produced.
@Suite struct KeyObjectFastPathTests {
    /// `removeObserved` as it was before the shortcut: every slot's removal, empty or not.
    static func fullRemoval(_ object: inout KeyObject, keepingDeadline: Bool) -> KeyObject {
        var delta = KeyObject()
        if object.counter != ResettableCounter() { delta.counter = object.counter.reset() }
        delta.string = object.string.remove()
        delta.set = object.set.removeAll()
        delta.hash = object.hash.removeAll()
        delta.sortedSet = object.sortedSet.removeAll()
        delta.hyperLogLog = object.hyperLogLog.removeAll()
        if !object.list.context.isEmpty { delta.list = object.list.removeAll() }
        if !keepingDeadline { delta.expiry = object.expiry.clear() }
        return delta
    }

    static func checkBottoms(_ object: KeyObject, _ what: String) {
        #expect(object.isBottom == (object == KeyObject()), "\(what): isBottom disagrees with == KeyObject()")
        #expect(object.string.isBottom == (object.string == CausalLWWRegister()), "\(what): string")
        #expect(object.set.isBottom == (object.set == AWSet()), "\(what): set")
        #expect(object.hash.isBottom == (object.hash == ORMap()), "\(what): hash")
        #expect(object.bounded.isBottom == (object.bounded == BoundedCounter()), "\(what): bounded")
        #expect(object.sortedSet.isBottom == (object.sortedSet == SortedSet()), "\(what): sorted set")
        #expect(object.hyperLogLog.isBottom == (object.hyperLogLog == ResettableHyperLogLog()), "\(what): hyperloglog")
        #expect(object.expiry.isBottom == (object.expiry == ExpiryRegister()), "\(what): expiry")
    }

    @Test func shortcutsAgreeWithTheFullForms() throws {
        for seed: UInt64 in [7, 0xFEED, 0x5EED_5EED] {
            var random = SplitMix64(seed: seed)
            let replicas = (1...3).map { ReplicaID(UInt64($0) * 0x1_0000_0003) }
            var states = [KeyObject](repeating: KeyObject(), count: 3)
            var clocks = replicas.map { LamportClock(replica: $0) }
            var sawBottomDelta = false
            var sawNonBottomRemoval = false
            for step in 0..<500 {
                let actor = Int(random.next() % 3)
                let member = Array("m\(random.next() % 6)".utf8)
                var delta = KeyObject()
                switch random.next() % 12 {
                case 0: delta.set = states[actor].set.add(member, replica: replicas[actor])
                case 1: delta.set = states[actor].set.remove(member)
                case 2: delta.hash = states[actor].hash.update(member) { $0.assign(Array("v\(step)".utf8), clock: &clocks[actor]) }
                case 3: delta.counter = try states[actor].counter.add(Int64(random.next() % 5) + 1, replica: replicas[actor])
                case 4: delta.string = states[actor].string.assign(member, clock: &clocks[actor])
                case 5: delta.sortedSet = states[actor].sortedSet.add(member, score: Double(step), clock: &clocks[actor])
                case 6: delta.hyperLogLog = states[actor].hyperLogLog.add([member], replica: replicas[actor]).delta
                case 7: delta.expiry = states[actor].expiry.expire(atMilliseconds: UInt64(step), replica: replicas[actor])
                case 8: delta.bounded = try states[actor].bounded.increment(by: 2, replica: replicas[actor])
                case 9: delta.list = states[actor].list.insert(member, at: 0, clock: &clocks[actor])
                default:
                    let keep = random.next() % 2 == 0
                    var reference = states[actor]
                    let expected = Self.fullRemoval(&reference, keepingDeadline: keep)
                    delta = states[actor].removeObserved(keepingDeadline: keep)
                    #expect(delta == expected, "seed \(seed), step \(step): removal delta differs")
                    #expect(states[actor] == reference, "seed \(seed), step \(step): state after removal differs")
                    if !delta.isBottom { sawNonBottomRemoval = true }
                }
                Self.checkBottoms(delta, "seed \(seed), step \(step), delta")
                if delta.isBottom { sawBottomDelta = true }
                #expect(try KeyObject(serialized: delta.serialized()) == delta, "seed \(seed), step \(step): delta round trip")
                let target = Int(random.next() % 3)
                states[target].join(delta)
                Self.checkBottoms(states[target], "seed \(seed), step \(step), state")
                #expect(try KeyObject(serialized: states[target].serialized()) == states[target], "seed \(seed), step \(step): state round trip")
            }
            #expect(sawBottomDelta && sawNonBottomRemoval, "seed \(seed): the walk must cover both kinds of removal")
        }
    }
}
