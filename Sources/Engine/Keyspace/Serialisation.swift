import CRDT
import Synchronization

/// Runs work off the engine thread: the shell's worker (the daemon's serialisation queue). `nil` where it
/// is asked for means inline, in the step (tests and the simulation, which stay deterministic).
public typealias BackgroundRunner = @Sendable (@escaping @Sendable () -> Void) -> Void

/// A large object serialised off the engine thread from a copy-on-write copy taken in the step that asked
/// for it. Taking the copy costs a retain; the object's next write on the engine thread copies the
/// storage it changes once (O(object) in memory copies, far less than serialising it), and the
/// serialisation itself (a second of CPU for a million members) runs on the worker. The engine polls
/// `bytes` at the end of its steps; ticks (every 10 ms) keep polling while no client writes.
final class PendingSerialisation: Sendable {
    private let result = Mutex<Bytes?>(nil)

    /// Serialises `object` with `background`, or at once when there is none.
    init(_ object: KeyObject, background: BackgroundRunner?) {
        guard let background else {
            result.withLock { $0 = object.serialized() }
            return
        }
        background { [self] in
            let bytes = object.serialized()
            result.withLock { $0 = bytes }
        }
    }

    /// The serialised object, once the worker has finished.
    var bytes: Bytes? { result.withLock { $0 } }
}

/// A large state a peer sent, decoded off the engine thread (1.4 s of CPU for a million members). The
/// engine polls `state` at the end of its steps and joins what is ready, in arrival order.
final class PendingDecode: Sendable {
    enum Outcome: Sendable {
        case decoded(KeyObject)
        case malformed
    }

    private let outcome = Mutex<Outcome?>(nil)

    /// Decodes `bytes` with `background`, or at once when there is none.
    init(_ bytes: Bytes, limits: DecodingLimits, background: BackgroundRunner?) {
        guard let background else {
            outcome.withLock { $0 = Self.decode(bytes, limits) }
            return
        }
        background { [self] in
            let decoded = Self.decode(bytes, limits)
            outcome.withLock { $0 = decoded }
        }
    }

    private static func decode(_ bytes: Bytes, _ limits: DecodingLimits) -> Outcome {
        guard let state = try? KeyObject(serialized: bytes, limits: limits) else { return .malformed }
        return .decoded(state)
    }

    /// The outcome, once the worker has finished; taken once (the decoded object leaves the box).
    func take() -> Outcome? { outcome.withLock { value in defer { if value != nil { value = nil } }; return value } }
}
