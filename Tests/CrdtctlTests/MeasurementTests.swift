@testable import crdtctl
import Testing

/// The figures `check` measures besides its verdict: how long each acknowledged add took to show on every
/// node, and the peer traffic per operation from the nodes' metrics; and that the report charts them.
@Suite struct MeasurementTests {
    let names = ["n1", "n2", "n3"]

    func record(_ element: String, acknowledged: Double, seen: [Double?], removedFirst: Bool = false) -> VisibilityRecord {
        VisibilityRecord(element: element, origin: 0, acknowledged: acknowledged, seen: seen, removedFirst: removedFirst)
    }

    /// Three adds show everywhere (one written during a partition, shown only after the heal at 10 s),
    /// one never reaches n3, one was removed before n2 showed it.
    var records: [VisibilityRecord] {
        [
            record("quick", acknowledged: 1, seen: [1, 1.1, 1.2]),
            record("slower", acknowledged: 2, seen: [2, 2.5, 2.1]),
            record("cut", acknowledged: 5, seen: [5, 5.1, 10.4]),
            record("lost", acknowledged: 6, seen: [6, 6.1, nil]),
            record("gone", acknowledged: 7, seen: [7, nil, 7.1], removedFirst: true),
        ]
    }

    let faults = [FaultWindow(kind: "partition", detail: "isolate: n1 n2 | n3", nodes: [0, 1, 2], start: 4, end: 9.9)]

    @Test func visibilityIsTheLastNodesFirstSightingAfterTheAcknowledgement() {
        #expect(records[0].everywhere == 1.2 && records[3].everywhere == nil)
        let result = VisibilityResult(records: records, faults: faults, healedAt: 10, pollInterval: 0.1)
        #expect(result.watched == 5 && result.removedFirst == 1 && result.neverEverywhere == 1)
        #expect(result.afterWrite.count == 3)
        #expect(abs(result.afterWrite.p50 - 0.5) < 1e-9 && abs(result.afterWrite.max - 5.4) < 1e-9)
        #expect(result.duringFaults.count == 1 && abs(result.duringFaults.max - 5.4) < 1e-9, "only 'cut' was written in the partition")
        #expect(result.outsideFaults.count == 2 && abs(result.outsideFaults.max - 0.5) < 1e-9)
        // 'cut' and 'lost' were not on every node at the heal; only 'cut' showed after it, 0.4 s later.
        #expect(result.pendingAtHeal == 2)
        #expect(result.afterHeal.count == 1 && abs(result.afterHeal.p50 - 0.4) < 1e-9)
        #expect(Distribution([]).summary == "none")
    }

    static let metrics = """
        HTTP/1.1 200 OK\r
        Content-Type: text/plain\r
        \r
        # TYPE crdtd_peer_bytes_total counter
        crdtd_peer_bytes_total{direction="in"} 700
        crdtd_peer_bytes_total{direction="out"} 1200
        # TYPE crdtd_peer_frames_total counter
        crdtd_peer_frames_total{direction="out",type="delta"} 10
        crdtd_peer_frames_total{direction="out",type="gossip"} 5
        crdtd_peer_frames_total{direction="in",type="delta"} 7
        crdtd_peer_deltas_applied_total 3
        """

    @Test func peerCountersAreReadFromPrometheusTextAndSurviveARestart() {
        let counters = PeerCounters(metrics: Self.metrics)
        #expect(counters == PeerCounters(bytesOut: 1200, bytesIn: 700, framesOut: 15, framesIn: 7))
        #expect(PeerCounters(metrics: "HTTP/1.1 200 OK\r\n\r\n") == .zero, "counters not exported yet are 0")
        let later = PeerCounters(bytesOut: 1500, bytesIn: 900, framesOut: 20, framesIn: 9)
        #expect(later.increase(since: counters) == PeerCounters(bytesOut: 300, bytesIn: 200, framesOut: 5, framesIn: 2))
        // Lower than before: a new process, whose whole count is new.
        let restarted = PeerCounters(bytesOut: 40, bytesIn: 30, framesOut: 2, framesIn: 1)
        #expect(restarted.increase(since: later) == restarted)
    }

    func op(_ kind: OperationKind, at time: Double, _ outcome: Outcome = .ok, client: Int = 0) -> Operation {
        Operation(client: client, node: 0, kind: kind, key: "k", argument: "1", invoke: time - 0.01, complete: time,
                  outcome: outcome, reply: "")
    }

