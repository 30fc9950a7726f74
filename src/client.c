/* The Graph client: client userdata (configuration, request building, synchronous calls,
 * submit/poll) and request handles. See README "Client".
 *
 * Every call, synchronous or not, becomes a request (vl_req, malloc'd, owned by its handle
 * userdata). The client keeps its requests in C lists (ready = admission queue, backoff,
 * waiting for a token, active) and its in-flight handles in a Lua table (uservalue), so a
 * submitted handle the caller drops still completes and shows up in poll(). Results are
 * built in Lua between libcurl calls, never inside a libcurl callback.
 * This is the binding layer: Lua only. The engine is in engine.c, results in result.c, the ops
 * table in ops.c, $batch in batch.c, the I/O in transport.c (libcurl) or external.c
 * (io = "external": take, deliver, next_wakeup, tick, and sync calls through the driver). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "altkey.h"
#include "auth.h"
#include "auth_delegated.h"
#include "batch.h"
#include "core.h"
#include "drive.h"
#include "external.h"
#include "io.h"
#include "ops.h"
#include "options.h"
#include "result.h"
#include "transport.h"
#include "url_enc.h"

#define VL_CLIENT_MT "vivalearning.client"
#define VL_HANDLE_MT "vivalearning.request"

typedef struct vl_handle { vl_req *r; } vl_handle;


/* ------------------------------------------------------------------ small helpers */




/* ------------------------------------------------------------------ lists */






/* ------------------------------------------------------------------ client access */

static vl_client *check_client(lua_State *L, int idx) {
    vl_client *c = luaL_checkudata(L, idx, VL_CLIENT_MT);
    if (c->closed) luaL_error(L, "vivalearning: attempt to use a closed client");
    if (c->in_cb) luaL_error(L, "vivalearning: the client cannot be used from its own token_provider or log callback");
    /* the engine is not re-entrant: a finalizer run by an allocation inside a call gets here */
    if (c->busy) luaL_error(L, "vivalearning: the client is busy (used from a finalizer during one of its own calls)");
    return c;
}

static void client_release(vl_client *c);

/* A call that raised (a memory error) made a request nobody will see: it must not go on in
 * the background (a create would land after its caller was told it failed). Nothing here
 * allocates: the handle, unregistered, is left to the collector. */
static void cancel_call_req(lua_State *L, vl_client *c) {
    vl_req *r = c->call_req;
    c->call_req = NULL;
    if (!r || r->done) return;
    vl_req_drop(c, r);
    vl_push_refs_field(L, 1, "handles");
    lua_pushnil(L);
    lua_rawsetp(L, -2, r);
    lua_pop(L, 1);
    r->done = 1;
    r->closed = 1;
    r->c = NULL;
}

/* The client's clock (io = "external"), read once at the start of each call: the engine's
 * time stands still during the call, so nothing in it depends on when the clock is asked. */
static void read_clock(lua_State *L, vl_client *c) {
    double t = 0;
    lua_getiuservalue(L, 1, 1);
    lua_getfield(L, -1, "clock");
    lua_call(L, 0, 1);
    if (lua_type(L, -1) != LUA_TNUMBER || !isfinite(t = lua_tonumber(L, -1)))
        luaL_error(L, "vivalearning: clock must return a finite number of seconds, got %s", luaL_typename(L, -1));
    lua_pop(L, 2);
    c->ext_now = t;
}

/* luaL_argerror in a body run by busy_call names it '?' and counts the client as argument 1:
 * say what the caller called instead ("bad argument #1 to 'batch' (table expected, got nil)"). */
static void name_argerror(lua_State *L) {
    lua_Debug ar;
    const char *m = lua_tostring(L, -1);
    int n = 0, k = 0;
    if (lua_type(L, -1) != LUA_TSTRING || sscanf(m, "bad argument #%d to '?' %n", &n, &k) != 1 || k == 0)
        return;
    if (!lua_getstack(L, 0, &ar) || !lua_getinfo(L, "n", &ar) || !ar.name) return;
    if (ar.namewhat && strcmp(ar.namewhat, "method") == 0) n--;
    lua_pushfstring(L, "bad argument #%d to '%s' %s", n, ar.name, m + k);
    lua_replace(L, -2);
}

/* Runs the function at fidx with the arguments of the current call (the client first) as one
 * call of the client: busy for the whole of it, errors included (a Lua error, a memory error
 * too, is caught, the depth restored, then raised again). A close, __gc or __close that came
 * while it ran only marked the client: the outermost call releases it here, on its way out.
 * The arguments stay on this frame, so the client cannot be collected meanwhile. Leaves the
 * results on top and returns their number. */
static int busy_call(lua_State *L, vl_client *c, int fidx) {
    int n, i, status;
    if (c->has_clock) read_clock(L, c);
    n = lua_gettop(L);
    luaL_checkstack(L, n + 4, NULL);
    lua_pushvalue(L, fidx);
    for (i = 1; i <= n; i++) lua_pushvalue(L, i);
    c->busy++;
    c->call_req = NULL;
    status = lua_pcall(L, n, LUA_MULTRET, 0);
    c->busy--;
    c->has_budget = 0;          /* a poll's budget never outlives it (a raise included) */
    if (status != LUA_OK) cancel_call_req(L, c);
    c->call_req = NULL;
    if (c->busy == 0 && c->closed) client_release(c);
    if (status != LUA_OK) {
        name_argerror(L);
        lua_error(L);
    }
    return lua_gettop(L) - n;
}

/* refs table: client uservalue 1 = { handles = {[lightud]=handle}, done = {...}, token_provider=, log= } */
static void push_refs(lua_State *L, int cidx) { lua_getiuservalue(L, cidx, 1); }


static int handle_gc(lua_State *L);

