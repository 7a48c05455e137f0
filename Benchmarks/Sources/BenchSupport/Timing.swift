#if canImport(Glibc)
import Glibc
#endif

/// Monotonic nanoseconds, for benchmarks only: never used to decide anything in the daemon.
public func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// The median of a non-empty sample.
public func median(_ values: [Double]) -> Double {
    precondition(!values.isEmpty, "median of an empty sample")
    let sorted = values.sorted()
    let mid = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/// Prints a Markdown table, so that output can be pasted into docs/benchmarks.md as it is.
public func printTable(header: [String], rows: [[String]]) {
    print("| " + header.joined(separator: " | ") + " |")
    print("|" + String(repeating: "---|", count: header.count))
    for row in rows { print("| " + row.joined(separator: " | ") + " |") }
}

/// Keeps the optimizer from deleting work whose result is otherwise unused.
@inline(never)
public func blackHole<T>(_ value: T) { _ = value }
