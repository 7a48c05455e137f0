import ArgumentParser
import Foundation
import NodeControl
import RESP
import RESPClient

/// Which node a data command talks to: a node of a local cluster by name, or any node by address.
struct NodeOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Directory of the local cluster that --node names a node of.", valueName: "dir"))
    var dir = "./cluster"
    @Option(help: ArgumentHelp("A node of the local cluster, by name (default: its first node).", valueName: "name"))
    var node: String?
    @Option(name: .customLong("addr"), help: ArgumentHelp("Any crdtd node, instead of a local cluster's.", valueName: "host:port"))
    var address: String?

    func validate() throws {
        if node != nil && address != nil { throw ValidationError("give --node or --addr, not both") }
    }

    /// Sends one command and returns its reply. An unreachable node exits 2, an error reply exits 1, each
    /// with a message naming the node.
    func send(_ arguments: [String]) throws -> RESPReply {
        let (host, port, name) = try target()
        let reply: RESPReply
        do {
            let connection = try RESPConnection(host: host, port: port, timeout: .seconds(5))
            defer { connection.close() }
            reply = try connection.send(arguments)
        } catch {
            let place = name == "\(host):\(port)" ? name : "\(name) (\(host):\(port))"
            FileHandle.standardError.write(Data("crdtctl: cannot reach \(place): \(error.message)\n".utf8))
            throw ExitCode(2)
        }
        if case .error(let message) = reply {
            FileHandle.standardError.write(Data("crdtctl: \(name) refused \(arguments[0]): \(message)\n".utf8))
            throw ExitCode(1)
        }
        return reply
    }

    func target() throws -> (host: String, port: Int, name: String) {
        if let address {
            guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) else {
                throw ValidationError("--addr '\(address)' is not HOST:PORT")
            }
            return (String(address[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]")), port, address)
        }
        let cluster = try LocalCluster.load(from: dir)
        guard let first = cluster.nodes.first else { throw ClusterError("the cluster in \(dir) has no nodes") }
        let chosen = try node.map(cluster.node) ?? first
        try cluster.checkNetworkIsUp()
        return (chosen.address, chosen.clientPort, chosen.name)
    }
}

/// `--json` for read commands.
struct OutputOptions: ParsableArguments {
    @Flag(help: "Print JSON.") var json = false
}

extension RESPReply {
    var integer: Int64? { if case .integer(let value) = self { value } else { nil } }
    var string: String? { if case .bulkString(let bytes) = self { String(decoding: bytes, as: UTF8.self) } else { nil } }
    var strings: [String] {
        switch self {
        case .array(let items), .set(let items): items.map(\.text)
        default: []
        }
    }
}

/// Prints `value` as JSON when asked, else as text.
func emit<T: Encodable>(_ value: T, json: Bool, text: String) throws {
    if json {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        print(String(decoding: try encoder.encode(value), as: UTF8.self))
    } else {
        print(text)
    }
}

struct KeyValue<Value: Encodable>: Encodable {
    var key: String
    var value: Value
}

// MARK: Command shapes
// Most data commands have one of three shapes; each shape is one generic command, and a `DataCommandSpec`
// names the subcommand and the Redis command it sends.

/// One data subcommand of a shape below: its name and help, and the command it sends.
protocol DataCommandSpec {
    static var name: String { get }
    static var abstract: String { get }
    static var redisCommand: String { get }
    /// What `MembersWrite` calls its names in the help (members, fields).
    static var memberName: String { get }
}

extension DataCommandSpec {
    static var memberName: String { "members" }
    static var configuration: CommandConfiguration { CommandConfiguration(commandName: name, abstract: abstract) }
}

/// `KEY [AMOUNT]`: sends `COMMAND KEY AMOUNT` and prints the integer it answers (the new value).
struct AmountWrite<Spec: DataCommandSpec>: ParsableCommand {
    static var configuration: CommandConfiguration { Spec.configuration }
    @OptionGroup var target: NodeOptions
    @Argument var key: String
    @Argument(help: "The amount (default 1).") var by: Int64 = 1
    func run() throws { print(try target.send([Spec.redisCommand, key, String(by)]).integer.map(String.init) ?? "") }
}

/// `KEY NAME...`: sends `COMMAND KEY NAME...` and prints the integer it answers (how many changed).
struct MembersWrite<Spec: DataCommandSpec>: ParsableCommand {
    static var configuration: CommandConfiguration { Spec.configuration }
    @OptionGroup var target: NodeOptions
    @Argument var key: String
    @Argument(help: ArgumentHelp(valueName: Spec.memberName)) var members: [String]
    func run() throws { print(try target.send([Spec.redisCommand, key] + members).integer.map(String.init) ?? "") }
}