/* Builds the request for op with arguments from index a; pushes its handle. */
static vl_req *build(lua_State *L, vl_client *c, int cidx, const opdef *od, int a, int sync) {
    spec s;
    vl_handle *h;
    vl_req *r;
    int base = lua_gettop(L), hidx;
    const char *path;
    size_t pl;
    memset(&s, 0, sizeof s);
    s.op = od->name;
    s.spelling = c->key_spelling;
    if (od->res == VL_RES_PAGE) vl_p_page(L, od, a, &s, c);
    else if (od->res == VL_RES_BATCH) vl_p_batch(L, a, &s);   /* the op over the others (batch.h) */
    else vl_op_build(L, od, a, &s);

    h = lua_newuserdatauv(L, sizeof *h, 2);
    h->r = NULL;
    luaL_setmetatable(L, VL_HANDLE_MT);
    hidx = lua_gettop(L);
    r = calloc(1, sizeof *r);
    if (!r) luaL_error(L, "vivalearning: out of memory");
    h->r = r;
    c->call_req = r;
    r->opname = od->name;
    r->method = s.method; r->res = s.res; r->family = s.family;
    r->flags = s.flags | (sync ? VL_F_SYNC : 0);
    vl_uuid4(&c->rng, r->crid);
    lua_createtable(L, 0, 1);
    if (s.model) { lua_pushvalue(L, s.model); lua_setfield(L, -2, "model"); }
    lua_setiuservalue(L, hidx, 2);
    if (s.immediate > 0) {
        /* answered without a request (validation error, nothing to update) */
        int k;
        for (k = 0; k < s.immediate; k++) lua_pushvalue(L, hidx - s.immediate + k);
        vl_handle_set_result(L, hidx, s.immediate);
        r->done = 1;
        if (!sync) {
            vl_push_refs_field(L, cidx, "done");
            lua_pushvalue(L, hidx);
            lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
            lua_pop(L, 1);
            c->ndone++;
        }
        lua_replace(L, base + 1);
        lua_settop(L, base + 1);
        return r;
    }
    if (s.immediate < 0) {       /* a batch where every item was answered locally */
        lua_pushnil(L);
        r->done = 0;
    }
    path = lua_tolstring(L, s.path, &pl);
    if (s.absolute) r->url = vl_dupn(path, pl);
    else {
        size_t bl = strlen(c->graph.base);
        r->url = malloc(bl + pl + 1);
        if (r->url) { memcpy(r->url, c->graph.base, bl); memcpy(r->url + bl, path, pl + 1); }
    }
    if (s.body) {
        size_t bl;
        const char *bs = lua_tolstring(L, s.body, &bl);
        r->body = vl_dupn(bs, bl);
        r->body_len = bl;
        if (!r->body) luaL_error(L, "vivalearning: out of memory");
    }
    if (s.alt) {
        size_t al, bl = strlen(c->graph.base);
        const char *as = lua_tolstring(L, s.alt, &al);
        r->alt_url = malloc(bl + al + 1);
        if (r->alt_url) { memcpy(r->alt_url, c->graph.base, bl); memcpy(r->alt_url + bl, as, al + 1); }
    }
    if (!r->url || (s.alt && !r->alt_url)) luaL_error(L, "vivalearning: out of memory");
    {
        /* where the alternate key's name is in the URLs and the body (the engine respells it) */
        size_t bl = strlen(c->graph.base);
        r->key_spelling = s.spelling;
        r->key_url = s.key_path && !s.absolute ? bl + s.key_path : 0;
        r->key_body = s.key_body && r->body ? s.key_body : 0;
        r->key_alt = s.key_alt && r->alt_url ? bl + s.key_alt : 0;
    }
    r->op_start = vl_client_now(c);
    r->deadline = r->op_start + c->deadline_s;
    r->c = c;
    if (s.immediate < 0) {
        lua_pop(L, 1);
        lua_pushvalue(L, hidx);
        lua_replace(L, base + 1);
        lua_settop(L, base + 1);
        /* run the local-only batch through the result mapper */
        vl_push_refs_field(L, cidx, "handles");
        lua_pushvalue(L, base + 1);
        lua_rawsetp(L, -2, r);
        lua_pop(L, 1);
        lua_newtable(L);
        lua_newtable(L);
        lua_setfield(L, -2, "responses");
        vl_batch_result(L, c, cidx, r, lua_gettop(L));
        return r;
    }
    /* register and queue */
    vl_push_refs_field(L, cidx, "handles");
    lua_pushvalue(L, hidx);
    lua_rawsetp(L, -2, r);
    lua_pop(L, 1);
    vl_list_push(c, r, VL_L_READY);
    lua_pushvalue(L, hidx);
    lua_replace(L, base + 1);
    lua_settop(L, base + 1);
    return r;
}

