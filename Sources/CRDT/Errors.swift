/// Why a mutator refused to run. The state is unchanged when one of these is thrown.
public enum CRDTMutationError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The result would not fit the counter's integer range; the operation was not applied.
    case overflow(operation: String)
    /// A bounded counter replica tried to spend more rights than it holds. Obtain rights with a
    /// transfer from a replica that has them (or increment), then retry.
    case insufficientRights(requested: UInt64, available: UInt64)
    /// A bounded counter replica tried to transfer rights to itself, which would mean nothing.
    case transferToSelf

    public var description: String {
        switch self {
        case .overflow(let operation):
            return "\(operation) would overflow the counter's 64-bit range; nothing was changed"
        case .insufficientRights(let requested, let available):
            return "needs \(requested) rights but this replica holds \(available); "
                + "ask a replica with rights to transfer some, then retry"
        case .transferToSelf:
            return "a replica cannot transfer rights to itself; name another replica"
        }
    }
}