    @Test func trafficIsEveryNodesGrowthOverTheRunPerAcknowledgedOperation() {
        func c(_ bytes: Double, _ frames: Double) -> PeerCounters { PeerCounters(bytesOut: bytes, bytesIn: bytes / 2, framesOut: frames, framesIn: frames) }
        // n1 restarts between the second and third rounds; n2 misses the second round; n3 has no endpoint.
        let rounds = [
            MetricsRound(at: 0, nodes: [c(100, 1), c(50, 1), nil]),
            MetricsRound(at: 1, nodes: [c(1100, 11), nil, nil]),
            MetricsRound(at: 2, nodes: [c(300, 4), c(850, 9), nil]),
        ]
        let operations = [op(.incrby, at: 0.5), op(.sadd, at: 0.7), op(.get, at: 1.5), op(.sadd, at: 1.8, .failed),
                          op(.sadd, at: 0, client: -1)]  // a failed one and the preload do not count
        let traffic = TrafficResult(rounds: rounds, unavailable: [2: "started without --metrics-addr"], operations: operations, nodeNames: names)
        #expect(traffic.nodes.map(\.node) == ["n1", "n2"] && traffic.unavailable == ["n3": "started without --metrics-addr"])
        #expect(traffic.nodes[0].total.bytesOut == 1000 + 300 && traffic.nodes[0].total.framesOut == 10 + 4)
        #expect(traffic.nodes[1].total.bytesOut == 800 && traffic.nodes[1].scrapes == 2)
        #expect(traffic.operations == 3 && traffic.writes == 2)
        #expect(traffic.total.bytesOut == 2100 && traffic.bytesOutPerOperation == 700 && traffic.bytesOutPerWrite == 1050)
        #expect(traffic.framesOutPerOperation == 22.0 / 3)
        // Points over the 3 s before each scrape: at 1 s, 1000 bytes for 2 operations; at 2 s, 2100 for 3.
        #expect(traffic.points.map(\.at) == [1, 2])
        #expect(traffic.points.map(\.bytesOutPerOperation) == [500, 700])
        #expect(traffic.summary.contains("no metrics from n3 (started without --metrics-addr)"))
    }

    @Test func aNodeGivenByAddressIsScrapedWhereItsInfoSaysItServesMetrics() {
        func endpoint(_ info: String) -> Result<MetricsEndpoint, MetricsUnavailable> {
            CheckCluster.metricsEndpoint(info: "# Server\r\nnode_id:n1\r\n" + info, host: "10.0.0.5")
        }
        #expect(endpoint("metrics_addr:127.0.0.1:7201\r\n") == .success(MetricsEndpoint(host: "127.0.0.1", port: 7201)))
        #expect(endpoint("metrics_addr:0.0.0.0:9100\r\n") == .success(MetricsEndpoint(host: "10.0.0.5", port: 9100)))
        #expect(endpoint("metrics_addr:off\r\n") == .failure(MetricsUnavailable(reason: "started without --metrics-addr")))
        guard case .failure(let old) = endpoint(""), case .failure(let v6) = endpoint("metrics_addr:[::1]:7201\r\n") else {
            Issue.record("no metrics_addr, or an IPv6 one, has no endpoint")
            return
        }
        #expect(old.reason.contains("no metrics_addr") && v6.reason.contains("IPv4"))
    }

    @Test func theReportChartsBothWithTheirDataPoints() {
        let convergence = Convergence(converged: true, seconds: 0.4, timeout: 5, digests: [:], unhealed: [],
                                      samples: [.init(at: 0.1, distinct: 2, answered: 3), .init(at: 0.4, distinct: 1, answered: 3)])
        let checker = Checker(keys: CheckKeys(runID: "t"), nodeNames: names, operations: [], finals: [], convergence: convergence,
                              faults: faults, duration: 10)
        var verdict = checker.verdict()
        verdict.visibility = VisibilityResult(records: records, faults: faults, healedAt: 10, pollInterval: 0.1)
        let rounds = [MetricsRound(at: 0, nodes: [.zero, .zero, nil]),
                      MetricsRound(at: 1, nodes: [PeerCounters(metrics: Self.metrics), .zero, nil])]
        let operations = [op(.incrby, at: 0.5)]
        verdict.traffic = TrafficResult(rounds: rounds, unavailable: [2: "started without --metrics-addr"], operations: operations, nodeNames: names)
        let content = ReportContent(verdict: verdict, operations: operations, faults: faults, nodeNames: names, keys: CheckKeys(runID: "t"),
                                    healedAt: 10, loadEnded: 10, settings: [:], visibility: records, metrics: rounds)
        let html = renderHTML(content, text: verdictText(verdict, names: names))
        for (id, points) in [("visibility-over-time", 4), ("visibility-cdf", 3), ("traffic", 1)] {
            #expect(html.contains("<svg data-points=\"\(points)\" class=\"chart\" id=\"\(id)\"")
                        || html.contains("<svg class=\"chart\" id=\"\(id)\" data-points=\"\(points)\""), "\(id) with \(points) points")
        }
        #expect(html.contains("No metrics from</b> n3: started without --metrics-addr"))
        #expect(html.contains("1200 bytes</b> and <b>15.00 frames</b> sent per ok operation"))
        let text = verdictText(verdict, names: names)
        #expect(text.contains("visibility of 5 acknowledged adds on every node"), "\(text)")
        #expect(text.contains("peer traffic: 1200 bytes and 15 frames sent by 2 node(s) for 1 ok operations"), "\(text)")
    }
}