/* pushes the stored results of a finished handle; returns their number */
static int push_result(lua_State *L, int hidx) {
    vl_handle *h = luaL_checkudata(L, hidx, VL_HANDLE_MT);
    int n, i;
    if (!h->r) luaL_error(L, "vivalearning: request handle already released");
    if (!h->r->done) luaL_error(L, "vivalearning: request not finished yet (poll until handle:done())");
    lua_getiuservalue(L, hidx, 1);
    if (!lua_istable(L, -1)) {
        vl_errinfo e;
        lua_pop(L, 1);
        memset(&e, 0, sizeof e);
        e.kind = "transport";
        e.message = "the client was closed before the request completed";
        e.retry_after = -1;
        e.attempts = h->r->attempts;
        e.client_request_id = h->r->crid;
        lua_pushnil(L);
        vl_error_push(L, &e);
        return 2;
    }
    lua_getfield(L, -1, "n");
    n = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    luaL_checkstack(L, n, NULL);
    for (i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
    lua_remove(L, -n - 1);
    return n;
}

/* sync call: c:op(...); upvalues: module table, op name, op_body (with the same two) */
static int op_body(lua_State *L) {
    vl_client *c = luaL_checkudata(L, 1, VL_CLIENT_MT);
    const opdef *od = vl_find_op(lua_tostring(L, lua_upvalueindex(2)));
    vl_req *r = build(L, c, 1, od, 2, 1);
    if (!r->done) vl_drive(L, c, 1, r, 1e9);
    c->call_req = NULL;
    return 1;                   /* the handle */
}

/* ---------- sync calls on an io = "external" client: the driver runs while the call waits.
 * It is called with lua_pcallk from here, with no other C frame in between, so a driver may
 * yield (a coroutine, an ngx light thread) and the call resumes in ext_wait_k. */
static int tick_body(lua_State *L) {
    vl_client *c = luaL_checkudata(L, 1, VL_CLIENT_MT);
    vl_drive_step(L, c, 1);
    return 0;
}

/* A sync call whose driver raised: its request must not go on behind the caller's back. */
static void ext_cancel(lua_State *L, vl_client *c, int hidx) {
    vl_handle *h = luaL_checkudata(L, hidx, VL_HANDLE_MT);
    vl_req *r = h->r;
    if (!r || r->done) return;
    if (!c->released) vl_req_drop(c, r);
    vl_push_refs_field(L, 1, "handles");
    lua_pushnil(L);
    lua_rawsetp(L, -2, r);
    lua_pop(L, 1);
    r->done = 1;
    r->closed = 1;
    r->c = NULL;
}

LUA_KFUNCTION(ext_wait_k) {
    int hidx = (int)ctx;
    vl_client *c = luaL_checkudata(L, 1, VL_CLIENT_MT);
    if (status != LUA_OK && status != LUA_YIELD) {
        vl_compat_explain_yield(L);
        lua_copy(L, -1, hidx + 1);        /* the driver's error (at hidx + 1 already, when the
                                           * driver was called with nothing under it) */
        lua_settop(L, hidx + 1);
        ext_cancel(L, c, hidx);
        return lua_error(L);
    }
    for (;;) {
        vl_handle *h = luaL_checkudata(L, hidx, VL_HANDLE_MT);
        lua_settop(L, hidx);
        if (!h->r || h->r->done || c->closed) break;
        if (c->busy || c->in_cb) luaL_error(L, "vivalearning: the client is busy");
        /* a turn of the engine after each run of the driver: backoffs that came due */
        lua_pushcfunction(L, tick_body);
        busy_call(L, c, hidx + 1);
        lua_settop(L, hidx);
        if (!h->r || h->r->done || c->closed) break;
        vl_push_refs_field(L, 1, "driver");
        lua_pushvalue(L, 1);
        status = lua_pcallk(L, 1, 0, 0, ctx, ext_wait_k);
        if (status != LUA_OK) return ext_wait_k(L, status, ctx);
    }
    return push_result(L, hidx);
}

static int op_call(lua_State *L) {
    vl_client *c = check_client(L, 1);
    if (c->external) {
        if (!c->has_driver)
            return luaL_error(L, "vivalearning: a synchronous call on an io = \"external\" client needs a driver "
                              "(viva.client{ io = \"external\", driver = function(c) ... end }); or use submit");
        busy_call(L, c, lua_upvalueindex(3));
        return ext_wait_k(L, LUA_OK, (lua_KContext)lua_gettop(L));
    }
    busy_call(L, c, lua_upvalueindex(3));
    /* after a close during the call: the result it had, or "closed before it completed" */
    return push_result(L, lua_gettop(L));
}

/* c:submit(op, ...); upvalues: module table, submit_body (with the module table) */
static int submit_body(lua_State *L) {
    vl_client *c = luaL_checkudata(L, 1, VL_CLIENT_MT);
    build(L, c, 1, vl_find_op(lua_tostring(L, 2)), 3, 0);
    c->call_req = NULL;         /* the caller has its handle */
    return 1;
}

static int c_submit(lua_State *L) {
    vl_client *c = check_client(L, 1);
    const char *name = luaL_checkstring(L, 2);
    if (!vl_find_op(name)) return luaL_error(L, "vivalearning: unknown operation '%s'", name);
    return busy_call(L, c, lua_upvalueindex(2));
}

/* poll's options (argument 3): { budget = seconds } or nil; the budget, or -1 for none.
 * c_poll checks them before the call, poll_body reads them again. */
static double poll_budget(lua_State *L) {
    double b;
    if (lua_isnoneornil(L, 3)) return -1;
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 3)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING || strcmp(lua_tostring(L, -1), "budget") != 0)
            luaL_argerror(L, 3, lua_pushfstring(L, "unknown option '%s' (poll takes { budget = seconds })",
                                                luaL_tolstring(L, -1, NULL)));
    }
    lua_getfield(L, 3, "budget");
    if (lua_isnil(L, -1)) { lua_pop(L, 1); return -1; }
    if (lua_type(L, -1) != LUA_TNUMBER)
        luaL_argerror(L, 3, lua_pushfstring(L, "budget must be a number of seconds, got %s", luaL_typename(L, -1)));
    b = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (!isfinite(b) || b < 0)
        luaL_argerror(L, 3, lua_pushfstring(L, "budget must be a finite number of seconds >= 0, got %f", b));
    return b;
}

static int poll_body(lua_State *L) {
    vl_client *c = luaL_checkudata(L, 1, VL_CLIENT_MT);
    double t = luaL_optnumber(L, 2, 0);
    double budget = poll_budget(L);
    if (t < 0) t = 0;
    if (budget >= 0) {
        /* the budget bounds the whole call, its wait included; busy_call clears it */
        vl_io_budget_begin(c, budget);
        if (t > budget) t = budget;
    }
    if (c->ndone == 0) vl_drive(L, c, 1, NULL, t);
    c->has_budget = 0;
    push_refs(L, 1);
    lua_getfield(L, -1, "done");
    lua_newtable(L);
    lua_setfield(L, -3, "done");     /* the new list exists before the count is reset */
    c->ndone = 0;
    return 1;
}

LUA_KFUNCTION(ext_poll_k) {
    vl_client *c = check_client(L, 1);
    (void)ctx;
    if (status != LUA_OK && status != LUA_YIELD) return lua_error(L);
    lua_settop(L, 2);
    return busy_call(L, c, lua_upvalueindex(1));
}

