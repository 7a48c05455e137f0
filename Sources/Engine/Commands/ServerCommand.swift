/// Connection and server commands added with issue 16's second half (`CLIENT KILL`, `RESET`, `ROLE`,
/// `LASTSAVE`, `LOLWUT`, `MEMORY STATS`, ...), after their arguments were checked.
public enum ServerCommand: Sendable, Equatable {
    /// `CLIENT KILL addr` (`legacy`: answers `+OK`) or `CLIENT KILL [ID id] [ADDR a] [LADDR a] [USER u] [SKIPME yes|no]`.
    case clientKill(ClientFilter, legacy: Bool)
    /// `CLIENT NO-EVICT ON|OFF`: crdtd never evicts, so there is nothing to exempt.
    case clientNoEvict
    case clientGetRedirect
    case clientTrackingInfo
    /// `CLIENT UNBLOCK id`: no client ever blocks (blocking commands are refused).
    case clientUnblock
    case reset
    case role
    case lastSave
    case lolwut
    case memoryStats
    case memoryMallocStats

    var isWrite: Bool { false }
}

/// Which clients `CLIENT KILL` closes; every given condition must hold.
public struct ClientFilter: Sendable, Equatable {
    public var id: UInt64?
    public var address: String?
    public var localAddress: String?
    public var user: String?
    public var skipMe = true
}

extension CommandParser {
    static let serverCommandNames: Set<String> = ["RESET", "ROLE", "LASTSAVE", "LOLWUT"]

    static func parseServer(_ name: String, _ a: inout ArgumentCursor) throws(CommandError) -> ServerCommand {
        switch name {
        case "RESET":
            try a.arity(exactly: 1)
            return .reset
        case "ROLE":
            try a.arity(exactly: 1)
            return .role
        case "LASTSAVE":
            try a.arity(exactly: 1)
            return .lastSave
        case "LOLWUT":
            return .lolwut
        default:
            throw CommandError("ERR internal error: '\(name.lowercased())' has no server parser")
        }
    }

    /// `CLIENT` subcommands beyond `SETNAME`, `GETNAME`, `ID`, `INFO`, `LIST`, `SETINFO`.
    static func parseClientMore(_ a: inout ArgumentCursor) throws(CommandError) -> ServerCommand {
        switch a.upper(1) {
        case "KILL":
            try a.arity(min: 3)
            if a.count == 3 {
                var filter = ClientFilter(address: a.string(2))
                filter.skipMe = false
                return .clientKill(filter, legacy: true)
            }
            guard a.count % 2 == 0 else { throw CommandError.syntax }
            var filter = ClientFilter()
            for i in stride(from: 2, to: a.count, by: 2) {
                let value = a.string(i + 1)
                switch a.upper(i) {
                case "ID":
                    guard let id = UInt64(value), id > 0 else { throw CommandError("ERR client-id should be greater than 0") }
                    filter.id = id
                case "ADDR": filter.address = value
                case "LADDR": filter.localAddress = value
                case "USER": filter.user = value
                case "SKIPME":
                    switch value.lowercased() {
                    case "yes": filter.skipMe = true
                    case "no": filter.skipMe = false
                    default: throw CommandError.syntax
                    }
                case "TYPE":
                    guard ["normal", "master", "replica", "slave", "pubsub"].contains(value.lowercased()) else {
                        throw CommandError("ERR Unknown client type '\(value)'")
                    }
                    // Every crdtd client is a normal one.
                    if value.lowercased() != "normal" { filter.id = 0 }
                default: throw CommandError.syntax
                }
            }
            return .clientKill(filter, legacy: false)
        case "NO-EVICT":
            try a.arity(exactly: 3)
            guard ["ON", "OFF"].contains(a.upper(2)) else { throw CommandError.syntax }
            return .clientNoEvict
        case "GETREDIR":
            try a.arity(exactly: 2)
            return .clientGetRedirect
        case "TRACKINGINFO":
            try a.arity(exactly: 2)
            return .clientTrackingInfo
        case "UNBLOCK":
            try a.arity(min: 3, max: 4)
            guard UInt64(a.string(2)) != nil else { throw CommandError.notAnInteger }
            guard a.count == 3 || ["TIMEOUT", "ERROR"].contains(a.upper(3)) else {
                throw CommandError("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR")
            }
            return .clientUnblock
        case "PAUSE", "UNPAUSE":
            throw CommandError("ERR CLIENT \(a.upper(1)) is not served: pausing one node's clients does not pause the others, "
                + "and no failover needs it since every crdtd node accepts writes")
        case "TRACKING", "CACHING":
            throw CommandError("ERR CLIENT \(a.upper(1)) is not served: client-side caching invalidation is not built; "
                + "read keys again instead of caching them")
        case "REPLY":
            throw CommandError("ERR CLIENT REPLY is not served: every command is answered")
        default:
            throw CommandError("ERR unknown subcommand '\(a.string(1))'. Try CLIENT SETNAME, GETNAME, ID, INFO, LIST, KILL, "
                + "NO-EVICT, GETREDIR, TRACKINGINFO or UNBLOCK.")
        }
    }

    /// `MEMORY` subcommands beyond `USAGE`.
    static func parseMemoryMore(_ a: inout ArgumentCursor) throws(CommandError) -> ServerCommand {
        switch a.upper(1) {
        case "STATS":
            try a.arity(exactly: 2)
            return .memoryStats
        case "MALLOC-STATS":
            try a.arity(exactly: 2)
            return .memoryMallocStats
        default:
            throw CommandError("ERR unknown subcommand '\(a.string(1))'. Try MEMORY USAGE, STATS or MALLOC-STATS.")
        }
    }
}
