/// An enable-wins flag: enabling adds a fresh dot, disabling drops the dots seen. A concurrent enable
/// survives a disable because its dot is not in the disabler's context.
///
/// Deltas: `enable` ships one fresh dot (context: it and the dots it supersedes); `disable` ships an
/// empty store with the observed dots as context.
public struct EWFlag: CausalCRDT, Hashable {
    public internal(set) var store: DotSet
    public internal(set) var context: CausalContext

    public init(store: DotSet, context: CausalContext) {
        self.store = store
        self.context = context
    }

    /// Whether the flag is enabled.
    public var isEnabled: Bool { !store.isBottom }

    /// Enables the flag on behalf of `replica` and returns the delta.
    @discardableResult
    public mutating func enable(replica: ReplicaID) -> EWFlag {
        let dot = context.nextDot(for: replica)
        var deltaContext = CausalContext(dots: store.elements)
        deltaContext.insert(dot)
        store = DotSet(dot)
        context.insert(dot)
        return EWFlag(store: DotSet(dot), context: deltaContext)
    }

    /// Disables the flag as far as this replica has seen it and returns the delta.
    @discardableResult
    public mutating func disable() -> EWFlag {
        let delta = EWFlag(store: DotSet(), context: CausalContext(dots: store.elements))
        store = DotSet()
        return delta
    }
}