/* c:poll(timeout): a NaN timeout would never pass, an infinite one never end. On an io =
 * "external" client it never blocks: with a driver, and nothing finished, it runs the driver
 * once first (a driver may yield here too). */
static int c_poll(lua_State *L) {
    vl_client *c = check_client(L, 1);
    double t = luaL_optnumber(L, 2, 0);
    if (!isfinite(t))
        return luaL_argerror(L, 2, lua_pushfstring(L, "finite number of seconds expected, got %f", t));
    poll_budget(L);
    if (c->external && c->has_driver && c->ndone == 0 && t > 0) {
        lua_settop(L, 2);
        vl_push_refs_field(L, 1, "driver");
        lua_pushvalue(L, 1);
        lua_callk(L, 1, 0, 0, ext_poll_k);
        return ext_poll_k(L, LUA_OK, 0);
    }
    return busy_call(L, c, lua_upvalueindex(1));
}

/* ---------- the sans-I/O face: c:take(), c:deliver(id, response | nil, outcome),
 * c:next_wakeup(), c:tick() (io = "external" clients only) */
static vl_client *check_external(lua_State *L, const char *what) {
    vl_client *c = check_client(L, 1);
    if (!c->external)
        luaL_error(L, "vivalearning: %s needs a client made with io = \"external\"", what);
    return c;
}

static int take_body(lua_State *L) {
    vl_client *c = luaL_checkudata(L, 1, VL_CLIENT_MT);
    vl_drive_step(L, c, 1);
    vl_ext_take(L, c);
    return 1;
}

static int deliver_body(lua_State *L) {
    vl_client *c = luaL_checkudata(L, 1, VL_CLIENT_MT);
    vl_ext_deliver(L, c);
    vl_drive_step(L, c, 1);
    return 0;
}

static int wakeup_body(lua_State *L) {
    vl_client *c = luaL_checkudata(L, 1, VL_CLIENT_MT);
    vl_ext_push_wakeup(L, c);
    return 1;
}

/* One sans-I/O method: an io = "external" client, its first nargs arguments (the client
 * included) passed to body under the busy depth. */
static int external_call(lua_State *L, const char *what, int nargs, lua_CFunction body) {
    vl_client *c = check_external(L, what);
    lua_settop(L, nargs);
    lua_pushcfunction(L, body);
    return busy_call(L, c, nargs + 1);
}

static int c_take(lua_State *L) { return external_call(L, "take", 1, take_body); }
static int c_deliver(lua_State *L) { external_call(L, "deliver", 5, deliver_body); return 0; }
static int c_tick(lua_State *L) { external_call(L, "tick", 1, tick_body); return 0; }
static int c_next_wakeup(lua_State *L) { return external_call(L, "next_wakeup", 1, wakeup_body); }

static int c_stats(lua_State *L) {
    vl_client *c = luaL_checkudata(L, 1, VL_CLIENT_MT);
    vl_req *r;
    int q = 0;
    for (r = c->ready_h; r; r = r->next) q++;
    for (r = c->backoff_h; r; r = r->next) q++;
    for (r = c->token_h; r; r = r->next) q++;
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, c->nactive); lua_setfield(L, -2, "active");
    lua_pushinteger(L, q); lua_setfield(L, -2, "queued");
    lua_pushinteger(L, c->st_max_active); lua_setfield(L, -2, "max_active");
    lua_pushinteger(L, c->st_attempts); lua_setfield(L, -2, "attempts");
    lua_pushinteger(L, c->st_connects); lua_setfield(L, -2, "connects");
    lua_pushinteger(L, c->st_h2); lua_setfield(L, -2, "http2");
    lua_pushstring(L, vl_altkey_name(c->key_spelling)); lua_setfield(L, -2, "external_id_key");
    return 1;
}

static int c_pending(lua_State *L) {
    vl_client *c = luaL_checkudata(L, 1, VL_CLIENT_MT);
    int n = 0;
    vl_req *r;
    for (r = c->ready_h; r; r = r->next) n++;
    for (r = c->backoff_h; r; r = r->next) n++;
    for (r = c->token_h; r; r = r->next) n++;
    for (r = c->active_h; r; r = r->next) n++;
    for (r = c->complete_h; r; r = r->next) if (!(r->flags & VL_F_INTERNAL)) n++;
    lua_pushinteger(L, n);
    return 1;
}

/* ------------------------------------------------------------------ close / gc */

static void detach_list(vl_client *c, vl_req *h) {
    while (h) {
        vl_req *n = h->next;
        vl_transport_abandon(c, h);
        h->prev = h->next = NULL;
        h->list = VL_L_NONE;
        h->c = NULL;
        h->closed = 1;
        h->done = 1;
        if (h->flags & VL_F_INTERNAL) vl_req_free(h);
        h = n;
    }
}

/* The one release routine: frees what the client owns, once. Only ever called when none of the
 * client's calls runs (c_close, or the outermost busy_call on its way out). */
static void client_release(vl_client *c) {
    if (c->released) return;
    c->released = 1;
    c->closed = 1;
    detach_list(c, c->active_h);
    detach_list(c, c->ready_h);
    detach_list(c, c->backoff_h);
    detach_list(c, c->token_h);
    detach_list(c, c->complete_h);
    c->active_h = c->active_t = c->ready_h = c->ready_t = NULL;
    c->backoff_h = c->backoff_t = c->token_h = c->token_t = NULL;
    c->complete_h = c->complete_t = NULL;
    if (c->token_req) {
        vl_req *t = c->token_req;
        vl_transport_abandon(c, t);
        vl_req_free(t);
        c->token_req = NULL;
    }
    vl_transport_free(c);
    vl_auth_free(c);
    vl_origin_free(&c->graph);
    vl_origin_free(&c->authority);
    free(c->tenant); free(c->client_id);
    vl_zfree(c->client_secret); vl_zfree(c->password);
    free(c->username); free(c->scope); free(c->ca_file); free(c->user_agent); free(c->token_url);
    c->tenant = c->client_id = c->client_secret = c->password = c->username = NULL;
    c->scope = c->ca_file = c->user_agent = c->token_url = NULL;
}

