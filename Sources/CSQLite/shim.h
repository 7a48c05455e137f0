#ifndef CRDTD_CSQLITE_SHIM_H
#define CRDTD_CSQLITE_SHIM_H
#include <sqlite3.h>

// SQLITE_TRANSIENT is a macro Swift cannot import.
static inline sqlite3_destructor_type crdtd_sqlite_transient(void) { return SQLITE_TRANSIENT; }
#endif
