@testable import Daemon
import Testing
import Transport

@Suite struct PeerNamesTests {
    let name = try! HostAndPort(parsing: "crdtd-0.crdtd.default.svc:7946")
    let first = try! SocketAddress(parsing: "10.1.0.7:7946")
    let moved = try! SocketAddress(parsing: "10.1.3.9:7946")

    @Test func aNameIsLookedUpOnceThenRefreshedAndAMoveIsFollowed() {
        var names = PeerNames(refreshMilliseconds: 30_000)
        #expect(names.route(name, now: 0) == .init(address: nil, lookUp: true), "first use: look up, nothing to send to yet")
        #expect(names.route(name, now: 10) == .init(address: nil, lookUp: false), "one lookup at a time")
        let firstAnswer = names.resolved(name, to: [first], now: 20)
        #expect(firstAnswer)
        #expect(names.route(name, now: 1000) == .init(address: first, lookUp: false))
        #expect(names.route(name, now: 30_019) == .init(address: first, lookUp: false))
        #expect(names.route(name, now: 30_020) == .init(address: first, lookUp: true), "refreshed while in use")
        let sameAnswer = names.resolved(name, to: [first], now: 30_030)
        #expect(!sameAnswer, "same answer: nothing changed")
        _ = names.route(name, now: 60_030)
        let movedAnswer = names.resolved(name, to: [moved], now: 60_040)
        #expect(movedAnswer, "the pod moved")
        #expect(names.route(name, now: 60_050).address == moved)
    }

    @Test func failuresBackOffAndKeepTheLastGoodAddresses() {
        var names = PeerNames(refreshMilliseconds: 30_000, maximumBackoffMilliseconds: 60_000)
        _ = names.route(name, now: 0)
        #expect(names.failed(name, now: 0) == 1000)
        #expect(names.route(name, now: 999).lookUp == false)
        #expect(names.route(name, now: 1000).lookUp)
        #expect(names.failed(name, now: 1000) == 2000)
        _ = names.route(name, now: 3000)
        #expect(names.failed(name, now: 3000) == 4000)
        var now: UInt64 = 7000
        for _ in 0..<10 {
            _ = names.route(name, now: now)
            now += names.failed(name, now: now)
        }
        #expect(names.failed(name, now: now) == 60_000, "capped")
        _ = names.route(name, now: now + 60_000)
        _ = names.resolved(name, to: [first], now: now + 60_000)
        _ = names.route(name, now: now + 90_000)
        #expect(names.failed(name, now: now + 90_000) == 1000, "a success resets the back-off")
        #expect(names.route(name, now: now + 90_001).address == first, "a failed refresh keeps the last addresses")
    }

    @Test func aNameWithSeveralAddressesIsTriedInTurn() {
        var names = PeerNames()
        _ = names.route(name, now: 0)
        _ = names.resolved(name, to: [first, moved], now: 0)
        let sent = (0..<4).compactMap { _ in names.route(name, now: 1).address }
        #expect(sent == [first, moved, first, moved])
    }
}
