import RESP
import Wire

/// How long writes may wait for the disk before the engine refuses more of them.
public struct CommitWaitSettings: Sendable {
    /// The shell reports released steps (`EngineInput.released`). Without it every step counts as
    /// released when it ends, as in a shell that commits synchronously (the simulation).
    public var reportsReleases = false
    /// Once the oldest step still waiting for the disk is this old, writes get `-BUSY`: the disk is
    /// stalled, and queueing more writes would only make more clients wait.
    public var stalledCommitMilliseconds: UInt64 = 1000
    /// Local writes waiting for the disk past which writes get `-BUSY` at once.
    public var maxWritesWaiting = 65_536
    /// Bytes (records, replies and frames) waiting for the disk past which writes get `-BUSY` and
    /// peer data frames are dropped: what a stuck disk may hold in memory.
    public var maxBytesWaiting = 64 << 20
    public init() {}
}

/// What the engine knows of the way its outputs take to the disk: which steps are released, which keys
/// have local writes that are not, and how much waits. It decides which replies may leave before the
/// disk catches up, and when writes must be refused.
struct CommitTracker {
    /// The step being built; `Engine.flush(into:)` ends it.
    var step: UInt64 = 1
    /// Every step through this one was committed and its effects performed.
    var released: UInt64 = 0
    var condition: StorageCondition = .healthy
    /// Keys with local writes in steps not released yet, with the last such step.
    private(set) var dirty: [KeyName: UInt64] = [:]
    private var dirtyOrder = FIFO<(step: UInt64, key: Bytes)>()
    /// Steps not released yet that hold something for the disk, oldest first.
    private var waiting = FIFO<Waiting>()
    private(set) var writesWaiting = 0
    private(set) var bytesWaiting = 0
    private var writesThisStep = 0
    /// Milliseconds the engine has been running, from its ticks: a gap between two ticks counts at most
    /// `maxTickGap`, so a process that was paused (SIGSTOP, a VM migration) or starved of CPU does not
    /// take the time it did not run for a disk that did not commit.
    private(set) var runningTime: UInt64 = 0
    private var lastTick: UInt64?
    static let maxTickGap: UInt64 = 100

    struct Waiting {
        var step: UInt64
        var writes: Int
        var bytes: Int
        var endedAt: UInt64
    }

    /// A local write to `key` in the current step.
    mutating func wrote(_ key: Bytes) {
        dirty[KeyName(key)] = step
        dirtyOrder.append((step, key))
        writesThisStep += 1
    }

    mutating func ticked(_ now: UInt64) {
        if let lastTick, now > lastTick { runningTime += min(now - lastTick, Self.maxTickGap) }
        lastTick = max(lastTick ?? now, now)
    }

    /// The current step ended with `output`.
    mutating func end(_ output: inout EngineOutput, settings: CommitWaitSettings) {
        let now = runningTime
        output.step = step
        let bytes = output.bytesForTheDisk
        if writesThisStep > 0 || bytes > 0 {
            waiting.append(Waiting(step: step, writes: writesThisStep, bytes: bytes, endedAt: now))
            writesWaiting += writesThisStep
            bytesWaiting += bytes
        }
        writesThisStep = 0
        if !settings.reportsReleases { release(through: step) }
        step += 1
    }

    mutating func release(through step: UInt64) {
        guard step > released else { return }
        released = step
        while let first = waiting.first, first.step <= step {
            writesWaiting -= first.writes
            bytesWaiting -= first.bytes
            waiting.removeFirst()
        }
        while let first = dirtyOrder.first, first.step <= step {
            let name = KeyName(first.key)
            if let index = dirty.index(forKey: name), dirty.values[index] == first.step { dirty.remove(at: index) }
            dirtyOrder.removeFirst()
        }
    }

    /// How long the oldest step still waiting for the disk has waited, in running time.
    var oldestWait: UInt64 {
        waiting.first.map { runningTime &- $0.endedAt } ?? 0
    }

