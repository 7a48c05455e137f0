// The ceiling for crdtd's durable writes: raw SQLite on the same disk, in the same mode crdtd opens its
// store in (WAL; synchronous FULL or NORMAL), appending rows shaped like crdtd's deltas (a short key
// and a 15-byte counter delta) into the same table, one BEGIN IMMEDIATE ... COMMIT per group of GROUP
// rows, back to back from one thread. Prints "rows_per_second transactions_per_second".
//
// Build: cc -O2 -o sqlite-ceiling sqlite-ceiling.c -lsqlite3
// Usage: sqlite-ceiling DATABASE FULL|NORMAL GROUP SECONDS
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void check(sqlite3 *db, int rc, const char *what) {
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
        fprintf(stderr, "sqlite-ceiling: %s: %s\n", what, sqlite3_errmsg(db));
        exit(1);
    }
}

static void exec(sqlite3 *db, const char *sql) { check(db, sqlite3_exec(db, sql, NULL, NULL, NULL), sql); }

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: sqlite-ceiling DATABASE FULL|NORMAL GROUP SECONDS\n");
        return 2;
    }
    const char *path = argv[1], *sync = argv[2];
    int group = atoi(argv[3]);
    double seconds = atof(argv[4]);
    if ((strcmp(sync, "FULL") != 0 && strcmp(sync, "NORMAL") != 0) || group < 1 || seconds <= 0) {
        fprintf(stderr, "sqlite-ceiling: SYNC must be FULL or NORMAL, GROUP >= 1, SECONDS > 0\n");
        return 2;
    }
    sqlite3 *db;
    check(db, sqlite3_open(path, &db), "open");
    exec(db, "PRAGMA journal_mode=WAL");
    char pragma[64];
    snprintf(pragma, sizeof pragma, "PRAGMA synchronous=%s", sync);
    exec(db, pragma);
    // crdtd's deltas table (Sources/Store/Store.swift, schema version 1).
    exec(db, "CREATE TABLE IF NOT EXISTS deltas (seq INTEGER PRIMARY KEY AUTOINCREMENT, key BLOB NOT NULL, bytes BLOB NOT NULL)");
    sqlite3_stmt *begin, *commit, *insert;
    check(db, sqlite3_prepare_v2(db, "BEGIN IMMEDIATE", -1, &begin, NULL), "prepare");
    check(db, sqlite3_prepare_v2(db, "COMMIT", -1, &commit, NULL), "prepare");
    check(db, sqlite3_prepare_v2(db, "INSERT INTO deltas(key, bytes) VALUES (?1, ?2)", -1, &insert, NULL), "prepare");
    const unsigned char key[] = "persist", delta[15] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    long rows = 0, transactions = 0;
    double start = now(), end = start + seconds;
    while (now() < end) {
        check(db, sqlite3_step(begin), "BEGIN");
        sqlite3_reset(begin);
        for (int i = 0; i < group; i++) {
            sqlite3_bind_blob(insert, 1, key, sizeof key - 1, SQLITE_STATIC);
            sqlite3_bind_blob(insert, 2, delta, sizeof delta, SQLITE_STATIC);
            check(db, sqlite3_step(insert), "INSERT");
            sqlite3_reset(insert);
        }
        check(db, sqlite3_step(commit), "COMMIT");
        sqlite3_reset(commit);
        rows += group;
        transactions++;
    }
    double elapsed = now() - start;
    printf("%.0f %.0f\n", rows / elapsed, transactions / elapsed);
    sqlite3_finalize(begin);
    sqlite3_finalize(commit);
    sqlite3_finalize(insert);
    sqlite3_close(db);
    return 0;
}
