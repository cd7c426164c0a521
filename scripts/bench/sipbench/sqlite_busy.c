/*
 * LD_PRELOAD shim for Kamailio's db_sqlite in scripts/bench/sipproxy: every SQLite
 * connection it opens waits up to BUSY_MS for a lock and commits with synchronous=NORMAL,
 * as our proxy's connections do (ngnpro.models.database: sqlite3 timeout 30 s, WAL,
 * synchronous=NORMAL; the bench puts Kamailio's database file in WAL mode itself).
 *
 * Why: db_sqlite (Kamailio 5.6) sets no busy timeout, so with 4 worker processes a write
 * that meets another process's lock fails at once ("database is locked"); a failed commit
 * can leave its statement holding the lock, after which every write fails -- usrloc in
 * write-through mode then refuses registrations even at 8/s.  With the same busy timeout as
 * ours, Kamailio waits for the lock as our proxy does, and both do the same work.  And
 * SQLite's default in WAL mode (synchronous=FULL) would have Kamailio sync the log at every
 * commit where ours does not: the same setting for both.
 *
 * Built by the bench with: gcc -shared -fPIC -O2 -o sqlite_busy.so sqlite_busy.c
 *   /usr/lib/<arch>/libsqlite3.so.0 -ldl   (linked to the library db_sqlite uses, so
 * that it is loaded at start and the real sqlite3_open_v2 is found behind this one).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>

#ifndef BUSY_MS
#define BUSY_MS 30000
#endif

typedef struct sqlite3 sqlite3;
int sqlite3_busy_timeout(sqlite3 *db, int ms);
int sqlite3_exec(sqlite3 *db, const char *sql, void *callback, void *arg, char **errmsg);

int sqlite3_open_v2(const char *filename, sqlite3 **db, int flags, const char *vfs)
{
    static int (*real)(const char *, sqlite3 **, int, const char *);
    if (real == NULL)
        real = (int (*)(const char *, sqlite3 **, int, const char *))dlsym(RTLD_NEXT, "sqlite3_open_v2");
    if (real == NULL)
        return 1; /* SQLITE_ERROR */
    int rc = real(filename, db, flags, vfs);
    if (rc == 0 && db != NULL && *db != NULL) {
        sqlite3_busy_timeout(*db, BUSY_MS);
        sqlite3_exec(*db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
    }
    return rc;
}