/* close(), __gc and __close: during one of the client's own calls (its hooks, or a finalizer
 * that an allocation inside the call ran) the client is only marked closed. */
static int c_close(lua_State *L) {
    vl_client *c = luaL_checkudata(L, 1, VL_CLIENT_MT);
    c->closed = 1;
    if (c->busy == 0) client_release(c);
    return 0;
}

static int c_tostring(lua_State *L) {
    vl_client *c = luaL_checkudata(L, 1, VL_CLIENT_MT);
    if (c->closed) lua_pushliteral(L, "vivalearning.client (closed)");
    else lua_pushfstring(L, "vivalearning.client (%s)", c->graph.base);
    return 1;
}

/* c:credential(): how the client signs in (method, tenant, client_id, url, ...), no secret */
static int c_credential(lua_State *L) {
    vl_client *c = luaL_checkudata(L, 1, VL_CLIENT_MT);
    if (c->released) return luaL_error(L, "vivalearning: the client is closed");
    vl_auth_push_info(L, c);
    return 1;
}

static int handle_gc(lua_State *L) {
    vl_handle *h = luaL_checkudata(L, 1, VL_HANDLE_MT);
    vl_req *r = h->r;
    if (!r) return 0;
    /* a pending request's handle is anchored by its client, so the collector cannot be here
     * while the client is in a call: this is __gc called by hand, and the engine may hold r */
    if (r->c && !r->done && r->c->busy) return 0;
    h->r = NULL;
    if (r->c && !r->done) {
        vl_req_drop(r->c, r);
    }
    vl_transport_abandon(NULL, r);
    vl_req_free(r);
    return 0;
}

static int h_result(lua_State *L) { return push_result(L, 1); }

static int h_done(lua_State *L) {
    vl_handle *h = luaL_checkudata(L, 1, VL_HANDLE_MT);
    lua_pushboolean(L, h->r && h->r->done);
    return 1;
}

static int h_op(lua_State *L) {
    vl_handle *h = luaL_checkudata(L, 1, VL_HANDLE_MT);
    lua_pushstring(L, h->r ? h->r->opname : "?");
    return 1;
}

static int h_info(lua_State *L) {
    vl_handle *h = luaL_checkudata(L, 1, VL_HANDLE_MT);
    vl_req *r = h->r;
    lua_createtable(L, 0, 4);
    if (!r) return 1;
    lua_pushstring(L, r->opname); lua_setfield(L, -2, "op");
    lua_pushstring(L, r->crid); lua_setfield(L, -2, "client_request_id");
    lua_pushinteger(L, r->attempts); lua_setfield(L, -2, "attempts");
    lua_pushboolean(L, r->done); lua_setfield(L, -2, "done");
    return 1;
}

static int h_tostring(lua_State *L) {
    vl_handle *h = luaL_checkudata(L, 1, VL_HANDLE_MT);
    if (!h->r) lua_pushliteral(L, "vivalearning.request (released)");
    else lua_pushfstring(L, "vivalearning.request (%s, %s)", h->r->opname, h->r->done ? "done" : "pending");
    return 1;
}

/* ------------------------------------------------------------------ construction */

/* a copy made for the client, or a memory error: a NULL left in the client would pass for
 * "not given" (a NULL scope or token_url crashes the first token fetch) */
static char *must(lua_State *L, char *p) {
    if (!p) luaL_error(L, "viva.client: out of memory");
    return p;
}

static char *opt_str(lua_State *L, int t, const char *k, const char *def) {
    const char *s;
    size_t n, i;
    lua_getfield(L, t, k);
    if (lua_isnil(L, -1)) { lua_pop(L, 1); return def ? must(L, vl_strdup(def)) : NULL; }
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "viva.client: %s must be a string", k);
    s = lua_tolstring(L, -1, &n);
    for (i = 0; i < n; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == 0) luaL_error(L, "viva.client: %s contains CR, LF or NUL", k);
    if (n == 0) luaL_error(L, "viva.client: %s must not be empty", k);
    lua_pop(L, 1);
    return must(L, vl_strdup(s));     /* string still referenced by the table */
}

static double opt_num(lua_State *L, int t, const char *k, double def, double lo, double hi) {
    double v;
    lua_getfield(L, t, k);
    if (lua_isnil(L, -1)) { lua_pop(L, 1); return def; }
    if (lua_type(L, -1) != LUA_TNUMBER) luaL_error(L, "viva.client: %s must be a number, got %s", k, luaL_typename(L, -1));
    v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (!(v >= lo && v <= hi)) {
        /* lua_pushfstring has no %g: the numbers are formatted here */
        char range[96];
        snprintf(range, sizeof range, "between %g and %g, got %g", lo, hi, v);
        luaL_error(L, "viva.client: %s must be %s", k, range);
    }
    return v;
}

/* a count: an integer (2.0 is 2; 2.5 is misuse, never truncated) */
static lua_Integer opt_int(lua_State *L, int t, const char *k, lua_Integer def, lua_Integer lo, lua_Integer hi) {
    lua_Integer v;
    int isint;
    lua_getfield(L, t, k);
    if (lua_isnil(L, -1)) { lua_pop(L, 1); return def; }
    v = lua_tointegerx(L, -1, &isint);
    if (lua_type(L, -1) != LUA_TNUMBER || !isint)
        luaL_error(L, "viva.client: %s must be an integer %d..%d, got %s", k, (int)lo, (int)hi, luaL_tolstring(L, -1, NULL));
    lua_pop(L, 1);
    if (v < lo || v > hi) luaL_error(L, "viva.client: %s must be an integer %d..%d, got " VL_FMTI, k, (int)lo, (int)hi, VL_ARGI(v));
    return v;
}

