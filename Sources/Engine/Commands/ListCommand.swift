/// The list commands (`LPUSH`, `LRANGE`, `LMOVE`, ...) after their arguments were checked. One case of
/// `Command` carries them, so the list family lives in its own files.
public enum ListCommand: Sendable, Equatable {
    /// `LPUSH`/`RPUSH` (and the `X` forms, `onlyIfExists`, checked on this node): answers the length.
    case push(key: Bytes, values: [Bytes], head: Bool, onlyIfExists: Bool)
    /// `LPOP`/`RPOP key [count]`.
    case pop(key: Bytes, count: Int?, head: Bool)
    case range(key: Bytes, start: Int64, stop: Int64)
    case length(key: Bytes)
    case index(key: Bytes, index: Int64)
    /// `LREM key count value`: a positive count from the head, a negative one from the tail, 0 all.
    case remove(key: Bytes, count: Int64, value: Bytes)
    case set(key: Bytes, index: Int64, value: Bytes)
    case insert(key: Bytes, before: Bool, pivot: Bytes, value: Bytes)
    /// `LPOS key element [RANK r] [COUNT n] [MAXLEN m]`; `count` nil answers one position.
    case position(key: Bytes, value: Bytes, rank: Int64, count: Int64?, maxLength: Int64)
    case trim(key: Bytes, start: Int64, stop: Int64)
    /// `LMOVE`, `RPOPLPUSH`: a pop then a push, not atomic across nodes.
    case move(source: Bytes, destination: Bytes, fromHead: Bool, toHead: Bool)
    /// `LMPOP numkeys key ... LEFT|RIGHT [COUNT n]`: pops from the first non-empty list.
    case multiPop(keys: [Bytes], head: Bool, count: Int)

    /// Whether the command may change replicated state.
    var isWrite: Bool {
        switch self {
        case .range, .length, .index, .position: false
        default: true
        }
    }
}
