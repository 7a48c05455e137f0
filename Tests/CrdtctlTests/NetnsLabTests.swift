@testable import crdtctl
@testable import NodeControl
import Testing

/// The network lab's names, addresses and nftables scripts, and the one-way fault, without root.
@Suite struct NetnsLabTests {
    @Test func namesAndAddressesFollowThePrefixAndSubnet() throws {
        let lab = try NetnsLab(prefix: "crdtns", subnet: "10.77.0", nodes: 3)
        #expect(lab.bridge == "crdtns-br" && lab.hostAddress == "10.77.0.254")
        #expect((0..<3).map(lab.namespace) == ["crdtns-n1", "crdtns-n2", "crdtns-n3"])
        #expect((0..<3).map(lab.address) == ["10.77.0.1", "10.77.0.2", "10.77.0.3"])
        // Interface names must fit Linux's 15 bytes even at 64 nodes with the longest prefix.
        let longest = try NetnsLab(prefix: "abcdefghi", nodes: 64)
        #expect([longest.bridge, longest.hostVeth(63), longest.innerVeth(63)].allSatisfy { $0.utf8.count <= 15 })
    }

    @Test func refusesNamesAndSubnetsItCannotUse() {
        for prefix in ["", "has-dash", "abcdefghij", "a b"] {
            #expect(throws: NetnsError.self, "prefix '\(prefix)'") { try NetnsLab(prefix: prefix, nodes: 3) }
        }
        for subnet in ["10.77", "10.77.0.0", "10.77.300", "a.b.c"] {
            #expect(throws: NetnsError.self, "subnet '\(subnet)'") { try NetnsLab(subnet: subnet, nodes: 3) }
        }
        #expect(throws: NetnsError.self) { try NetnsLab(nodes: 0) }
    }

    @Test func cutsAreDropRulesInTheReceiversInputChain() throws {
        let lab = try NetnsLab(prefix: "t", subnet: "10.1.2", nodes: 3)
        let replace = lab.rules(sources: [1, 2], replace: true)
        // Declared then deleted, so replacing works whether or not the table exists; then rebuilt.
        #expect(replace.hasPrefix("table inet crdtns\ndelete table inet crdtns\ntable inet crdtns {"))
        #expect(replace.contains("type filter hook input priority 0; policy accept;"))
        #expect(replace.contains("add rule inet crdtns input ip saddr 10.1.2.2 drop\nadd rule inet crdtns input ip saddr 10.1.2.3 drop\n"))
        #expect(!replace.contains("10.1.2.254"), "this machine's address is never blocked")
        // A heal leaves no table at all; an added cut does not empty the earlier ones.
        #expect(lab.rules(sources: [], replace: true) == "table inet crdtns\ndelete table inet crdtns\n")
        #expect(!lab.rules(sources: [0], replace: false).contains("delete"))
    }

    @Test func theOneWayFaultIsOptInNamedAndNeedsNoLocalCluster() {
        #expect(Fault.all(of: [.oneway]) == [.oneWay])
        #expect(Fault.oneWay.verdictName == "partition one-way")
        #expect(!Fault.all(of: FaultFamily.localDefault).contains(.oneWay), "not in the default set")
        #expect(!FaultFamily.oneway.needsLocalCluster, "CRDT.PARTITION INBOUND/OUTBOUND works on nodes given by address")
    }
}