    /// Why writes are refused now, if they are: the reply, without the leading `-`.
    func refusal(settings: CommitWaitSettings) -> String? {
        if case .degraded(let fault) = condition {
            return "MISCONF crdtd cannot write to its data directory \(fault.directory): \(fault.cause) since \(fault.since); "
                + "writes are refused until space returns, reads still answer"
        }
        let wait = oldestWait
        guard wait >= settings.stalledCommitMilliseconds || writesWaiting >= settings.maxWritesWaiting
                || bytesWaiting >= settings.maxBytesWaiting else { return nil }
        // Bytes count every record (replication and collection too), writes only clients' writes: a
        // stalled disk can show 0 writes and some bytes.
        return "BUSY crdtd's disk is behind: \(writesWaiting) writes and \(bytesWaiting) bytes of records (peers' and collection's included) are waiting to be committed, "
            + "the oldest for \(wait) ms; this command was not run, retry later"
    }
}

extension Engine {
    /// Ends the current step (from `flush(into:)`): stamps the output and counts what waits for the disk.
    mutating func endStep(into output: inout EngineOutput) {
        commits.end(&output, settings: configuration.commitWait)
    }

    mutating func storageInput(_ input: EngineInput) {
        switch input {
        case .released(let step): commits.release(through: step)
        case .storage(let condition): commits.condition = condition
        default: break
        }
    }

    /// Why writes are refused now, if they are (a full disk, or one that stopped committing).
    var writeRefusal: String? { commits.refusal(settings: configuration.commitWait) }

    /// Why `command` is refused now, if it is: a write while the disk is full or stalled, or a read that
    /// would have to wait behind such a disk for a key's held write. A refused read answers at once
    /// instead, so that clients retrying reads cannot pile up replies behind a disk that does not move.
    /// A read of a client whose earlier replies wait is not refused: it keeps its place in line.
    func refusal(of command: Command, from client: ClientID) -> String? {
        if command.isWrite, let decommissioned = decommissionedRefusal { return decommissioned }
        guard let refusal = writeRefusal else { return nil }
        if command.isWrite { return refusal }
        guard case .notARead = command.reveals else {
            let nothingHeld = (sessions[client]?.heldThrough ?? 0) <= commits.released
            guard nothingHeld && !revealsOnlyDurableState(command) else { return nil }
            return refusal + "; this read touches a key whose latest write is waiting for the disk"
        }
        return nil
    }

    /// Whether the reply to `command` may leave before earlier steps are durable: it must reveal no
    /// local write that is not. Replies from peers' deltas may show (they are durable at their origin).
    func revealsOnlyDurableState(_ command: Command) -> Bool {
        switch command.reveals {
        case .nothing: true
        case .keys(let keys): commits.dirty.isEmpty || keys.allSatisfy { commits.dirty[KeyName($0)] == nil }
        case .keyspace: commits.dirty.isEmpty
        case .notARead: false
        }
    }

    /// Appends a reply: to the immediate effects when `early` and nothing of this client waits for the
    /// disk, else behind this step's commit. Returns whether it went early.
    @discardableResult
    mutating func reply(_ value: RESPReply, to client: ClientID, early: Bool = false, into output: inout EngineOutput) -> Bool {
        deliver([value], to: client, early: early, push: false, into: &output)
    }

    /// One reply made of several RESP frames (`SUBSCRIBE a b` confirms each channel in a frame of its own).
    @discardableResult
    mutating func reply(frames: [RESPReply], to client: ClientID, early: Bool, into output: inout EngineOutput) -> Bool {
        deliver(frames, to: client, early: early, push: false, into: &output)
    }

    /// A message no request asked for (`Effect.push`): a published message or a keyspace notification.
    /// It keeps its place among the client's replies by the same rule.
    mutating func push(_ value: RESPReply, to client: ClientID, early: Bool, into output: inout EngineOutput) {
        _ = deliver([value], to: client, early: early, push: true, into: &output)
    }

    private mutating func deliver(_ frames: [RESPReply], to client: ClientID, early: Bool, push: Bool,
                                  into output: inout EngineOutput) -> Bool {
        // One lookup of the session, read and updated in place (its getter would copy it).
        guard let index = sessions.index(forKey: client) else {
            if push { return false }
            let effect = Effect.reply(client, Self.encode(frames, .resp2))
            if early { output.immediate.append(effect); return true }
            output.effects.append(effect)
            return false
        }
        return Self.deliver(frames, to: client, session: &sessions.values[index], early: early, push: push,
                            commits: commits, into: &output)
    }