static const char *const KNOWN[] = {
    "graph_url", "authority_url", "tenant", "client_id", "client_secret", "token", "token_provider",
    "username", "password", "scope", "ca_file", "timeouts", "max_retries", "max_concurrency", "user_agent",
    "log", "allow_http", "max_body_bytes", "backoff", "io", "clock", "driver",
    "certificate", "client_assertion", "managed_identity", "device_code", "refresh_token", "on_refresh_token",
    "external_id_spelling", NULL
};
/* Delegated sign-in options: device_code (a function), refresh_token (a string, e.g. from the
 * Lua layer's cache), on_refresh_token (a function). Sets c->auth to DEVICE or REFRESH when they
 * choose it (the password grant stays PASSWORD); 1 when the sign-in is delegated. */
static int delegated_options(lua_State *L, vl_client *c, int cidx) {
    int has_dev, has_hook;
    lua_getfield(L, 1, "device_code");
    has_dev = !lua_isnil(L, -1);
    if (has_dev && !lua_isfunction(L, -1)) return luaL_error(L, "viva.client: device_code must be a function (it gets the sign-in instruction)");
    lua_getfield(L, 1, "on_refresh_token");
    has_hook = !lua_isnil(L, -1);
    if (has_hook && !lua_isfunction(L, -1)) return luaL_error(L, "viva.client: on_refresh_token must be a function");
    lua_pop(L, 2);
    c->dlg.refresh_token = opt_str(L, 1, "refresh_token", NULL);
    if (c->dlg.refresh_token) {
        size_t i, n = strlen(c->dlg.refresh_token);
        for (i = 0; i < n; i++)
            if ((unsigned char)c->dlg.refresh_token[i] <= 0x20 || c->dlg.refresh_token[i] == 0x7f)
                return luaL_error(L, "viva.client: refresh_token contains whitespace or control characters");
    }
    if (has_dev && c->password) return luaL_error(L, "viva.client: give device_code or username/password, not both");
    if (!has_dev && !c->password && !c->dlg.refresh_token) {
        if (has_hook) return luaL_error(L, "viva.client: on_refresh_token needs a delegated sign-in (device_code, username/password or refresh_token)");
        return 0;
    }
    if (!c->tenant || !c->client_id)
        return luaL_error(L, "viva.client: a delegated sign-in (device_code, username/password, refresh_token) needs tenant and client_id");
    if (has_dev || has_hook) {
        push_refs(L, cidx);
        lua_getfield(L, 1, "device_code");
        lua_setfield(L, -2, "device_code");
        lua_getfield(L, 1, "on_refresh_token");
        lua_setfield(L, -2, "on_refresh_token");
        lua_pop(L, 1);
    }
    c->dlg.has_device_cb = has_dev;
    c->dlg.has_rt_hook = has_hook;
    if (has_dev) c->auth = VL_AUTH_DEVICE;
    else if (!c->password) c->auth = VL_AUTH_REFRESH;
    return 1;
}

/* Every delegated grant asks for a refresh token (offline_access) and the account's id token
 * (openid profile: the cache is kept per user), as MSAL does. */
static void delegated_scope(lua_State *L, vl_client *c) {
    static const char *const extra[] = { "openid", "profile", "offline_access", NULL };
    luaL_Buffer b;
    int i;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, c->scope);
    for (i = 0; extra[i]; i++) {
        const char *p = c->scope;
        size_t n = strlen(extra[i]);
        int found = 0;
        while ((p = strstr(p, extra[i])) != NULL) {
            if ((p == c->scope || p[-1] == ' ') && (p[n] == 0 || p[n] == ' ')) { found = 1; break; }
            p += n;
        }
        if (!found) { luaL_addchar(&b, ' '); luaL_addstring(&b, extra[i]); }
    }
    luaL_pushresult(&b);
    free(c->scope);
    c->scope = must(L, vl_strdup(lua_tostring(L, -1)));
    lua_pop(L, 1);
}

static const char *const KNOWN_TIMEOUTS[] = { "connect", "attempt", "deadline", NULL };
static const char *const KNOWN_BACKOFF[] = { "base", "cap", NULL };

