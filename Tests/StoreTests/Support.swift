import CSQLite
import Glibc
import Logging
import Testing
@testable import Store

/// A fresh directory under /tmp, removed (with its files) when the value is released.
final class TemporaryDirectory {
    let path: String

    init() {
        var template = Array("/tmp/crdtd-store-test-XXXXXX".utf8CString)
        path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    }

    func file(_ name: String) -> String { path + "/" + name }

    deinit {
        if let directory = opendir(path) {
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if name != "." && name != ".." { unlink(file(name)) }
            }
            closedir(directory)
        }
        rmdir(path)
    }
}

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

func openStore(_ path: String, _ options: StoreOptions = StoreOptions(synchronous: .normal)) throws -> Store {
    try Store(path: path, options: options)
}

/// The error `body` throws, or nil if it throws none.
func storeError(_ body: () throws -> Void) -> StoreError? {
    do {
        try body()
        return nil
    } catch let error as StoreError {
        return error
    } catch {
        Issue.record("expected a StoreError, got \(error)")
        return nil
    }
}

/// Runs SQL on a database file with a raw SQLite connection, bypassing the store.
func rawSQL(_ path: String, _ sql: String) {
    var database: OpaquePointer?
    #expect(sqlite3_open(path, &database) == SQLITE_OK)
    var message: UnsafeMutablePointer<CChar>?
    let status = sqlite3_exec(database, sql, nil, nil, &message)
    #expect(status == SQLITE_OK, "\(sql): \(message.map { String(cString: $0) } ?? "")")
    sqlite3_free(message)
    sqlite3_close(database)
}

/// A file's whole contents.
func contents(_ path: String) -> [UInt8] {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return [] }
    defer { close(fd) }
    var result: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard count > 0 else { return result }
        result += chunk[..<count]
    }
}

/// Writes `bytes` into a file at `offset`, in place.
func overwrite(_ path: String, at offset: Int, with bytes: [UInt8]) {
    let fd = open(path, O_WRONLY)
    precondition(fd >= 0)
    defer { close(fd) }
    let written = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) }
    precondition(written == bytes.count)
}

func writeFile(_ path: String, _ bytes: [UInt8]) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    precondition(fd >= 0)
    defer { close(fd) }
    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
}
