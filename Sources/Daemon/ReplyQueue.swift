/// A client's replies in request order. The engine answers the requests it gets in order; the shell
/// answers some requests itself (`AUTH`, `-NOAUTH`, `-NOPERM`, a backup), at once or later. Each reply
/// is released only once every reply before it was, so a pipelining client reads them in order.
struct ReplyQueue {
    struct Entry {
        /// The command's name for the metrics; nil for a reply no request asked for (a protocol error).
        var name: String?
        /// When the request was parsed (DispatchTime nanoseconds), to time it.
        var started: UInt64
        var fromEngine: Bool
        var reply: [UInt8]?
        /// Messages no request asked for (`Effect.push`) that the engine sent before this entry's reply:
        /// written just before it.
        var pushedBefore: [UInt8] = []
        /// A pushed message standing alone (no engine reply was owed): its bytes count as pushed bytes.
        var isPush = false
    }

    /// A place for a reply the shell gives later.
    struct Ticket: Equatable {
        fileprivate let position: Int
    }

    private var entries: [Entry] = []
    /// First entry not yet released.
    private var head = 0
    /// Where the search for the first engine entry not answered yet starts.
    private var nextEngine = 0
    /// Entries dropped from the front so far: tickets hold absolute positions.
    private var dropped = 0

    /// No reply is owed.
    var isEmpty: Bool { head == entries.count }

    /// A request went to the engine: its reply comes through `engineAnswered`.
    mutating func expectEngine(name: String, started: UInt64) {
        entries.append(Entry(name: name, started: started, fromEngine: true, reply: nil))
    }

    /// The shell answers a request at once.
    mutating func answer(name: String, started: UInt64, reply: [UInt8]) {
        entries.append(Entry(name: name, started: started, fromEngine: false, reply: reply))
    }

    /// The shell will answer a request later, through `fill`.
    mutating func reserve(name: String, started: UInt64) -> Ticket {
        entries.append(Entry(name: name, started: started, fromEngine: false, reply: nil))
        return Ticket(position: dropped + entries.count - 1)
    }

    mutating func fill(_ ticket: Ticket, reply: [UInt8]) {
        let index = ticket.position - dropped
        guard index >= head && index < entries.count, entries[index].reply == nil else { return }
        entries[index].reply = reply
    }

    /// The engine's next reply, for the oldest engine request not answered yet. A reply no request
    /// asked for (the engine's answer to a protocol error) takes its place at the end.
    mutating func engineAnswered(_ reply: [UInt8]) {
        advanceToOwedEngineReply()
        if nextEngine < entries.count {
            entries[nextEngine].reply = reply
            nextEngine += 1
        } else {
            entries.append(Entry(name: nil, started: 0, fromEngine: true, reply: reply))
            nextEngine = entries.count
        }
    }

    /// A message no request asked for (a published message, a keyspace notification). The engine sent
    /// it after its replies to every request it has answered and before its reply to the next one, so
    /// it is written just before that reply; with no engine reply owed, after everything queued.
    /// Returns the bytes of messages now waiting in the queue, for the pub/sub output limit.
    @discardableResult
    mutating func pushed(_ bytes: [UInt8]) -> Int {
        advanceToOwedEngineReply()
        if nextEngine < entries.count {
            entries[nextEngine].pushedBefore.append(contentsOf: bytes)
        } else {
            entries.append(Entry(name: nil, started: 0, fromEngine: false, reply: bytes, isPush: true))
            nextEngine = entries.count
        }
        pushedBytes += bytes.count
        return pushedBytes
    }

    /// Bytes of pushed messages not yet released.
    private(set) var pushedBytes = 0

    /// The engine's next reply will be built later (a large read encoded on a worker thread): the place
    /// of the oldest engine request not answered yet is kept for it, and filled through `fill`.
    mutating func engineAnsweredLater() -> Ticket {
        advanceToOwedEngineReply()
        if nextEngine == entries.count {
            entries.append(Entry(name: nil, started: 0, fromEngine: true, reply: nil))
        }
        // No longer the engine's to answer in order: `engineAnswered` passes over it.
        entries[nextEngine].fromEngine = false
        nextEngine += 1
        return Ticket(position: dropped + nextEngine - 1)
    }

    /// Moves `nextEngine` to the oldest entry still owed a reply by the engine (or the end).
    private mutating func advanceToOwedEngineReply() {
        nextEngine = max(nextEngine, head)
        while nextEngine < entries.count && !(entries[nextEngine].fromEngine && entries[nextEngine].reply == nil) {
            nextEngine += 1
        }
    }

    /// The next reply that may be written, if every one before it was.
    mutating func popReady() -> Entry? {
        guard head < entries.count, entries[head].reply != nil else { return nil }
        // The caller writes `pushedBefore`, then `reply`.
        let entry = entries[head]
        entries[head].reply = nil
        entries[head].pushedBefore = []
        pushedBytes -= entry.pushedBefore.count
        if entry.isPush { pushedBytes -= entry.reply?.count ?? 0 }
        head += 1
        if head > 64 && head * 2 > entries.count {
            entries.removeFirst(head)
            dropped += head
            nextEngine = max(0, nextEngine - head)
            head = 0
        }
        return entry
    }
}