    private static func encode(_ frames: [RESPReply], _ version: RESPVersion) -> Bytes {
        if frames.count == 1 { return frames[0].encoded(protocol: version) }
        var bytes: Bytes = []
        for frame in frames { frame.encode(protocol: version, into: &bytes) }
        return bytes
    }

    private static func deliver(_ frames: [RESPReply], to client: ClientID, session: inout Session, early: Bool, push: Bool,
                                commits: CommitTracker, into output: inout EngineOutput) -> Bool {
        let bytes = encode(frames, session.protocolVersion)
        let effect = push ? Effect.push(client, bytes) : Effect.reply(client, bytes)
        return place(effect, session: &session, early: early, commits: commits, into: &output)
    }

    /// `reply`, for a reply built off the engine thread: the same ordering rules.
    @discardableResult
    mutating func reply(deferred: DeferredReply, to client: ClientID, early: Bool, into output: inout EngineOutput) -> Bool {
        let effect = Effect.deferredReply(client, deferred)
        guard let index = sessions.index(forKey: client) else {
            if early { output.immediate.append(effect); return true }
            output.effects.append(effect)
            return false
        }
        return Self.place(effect, session: &sessions.values[index], early: early, commits: commits, into: &output)
    }

    private static func place(_ effect: Effect, session: inout Session, early: Bool,
                              commits: CommitTracker, into output: inout EngineOutput) -> Bool {
        if early && session.heldThrough <= commits.released {
            output.immediate.append(effect)
            return true
        }
        output.effects.append(effect)
        session.heldThrough = commits.step
        return false
    }
}

/// What a command's reply reveals of the keyspace.
enum RevealedState {
    /// Nothing stored: connection state, statistics, membership.
    case nothing
    /// These keys' values.
    case keys([Bytes])
    /// Which keys exist, or a digest of all of them.
    case keyspace
    /// A write or an administrative command: its reply always follows its step's commit.
    case notARead
}

extension Command {
    var reveals: RevealedState {
        switch self {
        case .ping, .echo, .hello, .clientSetName, .clientGetName, .clientID, .command, .configGet, .quit, .info,
             .select, .clock, .peers, .stability, .configSetKeyspaceEvents, .pubSub, .wait:
            return .nothing
        case .get(let key), .sMembers(let key), .sIsMember(let key, _), .sCard(let key), .hGet(let key, _),
             .hGetAll(let key), .hLen(let key), .boundedGet(let key), .boundedRights(let key), .type(let key):
            return .keys([key])
        case .exists(let keys):
            return .keys(keys)
        case .digest(let key):
            return key.map { .keys([$0]) } ?? .keyspace
        case .keys, .scan, .dbSize:
            return .keyspace
        case .shutdown, .partition, .heal, .incrBy, .set, .sAdd, .sRem, .hSet, .hDel, .boundedIncrBy, .boundedDecrBy,
             .boundedTransfer, .del:
            return .notARead
        default:
            // Every other command (the Redis data model's reads and writes) answers after its step's
            // commit: never early, so never revealing a write the disk has not taken.
            return .notARead
        }
    }
}

extension EngineOutput {
    /// What of this output waits in memory for the disk: records, and effects released after the commit.
    var bytesForTheDisk: Int {
        var total = 0
        for record in records {
            switch record {
            case .delta(let key, let bytes), .snapshot(let key, let bytes), .snapshotPart(let key, let bytes):
                total += key.count + bytes.count
            case .snapshotBegin(let key), .snapshotSeal(let key), .remove(let key): total += key.count
            case .meta(let name, let value): total += name.utf8.count + value.count
            }
        }
        for effect in effects {
            switch effect {
            case .reply(_, let bytes), .push(_, let bytes), .send(let bytes, _, _): total += bytes.count
            case .closeClient, .shutdown, .deferredReply: break
            }
        }
        return total
    }
}

/// A queue that pops from the front in O(1), compacting now and then.
struct FIFO<Element> {
    private var elements: [Element] = []
    private var head = 0

    var first: Element? { head < elements.count ? elements[head] : nil }

    mutating func append(_ element: Element) { elements.append(element) }

    mutating func removeFirst() {
        head += 1
        if head == elements.count {
            elements.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 64 && head * 2 > elements.count {
            elements.removeFirst(head)
            head = 0
        }
    }
}
