import Engine
import Foundation
import Synchronization

/// What the writer tells the other threads about the store, without a ring: the last engine step whose
/// effects it released, and whether commits fail. The engine thread reads both before every batch; INFO
/// and /metrics read the condition when asked. The shell sets `stopRequested` so that a writer waiting
/// for space gives up on shutdown.
final class StorageHealth: Sendable {
    /// The last step (`EngineOutput.step`) whose records are committed and whose effects are in the
    /// loop's inbox. Stored after the inbox push, so a reader that sees it also orders its own pushes
    /// after those effects.
    private let releasedStep = Atomic<UInt64>(0)
    /// Counts changes of the condition, so that the engine thread reads it (under the lock) only when it
    /// changed: no lock is taken per batch.
    private let generationCount = Atomic<UInt64>(0)
    private let stopFlag = Atomic<Bool>(false)
    private let state = Mutex(Snapshot())

    struct Snapshot: Sendable {
        var condition: StorageCondition = .healthy
        var degradedSince: Date?
        var lastError: String?
        var retries: UInt64 = 0

        var isDegraded: Bool { degradedSince != nil }
    }

    var released: UInt64 { releasedStep.load(ordering: .acquiring) }

    func release(through step: UInt64) {
        if step > releasedStep.load(ordering: .relaxed) { releasedStep.store(step, ordering: .releasing) }
    }

    var snapshot: Snapshot { state.withLock { $0 } }
    var generation: UInt64 { generationCount.load(ordering: .acquiring) }

    /// A commit failed for want of space: record it and, the first time, tell the engine.
    func degraded(directory: String, cause: String, now: Date = Date()) {
        state.withLock { state in
            state.lastError = cause
            state.retries += 1
            guard state.degradedSince == nil else { return }
            state.degradedSince = now
            state.condition = .degraded(StorageFault(directory: directory, cause: cause, since: Self.format(now)))
            generationCount.add(1, ordering: .releasing)
        }
    }

    /// A commit succeeded after failing: the engine may take writes again.
    func recovered() {
        state.withLock { state in
            state.degradedSince = nil
            state.condition = .healthy
            generationCount.add(1, ordering: .releasing)
        }
    }

    var stopRequested: Bool { stopFlag.load(ordering: .acquiring) }
    func requestStop() { stopFlag.store(true, ordering: .releasing) }

    static func format(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: date)
    }

    /// The `INFO persistence` fields.
    func infoFields(now: Date = Date()) -> [(String, String)] {
        let state = snapshot
        return [
            ("storage_degraded", state.isDegraded ? "1" : "0"),
            ("storage_degraded_since", state.degradedSince.map(Self.format) ?? ""),
            ("storage_degraded_seconds", state.degradedSince.map { String(Int(now.timeIntervalSince($0))) } ?? "0"),
            ("storage_last_error", String((state.lastError ?? "").map { $0 == "\r" || $0 == "\n" ? " " : $0 })),
            ("storage_commit_retries", String(state.retries)),
        ]
    }
}
