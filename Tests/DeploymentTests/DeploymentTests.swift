import Foundation
import Testing
import Yams

/// The deployment examples must keep working as the daemon changes: every flag they pass must exist,
/// and every name they refer to (secrets, keys, volumes, ports, the headless service) must be defined.
@Suite struct DeploymentTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let deploy = root.appendingPathComponent("examples/deploy")
    static let binaries = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()

    /// Runs a program; returns its exit status and everything it printed.
    static func run(_ path: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// The long options a command accepts, read from its --help.
    static func options(_ binary: String, _ subcommand: [String]) throws -> Set<String> {
        let help = try run(binaries.appendingPathComponent(binary).path, subcommand + ["--help"]).output
        let pattern = try NSRegularExpression(pattern: "--[a-z][a-z0-9-]*")
        let matches = pattern.matches(in: help, range: NSRange(help.startIndex..., in: help))
        return Set(matches.compactMap { Range($0.range, in: help).map { String(help[$0]) } })
    }

    /// `--name=value` or `--name value` words: the option names.
    static func flags(in words: [String]) -> [String] {
        words.filter { $0.hasPrefix("--") }.map { String($0.split(separator: "=", maxSplits: 1)[0]) }
    }

    // MARK: systemd

    func unit() throws -> (text: String, service: [String: [String]]) {
        let text = try String(contentsOf: Self.deploy.appendingPathComponent("systemd/crdtd.service"), encoding: .utf8)
        var section = ""
        var service: [String: [String]] = [:]
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("[") { section = line; continue }
            guard section == "[Service]", let equals = line.firstIndex(of: "=") else { continue }
            service[String(line[..<equals]), default: []].append(String(line[line.index(after: equals)...]))
        }
        return (text, service)
    }

    @Test func theSystemdUnitIsHardenedAndPassesOnlyKnownFlags() throws {
        let (_, service) = try unit()
        #expect(service["DynamicUser"] == ["yes"])
        #expect(service["StateDirectory"] == ["crdtd"])
        #expect(service["NoNewPrivileges"] == ["yes"])
        #expect(service["Restart"] == ["on-failure"])
        #expect(service["ProtectSystem"] == ["strict"])
        #expect(service["KillSignal"] == ["SIGTERM"], "SIGTERM is crdtd's graceful shutdown")
        let exec = try #require(service["ExecStart"]?.first).split(separator: " ").map(String.init)
        #expect(exec.first == "/usr/local/bin/crdtd")
        let known = try Self.options("crdtd", ["serve"])
        for flag in Self.flags(in: exec) { #expect(known.contains(flag), "crdtd serve has no \(flag)") }
        // Each credential the command line reads is loaded.
        let credentials = Set((service["LoadCredential"] ?? []).map { String($0.split(separator: ":")[0]) })
        for word in exec where word.contains("${CREDENTIALS_DIRECTORY}/") {
            let name = String(word.split(separator: "/").last!)
            #expect(credentials.contains(name), "\(name) is read but not loaded with LoadCredential")
        }
    }

    static let analyze = "/usr/bin/systemd-analyze"

    /// systemd's own checks, where systemd-analyze is installed (Debian's systemd package, on this
    /// machine kind); without it the test above still checks the unit's content.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: DeploymentTests.analyze)))
    func systemdAnalyzeAcceptsTheUnitAndRatesItsExposureLow() throws {
        let analyze = Self.analyze
        let (text, _) = try unit()
        // verify also checks that the binary exists: point the copy at the one just built.
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("crdtd-\(UUID().uuidString).service")
        try text.replacingOccurrences(of: "/usr/local/bin/crdtd", with: Self.binaries.appendingPathComponent("crdtd").path)
            .write(to: copy, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: copy) }
        let verify = try Self.run(analyze, ["verify", copy.path])
        #expect(verify.status == 0 && verify.output.isEmpty, "systemd-analyze verify: \(verify.output)")
        let security = try Self.run(analyze, ["security", "--offline=yes", "--no-pager", copy.path])
        let exposure = security.output.split(whereSeparator: \.isNewline).last { $0.contains("Overall exposure level") }
        let score = exposure.flatMap { line in line.split(separator: " ").compactMap { Double($0) }.first }
        #expect(score != nil && score! <= 2.0, "exposure: \(exposure.map(String.init) ?? security.output)")
    }

    // MARK: Kubernetes

    struct Manifests {
        var byKind: [String: [String: [String: Any]]] = [:]

        init(_ files: [URL]) throws {
            for file in files {
                for document in try Yams.load_all(yaml: String(contentsOf: file, encoding: .utf8)) {
                    guard let object = document as? [String: Any], let kind = object["kind"] as? String,
                          let name = (object["metadata"] as? [String: Any])?["name"] as? String else {
                        throw ManifestError("\(file.lastPathComponent): a document without kind or metadata.name")
                    }
                    byKind[kind, default: [:]][name] = object
                }
            }
        }

        func object(_ kind: String, _ name: String) throws -> [String: Any] {
            guard let object = byKind[kind]?[name] else { throw ManifestError("no \(kind) named \(name)") }
            return object
        }
    }

    struct ManifestError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    static func dig(_ value: Any?, _ path: String...) -> Any? {
        var current = value
        for key in path { current = (current as? [String: Any])?[key] }
        return current
    }

    static func list(_ value: Any?) -> [[String: Any]] { (value as? [Any])?.compactMap { $0 as? [String: Any] } ?? [] }

    @Test func theKubernetesManifestsParseAndEveryReferenceResolves() throws {
        let directory = Self.deploy.appendingPathComponent("kubernetes")
        let kustomization = try Yams.load(yaml: String(contentsOf: directory.appendingPathComponent("kustomization.yaml"), encoding: .utf8))
        let resources = (Self.dig(kustomization, "resources") as? [String]) ?? []
        #expect(resources.count == 3)
        let manifests = try Manifests((resources + ["secrets.example.yaml"]).map { directory.appendingPathComponent($0) })

        let set = try manifests.object("StatefulSet", "crdtd")
        let serviceName = try #require(Self.dig(set, "spec", "serviceName") as? String)
        let headless = try manifests.object("Service", serviceName)
        #expect(Self.dig(headless, "spec", "clusterIP") as? String == "None", "seeds need a headless service")
        #expect(Self.dig(headless, "spec", "publishNotReadyAddresses") as? Bool == true, "names must resolve before pods are ready")
        let podLabels = try #require(Self.dig(set, "spec", "template", "metadata", "labels") as? [String: String])
        #expect(Self.dig(set, "spec", "selector", "matchLabels") as? [String: String] == podLabels)
        for service in manifests.byKind["Service"]?.values.map({ $0 }) ?? [] {
            let selector = Self.dig(service, "spec", "selector") as? [String: String] ?? [:]
            #expect(!selector.isEmpty && selector.allSatisfy { podLabels[$0.key] == $0.value }, "a Service selects no pod")
        }
        let budget = try manifests.object("PodDisruptionBudget", "crdtd")
        let budgetLabels = Self.dig(budget, "spec", "selector", "matchLabels") as? [String: String] ?? [:]
        #expect(!budgetLabels.isEmpty && budgetLabels.allSatisfy { podLabels[$0.key] == $0.value })
        #expect(Self.dig(budget, "spec", "maxUnavailable") as? Int == 1)

        let pod = try #require(Self.dig(set, "spec", "template", "spec") as? [String: Any])
        let container = try #require(Self.list(pod["containers"]).first)
        let portNames = Set(Self.list(container["ports"]).compactMap { $0["name"] as? String })
        for service in manifests.byKind["Service"]?.values.map({ $0 }) ?? [] {
            for port in Self.list(Self.dig(service, "spec", "ports")) {
                if let target = port["targetPort"] as? String { #expect(portNames.contains(target), "targetPort \(target)") }
            }
        }
        #expect(portNames.contains(Self.dig(container, "livenessProbe", "tcpSocket", "port") as? String ?? ""))
        #expect(Self.dig(container, "resources", "requests", "cpu") != nil && Self.dig(container, "resources", "requests", "memory") != nil)

        // Volumes: every mount has a volume or a claim template; every secret and key exists.
        let claims = Set(Self.list(Self.dig(set, "spec", "volumeClaimTemplates")).compactMap { Self.dig($0, "metadata", "name") as? String })
        #expect(claims == ["data"])
        var volumes: [String: [String: Any]] = [:]
        for volume in Self.list(pod["volumes"]) { volumes[volume["name"] as? String ?? ""] = volume }
        var mounts: [String: String] = [:]
        for mount in Self.list(container["volumeMounts"]) {
            let name = mount["name"] as? String ?? ""
            #expect(volumes[name] != nil || claims.contains(name), "mount \(name) has no volume")
            mounts[mount["mountPath"] as? String ?? ""] = name
        }
        var filesFromSecrets: [String: String] = [:]
        for (name, volume) in volumes {
            guard let secret = volume["secret"] as? [String: Any] else { continue }
            let secretName = secret["secretName"] as? String ?? ""
            let object = try manifests.object("Secret", secretName)
            let keys = Set(((object["stringData"] as? [String: Any]) ?? (object["data"] as? [String: Any]) ?? [:]).keys)
            for item in Self.list(secret["items"]) {
                let key = item["key"] as? String ?? ""
                #expect(keys.contains(key), "secret \(secretName) has no key \(key)")
                if let path = mounts.first(where: { $0.value == name })?.key, let file = item["path"] as? String {
                    filesFromSecrets[path + "/" + file] = key
                }
            }
        }

        // Arguments: known flags, secret files that are mounted, one seed per replica through the headless service.
        let args = (container["args"] as? [String]) ?? []
        #expect(args.first == "serve")
        let known = try Self.options("crdtd", ["serve"])
        for flag in Self.flags(in: args) { #expect(known.contains(flag), "crdtd serve has no \(flag)") }
        func value(_ flag: String) -> [String] {
            args.filter { $0.hasPrefix(flag + "=") }.map { String($0.dropFirst(flag.count + 1)) }
        }
        for flag in ["--cluster-key-file", "--client-password-file"] {
            let file = try #require(value(flag).first)
            #expect(filesFromSecrets[file] != nil, "\(flag)=\(file) is not a mounted secret file")
        }
        #expect(value("--data-dir").first.map { mounts[$0] } == "data", "the data directory is the claim")
        let replicas = try #require(Self.dig(set, "spec", "replicas") as? Int)
        #expect(value("--seed") == (0..<replicas).map { "crdtd-\($0).\(serviceName).$(POD_NAMESPACE).svc.cluster.local:7946" })
        let peerPort = Self.list(container["ports"]).first { $0["name"] as? String == "peer-udp" }?["containerPort"] as? Int
        #expect(value("--peer-addr") == ["$(POD_IP):\(peerPort ?? 0)"], "peers bind the pod IP they advertise")
        let env = Set(Self.list(container["env"]).compactMap { $0["name"] as? String })
        for variable in ["POD_NAME", "POD_IP", "POD_NAMESPACE"] { #expect(env.contains(variable)) }

        // The readiness probe is `crdtctl ping` with flags it has, reading a mounted password.
        let probe = (Self.dig(container, "readinessProbe", "exec", "command") as? [String]) ?? []
        #expect(probe.prefix(2) == ["/usr/local/bin/crdtctl", "ping"])
        let pingFlags = try Self.options("crdtctl", ["ping"])
        for flag in Self.flags(in: probe) { #expect(pingFlags.contains(flag), "crdtctl ping has no \(flag)") }
        let passwordFile = probe.first { $0.hasPrefix("--password-file=") }.map { String($0.dropFirst("--password-file=".count)) }
        #expect(passwordFile.map { filesFromSecrets[$0] != nil } == true)
    }
}