/// `KEY`: sends `COMMAND KEY` and prints the integer it answers (0 when absent), or `{"key","value"}`.
struct IntegerRead<Spec: DataCommandSpec>: ParsableCommand {
    static var configuration: CommandConfiguration { Spec.configuration }
    @OptionGroup var target: NodeOptions
    @OptionGroup var output: OutputOptions
    @Argument var key: String
    func run() throws {
        let value = try target.send([Spec.redisCommand, key]).integer ?? 0
        try emit(KeyValue(key: key, value: value), json: output.json, text: String(value))
    }
}

extension CRDTCTL {
    struct Counter: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A PN-counter: incr, decr, get.", subcommands: [AmountWrite<Incr>.self, AmountWrite<Decr>.self, Get.self])

        enum Incr: DataCommandSpec {
            static let name = "incr", redisCommand = "INCRBY", abstract = "Add to a counter; prints the node's new value."
        }

        enum Decr: DataCommandSpec {
            static let name = "decr", redisCommand = "DECRBY", abstract = "Subtract from a counter; prints the node's new value."
        }

        struct Get: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "A counter's value on the node (0 when absent).")
            @OptionGroup var target: NodeOptions
            @OptionGroup var output: OutputOptions
            @Argument var key: String
            func run() throws {
                let value = Int64(try target.send(["GET", key]).string ?? "0") ?? 0
                try emit(KeyValue(key: key, value: value), json: output.json, text: String(value))
            }
        }
    }

    struct SetCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "An add-wins set: add, rm, members, contains, card.",
            subcommands: [MembersWrite<Add>.self, MembersWrite<Rm>.self, Members.self, Contains.self, IntegerRead<Card>.self])

        enum Add: DataCommandSpec {
            static let name = "add", redisCommand = "SADD", abstract = "Add members; prints how many were new."
        }

        enum Rm: DataCommandSpec {
            static let name = "rm", redisCommand = "SREM", abstract = "Remove members; prints how many were present."
        }

        enum Card: DataCommandSpec {
            static let name = "card", redisCommand = "SCARD", abstract = "How many members the set has."
        }

        struct Members: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Every member, sorted, one per line.")
            @OptionGroup var target: NodeOptions
            @OptionGroup var output: OutputOptions
            @Argument var key: String
            func run() throws {
                let members = try target.send(["SMEMBERS", key]).strings.sorted()
                try emit(KeyValue(key: key, value: members), json: output.json, text: members.joined(separator: "\n"))
            }
        }

        struct Contains: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Whether the set holds a member: prints true or false.")
            @OptionGroup var target: NodeOptions
            @OptionGroup var output: OutputOptions
            @Argument var key: String
            @Argument var member: String
            func run() throws {
                let present = try target.send(["SISMEMBER", key, member]).integer == 1
                try emit(KeyValue(key: key, value: present), json: output.json, text: String(present))
            }
        }
    }

    struct Register: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A last-writer-wins register: set, get.", subcommands: [SetValue.self, Get.self])

        struct SetValue: ParsableCommand {
            static let configuration = CommandConfiguration(commandName: "set", abstract: "Write a value.")
            @OptionGroup var target: NodeOptions
            @Argument var key: String
            @Argument var value: String
            func run() throws { print(try target.send(["SET", key, value]).text) }
        }

        struct Get: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Read the value; prints (nil) when absent.")
            @OptionGroup var target: NodeOptions
            @OptionGroup var output: OutputOptions
            @Argument var key: String
            func run() throws {
                let value = try target.send(["GET", key]).string
                try emit(KeyValue(key: key, value: value), json: output.json, text: value ?? "(nil)")
            }
        }
    }

    struct Hash: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A map of registers: set, get, del, all.", subcommands: [SetFields.self, Get.self, MembersWrite<Del>.self, All.self])

        struct SetFields: ParsableCommand {
            static let configuration = CommandConfiguration(commandName: "set", abstract: "Write fields: hash set KEY FIELD VALUE [FIELD VALUE ...]; prints how many were new.")
            @OptionGroup var target: NodeOptions
            @Argument var key: String
            @Argument var fieldsAndValues: [String]
            func validate() throws {
                guard !fieldsAndValues.isEmpty, fieldsAndValues.count % 2 == 0 else {
                    throw ValidationError("give FIELD VALUE pairs")
                }
            }
            func run() throws { print(try target.send(["HSET", key] + fieldsAndValues).integer.map(String.init) ?? "") }
        }

        struct Get: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "One field's value; (nil) when absent.")
            @OptionGroup var target: NodeOptions
            @OptionGroup var output: OutputOptions
            @Argument var key: String
            @Argument var field: String
            func run() throws {
                let value = try target.send(["HGET", key, field]).string
                try emit(KeyValue(key: field, value: value), json: output.json, text: value ?? "(nil)")
            }
        }

        enum Del: DataCommandSpec {
            static let name = "del", redisCommand = "HDEL", abstract = "Remove fields; prints how many were present."
            static let memberName = "fields"
        }

        struct All: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Every field and value, sorted by field, aligned.")
            @OptionGroup var target: NodeOptions
            @OptionGroup var output: OutputOptions
            @Argument var key: String
            func run() throws {
                let reply = try target.send(["HGETALL", key])
                var fields: [String: String] = [:]
                if case .map(let entries) = reply {
                    for entry in entries { fields[entry.key.text] = entry.value.text }
                } else {
                    let flat = reply.strings
                    for i in stride(from: 0, to: flat.count - 1, by: 2) { fields[flat[i]] = flat[i + 1] }
                }
                let rows = fields.sorted { $0.key < $1.key }.map { [$0.key, $0.value] }
                try emit(fields, json: output.json, text: rows.isEmpty ? "" : alignedTable(["FIELD", "VALUE"], rows))
            }
        }
    }

    struct BoundedCounter: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "bcounter",
            abstract: "A bounded counter, never below zero without coordination: incr, decr, get, rights, transfer.",
            discussion: """
                Each node may decrement only by the rights it holds (its increments, plus rights moved to it); \
                a decrement beyond them is refused on that node, even when the value is higher, so no partition \
                can take the counter below zero. Move rights with `bcounter transfer` on a node that has them.
                """,
            subcommands: [AmountWrite<Incr>.self, AmountWrite<Decr>.self, IntegerRead<Get>.self, IntegerRead<Rights>.self, Transfer.self])

        enum Incr: DataCommandSpec {
            static let name = "incr", redisCommand = "CRDT.BINCRBY"
            static let abstract = "Add to the counter (and to this node's rights); prints the node's new value."
        }

        enum Decr: DataCommandSpec {
            static let name = "decr", redisCommand = "CRDT.BDECRBY"
            static let abstract = "Subtract from the counter, within this node's rights; prints the node's new value (exit 1 when the rights do not cover it)."
        }

        enum Get: DataCommandSpec {
            static let name = "get", redisCommand = "CRDT.BGET", abstract = "The counter's value on the node (0 when absent)."
        }

        enum Rights: DataCommandSpec {
            static let name = "rights", redisCommand = "CRDT.BRIGHTS", abstract = "How much this node may still decrement the counter by."
        }

        struct Transfer: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Move rights from this node to another (by node name); prints the counter's value.")
            @OptionGroup var target: NodeOptions
            @Argument var key: String
            @Argument(help: "The node that receives the rights, as CRDT.PEERS names it.") var toNode: String
            @Argument(help: "The amount, positive.") var amount: Int64
            func run() throws {
                print(try target.send(["CRDT.BTRANSFER", key, toNode, String(amount)]).integer.map(String.init) ?? "")
            }
        }
    }

    struct Keys: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Keys matching a glob pattern (default *), one per line.")
        @OptionGroup var target: NodeOptions
        @OptionGroup var output: OutputOptions
        @Argument var pattern = "*"
        func run() throws {
            let keys = try target.send(["KEYS", pattern]).strings.sorted()
            try emit(keys, json: output.json, text: keys.joined(separator: "\n"))
        }
    }

    struct TypeCommand: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "type", abstract: "A key's type (none when absent).")
        @OptionGroup var target: NodeOptions
        @OptionGroup var output: OutputOptions
        @Argument var key: String
        func run() throws {
            let type = try target.send(["TYPE", key]).text
            try emit(KeyValue(key: key, value: type), json: output.json, text: type)
        }
    }

    struct Del: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete keys; prints how many existed.")
        @OptionGroup var target: NodeOptions
        @Argument var keys: [String]
        func run() throws { print(try target.send(["DEL"] + keys).integer.map(String.init) ?? "") }
    }
}
