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
