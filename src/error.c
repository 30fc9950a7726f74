/* Error objects: plain Lua tables with a shared metatable (__name "vivalearning.error",
 * __tostring = one readable line). Fields: kind, status, code, message, request_id,
 * client_request_id, date, retry_after, attempts, cause, method, url, and for Graph errors
 * target, details and inner_error; for token errors error and aadsts. Nothing secret is ever
 * put here: callers pass only Graph/OAuth error texts, headers and curl's messages. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "luacompat.h"

#include "error.h"

static void setstr(lua_State *L, const char *k, const char *v) {
    if (v && *v) {
        lua_pushstring(L, v);
        lua_setfield(L, -2, k);
    }
}

/* appends s to b on one line, at most max bytes, control characters as spaces */
static void add_line(luaL_Buffer *b, const char *s, size_t max) {
    size_t i;
    for (i = 0; i < max && s[i]; i++) {
        unsigned char ch = (unsigned char)s[i];
        luaL_addchar(b, ch < 0x20 || ch == 0x7f ? ' ' : (char)ch);
    }
    if (i == max && s[i]) luaL_addstring(b, "...");
}

/* Pushes t[k] and returns it when it is a string, else NULL. The value stays on the stack:
 * the caller keeps it there for as long as it uses the string (an __index may answer a
 * fresh string that nothing but the stack holds). */
static const char *field(lua_State *L, int t, const char *k) {
    lua_getfield(L, t, k);
    return lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
}

static int err_tostring(lua_State *L) {
    luaL_Buffer b;
    const char *kind, *code, *msg, *cause, *method, *url, *rid, *crid;
    lua_Integer status, attempts;
    int t = 1, has_ra;
    double ra;
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    /* every field is read (and kept on the stack) before the buffer starts */
    kind = field(L, t, "kind");
    code = field(L, t, "code");
    msg = field(L, t, "message");
    cause = field(L, t, "cause");
    method = field(L, t, "method");
    url = field(L, t, "url");
    rid = field(L, t, "request_id");
    crid = field(L, t, "client_request_id");
    lua_getfield(L, t, "status");
    status = lua_tointeger(L, -1);
    lua_getfield(L, t, "retry_after");
    has_ra = lua_type(L, -1) == LUA_TNUMBER;
    ra = has_ra ? (double)lua_tonumber(L, -1) : 0;
    lua_getfield(L, t, "attempts");
    attempts = lua_type(L, -1) == LUA_TNUMBER ? lua_tointeger(L, -1) : 0;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "vivalearning: ");
    add_line(&b, kind ? kind : "unknown", 32);
    luaL_addstring(&b, " error");
    if (status) {
        lua_pushfstring(L, " %d", (int)status);
        luaL_addvalue(&b);
    }
    if (code) { luaL_addchar(&b, ' '); add_line(&b, code, 80); }
    if (msg) { luaL_addstring(&b, ": "); add_line(&b, msg, 400); }
    if (cause) { luaL_addstring(&b, " (cause: "); add_line(&b, cause, 300); luaL_addchar(&b, ')'); }
    if (method) {
        luaL_addstring(&b, " [");
        add_line(&b, method, 10);
        if (url) { luaL_addchar(&b, ' '); add_line(&b, url, 300); }
        luaL_addchar(&b, ']');
    }
    if (rid) { luaL_addstring(&b, " request-id "); add_line(&b, rid, 96); }
    if (crid) { luaL_addstring(&b, " client-request-id "); add_line(&b, crid, 96); }
    if (has_ra) {
        char nb[48];
        snprintf(nb, sizeof nb, " retry-after %.3gs", ra);
        luaL_addstring(&b, nb);
    }
    if (attempts > 0) {
        lua_pushfstring(L, " attempts %d", (int)attempts);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    return 1;
}

void vl_error_open(lua_State *L) {
    if (luaL_newmetatable(L, VL_ERR_MT)) {
        lua_pushcfunction(L, err_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
}

void vl_error_push(lua_State *L, const vl_errinfo *e) {
    lua_createtable(L, 0, 12);
    setstr(L, "kind", e->kind);
    if (e->status) {
        lua_pushinteger(L, e->status);
        lua_setfield(L, -2, "status");
    }
    setstr(L, "code", e->code);
    setstr(L, "message", e->message);
    setstr(L, "request_id", e->request_id);
    setstr(L, "client_request_id", e->client_request_id);
    setstr(L, "date", e->date);
    if (e->retry_after >= 0) {
        lua_pushnumber(L, e->retry_after);
        lua_setfield(L, -2, "retry_after");
    }
    lua_pushinteger(L, e->attempts);
    lua_setfield(L, -2, "attempts");
    setstr(L, "cause", e->cause);
    setstr(L, "method", e->method);
    setstr(L, "url", e->url);
    luaL_setmetatable(L, VL_ERR_MT);
}

/* tidx: a decoded JSON body (table) or 0. Graph's {"error":{code,message,innerError}}. */
void vl_error_push_graph(lua_State *L, vl_errinfo *e, int tidx) {
    int top = lua_gettop(L);
    const char *code = NULL, *msg = NULL;
    if (tidx) tidx = lua_absindex(L, tidx);
    if (tidx && lua_istable(L, tidx)) {
        lua_getfield(L, tidx, "error");                       /* top+1 */
        if (lua_istable(L, -1)) {
            int et = lua_gettop(L);
            lua_getfield(L, et, "code");
            if (lua_type(L, -1) == LUA_TSTRING) code = lua_tostring(L, -1);
            lua_getfield(L, et, "message");
            if (lua_type(L, -1) == LUA_TSTRING) msg = lua_tostring(L, -1);
            lua_getfield(L, et, "innerError");
            if (!lua_istable(L, -1)) { lua_pop(L, 1); lua_getfield(L, et, "innererror"); }
            if (lua_istable(L, -1)) {
                int it = lua_gettop(L);
                if (!e->request_id || !*e->request_id) e->request_id = field(L, it, "request-id");
                if (!e->client_request_id || !*e->client_request_id) e->client_request_id = field(L, it, "client-request-id");
                if (!e->date || !*e->date) e->date = field(L, it, "date");
            }
        }
    }
    if (code) e->code = code;
    if (msg) e->message = msg;
    vl_error_push(L, e);
    if (tidx && lua_gettop(L) > top + 1 && lua_istable(L, top + 1)) {
        int et = top + 1;
        lua_getfield(L, et, "innerError");
        if (lua_istable(L, -1)) lua_setfield(L, -2, "inner_error"); else lua_pop(L, 1);
        lua_getfield(L, et, "target");
        if (lua_type(L, -1) == LUA_TSTRING) lua_setfield(L, -2, "target"); else lua_pop(L, 1);
        lua_getfield(L, et, "details");
        if (lua_istable(L, -1)) lua_setfield(L, -2, "details"); else lua_pop(L, 1);
    }
    /* keep only the error table */
    if (lua_gettop(L) != top + 1) {
        lua_replace(L, top + 1);
        lua_settop(L, top + 1);
    }
}

int vl_error_validation(lua_State *L, const char *fmt, ...) {
    vl_errinfo e;
    va_list ap;
    char msg[512];
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memset(&e, 0, sizeof e);
    e.kind = "validation";
    e.message = msg;
    e.retry_after = -1;
    lua_pushnil(L);
    vl_error_push(L, &e);
    return 2;
}
