/// `SORT key [BY pattern] [LIMIT offset count] [GET pattern ...] [ASC|DESC] [ALPHA] [STORE destination]`
/// and `SORT_RO` (without `STORE`), after the arguments were checked.
public struct SortQuery: Sendable, Equatable {
    public var key: Bytes
    /// A pattern whose first `*` is replaced by the element, naming a string key or, with `->field`,
    /// a hash field; `nosort` (a pattern without `*`) keeps the collection's order.
    public var by: Bytes?
    public var limit: (offset: Int64, count: Int64)?
    /// Patterns as `by`, and `#` for the element itself.
    public var get: [Bytes] = []
    public var descending = false
    public var alpha = false
    public var store: Bytes?

    public static func == (lhs: SortQuery, rhs: SortQuery) -> Bool {
        lhs.key == rhs.key && lhs.by == rhs.by && lhs.limit?.offset == rhs.limit?.offset && lhs.limit?.count == rhs.limit?.count
            && lhs.get == rhs.get && lhs.descending == rhs.descending && lhs.alpha == rhs.alpha && lhs.store == rhs.store
    }
}

extension CommandParser {
    static func parseSort(_ name: String, _ a: inout ArgumentCursor) throws(CommandError) -> SortQuery {
        var query = SortQuery(key: a[1])
        var i = 2
        while i < a.count {
            switch a.upper(i) {
            case "ASC": query.descending = false
            case "DESC": query.descending = true
            case "ALPHA": query.alpha = true
            case "LIMIT" where i + 2 < a.count:
                query.limit = (try a.integer(i + 1), try a.integer(i + 2))
                i += 2
            case "BY" where i + 1 < a.count:
                query.by = a[i + 1]
                i += 1
            case "GET" where i + 1 < a.count:
                query.get.append(a[i + 1])
                i += 1
            case "STORE" where i + 1 < a.count && name == "SORT":
                query.store = a[i + 1]
                i += 1
            default:
                throw CommandError.syntax
            }
            i += 1
        }
        return query
    }
}
