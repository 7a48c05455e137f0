@testable import crdtctl
import Testing

/// The checker of `crdtctl check` on hand-made histories: each rule flags what it must and only that.
@Suite struct CheckerTests {
    let keys = CheckKeys(runID: "t")
    let names = ["n1", "n2"]

    func op(_ kind: OperationKind, _ key: String, _ argument: String, _ outcome: Outcome, at time: Double = 1,
            client: Int = 0, node: Int = 0, reply: String = "") -> Operation {
        Operation(client: client, node: node, kind: kind, key: key, argument: argument, invoke: time, complete: time + 0.01,
                  outcome: outcome, reply: reply)
    }

    func final(_ node: String, hot: Int64 = 0, members: [String] = [], register: String? = nil) -> FinalRead {
        var read = FinalRead(node: node, members: members)
        read.counters[keys.hotCounter] = hot
        if let register { read.registers[keys.registers[0]] = register }
        return read
    }

    func verdict(_ operations: [Operation], _ finals: [FinalRead]) -> Verdict {
        let convergence = Convergence(converged: true, seconds: 0.1, timeout: 5, digests: [:], unhealed: [], samples: [])
        return Checker(keys: keys, nodeNames: names, operations: operations, finals: finals, convergence: convergence,
                       faults: [], duration: 10).verdict()
    }

    @Test func subsetSumsAreExact() {
        let sums = SubsetSums(base: 10, optional: [3, 3, -2, 5])
        // 10 + any subset of {3, 3, -2, 5}: 8, 10, 11, 13, 14, 15, 16, 18, 19, 21 (not 9, 12, 17, 20).
        let reachable = (0...30).filter { sums.contains(Int64($0)) }
        #expect(reachable == [8, 10, 11, 13, 14, 15, 16, 18, 19, 21])
        #expect(sums.minimum == 8 && sums.maximum == 21)
        let many = SubsetSums(base: 0, optional: Array(repeating: 4, count: 10_000))
        #expect(many.contains(40_000) && many.contains(4) && !many.contains(2) && !many.contains(40_004))
    }

    @Test func counterValueMustBeTheAcknowledgedSumPlusASubsetOfTheIndeterminate() {
        let ops = [op(.incrby, keys.hotCounter, "5", .ok), op(.incrby, keys.hotCounter, "2", .indeterminate),
                   op(.incrby, keys.hotCounter, "100", .failed)]
        #expect(verdict(ops, [final("n1", hot: 7), final("n2", hot: 7)]).valid)
        #expect(verdict(ops, [final("n1", hot: 5), final("n2", hot: 5)]).valid)
        let failedCounted = verdict(ops, [final("n1", hot: 105), final("n2", hot: 105)])
        #expect(!failedCounted.valid && failedCounted.problems.contains { $0.contains("counter") })
        #expect(!verdict(ops, [final("n1", hot: 6), final("n2", hot: 6)]).valid, "6 is in the range 5...7 but not a subset sum")
    }

    /// A write a full disk refused (MISCONF) is failed: counting it, or an element it added, is invalid.
    @Test func writesRefusedByAFullDiskMustNotCount() {
        let misconf = "MISCONF crdtd cannot write to its data directory /d: database or disk is full since T"
        let ops = [op(.incrby, keys.hotCounter, "5", .ok), op(.incrby, keys.hotCounter, "3", .failed, node: 1, reply: misconf),
                   op(.sadd, keys.hotSet, "refused", .failed, node: 1, reply: misconf)]
        #expect(verdict(ops, [final("n1", hot: 5), final("n2", hot: 5)]).valid)
        #expect(!verdict(ops, [final("n1", hot: 8), final("n2", hot: 8)]).valid)
        let present = verdict(ops, [final("n1", hot: 5, members: ["refused"]), final("n2", hot: 5, members: ["refused"])])
        #expect(!present.valid && present.set.unexpected == 1)
    }

