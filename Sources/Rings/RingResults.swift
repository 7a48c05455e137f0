/// The outcome of offering one element to a ring.
///
/// A ring never grows and never drops silently: when it cannot take the element it hands it back, and the
/// caller decides whether to reject the request, retry later or shed the element.
public enum PushResult<Element> {
    /// The ring took the element; the consumer will receive it.
    case pushed
    /// The ring is full; here is the element back.
    case full(Element)
    /// The ring is closed and takes nothing more; here is the element back.
    case closed(Element)

    /// Whether the ring took the element.
    @inlinable
    public var wasPushed: Bool {
        if case .pushed = self { return true }
        return false
    }
}

extension PushResult: Sendable where Element: Sendable {}

/// The outcome of offering a batch of elements to a ring.
public enum BatchPushResult: Hashable, Sendable {
    /// The ring took this many elements from the front of the batch (zero when it was full); the rest are
    /// still in the caller's array.
    case pushed(Int)
    /// The ring is closed and took nothing; every element is still in the caller's array.
    case closed
}

/// The outcome of taking one element from a ring.
public enum PopResult<Element> {
    /// The oldest element in the ring.
    case element(Element)
    /// Nothing to take right now; producers may still push.
    case empty
    /// The ring is closed and every element it accepted has been taken: nothing more will ever arrive.
    case closed

    /// The element, if there was one.
    @inlinable
    public var element: Element? {
        if case .element(let element) = self { return element }
        return nil
    }
}

extension PopResult: Sendable where Element: Sendable {}