static int c_new(lua_State *L) {
    vl_client *c;
    int cidx, has_secret, has_token, has_provider, n;
    char err[300];
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    /* unknown options are typos; every check raises before anything is allocated */
    vl_check_keys(L, 1, "viva.client", KNOWN);
    lua_getfield(L, 1, "timeouts");
    if (lua_istable(L, -1)) vl_check_keys(L, -1, "viva.client: timeouts", KNOWN_TIMEOUTS);
    lua_getfield(L, 1, "backoff");
    if (lua_istable(L, -1)) vl_check_keys(L, -1, "viva.client: backoff", KNOWN_BACKOFF);
    lua_getfield(L, 1, "allow_http");
    if (!lua_isnil(L, -1) && !lua_isboolean(L, -1)) return luaL_error(L, "viva.client: allow_http must be a boolean");
    lua_settop(L, 1);
    c = lua_newuserdatauv(L, sizeof *c, 1);
    memset(c, 0, sizeof *c);  /* __gc of a half-built client frees what exists */
    luaL_setmetatable(L, VL_CLIENT_MT);
    cidx = lua_gettop(L);
    lua_createtable(L, 0, 4);
    lua_newtable(L); lua_setfield(L, -2, "handles");
    lua_newtable(L); lua_setfield(L, -2, "done");
    lua_setiuservalue(L, cidx, 1);
    /* strings are copied as we go: a raise below leaves them to __gc */
    lua_getfield(L, 1, "allow_http");
    c->allow_http = lua_toboolean(L, -1);
    lua_pop(L, 1);
    {
        char *g = opt_str(L, 1, "graph_url", "https://graph.microsoft.com/v1.0");
        int ok = vl_origin_parse(&c->graph, g, c->allow_http, "graph_url", err, sizeof err);
        free(g);
        if (!ok) return luaL_error(L, "viva.client: %s", err);
        g = opt_str(L, 1, "authority_url", "https://login.microsoftonline.com");
        ok = vl_origin_parse(&c->authority, g, c->allow_http, "authority_url", err, sizeof err);
        free(g);
        if (!ok) return luaL_error(L, "viva.client: %s", err);
    }
    c->tenant = opt_str(L, 1, "tenant", NULL);
    c->client_id = opt_str(L, 1, "client_id", NULL);
    c->client_secret = opt_str(L, 1, "client_secret", NULL);
    c->username = opt_str(L, 1, "username", NULL);
    c->password = opt_str(L, 1, "password", NULL);
    c->scope = opt_str(L, 1, "scope", "https://graph.microsoft.com/.default");
    c->ca_file = opt_str(L, 1, "ca_file", NULL);
    {
        char ua[96];
        snprintf(ua, sizeof ua, "lua-vivalearning/%s libcurl/%s", VL_VERSION, vl_transport_version(NULL, NULL));
        c->user_agent = opt_str(L, 1, "user_agent", ua);
    }
    if (c->ca_file) {
        FILE *f = fopen(c->ca_file, "rb");
        if (!f) return luaL_error(L, "viva.client: ca_file %s cannot be read", c->ca_file);
        fclose(f);
    }
    lua_getfield(L, 1, "token");
    has_token = !lua_isnil(L, -1);
    if (has_token && lua_type(L, -1) != LUA_TSTRING) return luaL_error(L, "viva.client: token must be a string");
    lua_pop(L, 1);
    lua_getfield(L, 1, "token_provider");
    has_provider = !lua_isnil(L, -1);
    if (has_provider && !lua_isfunction(L, -1) && !luaL_getmetafield(L, -1, "__call"))
        return luaL_error(L, "viva.client: token_provider must be a function");
    lua_settop(L, cidx);
    if (delegated_options(L, c, cidx)) {
        if (has_token || has_provider)
            return luaL_error(L, "viva.client: token and token_provider do not go with a delegated sign-in (device_code, username/password, refresh_token)");
        has_secret = 1;
    } else {
        has_secret = c->client_secret != NULL || c->password != NULL;
    }
    n = has_secret + has_token + has_provider + vl_auth_given(L, 1);
    if (n != 1)
        return luaL_error(L, "viva.client: give exactly one of client_secret or certificate or client_assertion "
                             "(with tenant and client_id), managed_identity, token, or token_provider");
    if (has_secret) {
        if (!c->tenant || !c->client_id) return luaL_error(L, "viva.client: client_secret needs tenant and client_id");
        if (c->password && !c->username) return luaL_error(L, "viva.client: password needs username");
        if (c->auth != VL_AUTH_DEVICE && c->auth != VL_AUTH_REFRESH)
            c->auth = c->password ? VL_AUTH_PASSWORD : VL_AUTH_SECRET;
        vl_auth_token_url(L, c);
        if (c->auth == VL_AUTH_DEVICE) {
            /* the same tenant as the polls that follow (DEV) */
            size_t tl = strlen(c->token_url);
            c->dlg.devicecode_url = must(L, malloc(tl + 6));
            memcpy(c->dlg.devicecode_url, c->token_url, tl - 5);
            memcpy(c->dlg.devicecode_url + tl - 5, "devicecode", 11);
        }
        if (vl_dlg_delegated(c)) delegated_scope(L, c);
    } else if (!has_token && !has_provider) {
        vl_auth_configure(L, c, 1, cidx);
    } else if (has_token) {
        size_t tl, i;
        const char *t;
        lua_getfield(L, 1, "token");
        t = lua_tolstring(L, -1, &tl);
        for (i = 0; i < tl; i++)
            if ((unsigned char)t[i] <= 0x20 || t[i] == 0x7f) return luaL_error(L, "viva.client: token contains whitespace or control characters");
        if (tl == 0) return luaL_error(L, "viva.client: token must not be empty");
        c->auth = VL_AUTH_FIXED;
        c->tok.value = must(L, vl_strdup(t));
        c->tok.expires_at = c->tok.refresh_at = 1e300;
        c->tok.gen = 1;
        lua_pop(L, 1);
    } else {
        c->auth = VL_AUTH_PROVIDER;
        push_refs(L, cidx);
        lua_getfield(L, 1, "token_provider");
        lua_setfield(L, -2, "token_provider");
        lua_pop(L, 1);
    }
    lua_getfield(L, 1, "log");
    if (!lua_isnil(L, -1)) {
        if (!lua_isfunction(L, -1)) return luaL_error(L, "viva.client: log must be a function");
        push_refs(L, cidx);
        lua_pushvalue(L, -2);
        lua_setfield(L, -2, "log");
        lua_pop(L, 1);
        c->has_log = 1;
    }
    lua_pop(L, 1);
    lua_getfield(L, 1, "timeouts");
    if (!lua_isnil(L, -1)) {
        int t = lua_gettop(L);
        if (!lua_istable(L, t)) return luaL_error(L, "viva.client: timeouts must be a table {connect=, attempt=, deadline=}");
        c->connect_ms = (long)(opt_num(L, t, "connect", 10, 0.001, 3600) * 1000);
        c->attempt_ms = (long)(opt_num(L, t, "attempt", 60, 0.001, 86400) * 1000);
        c->deadline_s = opt_num(L, t, "deadline", 300, 0.001, 86400 * 7);
    } else {
        c->connect_ms = 10000; c->attempt_ms = 60000; c->deadline_s = 300;
    }
    lua_settop(L, cidx);
    lua_getfield(L, 1, "backoff");
    if (!lua_isnil(L, -1)) {
        int t = lua_gettop(L);
        if (!lua_istable(L, t)) return luaL_error(L, "viva.client: backoff must be a table {base=, cap=}");
        c->backoff_base = opt_num(L, t, "base", 0.5, 0, 3600);
        c->backoff_cap = opt_num(L, t, "cap", 60, 0, 86400);
    } else {
        c->backoff_base = 0.5; c->backoff_cap = 60;
    }
    lua_settop(L, cidx);
    c->max_retries = (int)opt_int(L, 1, "max_retries", 3, 0, 20);
    c->max_concurrency = (int)opt_int(L, 1, "max_concurrency", 16, 1, 1024);
    lua_getfield(L, 1, "external_id_spelling");       /* the first spelling tried (altkey.h) */
    if (!lua_isnil(L, -1)) {
        const char *sp = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        if (sp && strcmp(sp, "metadata") == 0) c->key_spelling = VL_KEY_METADATA;
        else if (sp && strcmp(sp, "docs") == 0) c->key_spelling = VL_KEY_DOCS;
        else return luaL_error(L, "viva.client: external_id_spelling must be \"metadata\" (externalcourseActivityId) "
                               "or \"docs\" (externalCourseActivityId)");
    }
    lua_pop(L, 1);
    c->max_body = (size_t)opt_int(L, 1, "max_body_bytes", 16 * 1024 * 1024, 1024, 1024 * 1024 * 1024);
    {
        static const char *const ios[] = { "curl", "external", NULL };
        lua_getfield(L, 1, "io");
        if (!lua_isnil(L, -1)) {
            int i;
            const char *io = lua_tostring(L, -1);
            for (i = 0; io && ios[i]; i++)
                if (strcmp(ios[i], io) == 0) break;
            if (!io || !ios[i]) return luaL_error(L, "viva.client: io must be \"curl\", \"external\" or \"ngx\"");
            c->external = i == 1;
        }
        lua_pop(L, 1);
        lua_getfield(L, 1, "clock");
        lua_getfield(L, 1, "driver");
        if (!lua_isnil(L, -2) || !lua_isnil(L, -1)) {
            const char *k = !lua_isnil(L, -2) ? "clock" : "driver";
            int t = lua_gettop(L);
            if (!c->external) return luaL_error(L, "viva.client: %s needs io = \"external\"", k);
            if (!lua_isnil(L, t - 1) && !lua_isfunction(L, t - 1)) return luaL_error(L, "viva.client: clock must be a function");
            if (!lua_isnil(L, t) && !lua_isfunction(L, t)) return luaL_error(L, "viva.client: driver must be a function");
            c->has_clock = !lua_isnil(L, t - 1);
            c->has_driver = !lua_isnil(L, t);
            push_refs(L, cidx);
            lua_pushvalue(L, t - 1);
            lua_setfield(L, -2, "clock");
            lua_pushvalue(L, t);
            lua_setfield(L, -2, "driver");
            lua_pop(L, 1);
        }
        lua_settop(L, cidx);
    }
    vl_rng_seed(&c->rng, c);
    if (c->has_clock) {
        /* the first reading: the token's lifetime and the first deadlines count from it */
        lua_pushvalue(L, cidx);
        lua_replace(L, 1);
        read_clock(L, c);
    }
    if (!c->external && !vl_transport_init(c)) return luaL_error(L, "viva.client: curl_multi_init failed");
    lua_settop(L, cidx);
    return 1;
}

