/* vivalearning.sqlite: a small binding to libsqlite3 for the sync state store (state.lua).
 *
 * Why our own and not lua-dbi-sqlite3: one system library (libsqlite3, already needed by
 * nothing else) instead of a Debian package per Lua version; exact 64-bit integers both ways;
 * the busy timeout, WAL and transactions under our control; and error messages that name the
 * statement that failed. Written against the Lua 5.1 C API where the APIs differ (see COMPAT),
 * so it builds for Lua 5.1-5.4 and LuaJIT alike.
 *
 *   db = sqlite.open(path [, { busy_ms = n, readonly = bool, create = bool }])  -> db | nil, err
 *   db:exec(sql)                        -> true | nil, err (several statements, no results)
 *   st = db:prepare(sql)                -> statement | nil, err
 *   st:run(...)                         -> number of rows changed | nil, err
 *   st:get(...)                         -> the first row's columns (nothing when none) | nil, err
 *   st:rows(...)                        -> iterator over rows (columns as values; raises on error)
 *   db:close()  st:finalize()           -> idempotent; closing the db finalizes its statements
 *   sqlite.hash(s)                      -> FNV-1a 64 of s, 16 hex digits
 *
 * Ownership: the db object owns the connection and every statement prepared on it (a list);
 * a statement left after its db closed raises when used. One release each, idempotent. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "../luacompat.h"

/* COMPAT: the few calls that differ between Lua 5.1 and 5.4. */
#if LUA_VERSION_NUM >= 503
#define vs_isinteger(L, i) lua_isinteger(L, i)
#else
#define vs_isinteger(L, i) 0
#endif
#if LUA_VERSION_NUM < 502
#define vs_setfuncs(L, f) luaL_register(L, NULL, f)
#define vs_newlib(L, f) (lua_newtable(L), luaL_register(L, NULL, f))
#else
#define vs_setfuncs(L, f) luaL_setfuncs(L, f, 0)
#define vs_newlib(L, f) luaL_newlib(L, f)
#endif

#define DB_MT "vivalearning.sqlite.db"
#define ST_MT "vivalearning.sqlite.stmt"

typedef struct vs_stmt vs_stmt;

typedef struct {
    sqlite3 *db;
    vs_stmt *stmts; /* every live statement prepared on this connection */
} vs_db;

struct vs_stmt {
    sqlite3_stmt *st;
    vs_db *owner; /* NULL once the owner released it */
    vs_stmt *next, *prev;
    char sql[96]; /* the start of the statement, for messages */
};

static void stmt_release(vs_stmt *s) {
    if (s->st) {
        sqlite3_finalize(s->st);
        s->st = NULL;
    }
    if (s->owner) {
        if (s->prev) s->prev->next = s->next;
        else s->owner->stmts = s->next;
        if (s->next) s->next->prev = s->prev;
        s->owner = NULL;
        s->next = s->prev = NULL;
    }
}

static void db_release(vs_db *d) {
    while (d->stmts) stmt_release(d->stmts);
    if (d->db) {
        sqlite3_close(d->db);
        d->db = NULL;
    }
}

static void short_sql(char *dst, size_t n, const char *sql) {
    size_t i = 0;
    while (*sql == ' ' || *sql == '\n' || *sql == '\t') sql++;
    for (; sql[i] && i + 4 < n; i++) dst[i] = (sql[i] == '\n' || sql[i] == '\t') ? ' ' : sql[i];
    if (sql[i]) { memcpy(dst + i, "...", 3); i += 3; }
    dst[i] = '\0';
}

/* nil, "sqlite: <message> (in <statement>)" */
static int push_err(lua_State *L, sqlite3 *db, const char *sql) {
    char s[96];
    short_sql(s, sizeof s, sql ? sql : "");
    lua_pushnil(L);
    lua_pushfstring(L, "%s (in: %s)", db ? sqlite3_errmsg(db) : "out of memory", s);
    return 2;
}

static vs_db *check_db(lua_State *L) {
    vs_db *d = (vs_db *)luaL_checkudata(L, 1, DB_MT);
    if (!d->db) luaL_error(L, "sqlite: the database is closed");
    return d;
}

static vs_stmt *check_stmt(lua_State *L) {
    vs_stmt *s = (vs_stmt *)luaL_checkudata(L, 1, ST_MT);
    if (!s->st) luaL_error(L, "sqlite: statement finalized or its database closed (%s)", s->sql);
    return s;
}