    /// `--faults disk` is two faults, counted under their own names, and never part of the default.
    @Test func diskFaultsAreNamedAndOptIn() {
        #expect(Fault.all(of: [.disk]).map(\.verdictName) == ["disk full", "disk stall", "disk error"])
        #expect(!Fault.all(of: FaultFamily.localDefault).contains { $0.family == .disk })
        let windows = [FaultWindow(kind: "disk full", detail: "n2 (storage_degraded:1)", nodes: [1], start: 1, end: 2),
                       FaultWindow(kind: "disk stall", detail: "n1", nodes: [0], start: 3, end: 4),
                       FaultWindow(kind: "disk full", detail: "n1", nodes: [0], start: 5, end: 6)]
        let convergence = Convergence(converged: true, seconds: 0.1, timeout: 5, digests: [:], unhealed: [], samples: [])
        let checked = Checker(keys: keys, nodeNames: names, operations: [], finals: [final("n1"), final("n2")],
                              convergence: convergence, faults: windows, duration: 10).verdict()
        #expect(checked.faultsInjected == ["disk full": 2, "disk stall": 1])
    }

    @Test func setElementsAreClassifiedAsSetFull() {
        let ops = [
            op(.sadd, keys.hotSet, "kept", .ok), op(.sadd, keys.hotSet, "gone", .ok, at: 1),
            op(.srem, keys.hotSet, "gone", .ok, at: 2), op(.sadd, keys.hotSet, "maybe", .indeterminate),
            op(.sadd, keys.hotSet, "never", .failed),
        ]
        let good = verdict(ops, [final("n1", members: ["kept"]), final("n2", members: ["kept"])])
        #expect(good.valid, "\(good.problems)")
        #expect(good.set.stable == 1 && good.set.removed == 1 && good.set.neverRead == 1 && good.set.notAdded == 1)

        let lost = verdict(ops, [final("n1", members: ["kept"]), final("n2", members: [])])
        #expect(!lost.valid && lost.set.lost == 1 && lost.set.examples.first?.contains("absent on n2") == true)
        let resurrected = verdict(ops, [final("n1", members: ["kept", "gone"]), final("n2", members: ["kept", "gone"])])
        #expect(!resurrected.valid && resurrected.set.resurrected == 1)
        let unexpected = verdict(ops, [final("n1", members: ["kept", "never", "alien"]), final("n2", members: ["kept", "never", "alien"])])
        #expect(!unexpected.valid && unexpected.set.unexpected == 2)
        let divergent = verdict(ops, [final("n1", members: ["kept", "maybe"]), final("n2", members: ["kept"])])
        #expect(!divergent.valid && divergent.set.divergent == 1)
    }

    @Test func aStaleReadIsReportedButNotAFailure() {
        let ops = [op(.sadd, keys.hotSet, "x", .ok, at: 1),
                   op(.sismember, keys.hotSet, "x", .ok, at: 3, node: 1, reply: "(integer) 0")]
        let result = verdict(ops, [final("n1", members: ["x"]), final("n2", members: ["x"])])
        #expect(result.valid)
        #expect(result.set.staleReads == 1 && abs((result.set.worstStaleReads.first?.age ?? 0) - 1.99) < 0.001)
    }

    @Test func registersHoldAWrittenValueAndAgree() {
        let ops = [op(.set, keys.registers[0], "a", .ok), op(.set, keys.registers[0], "b", .failed)]
        #expect(verdict(ops, [final("n1", register: "a"), final("n2", register: "a")]).valid)
        #expect(!verdict(ops, [final("n1", register: "b"), final("n2", register: "b")]).valid, "a failed write must not show")
        #expect(!verdict(ops, [final("n1", register: "a"), final("n2")]).valid, "an acknowledged write must leave a value")
    }

    @Test func noAgreementIsInvalidEvenWhenNothingIsLost() {
        let convergence = Convergence(converged: false, seconds: nil, timeout: 5, digests: ["n1": "aa", "n2": "bb"], unhealed: [], samples: [])
        let result = Checker(keys: keys, nodeNames: names, operations: [], finals: [final("n1"), final("n2")],
                             convergence: convergence, faults: [], duration: 1).verdict()
        #expect(!result.valid && result.problems.first?.contains("did not agree within 5.00 s") == true)
    }
}