/* viva.error{kind=, message=, ...}: an error object for the Lua layer */
static int c_error(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_setmetatable(L, VL_ERR_MT);
    return 1;
}

static int c_is_error(lua_State *L) {
    int yes = 0;
    if (lua_istable(L, 1) && lua_getmetatable(L, 1)) {
        luaL_getmetatable(L, VL_ERR_MT);
        yes = lua_rawequal(L, -1, -2);
    }
    lua_pushboolean(L, yes);
    return 1;
}

/* The client methods that need no upvalue (the operations, submit and poll get theirs below). */
static const luaL_Reg plain_methods[] = {
    { "pending", c_pending }, { "take", c_take }, { "deliver", c_deliver }, { "tick", c_tick },
    { "next_wakeup", c_next_wakeup }, { "stats", c_stats }, { "close", c_close },
    { "credential", c_credential }, { NULL, NULL }
};

void vl_client_open(lua_State *L) {
    /* module table on top */
    int mod = lua_gettop(L);
    const opdef *o;
    vl_error_open(L);
    if (luaL_newmetatable(L, VL_HANDLE_MT)) {
        static const luaL_Reg hm[] = {
            { "result", h_result }, { "done", h_done }, { "op", h_op }, { "info", h_info }, { NULL, NULL }
        };
        lua_pushcfunction(L, handle_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, h_tostring);
        lua_setfield(L, -2, "__tostring");
        luaL_newlib(L, hm);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, VL_CLIENT_MT)) {
        int mt = lua_gettop(L);
        lua_newtable(L);    /* methods */
        for (o = vl_ops; o->name; o++) {
            lua_pushvalue(L, mod);
            lua_pushstring(L, o->name);
            lua_pushvalue(L, mod);
            lua_pushstring(L, o->name);
            lua_pushcclosure(L, op_body, 2);
            lua_pushcclosure(L, op_call, 3);
            lua_setfield(L, -2, o->name);
        }
        lua_pushvalue(L, mod);
        lua_pushvalue(L, mod);
        lua_pushcclosure(L, submit_body, 1);
        lua_pushcclosure(L, c_submit, 2);
        lua_setfield(L, -2, "submit");
        lua_pushcfunction(L, poll_body);
        lua_pushcclosure(L, c_poll, 1);
        lua_setfield(L, -2, "poll");
        luaL_setfuncs(L, plain_methods, 0);
        lua_pushvalue(L, -1);
        lua_setfield(L, mod, "client_methods");
        lua_setfield(L, mt, "__index");
        lua_pushcfunction(L, c_close);
        lua_setfield(L, mt, "__gc");
        lua_pushcfunction(L, c_close);
        lua_setfield(L, mt, "__close");
        lua_pushcfunction(L, c_tostring);
        lua_setfield(L, mt, "__tostring");
    }
    else {
        lua_getfield(L, -1, "__index");
        lua_setfield(L, mod, "client_methods");
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, c_new);
    lua_setfield(L, mod, "client");
    lua_pushcfunction(L, c_error);
    lua_setfield(L, mod, "error");
    lua_pushcfunction(L, c_is_error);
    lua_setfield(L, mod, "is_error");
}
