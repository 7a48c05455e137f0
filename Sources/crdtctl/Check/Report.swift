import Foundation

/// Everything the report shows.
struct ReportContent {
    var verdict: Verdict
    var operations: [Operation]
    var faults: [FaultWindow]
    var nodeNames: [String]
    var keys: CheckKeys
    var healedAt: Double
    var loadEnded: Double
    var settings: [String: String]
    /// When each node first showed each acknowledged add.
    var visibility: [VisibilityRecord] = []
    /// The nodes' replication counters, scraped once a second.
    var metrics: [MetricsRound] = []
}

/// The verdict in words: what `check` prints and verdict.txt holds.
func verdictText(_ verdict: Verdict, names: [String]) -> String {
    var lines: [String] = []
    lines.append(verdict.valid ? "VALID: every acknowledged write survived and all nodes agree" : "INVALID")
    for problem in verdict.problems { lines.append("  - \(problem)") }
    let total = verdict.stats.total
    lines.append("operations: \(total.ok + total.failed + total.indeterminate) (ok \(total.ok), failed \(total.failed), "
        + "indeterminate \(total.indeterminate)), \(String(format: "%.0f", verdict.stats.throughput)) ok/s over \(format(verdict.stats.duration)) s")
    lines.append("latency of ok operations (ms): " + Stats.percentiles.map { label, _ in
        "\(label) \(String(format: "%.2f", total.latencyMilliseconds[label] ?? 0))"
    }.joined(separator: "  "))
    lines.append("faults injected: " + (verdict.faultsInjected.isEmpty ? "none"
        : verdict.faultsInjected.sorted { $0.key < $1.key }.map { "\($0.key) x\($0.value)" }.joined(separator: ", ")))
    let convergence = verdict.convergence
    lines.append(convergence.converged
        ? "convergence: every digest agreed \(format(convergence.seconds ?? 0)) s after the final heal"
        : "convergence: NOT within \(format(convergence.timeout)) s of the final heal")
    for counter in verdict.counters {
        let values = names.map { "\($0)=\(counter.values[$0].map(String.init) ?? "?")" }.joined(separator: " ")
        lines.append("counter \(counter.key): \(counter.valid ? "ok" : "INVALID"): acknowledged sum \(counter.acknowledgedSum) "
            + "(\(counter.acknowledged) ok, \(counter.indeterminate) indeterminate, \(counter.failed) failed), "
            + "allowed \(counter.minimum)...\(counter.maximum); \(values)")
    }
    let set = verdict.set
    lines.append("set \(set.key): \(set.valid ? "ok" : "INVALID"): adds \(outcomes(set.adds)), removes \(outcomes(set.removes)); "
        + "final size " + names.map { "\($0)=\(set.finalSize[$0].map(String.init) ?? "?")" }.joined(separator: " "))
    lines.append("  elements: stable \(set.stable), removed \(set.removed), never-read \(set.neverRead), not-added \(set.notAdded), "
        + "lost \(set.lost), resurrected \(set.resurrected), unexpected \(set.unexpected), divergent \(set.divergent)")
    for example in set.examples { lines.append("    \(example)") }
    lines.append("  stale reads during the run: \(set.staleReads) of \(set.reads)"
        + (set.worstStaleReads.first.map { ", worst \(format($0.age)) s (\($0.element) on \($0.node) at \(format($0.at)) s)" } ?? ""))
    if let visibility = verdict.visibility {
        lines.append("visibility of \(visibility.watched) acknowledged adds on every node (polled every \(format(visibility.pollInterval)) s): "
            + "after the write \(visibility.afterWrite.summary)")
        lines.append("  acknowledged during a fault: \(visibility.duringFaults.summary); outside faults: \(visibility.outsideFaults.summary)")
        lines.append("  not yet on every node at the final heal: \(visibility.pendingAtHeal); shown everywhere after the heal: "
            + "\(visibility.afterHeal.summary); never on every node: \(visibility.neverEverywhere); removed first (left out): \(visibility.removedFirst)"
            + (visibility.failedPolls.isEmpty ? "" : "; polls unanswered: "
                + visibility.failedPolls.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")))
    }
    if let traffic = verdict.traffic { lines.append(traffic.summary) }
    for register in verdict.registers {
        lines.append("register \(register.key): \(register.valid ? "ok" : "INVALID"): \(register.written) writes; "
            + names.map { "\($0)=\(register.values[$0] ?? "nil")" }.joined(separator: " ")
            + (register.reason.map { " (\($0))" } ?? ""))
    }
    return lines.joined(separator: "\n")
}

private func outcomes(_ counts: [String: Int]) -> String {
    Outcome.allCases.map { "\($0.rawValue) \(counts[$0.rawValue] ?? 0)" }.joined(separator: "/")
}

/// Writes the report folder: history.jsonl, verdict.json, verdict.txt, logs/ and index.html.
func writeReport(_ content: ReportContent, text: String, logs: [String], to directory: String) throws {
    let fm = FileManager.default
    try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
    func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }
    try writeHistory(content.operations, faults: content.faults, nodeNames: content.nodeNames, to: path("history.jsonl"))
    try writeVisibility(content.visibility, nodeNames: content.nodeNames, to: path("visibility.jsonl"))
    try writeMetrics(content.metrics, nodeNames: content.nodeNames, to: path("metrics.jsonl"))
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    try encoder.encode(content.verdict).write(to: URL(fileURLWithPath: path("verdict.json")))
    try (text + "\n").write(toFile: path("verdict.txt"), atomically: true, encoding: .utf8)
    let logDirectory = path("logs")
    try fm.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
    for log in logs where fm.fileExists(atPath: log) {
        let target = (logDirectory as NSString).appendingPathComponent((log as NSString).lastPathComponent)
        try? fm.removeItem(atPath: target)
        try fm.copyItem(atPath: log, toPath: target)
    }
    try renderHTML(content, text: text).write(toFile: path("index.html"), atomically: true, encoding: .utf8)
}

// MARK: HTML

/// One self-contained page: inline CSS and SVG, no scripts or fonts fetched. A short inline script only
/// marks the body with how many charts laid out, so a headless browser test can tell they rendered.
func renderHTML(_ full: ReportContent, text: String) -> String {
    var content = full
    content.operations.removeAll { $0.client < 0 }  // the preload happened before the run's clock started
    let verdict = content.verdict
    let span = max(content.healedAt + (verdict.convergence.seconds ?? verdict.convergence.timeout), content.loadEnded, 1)
    var html = """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>crdtctl check: \(verdict.valid ? "valid" : "INVALID")</title>
        <style>
        body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1100px; }
        h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; }
        .valid { color: #1a7f37; } .invalid { color: #c62828; }
        pre { background: #f6f8fa; padding: 10px; white-space: pre-wrap; font-size: 12px; }
        table { border-collapse: collapse; font-size: 13px; } td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
        th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; }
        svg.chart { display: block; margin: 8px 0; background: #fff; border: 1px solid #e4e4e4; }
        .legend span { display: inline-block; margin-right: 14px; } .sw { display: inline-block; width: 12px; height: 12px; vertical-align: -2px; margin-right: 4px; }
        </style></head><body>
        <h1>crdtctl check: <span class="\(verdict.valid ? "valid" : "invalid")">\(verdict.valid ? "VALID" : "INVALID")</span></h1>
        <pre>\(escape(text))</pre>
        <h2>Settings</h2><table>\(content.settings.sorted { $0.key < $1.key }.map { "<tr><td>\(escape($0.key))</td><td>\(escape($0.value))</td></tr>" }.joined())</table>

        """
    html += "<h2>Operations per node over time</h2>\n" + legend([("ok", Palette.ok), ("indeterminate", Palette.indeterminate), ("failed", Palette.failed),
        ("partition", Palette.partition), ("kill -9", Palette.kill), ("pause", Palette.pause),
        ("disk full or stalled", Palette.disk)])
    html += timelineChart(content, span: span)
    html += "<h2>Latency over time (ok operations, log scale)</h2>\n" + legend([("p50", Palette.p50), ("p99", Palette.p99), ("max", Palette.max)])
    html += latencyOverTimeChart(content, span: span)
    html += "<h2>Latency percentiles (ok operations)</h2>\n" + percentileChart(verdict.stats.total) + percentileTable(verdict.stats)
    html += "<h2>Throughput over time (operations per second)</h2>\n" + legend([("ok", Palette.ok), ("indeterminate", Palette.indeterminate), ("failed", Palette.failed)])
    html += throughputChart(content, span: span)
    html += "<h2>Convergence after the final heal</h2>\n<p>"
        + (verdict.convergence.converged ? "Every node reported the same digest \(format(verdict.convergence.seconds ?? 0)) s after the final heal."
            : "The nodes did not agree within \(format(verdict.convergence.timeout)) s.") + "</p>\n"
    html += convergenceChart(verdict.convergence)
    html += visibilitySection(content, span: span)
    html += trafficSection(content, span: span)
    html += "<h2>Faults</h2><table><tr><th>kind</th><th>detail</th><th>start (s)</th><th>end (s)</th><th>errors</th></tr>"
    for fault in content.faults {
        html += "<tr><td>\(escape(fault.kind))</td><td>\(escape(fault.detail))</td><td>\(format(fault.start))</td><td>\(format(fault.end))</td><td>\(escape(fault.errors.joined(separator: "; ")))</td></tr>"
    }
    html += "</table>\n"
    if !verdict.set.worstStaleReads.isEmpty {
        html += "<h2>Worst stale reads</h2><table><tr><th>element</th><th>node</th><th>at (s)</th><th>acknowledged before (s)</th></tr>"
        for read in verdict.set.worstStaleReads {
            html += "<tr><td>\(escape(read.element))</td><td>\(escape(read.node))</td><td>\(format(read.at))</td><td>\(format(read.age))</td></tr>"
        }
        html += "</table>\n"
    }
    html += """
        <p>Files: <a href="history.jsonl">history.jsonl</a>, <a href="visibility.jsonl">visibility.jsonl</a>, <a href="metrics.jsonl">metrics.jsonl</a>, <a href="verdict.json">verdict.json</a>, <a href="verdict.txt">verdict.txt</a>, <a href="logs/">logs/</a>.</p>
        <script>
        window.addEventListener('load', function () {
          // A chart counts as drawn when it laid out and at least one of its data marks (class "data") has a box.
          var charts = document.querySelectorAll('svg.chart'), drawn = 0, empty = [];
          charts.forEach(function (svg) {
            var box = svg.getBBox(), marks = 0;
            svg.querySelectorAll('.data').forEach(function (mark) { var b = mark.getBBox(); if (b.width > 0 || b.height > 0) marks++; });
            if (box.width > 0 && box.height > 0 && marks > 0) drawn++; else empty.push(svg.id);
            svg.setAttribute('data-marks-drawn', marks);
          });
          document.body.setAttribute('data-charts-rendered', drawn + '/' + charts.length);
          document.body.setAttribute('data-charts-empty', empty.join(','));
        });
        </script>
        </body></html>

        """
    return html
}

private enum Palette {
    static let ok = "#2e9e44", indeterminate = "#f0a020", failed = "#d32f2f"
    static let partition = "#9ec5fe", kill = "#f4a6a6", pause = "#d7b8f3", disk = "#d9c08c"
    static let p50 = "#1565c0", p99 = "#ef6c00", max = "#8e24aa"
    static let all = "#333333"
}

private func legend(_ items: [(String, String)]) -> String {
    "<div class=\"legend\">" + items.map { "<span><i class=\"sw\" style=\"background:\($0.1)\"></i>\(escape($0.0))</span>" }.joined() + "</div>\n"
}

private func escape(_ text: String) -> String {
    text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
        .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
}

private func number(_ value: Double) -> String { String(format: "%.1f", value) }

/// Chart geometry: a plot area with a left margin for labels and a time axis along the bottom.
private struct Frame {
    var width = 1000.0, left = 60.0, right = 10.0, top = 18.0, bottom = 24.0
    let plotHeight: Double
    let span: Double
    var height: Double { top + plotHeight + bottom }
    var plotWidth: Double { width - left - right }
    func x(_ t: Double) -> Double { left + min(max(t / span, 0), 1) * plotWidth }

    func open(_ id: String) -> String {
        "<svg class=\"chart\" id=\"\(id)\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(number(width))\" height=\"\(number(height))\" viewBox=\"0 0 \(number(width)) \(number(height))\" font-size=\"11\" font-family=\"sans-serif\">\n"
    }

    func timeAxis() -> String {
        var out = "<line x1=\"\(number(left))\" y1=\"\(number(top + plotHeight))\" x2=\"\(number(width - right))\" y2=\"\(number(top + plotHeight))\" stroke=\"#888\"/>\n"
        let step = niceStep(span / 10)
        let decimals = step >= 1 ? 0 : Int(-floor(log10(step)))
        var t = 0.0
        while t <= span + 1e-9 {
            out += "<line x1=\"\(number(x(t)))\" y1=\"\(number(top + plotHeight))\" x2=\"\(number(x(t)))\" y2=\"\(number(top + plotHeight + 4))\" stroke=\"#888\"/>"
            out += "<text x=\"\(number(x(t)))\" y=\"\(number(top + plotHeight + 16))\" text-anchor=\"middle\">\(String(format: "%.\(decimals)f", t)) s</text>\n"
            t += step
        }
        return out
    }

    /// Fault windows as shaded bands: partitions across the whole plot, kills and pauses on their node's lane.
    func shading(_ faults: [FaultWindow], lane: ((Int) -> (Double, Double))? = nil) -> String {
        var out = ""
        for fault in faults where fault.kind != "heal" {
            let colour = switch fault.kind {
            case "partition": Palette.partition
            case "kill": Palette.kill
            case "pause": Palette.pause
            default: Palette.disk
            }
            let x0 = x(fault.start), w = max(1, x(fault.end) - x0)
            if fault.kind != "partition", let lane, let node = fault.nodes.first {
                let (y0, h) = lane(node)
                out += "<rect x=\"\(number(x0))\" y=\"\(number(y0))\" width=\"\(number(w))\" height=\"\(number(h))\" fill=\"\(colour)\" opacity=\"0.6\"><title>\(escape(fault.kind + " " + fault.detail))</title></rect>\n"
            } else {
                out += "<rect x=\"\(number(x0))\" y=\"\(number(top))\" width=\"\(number(w))\" height=\"\(number(plotHeight))\" fill=\"\(colour)\" opacity=\"0.45\"><title>\(escape(fault.kind + " " + fault.detail))</title></rect>\n"
            }
            let label = fault.kind == "partition" ? String(fault.detail.prefix { $0 != ":" }) : fault.kind
            out += "<text x=\"\(number(x0 + 2))\" y=\"\(number(top - 5))\" fill=\"#555\">\(escape(label))</text>\n"
        }
        return out
    }

    func marker(at t: Double, label: String) -> String {
        "<line x1=\"\(number(x(t)))\" y1=\"\(number(top))\" x2=\"\(number(x(t)))\" y2=\"\(number(top + plotHeight))\" stroke=\"#333\" stroke-dasharray=\"4 3\"/>"
            + "<text x=\"\(number(x(t) + 3))\" y=\"\(number(top + 11))\" fill=\"#333\">\(escape(label))</text>\n"
    }
}

private func niceStep(_ raw: Double) -> Double {
    guard raw > 0 else { return 1 }
    let magnitude = pow(10, floor(log10(raw)))
    for factor in [1.0, 2, 5, 10] where magnitude * factor >= raw { return magnitude * factor }
    return magnitude * 10
}

/// Counts per time bucket of operations invoked in it, by outcome.
private func buckets(_ ops: [Operation], width: Double, count: Int) -> [[Outcome: Int]] {
    var result = [[Outcome: Int]](repeating: [:], count: count)
    for op in ops {
        let b = min(count - 1, max(0, Int(op.invoke / width)))
        result[b][op.outcome, default: 0] += 1
    }
    return result
}

private func timelineChart(_ content: ReportContent, span: Double) -> String {
    let laneHeight = 44.0, gap = 6.0
    let n = content.nodeNames.count
    let frame = Frame(plotHeight: Double(n) * (laneHeight + gap), span: span)
    // Buckets of at least a quarter second, so a lane shows a rate rather than single operations.
    let width = max(span / 200, 0.25), count = Int((span / width).rounded(.up))
    func lane(_ node: Int) -> (Double, Double) { (frame.top + Double(node) * (laneHeight + gap), laneHeight) }
    var out = frame.open("timeline") + frame.shading(content.faults, lane: lane)
    let barWidth = max(1, frame.plotWidth / Double(count))
    for node in 0..<n {
        let (y0, h) = lane(node)
        out += "<text x=\"\(number(frame.left - 6))\" y=\"\(number(y0 + h / 2 + 4))\" text-anchor=\"end\">\(escape(content.nodeNames[node]))</text>\n"
        out += "<line x1=\"\(number(frame.left))\" y1=\"\(number(y0 + h))\" x2=\"\(number(frame.width - frame.right))\" y2=\"\(number(y0 + h))\" stroke=\"#ccc\"/>\n"
        let counts = buckets(content.operations.filter { $0.node == node }, width: width, count: count)
        let most = Double(max(1, counts.map { $0.values.reduce(0, +) }.max() ?? 1))
        for (b, bucket) in counts.enumerated() where !bucket.isEmpty {
            var y = y0 + h
            for outcome in [Outcome.ok, .indeterminate, .failed] {
                guard let c = bucket[outcome], c > 0 else { continue }
                let bar = Double(c) / most * h
                y -= bar
                out += "<rect class=\"data\" x=\"\(number(frame.x(Double(b) * width)))\" y=\"\(number(y))\" width=\"\(number(barWidth))\" height=\"\(number(bar))\" fill=\"\(outcome == .ok ? Palette.ok : outcome == .failed ? Palette.failed : Palette.indeterminate)\"/>"
            }
        }
        out += "\n"
    }
    out += frame.marker(at: content.healedAt, label: "final heal") + frame.timeAxis() + "</svg>\n"
    return out
}

private func latencyOverTimeChart(_ content: ReportContent, span: Double) -> String {
    let frame = Frame(plotHeight: 220, span: span)
    let count = max(10, min(200, Int(span))), width = span / Double(count)
    var perBucket = [[Double]](repeating: [], count: count)
    for op in content.operations where op.outcome == .ok {
        perBucket[min(count - 1, Int(op.invoke / width))].append(op.latency * 1000)
    }
    let top = max(10, perBucket.compactMap { $0.max() }.max() ?? 10)
    let low = 0.05, logLow = log10(low), logHigh = log10(top * 1.2)
    func y(_ ms: Double) -> Double { frame.top + frame.plotHeight * (1 - (log10(max(ms, low)) - logLow) / (logHigh - logLow)) }
    var out = frame.open("latency-over-time") + frame.shading(content.faults)
    var tick = 0.1
    while tick <= top * 1.2 {
        out += "<line x1=\"\(number(frame.left))\" y1=\"\(number(y(tick)))\" x2=\"\(number(frame.width - frame.right))\" y2=\"\(number(y(tick)))\" stroke=\"#eee\"/>"
        out += "<text x=\"\(number(frame.left - 6))\" y=\"\(number(y(tick) + 4))\" text-anchor=\"end\">\(tick < 1 ? String(format: "%.1f", tick) : String(Int(tick))) ms</text>\n"
        tick *= 10
    }
    for (p, colour) in [(0.5, Palette.p50), (0.99, Palette.p99), (1.0, Palette.max)] {
        let points = perBucket.enumerated().compactMap { b, values -> String? in
            guard !values.isEmpty else { return nil }
            return "\(number(frame.x((Double(b) + 0.5) * width))),\(number(y(percentile(values.sorted(), p))))"
        }
        out += "<polyline class=\"data\" fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1.5\" points=\"\(points.joined(separator: " "))\"/>\n"
    }
    out += frame.marker(at: content.healedAt, label: "final heal") + frame.timeAxis() + "</svg>\n"
    return out
}

private func throughputChart(_ content: ReportContent, span: Double) -> String {
    let frame = Frame(plotHeight: 180, span: span)
    let count = max(10, min(200, Int(span))), width = span / Double(count)
    let counts = buckets(content.operations, width: width, count: count)
    let top = max(1, counts.flatMap { $0.values }.max().map { Double($0) / width } ?? 1)
    func y(_ rate: Double) -> Double { frame.top + frame.plotHeight * (1 - rate / (top * 1.1)) }
    var out = frame.open("throughput") + frame.shading(content.faults)
    let step = niceStep(top / 4)
    var tick = 0.0
    while tick <= top * 1.1 {
        out += "<line x1=\"\(number(frame.left))\" y1=\"\(number(y(tick)))\" x2=\"\(number(frame.width - frame.right))\" y2=\"\(number(y(tick)))\" stroke=\"#eee\"/>"
        out += "<text x=\"\(number(frame.left - 6))\" y=\"\(number(y(tick) + 4))\" text-anchor=\"end\">\(Int(tick))</text>\n"
        tick += step
    }
    for (outcome, colour) in [(Outcome.ok, Palette.ok), (.indeterminate, Palette.indeterminate), (.failed, Palette.failed)] {
        let points = counts.enumerated().map { b, bucket in
            "\(number(frame.x((Double(b) + 0.5) * width))),\(number(y(Double(bucket[outcome] ?? 0) / width)))"
        }
        out += "<polyline class=\"data\" fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1.5\" points=\"\(points.joined(separator: " "))\"/>\n"
    }
    out += frame.marker(at: content.healedAt, label: "final heal") + frame.timeAxis() + "</svg>\n"
    return out
}

private func percentileChart(_ row: Stats.Row) -> String {
    let labels = Stats.percentiles.map(\.0)
    let values = labels.map { max(row.latencyMilliseconds[$0] ?? 0, 0.001) }
    let barHeight = 22.0, left = 70.0, width = 1000.0, right = 90.0
    let height = Double(labels.count) * (barHeight + 6) + 10
    let low = log10(0.01), high = log10(max(10, values.max() ?? 10) * 1.5)
    func w(_ ms: Double) -> Double { (log10(max(ms, 0.01)) - low) / (high - low) * (width - left - right) }
    var out = "<svg class=\"chart\" id=\"latency-percentiles\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(number(width))\" height=\"\(number(height))\" viewBox=\"0 0 \(number(width)) \(number(height))\" font-size=\"11\" font-family=\"sans-serif\">\n"
    for (i, label) in labels.enumerated() {
        let y = 5 + Double(i) * (barHeight + 6)
        out += "<text x=\"\(number(left - 6))\" y=\"\(number(y + 15))\" text-anchor=\"end\">\(label)</text>"
        out += "<rect class=\"data\" x=\"\(number(left))\" y=\"\(number(y))\" width=\"\(number(max(1, w(values[i]))))\" height=\"\(number(barHeight))\" fill=\"\(Palette.p50)\"/>"
        out += "<text x=\"\(number(left + max(1, w(values[i])) + 6))\" y=\"\(number(y + 15))\">\(String(format: "%.2f", values[i])) ms</text>\n"
    }
    out += "</svg>\n"
    return out
}

private func percentileTable(_ stats: Stats) -> String {
    var out = "<table><tr><th>operation</th><th>ok</th><th>failed</th><th>indeterminate</th>"
        + Stats.percentiles.map { "<th>\($0.0) ms</th>" }.joined() + "</tr>"
    for row in [stats.total] + stats.byKind {
        out += "<tr><td>\(row.kind)</td><td>\(row.ok)</td><td>\(row.failed)</td><td>\(row.indeterminate)</td>"
            + Stats.percentiles.map { "<td>\(String(format: "%.2f", row.latencyMilliseconds[$0.0] ?? 0))</td>" }.joined() + "</tr>"
    }
    return out + "</table>\n"
}

private func convergenceChart(_ convergence: Convergence) -> String {
    let span = max(convergence.samples.last?.at ?? 1, 0.1)
    let frame = Frame(plotHeight: 120, span: span)
    let most = max(2, convergence.samples.map(\.distinct).max() ?? 2)
    func y(_ distinct: Int) -> Double { frame.top + frame.plotHeight * (1 - Double(distinct) / Double(most)) }
    var out = frame.open("convergence")
    for d in 0...most {
        out += "<line x1=\"\(number(frame.left))\" y1=\"\(number(y(d)))\" x2=\"\(number(frame.width - frame.right))\" y2=\"\(number(y(d)))\" stroke=\"#eee\"/>"
        out += "<text x=\"\(number(frame.left - 6))\" y=\"\(number(y(d) + 4))\" text-anchor=\"end\">\(d)</text>\n"
    }
    var path = ""
    for sample in convergence.samples {
        path += path.isEmpty ? "M\(number(frame.x(sample.at))),\(number(y(sample.distinct)))"
            : " H\(number(frame.x(sample.at))) V\(number(y(sample.distinct)))"
    }
    out += "<path class=\"data\" d=\"\(path)\" fill=\"none\" stroke=\"\(Palette.p50)\" stroke-width=\"2\"/>\n"
    // The first and last samples as dots, so a wait that agreed at its first poll still draws a mark.
    for sample in [convergence.samples.first, convergence.samples.last].compactMap({ $0 }) {
        out += "<circle class=\"data\" cx=\"\(number(frame.x(sample.at)))\" cy=\"\(number(y(sample.distinct)))\" r=\"3\" fill=\"\(Palette.p50)\"/>"
    }
    out += "<text x=\"\(number(frame.left + 4))\" y=\"\(number(frame.top - 5))\" fill=\"#555\">distinct digests among the nodes, after the final heal</text>\n"
    if let seconds = convergence.seconds { out += frame.marker(at: seconds, label: "agreed at \(format(seconds)) s") }
    out += frame.timeAxis() + "</svg>\n"
    return out
}

// MARK: Visibility and traffic

/// visibility.jsonl: one line per acknowledged add watched, with when each node (by name) first showed it.
func writeVisibility(_ records: [VisibilityRecord], nodeNames: [String], to path: String) throws {
    struct Line: Encodable {
        var element: String, origin: String, acknowledged: Double, seen: [String: Double], everywhere: Double?, removedFirst: Bool
    }
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    var out = Data()
    for record in records {
        var seen: [String: Double] = [:]
        for (i, time) in record.seen.enumerated() { if let time { seen[nodeNames[i]] = time } }
        out += try encoder.encode(Line(element: record.element, origin: nodeNames[record.origin], acknowledged: record.acknowledged,
                                       seen: seen, everywhere: record.everywhere, removedFirst: record.removedFirst))
        out.append(0x0A)
    }
    try out.write(to: URL(fileURLWithPath: path))
}

/// metrics.jsonl: one line per scrape round, with each answering node's replication counters.
func writeMetrics(_ rounds: [MetricsRound], nodeNames: [String], to path: String) throws {
    struct Line: Encodable { var at: Double, nodes: [String: PeerCounters] }
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    var out = Data()
    for round in rounds {
        var nodes: [String: PeerCounters] = [:]
        for (i, reading) in round.nodes.enumerated() { if let reading { nodes[nodeNames[i]] = reading } }
        out += try encoder.encode(Line(at: round.at, nodes: nodes))
        out.append(0x0A)
    }
    try out.write(to: URL(fileURLWithPath: path))
}

private func seconds(_ value: Double) -> String {
    value < 1 ? String(format: "%.0f ms", value * 1000) : String(format: "%.2f s", value)
}

private func distributionRow(_ label: String, _ d: Distribution) -> String {
    "<tr><td>\(escape(label))</td><td>\(d.count)</td>" + (d.count == 0 ? "<td></td><td></td><td></td><td></td>"
        : [d.p50, d.p90, d.p99, d.max].map { "<td>\(String(format: "%.3f", $0))</td>" }.joined()) + "</tr>"
}

private func visibilitySection(_ content: ReportContent, span: Double) -> String {
    guard let result = content.verdict.visibility else { return "" }
    var html = "<h2>Time from each write to its visibility on every node</h2>\n"
    html += "<p>Every add to the hot set that a node acknowledged (\(result.watched), the preload aside) was looked for on every other node "
        + "with SMISMEMBER every \(format(result.pollInterval)) s, through the load and the wait after the final heal, until it showed; "
        + "a time here runs from the acknowledgement to the first poll reply that found it on the last node, so it is late by at most "
        + "one poll interval. \(result.removedFirst) adds removed before every node showed them are left out; "
        + "\(result.neverEverywhere) never showed on every node."
        + (result.failedPolls.isEmpty ? "" : " Polls that got no answer (a node down or paused, whose times then include the wait for it): "
            + result.failedPolls.sorted { $0.key < $1.key }.map { "\(escape($0.key)) \($0.value)" }.joined(separator: ", ") + ".")
        + "</p>\n"
    let kept = content.visibility.filter { !$0.removedFirst }
    guard !kept.isEmpty else { return html + "<p>No acknowledged adds to show.</p>\n" }
    html += legend([("p50", Palette.p50), ("p99", Palette.p99), ("max", Palette.max), ("never on every node", Palette.failed),
                    ("partition", Palette.partition), ("kill -9", Palette.kill), ("pause", Palette.pause)])
    html += "<p>By the time each add was acknowledged: p50, p99 and max of the time until every node showed it (log scale).</p>\n"
    html += visibilityOverTimeChart(content, kept: kept, span: span)
    html += "<p>Distribution (cumulative share of the adds shown everywhere within a time, log scale):</p>\n"
        + legend([("all", Palette.all), ("acknowledged during a fault", Palette.failed), ("outside faults", Palette.ok)])
    html += visibilityCDFChart(content, kept: kept, interval: result.pollInterval)
    html += "<table><tr><th>seconds to every node</th><th>adds</th><th>p50</th><th>p90</th><th>p99</th><th>max</th></tr>"
        + distributionRow("after the write", result.afterWrite) + distributionRow("written during a fault", result.duringFaults)
        + distributionRow("written outside faults", result.outsideFaults)
        + distributionRow("after the final heal (\(result.pendingAtHeal) not yet everywhere then)", result.afterHeal) + "</table>\n"
    return html
}

/// Per bucket of acknowledgement time: p50, p99 and max of the time until every node showed the add
/// (log scale), with the adds that never showed everywhere as red marks along the top.
private func visibilityOverTimeChart(_ content: ReportContent, kept: [VisibilityRecord], span: Double) -> String {
    let frame = Frame(plotHeight: 200, span: span)
    let count = max(10, min(200, Int(span))), width = span / Double(count)
    var perBucket = [[Double]](repeating: [], count: count)
    var never = [Int](repeating: 0, count: count)
    for record in kept {
        let b = min(count - 1, max(0, Int(record.acknowledged / width)))
        if let everywhere = record.everywhere { perBucket[b].append(everywhere - record.acknowledged) } else { never[b] += 1 }
    }
    let top = max(1, perBucket.compactMap { $0.max() }.max() ?? 1)
    let low = 0.001, logLow = log10(low), logHigh = log10(top * 1.5)
    func y(_ s: Double) -> Double { frame.top + frame.plotHeight * (1 - (log10(max(s, low)) - logLow) / (logHigh - logLow)) }
    let points = perBucket.reduce(0) { $0 + $1.count } + never.reduce(0, +)
    var out = frame.open("visibility-over-time").replacingOccurrences(of: "<svg ", with: "<svg data-points=\"\(points)\" ")
        + frame.shading(content.faults)
    var tick = low
    while tick <= top * 1.5 {
        out += "<line x1=\"\(number(frame.left))\" y1=\"\(number(y(tick)))\" x2=\"\(number(frame.width - frame.right))\" y2=\"\(number(y(tick)))\" stroke=\"#eee\"/>"
        out += "<text x=\"\(number(frame.left - 6))\" y=\"\(number(y(tick) + 4))\" text-anchor=\"end\">\(seconds(tick))</text>\n"
        tick *= 10
    }
    for (p, colour) in [(0.5, Palette.p50), (0.99, Palette.p99), (1.0, Palette.max)] {
        let line = perBucket.enumerated().compactMap { b, values -> String? in
            guard !values.isEmpty else { return nil }
            return "\(number(frame.x((Double(b) + 0.5) * width))),\(number(y(percentile(values.sorted(), p))))"
        }
        out += "<polyline class=\"data\" fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1.5\" points=\"\(line.joined(separator: " "))\"/>\n"
        // A bucket with a single add still shows as a dot.
        for (b, values) in perBucket.enumerated() where values.count == 1 && p == 0.5 {
            out += "<circle class=\"data\" cx=\"\(number(frame.x((Double(b) + 0.5) * width)))\" cy=\"\(number(y(values[0])))\" r=\"2\" fill=\"\(colour)\"/>"
        }
    }
    for (b, n) in never.enumerated() where n > 0 {
        out += "<rect class=\"data\" x=\"\(number(frame.x(Double(b) * width)))\" y=\"\(number(frame.top))\" width=\"\(number(max(2, frame.plotWidth / Double(count))))\" height=\"6\" fill=\"\(Palette.failed)\"><title>\(n) never on every node</title></rect>"
    }
    out += frame.marker(at: content.healedAt, label: "final heal") + frame.timeAxis() + "</svg>\n"
    return out
}

/// The cumulative distribution of the times to every node: all adds, those acknowledged during a fault,
/// and the others; at most 400 points a line.
private func visibilityCDFChart(_ content: ReportContent, kept: [VisibilityRecord], interval: Double) -> String {
    func inFault(_ record: VisibilityRecord) -> Bool {
        content.faults.contains { $0.start <= record.acknowledged && record.acknowledged <= $0.end }
    }
    let shown = kept.filter { $0.everywhere != nil }
    func delays(_ records: [VisibilityRecord]) -> [Double] { records.map { $0.everywhere! - $0.acknowledged }.sorted() }
    let lines = [(delays(shown), Palette.all), (delays(shown.filter(inFault)), Palette.failed), (delays(shown.filter { !inFault($0) }), Palette.ok)]
    let width = 1000.0, left = 60.0, right = 20.0, top = 10.0, plotHeight = 200.0, bottom = 24.0
    let low = 0.001, high = max(1, (shown.map { $0.everywhere! - $0.acknowledged }.max() ?? 1) * 1.5)
    func x(_ s: Double) -> Double { left + (log10(max(s, low)) - log10(low)) / (log10(high) - log10(low)) * (width - left - right) }
    func y(_ share: Double) -> Double { top + plotHeight * (1 - share) }
    let height = top + plotHeight + bottom
    var out = "<svg class=\"chart\" id=\"visibility-cdf\" data-points=\"\(shown.count)\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(number(width))\" height=\"\(number(height))\" viewBox=\"0 0 \(number(width)) \(number(height))\" font-size=\"11\" font-family=\"sans-serif\">\n"
    for share in [0, 0.25, 0.5, 0.75, 0.9, 1] {
        out += "<line x1=\"\(number(left))\" y1=\"\(number(y(share)))\" x2=\"\(number(width - right))\" y2=\"\(number(y(share)))\" stroke=\"#eee\"/>"
        out += "<text x=\"\(number(left - 6))\" y=\"\(number(y(share) + 4))\" text-anchor=\"end\">\(Int(share * 100)) %</text>\n"
    }
    var tick = low
    while tick <= high {
        out += "<line x1=\"\(number(x(tick)))\" y1=\"\(number(top))\" x2=\"\(number(x(tick)))\" y2=\"\(number(top + plotHeight + 4))\" stroke=\"#ddd\"/>"
        out += "<text x=\"\(number(x(tick)))\" y=\"\(number(top + plotHeight + 16))\" text-anchor=\"middle\">\(seconds(tick))</text>\n"
        tick *= 10
    }
    for (values, colour) in lines where !values.isEmpty {
        let m = min(values.count, 400)
        let picks = m == 1 ? [0] : (0..<m).map { $0 * (values.count - 1) / (m - 1) }
        let points = picks.map { i in "\(number(x(values[i]))),\(number(y(Double(i + 1) / Double(values.count))))" }
        out += "<polyline class=\"data\" fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1.5\" points=\"\(points.joined(separator: " "))\"/>\n"
        if m == 1 { out += "<circle class=\"data\" cx=\"\(number(x(values[0])))\" cy=\"\(number(y(1)))\" r=\"3\" fill=\"\(colour)\"/>" }
    }
    out += "<line x1=\"\(number(x(interval)))\" y1=\"\(number(top))\" x2=\"\(number(x(interval)))\" y2=\"\(number(top + plotHeight))\" stroke=\"#333\" stroke-dasharray=\"4 3\"/>"
        + "<text x=\"\(number(x(interval) + 3))\" y=\"\(number(top + plotHeight - 6))\" fill=\"#333\">poll interval</text>\n"
    out += "<line x1=\"\(number(left))\" y1=\"\(number(top + plotHeight))\" x2=\"\(number(width - right))\" y2=\"\(number(top + plotHeight))\" stroke=\"#888\"/>\n</svg>\n"
    return out
}

private func trafficSection(_ content: ReportContent, span: Double) -> String {
    guard let traffic = content.verdict.traffic else { return "" }
    var html = "<h2>Peer bytes and frames per operation</h2>\n"
    html += "<p>Each node's <code>crdtd_peer_bytes_total</code> and <code>crdtd_peer_frames_total</code> (all frame types), scraped from its "
        + "<code>/metrics</code> before the load, once a second, and after the wait for agreement (the daemons export them once a second; "
        + "a counter that drops is a restarted process, counted from 0), divided by the acknowledged operations. "
        + "Over the run (\(format(traffic.from)) s to \(format(traffic.to)) s): <b>\(String(format: "%.0f", traffic.bytesOutPerOperation)) bytes</b> and "
        + "<b>\(String(format: "%.2f", traffic.framesOutPerOperation)) frames</b> sent per ok operation (\(traffic.operations)); per ok write "
        + "(\(traffic.writes)) \(String(format: "%.0f", traffic.bytesOutPerWrite)) bytes and \(String(format: "%.2f", traffic.framesOutPerWrite)) frames. "
        + "Gossip and the catch-up after each heal are included.</p>\n"
    if !traffic.unavailable.isEmpty {
        html += "<p><b>No metrics from</b> " + traffic.unavailable.sorted { $0.key < $1.key }.map { "\(escape($0.key)): \(escape($0.value))" }.joined(separator: "; ")
            + (traffic.nodes.isEmpty ? "." : "; the figures are the other nodes' only.") + "</p>\n"
    }
    if traffic.points.isEmpty {
        html += "<p>No figures to chart: no node's metrics answered twice while operations were acknowledged.</p>\n"
    } else {
        html += legend([("bytes sent per ok operation (left axis)", Palette.p50), ("frames sent per ok operation (right axis)", Palette.p99)])
        html += "<p>Each point: what every reachable node sent over the \(format(traffic.window)) s before a scrape, per operation acknowledged in those seconds.</p>\n"
        html += trafficChart(content, traffic: traffic, span: span)
    }
    html += "<table><tr><th>node</th><th>scrapes</th><th>bytes out</th><th>bytes in</th><th>frames out</th><th>frames in</th></tr>"
    for node in traffic.nodes + [TrafficResult.Node(node: "all", total: traffic.total, scrapes: traffic.nodes.reduce(0) { $0 + $1.scrapes })] {
        html += "<tr><td>\(escape(node.node))</td><td>\(node.scrapes)</td><td>\(Int(node.total.bytesOut))</td><td>\(Int(node.total.bytesIn))</td>"
            + "<td>\(Int(node.total.framesOut))</td><td>\(Int(node.total.framesIn))</td></tr>"
    }
    return html + "</table>\n"
}

private func trafficChart(_ content: ReportContent, traffic: TrafficResult, span: Double) -> String {
    let frame = Frame(right: 60, plotHeight: 180, span: span)
    let topBytes = max(1, traffic.points.map(\.bytesOutPerOperation).max() ?? 1) * 1.1
    let topFrames = max(0.01, traffic.points.map(\.framesOutPerOperation).max() ?? 1) * 1.1
    func y(_ value: Double, _ top: Double) -> Double { frame.top + frame.plotHeight * (1 - value / top) }
    var out = frame.open("traffic").replacingOccurrences(of: "<svg ", with: "<svg data-points=\"\(traffic.points.count)\" ")
        + frame.shading(content.faults)
    for i in 0...4 {
        let share = Double(i) / 4
        let yy = frame.top + frame.plotHeight * (1 - share)
        out += "<line x1=\"\(number(frame.left))\" y1=\"\(number(yy))\" x2=\"\(number(frame.width - frame.right))\" y2=\"\(number(yy))\" stroke=\"#eee\"/>"
        out += "<text x=\"\(number(frame.left - 6))\" y=\"\(number(yy + 4))\" text-anchor=\"end\" fill=\"\(Palette.p50)\">\(String(format: "%.0f", share * topBytes))</text>"
        out += "<text x=\"\(number(frame.width - frame.right + 6))\" y=\"\(number(yy + 4))\" fill=\"\(Palette.p99)\">\(String(format: "%.2f", share * topFrames))</text>\n"
    }
    for (value, top, colour) in [(\TrafficResult.Point.bytesOutPerOperation, topBytes, Palette.p50), (\.framesOutPerOperation, topFrames, Palette.p99)] {
        let points = traffic.points.map { "\(number(frame.x($0.at))),\(number(y($0[keyPath: value], top)))" }
        out += "<polyline class=\"data\" fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1.5\" points=\"\(points.joined(separator: " "))\"/>\n"
        if traffic.points.count == 1 {
            out += "<circle class=\"data\" cx=\"\(number(frame.x(traffic.points[0].at)))\" cy=\"\(number(y(traffic.points[0][keyPath: value], top)))\" r=\"3\" fill=\"\(colour)\"/>"
        }
    }
    out += frame.marker(at: content.healedAt, label: "final heal") + frame.timeAxis() + "</svg>\n"
    return out
}
