import Rings
import Testing

#if DEBUG
/// Debug builds check the single-producer/single-consumer rule. Re-entering the consumer side from inside a
/// drain is the deterministic way to be "two consumers at once".
@Suite("Role checks (debug builds)")
struct RoleCheckTests {
    @Test("popping from inside an SPSC drain traps")
    func spscConsumerReentry() async {
        await #expect(processExitsWith: .failure) {
            let ring = try SPSCRing<Int>(minimumCapacity: 4)
            _ = ring.tryPush(1)
            _ = ring.tryPush(2)
            ring.drain(max: .max) { _ in _ = ring.tryPop() }
        }
    }

    @Test("popping from inside an MPSC drain traps")
    func mpscConsumerReentry() async {
        await #expect(processExitsWith: .failure) {
            let ring = try MPSCRing<Int>(minimumCapacity: 4)
            _ = ring.tryPush(1)
            _ = ring.tryPush(2)
            ring.drain(max: .max) { _ in _ = ring.tryPop() }
        }
    }

    @Test("waiting on a signalling doorbell traps: it has no thread to park")
    func waitOnSignallingDoorbell() async {
        await #expect(processExitsWith: .failure) {
            Doorbell.signalling {}.wait(until: { false })
        }
    }

    @Test("the same re-entry without the nested pop runs fine")
    func noReentry() throws {
        let ring = try SPSCRing<Int>(minimumCapacity: 4)
        _ = ring.tryPush(1)
        var seen: [Int] = []
        ring.drain(max: .max) { seen.append($0) }
        #expect(seen == [1])
    }
}
#endif
