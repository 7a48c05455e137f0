import Foundation

/// A line chart written as a self-contained SVG file: axes, ticks, a legend, an optional shaded range.
struct LineChart {
    struct Series {
        var name: String
        var points: [(Double, Double)]
        var dashed: Bool
    }

    var title: String
    var xLabel: String
    var yLabel: String
    var series: [Series] = []
    var logX = false
    var logY = false
    var xRange: (Double, Double)?
    var yRange: (Double, Double)?
    /// An x range drawn as a grey band (a partition, for example).
    var shade: (Double, Double)?
    /// Tick positions (in data units) and their labels; computed when nil.
    var xTicks: [(Double, String)]?

    init(title: String, xLabel: String, yLabel: String) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
    }

    private static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]

    func write(to directory: String, name: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try svg().write(toFile: (directory as NSString).appendingPathComponent(name), atomically: true, encoding: .utf8)
    }

    func svg() -> String {
        let width = 760.0, plotHeight = 340.0
        let left = 78.0, right = 24.0, top = 44.0, bottom = 52.0
        let legendRows = Double(series.count)
        let height = top + plotHeight + bottom + 18 * legendRows + 8
        let plotWidth = width - left - right
        let all = series.flatMap(\.points)
        func t(_ v: Double, _ log: Bool) -> Double { log ? log10(max(v, 1e-9)) : v }
        var (x0, x1) = xRange ?? (all.map(\.0).min() ?? 0, all.map(\.0).max() ?? 1)
        var (y0, y1) = yRange ?? (logY ? (all.map(\.1).min() ?? 1) : 0, all.map(\.1).max() ?? 1)
        if logY { y0 = pow(10, floor(log10(max(y0, 1e-6)))); y1 = pow(10, ceil(log10(max(y1, y0 * 10)))) }
        if !logY && yRange == nil { y1 = Self.niceCeiling(y1 * 1.05) }
        if x1 <= x0 { x1 = x0 + 1 }
        if y1 <= y0 { y1 = y0 + 1 }
        if logX && xRange == nil { x0 *= 0.9; x1 *= 1.1 }
        let tx0 = t(x0, logX), tx1 = t(x1, logX), ty0 = t(y0, logY), ty1 = t(y1, logY)
        func px(_ x: Double) -> Double { left + (t(x, logX) - tx0) / (tx1 - tx0) * plotWidth }
        func py(_ y: Double) -> Double { top + plotHeight - (t(y, logY) - ty0) / (ty1 - ty0) * plotHeight }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }

        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(f(width / 2))" y="22" text-anchor="middle" font-size="15" font-weight="bold">\(Self.escape(title))</text>

            """
        if let (s0, s1) = shade {
            out += "<rect x=\"\(f(px(s0)))\" y=\"\(f(top))\" width=\"\(f(px(s1) - px(s0)))\" height=\"\(f(plotHeight))\" fill=\"#eeeeee\"/>\n"
        }
        // Grid and ticks.
        let yTicks: [(Double, String)] = logY
            ? stride(from: log10(y0), through: log10(y1) + 1e-9, by: 1).map { (pow(10, $0), Self.label(pow(10, $0))) }
            : Self.linearTicks(y0, y1).map { ($0, Self.label($0)) }
        for (v, label) in yTicks {
            out += "<line x1=\"\(f(left))\" y1=\"\(f(py(v)))\" x2=\"\(f(left + plotWidth))\" y2=\"\(f(py(v)))\" stroke=\"#dddddd\"/>\n"
            out += "<text x=\"\(f(left - 6))\" y=\"\(f(py(v) + 4))\" text-anchor=\"end\">\(label)</text>\n"
        }
        let xs = xTicks ?? Self.linearTicks(x0, x1).map { ($0, Self.label($0)) }
        for (v, label) in xs where v >= x0 - 1e-9 && v <= x1 + 1e-9 {
            out += "<line x1=\"\(f(px(v)))\" y1=\"\(f(top))\" x2=\"\(f(px(v)))\" y2=\"\(f(top + plotHeight))\" stroke=\"#eeeeee\"/>\n"
            out += "<text x=\"\(f(px(v)))\" y=\"\(f(top + plotHeight + 16))\" text-anchor=\"middle\">\(Self.escape(label))</text>\n"
        }
        out += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plotWidth))\" height=\"\(f(plotHeight))\" fill=\"none\" stroke=\"#333333\"/>\n"
        out += "<text x=\"\(f(left + plotWidth / 2))\" y=\"\(f(top + plotHeight + 36))\" text-anchor=\"middle\">\(Self.escape(xLabel))</text>\n"
        out += "<text transform=\"translate(18 \(f(top + plotHeight / 2))) rotate(-90)\" text-anchor=\"middle\">\(Self.escape(yLabel))</text>\n"
        // Series and legend.
        for (i, s) in series.enumerated() {
            let color = Self.palette[i % Self.palette.count]
            let dash = s.dashed ? " stroke-dasharray=\"6 4\"" : ""
            let path = s.points.map { "\(f(px($0.0))),\(f(py($0.1)))" }.joined(separator: " ")
            out += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"\(dash)/>\n"
            for p in s.points where s.points.count <= 40 {
                out += "<circle cx=\"\(f(px(p.0)))\" cy=\"\(f(py(p.1)))\" r=\"2.5\" fill=\"\(color)\"/>\n"
            }
            let ly = top + plotHeight + bottom + 18 * Double(i)
            out += "<line x1=\"\(f(left))\" y1=\"\(f(ly))\" x2=\"\(f(left + 28))\" y2=\"\(f(ly))\" stroke=\"\(color)\" stroke-width=\"2\"\(dash)/>\n"
            out += "<text x=\"\(f(left + 36))\" y=\"\(f(ly + 4))\">\(Self.escape(s.name))</text>\n"
        }
        return out + "</svg>\n"
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    static func label(_ v: Double) -> String {
        if v == 0 { return "0" }
        if abs(v) >= 1 && v == v.rounded() { return String(Int(v)) }
        if abs(v) >= 0.01 { return String(format: "%g", (v * 100).rounded() / 100) }
        return String(format: "%g", v)
    }

    static func niceCeiling(_ v: Double) -> Double {
        guard v > 0 else { return 1 }
        let magnitude = pow(10, floor(log10(v)))
        for step in [1.0, 2, 2.5, 5, 10] where step * magnitude >= v { return step * magnitude }
        return 10 * magnitude
    }

    static func linearTicks(_ lo: Double, _ hi: Double) -> [Double] {
        let step = niceCeiling((hi - lo) / 6)
        var ticks: [Double] = []
        var v = (lo / step).rounded(.up) * step
        while v <= hi + step * 1e-6 {
            ticks.append(v)
            v += step
        }
        return ticks
    }
}
