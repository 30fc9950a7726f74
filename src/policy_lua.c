/* The thin Lua face of the policy, for its specs: core._policy(attempt) -> decision table and
 * core._retry_after(headers, body, wall_now) -> seconds | nil. Pure: no client, no network,
 * no clock (the attempt carries now, deadline and the random draw). */
#include <string.h>

#include "luacompat.h"

#include "policy.h"
#include "policy_lua.h"
#include "retry.h"

static const char *const kinds[] = { "request", "lookup", "batch_item", "token", NULL };
static const char *const methods[] = { "GET", "POST", "PATCH", "DELETE", NULL };
static const char *const transports[] = { "none", "not_sent", "maybe_sent", "timeout", "reset", "fatal",
                                          "too_large", "body_refused", "setup", NULL };
static const char *const actions[] = { "succeed", "fail", "retry", "lookup", "resend", "refresh", "gone" };
static const char *const reasons[] = { NULL, "http", "exhausted", "deadline", "maybe_done", "fatal", "too_large",
                                       "body_refused", "setup", "not_transient" };

static int opt_enum(lua_State *L, const char *k, const char *def, const char *const *names) {
    int i;
    const char *v;
    lua_getfield(L, 1, k);
    v = lua_isnil(L, -1) ? def : lua_tostring(L, -1);
    if (!v) return luaL_error(L, "core._policy: %s must be a string", k);
    for (i = 0; names[i]; i++)
        if (strcmp(names[i], v) == 0) { lua_pop(L, 1); return i; }
    return luaL_error(L, "core._policy: %s must be one of the known names, got '%s'", k, v);
}

static double opt_num(lua_State *L, const char *k, double def) {
    double v;
    lua_getfield(L, 1, k);
    if (lua_isnil(L, -1)) v = def;
    else if (lua_type(L, -1) == LUA_TNUMBER) v = lua_tonumber(L, -1);
    else return luaL_error(L, "core._policy: %s must be a number", k);
    lua_pop(L, 1);
    return v;
}

static int opt_bool(lua_State *L, const char *k) {
    int v;
    lua_getfield(L, 1, k);
    v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

static int l_policy(lua_State *L) {
    vl_attempt a;
    vl_decision d;
    luaL_checktype(L, 1, LUA_TTABLE);
    memset(&a, 0, sizeof a);
    a.kind = opt_enum(L, "kind", "request", kinds);
    a.method = opt_enum(L, "method", "GET", methods);
    a.transport = opt_enum(L, "transport", "none", transports);
    a.status = (long)opt_num(L, "status", 0);
    a.retry_after = opt_num(L, "retry_after", -1);
    a.has_alt = opt_bool(L, "has_alt");
    a.del404ok = opt_bool(L, "del404ok");
    a.refreshable = opt_bool(L, "refreshable");
    a.auth_replays = (int)opt_num(L, "auth_replays", 0);
    a.retries = (int)opt_num(L, "retries", 0);
    a.max_retries = (int)opt_num(L, "max_retries", 4);
    a.retry_items = opt_bool(L, "retry_items");
    a.token_transient = opt_bool(L, "token_transient");
    a.token_valid = opt_bool(L, "token_valid");
    a.token_expires = opt_num(L, "token_expires", 0);
    a.now = opt_num(L, "now", 0);
    a.deadline = opt_num(L, "deadline", 1e9);
    a.backoff_base = opt_num(L, "backoff_base", 0.5);
    a.backoff_cap = opt_num(L, "backoff_cap", 30);
    a.jitter = opt_num(L, "jitter", 0);
    if (a.jitter < 0 || a.jitter >= 1) return luaL_error(L, "core._policy: jitter must be in [0, 1)");
    d = vl_policy_decide(&a);
    lua_createtable(L, 0, 4);
    lua_pushstring(L, actions[d.action]);
    lua_setfield(L, -2, "action");
    if (d.reason != VL_R_NONE) {
        lua_pushstring(L, reasons[d.reason]);
        lua_setfield(L, -2, "reason");
    }
    if (d.kind) {
        lua_pushstring(L, d.kind);
        lua_setfield(L, -2, "kind");
    }
    if (d.wait >= 0 && (d.action == VL_A_RETRY || d.action == VL_A_LOOKUP || d.reason == VL_R_DEADLINE)) {
        lua_pushnumber(L, d.wait);
        lua_setfield(L, -2, "wait");
    }
    return 1;
}

/* core._retry_after({ ["retry-after"] =, ["retry-after-ms"] =, ["x-ms-retry-after-ms"] = }, body, wall_now) */
static int l_retry_after(lua_State *L) {
    const char *ms, *xms, *hdr, *body;
    size_t n = 0;
    double h;
    luaL_checktype(L, 1, LUA_TTABLE);
    body = luaL_optlstring(L, 2, NULL, &n);
    lua_getfield(L, 1, "retry-after-ms");
    lua_getfield(L, 1, "x-ms-retry-after-ms");
    lua_getfield(L, 1, "retry-after");
    ms = lua_tostring(L, -3);
    xms = lua_tostring(L, -2);
    hdr = lua_tostring(L, -1);
    h = vl_retry_after(ms, xms, hdr, body, n, luaL_checknumber(L, 3));
    if (h < 0) lua_pushnil(L); else lua_pushnumber(L, h);
    return 1;
}

void vl_policy_open(lua_State *L) {
    lua_pushcfunction(L, l_policy);
    lua_setfield(L, -2, "_policy");
    lua_pushcfunction(L, l_retry_after);
    lua_setfield(L, -2, "_retry_after");
}