static int l_open(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    int busy = 0, flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "busy_ms");
        busy = (int)luaL_optinteger(L, -1, 0);
        lua_getfield(L, 2, "readonly");
        if (lua_toboolean(L, -1)) flags = SQLITE_OPEN_READONLY;
        lua_getfield(L, 2, "create");
        if (!lua_isnil(L, -1) && !lua_toboolean(L, -1) && flags != SQLITE_OPEN_READONLY)
            flags = SQLITE_OPEN_READWRITE;
        lua_pop(L, 3);
    }
    vs_db *d = (vs_db *)lua_newuserdata(L, sizeof *d);
    d->db = NULL;
    d->stmts = NULL;
    luaL_getmetatable(L, DB_MT);
    lua_setmetatable(L, -2);
    int rc = sqlite3_open_v2(path, &d->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: %s", path, d->db ? sqlite3_errmsg(d->db) : sqlite3_errstr(rc));
        db_release(d);
        return 2;
    }
    sqlite3_extended_result_codes(d->db, 0);
    if (busy > 0) sqlite3_busy_timeout(d->db, busy);
    return 1;
}

static int l_exec(lua_State *L) {
    vs_db *d = check_db(L);
    const char *sql = luaL_checkstring(L, 2);
    if (sqlite3_exec(d->db, sql, NULL, NULL, NULL) != SQLITE_OK) return push_err(L, d->db, sql);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_prepare(lua_State *L) {
    vs_db *d = check_db(L);
    const char *sql = luaL_checkstring(L, 2);
    vs_stmt *s = (vs_stmt *)lua_newuserdata(L, sizeof *s);
    memset(s, 0, sizeof *s);
    short_sql(s->sql, sizeof s->sql, sql);
    luaL_getmetatable(L, ST_MT);
    lua_setmetatable(L, -2);
    if (sqlite3_prepare_v2(d->db, sql, -1, &s->st, NULL) != SQLITE_OK) {
        s->st = NULL;
        return push_err(L, d->db, sql);
    }
    s->owner = d;
    s->next = d->stmts;
    if (d->stmts) d->stmts->prev = s;
    d->stmts = s;
    return 1;
}

static int l_changes(lua_State *L) {
    vs_db *d = check_db(L);
    lua_pushinteger(L, (lua_Integer)sqlite3_changes(d->db));
    return 1;
}

static int l_close(lua_State *L) {
    db_release((vs_db *)luaL_checkudata(L, 1, DB_MT));
    return 0;
}

/* reset, then bind arguments 2.. of the call to ?1.. (nil, boolean, integer, number, string) */
static int bind_args(lua_State *L, vs_stmt *s) {
    sqlite3_reset(s->st);
    sqlite3_clear_bindings(s->st);
    int n = lua_gettop(L) - 1, np = sqlite3_bind_parameter_count(s->st);
    if (n > np) return luaL_error(L, "sqlite: %d values for %d parameters (%s)", n, np, s->sql);
    for (int i = 1; i <= n; i++) {
        int rc, t = lua_type(L, i + 1);
        if (t == LUA_TNIL) rc = sqlite3_bind_null(s->st, i);
        else if (t == LUA_TBOOLEAN) rc = sqlite3_bind_int(s->st, i, lua_toboolean(L, i + 1));
        else if (t == LUA_TNUMBER) {
            lua_Number x = lua_tonumber(L, i + 1);
            if (vs_isinteger(L, i + 1)) rc = sqlite3_bind_int64(s->st, i, (sqlite3_int64)lua_tointeger(L, i + 1));
            else if (x == (lua_Number)(sqlite3_int64)x && x > -9007199254740992.0 && x < 9007199254740992.0)
                rc = sqlite3_bind_int64(s->st, i, (sqlite3_int64)x);
            else rc = sqlite3_bind_double(s->st, i, (double)x);
        } else if (t == LUA_TSTRING) {
            size_t len;
            const char *v = lua_tolstring(L, i + 1, &len);
            rc = sqlite3_bind_text(s->st, i, v, (int)len, SQLITE_TRANSIENT);
        } else
            return luaL_error(L, "sqlite: cannot bind a %s to parameter %d (%s)", lua_typename(L, t), i, s->sql);
        if (rc != SQLITE_OK) return luaL_error(L, "sqlite: bind %d: %s (%s)", i, sqlite3_errstr(rc), s->sql);
    }
    return 0;
}

static int push_row(lua_State *L, sqlite3_stmt *st) {
    int n = sqlite3_column_count(st);
    luaL_checkstack(L, n, "sqlite: too many columns");
    for (int i = 0; i < n; i++) {
        switch (sqlite3_column_type(st, i)) {
        case SQLITE_INTEGER: lua_pushinteger(L, (lua_Integer)sqlite3_column_int64(st, i)); break;
        case SQLITE_FLOAT: lua_pushnumber(L, (lua_Number)sqlite3_column_double(st, i)); break;
        case SQLITE_NULL: lua_pushnil(L); break;
        default:
            lua_pushlstring(L, (const char *)sqlite3_column_text(st, i), (size_t)sqlite3_column_bytes(st, i));
        }
    }
    return n;
}

static int stmt_fail(lua_State *L, vs_stmt *s) {
    sqlite3 *db = sqlite3_db_handle(s->st);
    lua_pushnil(L);
    lua_pushfstring(L, "%s (in: %s)", sqlite3_errmsg(db), s->sql);
    sqlite3_reset(s->st);
    return 2;
}

static int l_run(lua_State *L) {
    vs_stmt *s = check_stmt(L);
    bind_args(L, s);
    int rc;
    while ((rc = sqlite3_step(s->st)) == SQLITE_ROW) {}
    if (rc != SQLITE_DONE) return stmt_fail(L, s);
    sqlite3_reset(s->st);
    lua_pushinteger(L, (lua_Integer)sqlite3_changes(sqlite3_db_handle(s->st)));
    return 1;
}

static int l_get(lua_State *L) {
    vs_stmt *s = check_stmt(L);
    bind_args(L, s);
    int rc = sqlite3_step(s->st);
    if (rc == SQLITE_DONE) { sqlite3_reset(s->st); return 0; }
    if (rc != SQLITE_ROW) return stmt_fail(L, s);
    lua_settop(L, 0);
    int n = push_row(L, s->st);
    sqlite3_reset(s->st);
    return n;
}

static int rows_next(lua_State *L) {
    vs_stmt *s = (vs_stmt *)luaL_checkudata(L, lua_upvalueindex(1), ST_MT);
    if (!s->st) return luaL_error(L, "sqlite: statement finalized during iteration");
    int rc = sqlite3_step(s->st);
    if (rc == SQLITE_DONE) { sqlite3_reset(s->st); return 0; }
    if (rc != SQLITE_ROW) {
        lua_pushfstring(L, "%s (in: %s)", sqlite3_errmsg(sqlite3_db_handle(s->st)), s->sql);
        sqlite3_reset(s->st);
        return lua_error(L);
    }
    return push_row(L, s->st);
}

static int l_rows(lua_State *L) {
    vs_stmt *s = check_stmt(L);
    bind_args(L, s);
    lua_pushvalue(L, 1);
    lua_pushcclosure(L, rows_next, 1);
    return 1;
}

static int l_finalize(lua_State *L) {
    stmt_release((vs_stmt *)luaL_checkudata(L, 1, ST_MT));
    return 0;
}

static int l_hash(lua_State *L) {
    size_t n;
    const unsigned char *p = (const unsigned char *)luaL_checklstring(L, 1, &n);
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3u;
    }
    char buf[17];
    snprintf(buf, sizeof buf, "%016llx", (unsigned long long)h);
    lua_pushstring(L, buf);
    return 1;
}

int luaopen_vivalearning_sqlite(lua_State *L);

int luaopen_vivalearning_sqlite(lua_State *L) {
    static const luaL_Reg db_methods[] = {
        { "exec", l_exec }, { "prepare", l_prepare }, { "changes", l_changes },
        { "close", l_close }, { NULL, NULL },
    };
    static const luaL_Reg st_methods[] = {
        { "run", l_run }, { "get", l_get }, { "rows", l_rows }, { "finalize", l_finalize },
        { NULL, NULL },
    };
    static const luaL_Reg funcs[] = { { "open", l_open }, { "hash", l_hash }, { NULL, NULL } };
    luaL_newmetatable(L, DB_MT);
    lua_pushcfunction(L, l_close);
    lua_setfield(L, -2, "__gc");
    lua_newtable(L);
    vs_setfuncs(L, db_methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    luaL_newmetatable(L, ST_MT);
    lua_pushcfunction(L, l_finalize);
    lua_setfield(L, -2, "__gc");
    lua_newtable(L);
    vs_setfuncs(L, st_methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    vs_newlib(L, funcs);
    lua_pushstring(L, sqlite3_libversion());
    lua_setfield(L, -2, "version");
    return 1;
}
