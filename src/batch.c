/* $batch: builds the batch body from the items and maps the batch response back to them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "luacompat.h"

#include "altkey.h"
#include "batch.h"
#include "json.h"
#include "model.h"
#include "options.h"
#include "result.h"
#include "transport.h"

/* ------------------------------------------------------------------ batch */

/* Pushes the item's fields named in form ("provider id", "{external_id}" passes { external_id =
 * value }); returns 0 when the last one is absent (nil), so the caller may try the other form. */
static int push_item_args(lua_State *L, int it, const char *form) {
    const char *p = form;
    int last_nil = 0;
    while (*p) {
        char name[32];
        size_t n = strcspn(p, " ");
        int wrap = p[0] == '{';
        if (n >= sizeof name) n = sizeof name - 1;
        memcpy(name, p + wrap, n - 2 * wrap);
        name[n - 2 * wrap] = 0;
        lua_getfield(L, it, name);
        last_nil = lua_isnil(L, -1);
        if (wrap && !last_nil) {
            lua_newtable(L);
            lua_insert(L, -2);
            lua_setfield(L, -2, name);
        }
        p += n;
        while (*p == ' ') p++;
    }
    return !last_nil;
}

/* Builds the $batch body. items at index a. ctx table gets items meta.
 * Pushes the body string; immediate results per item go to ctx.pre[i]. */
void vl_p_batch(lua_State *L, int a, spec *s) {
    int n, i, ctx, pre, meta;
    vl_buf b;
    int first = 1, opt = 0;
    luaL_checktype(L, a, LUA_TTABLE);
    /* the options are looked at before anything is pushed: when they are absent, slot a + 1
     * is where ctx goes */
    if (lua_type(L, a + 1) == LUA_TTABLE) {
        static const char *const known[] = { "retry", NULL };
        opt = a + 1;
        vl_check_keys(L, opt, "vivalearning: batch options", known);
    } else if (!lua_isnoneornil(L, a + 1)) {
        luaL_error(L, "vivalearning: batch options must be a table ({ retry = true })");
    }
    n = (int)luaL_len(L, a);
    if (n < 1 || n > 20) luaL_error(L, "vivalearning: batch takes 1 to 20 requests, got %d", n);
    s->method = VL_POST; s->res = VL_RES_BATCH; s->family = VL_FAM_ACTIVITY;
    lua_newtable(L);                     /* ctx */
    ctx = lua_gettop(L);
    lua_createtable(L, n, 0);            /* pre: immediate results */
    pre = lua_gettop(L);
    lua_createtable(L, n, 0);            /* meta */
    meta = lua_gettop(L);
    vl_buf_init(L, &b);
    vl_buf_addlit(&b, "{\"requests\":[");
    for (i = 1; i <= n; i++) {
        int it, top, base;
        const char *op;
        const opdef *od = NULL;
        spec is;
        memset(&is, 0, sizeof is);
        is.spelling = s->spelling;
        lua_rawgeti(L, a, i);
        it = lua_gettop(L);
        if (!lua_istable(L, it)) luaL_error(L, "vivalearning: batch item %d must be a table", i);
        lua_getfield(L, it, "op");
        op = lua_tostring(L, -1);
        if (op) od = vl_find_op(op);
        if (!od || !vl_op_batchable(od)) luaL_error(L, "vivalearning: batch item %d: unknown op %s", i, op ? op : "(none)");
        /* the op string stays on the stack (below the arguments): the item's __index may
         * have answered a fresh string that only the stack holds */
        {
            static const char *const item_keys[] = { "op", "provider", "model", "id", "changes", "external_id", "user", NULL };
            char where[48];
            snprintf(where, sizeof where, "vivalearning: batch item %d", i);
            vl_check_keys(L, it, where, item_keys);
        }
        base = lua_gettop(L);
        /* positional arguments from the item's fields, as the op declares them */
        if (!push_item_args(L, it, od->args[0]) && od->args[1]) {
            lua_settop(L, base);
            push_item_args(L, it, od->args[1]);
        }
        vl_op_build(L, od, base + 1, &is);
        top = lua_gettop(L);
        lua_createtable(L, 0, 4);     /* meta[i] */
        lua_pushstring(L, op);
        lua_setfield(L, -2, "op");
        lua_pushinteger(L, is.res);
        lua_setfield(L, -2, "res");
        lua_pushinteger(L, is.family);
        lua_setfield(L, -2, "family");
        lua_pushboolean(L, (is.flags & VL_F_DEL404OK) != 0);
        lua_setfield(L, -2, "del");
        lua_pushboolean(L, (od->flags & VL_OPF_204_MODEL) != 0);
        lua_setfield(L, -2, "upsert");
        if (is.model) { lua_pushvalue(L, is.model); lua_setfield(L, -2, "model"); }
        lua_rawseti(L, meta, i);
        if (is.immediate) {
            /* not sent: the result is known now */
            lua_createtable(L, 0, 3);
            if (is.immediate == 2) {
                lua_pushboolean(L, 0); lua_setfield(L, -2, "ok");
                lua_pushvalue(L, top); lua_setfield(L, -2, "err");
            } else {
                lua_pushboolean(L, 1); lua_setfield(L, -2, "ok");
                lua_pushvalue(L, top); lua_setfield(L, -2, "value");
            }
            lua_rawseti(L, pre, i);
        } else {
            size_t pl, bl, off, uoff, ku = 0, kb = 0;
            const char *path = lua_tolstring(L, is.path, &pl);
            char idb[16];
            if (!first) vl_buf_addc(&b, ',');
            first = 0;
            off = b.n;
            snprintf(idb, sizeof idb, "%d", i);
            vl_buf_addlit(&b, "{\"id\":\"");
            vl_buf_addn(&b, idb, strlen(idb));
            vl_buf_addlit(&b, "\",\"method\":\"");
            vl_buf_addn(&b, vl_method_name(is.method), strlen(vl_method_name(is.method)));
            vl_buf_addlit(&b, "\",\"url\":");
            uoff = b.n;
            vl_json_put_string(&b, path, pl, 0);
            if (is.key_path) {
                /* the key's name as written in the step's url (its first '(' is the key's) */
                const char *k = memchr(b.p + uoff, '(', b.n - uoff);
                if (k && vl_altkey_at(k + 1, (size_t)(b.p + b.n - (k + 1))) >= 0) ku = (size_t)(k + 1 - b.p) - off + 1;
            }
            if (is.body) {
                const char *body = lua_tolstring(L, is.body, &bl);
                vl_buf_addlit(&b, ",\"headers\":{\"Content-Type\":\"application/json\"},\"body\":");
                if (is.key_body) kb = b.n - off + is.key_body;
                vl_buf_addn(&b, body, bl);
            }
            vl_buf_addc(&b, '}');
            /* where this item sits in the body, to send it again alone if it is throttled */
            lua_rawgeti(L, meta, i);
            lua_pushinteger(L, (lua_Integer)off);
            lua_setfield(L, -2, "off");
            lua_pushinteger(L, (lua_Integer)(b.n - off));
            lua_setfield(L, -2, "len");
            lua_pushboolean(L, is.method == VL_POST);
            lua_setfield(L, -2, "post");
            if (ku || kb) {
                /* the alternate key in the step (offsets + 1 in its slice) and its spelling */
                if (ku) { lua_pushinteger(L, (lua_Integer)ku); lua_setfield(L, -2, "ku"); }
                if (kb) { lua_pushinteger(L, (lua_Integer)kb); lua_setfield(L, -2, "kb"); }
                lua_pushinteger(L, is.spelling);
                lua_setfield(L, -2, "sp");
            }
            lua_pop(L, 1);
        }
        lua_settop(L, it - 1);
    }
    vl_buf_addlit(&b, "]}");
    vl_buf_finish(&b);
    s->body = lua_gettop(L);
    lua_pushvalue(L, s->body);
    lua_setfield(L, ctx, "body0");
    if (opt) {
        lua_getfield(L, opt, "retry");
        lua_setfield(L, ctx, "retry");
    }
    lua_pushvalue(L, meta);
    lua_setfield(L, ctx, "items");
    lua_pushvalue(L, pre);
    lua_setfield(L, ctx, "pre");
    lua_pushinteger(L, n);
    lua_setfield(L, ctx, "n");
    if (first) s->immediate = -1;     /* nothing to send: every item was answered locally */
    lua_pushliteral(L, "/$batch");
    s->path = lua_gettop(L);
    s->model = ctx;                   /* ctx travels as the "model" slot */
    (void)pre;
}

/* The alternate-key half of a failed step's attempt: whether the step carries the key (meta
 * sp/ku/kb), was already sent in the other spelling, and whether its 400 (body at `body`: the
 * decoded error or its text) refuses the spelling sent (altkey.h). Leaves the stack as it was. */
static void key_verdict(lua_State *L, int meta, int body, int st, vl_attempt *a) {
    int sp, in_url, respelled;
    lua_getfield(L, meta, "sp");
    if (lua_isnil(L, -1)) { lua_pop(L, 1); return; }
    sp = (int)lua_tointeger(L, -1);
    lua_getfield(L, meta, "ku");
    in_url = !lua_isnil(L, -1);
    lua_getfield(L, meta, "respelled");
    respelled = lua_toboolean(L, -1);
    lua_pop(L, 3);
    a->respellable = !respelled;
    if (st != 400) return;
    if (lua_istable(L, body)) {
        lua_getfield(L, body, "error");
        if (lua_istable(L, -1)) lua_getfield(L, -1, "message");
        else lua_pushnil(L);
    } else {
        lua_pushvalue(L, body);
        lua_pushvalue(L, body);
    }
    if (lua_type(L, -1) == LUA_TSTRING) {
        size_t n;
        const char *m = lua_tolstring(L, -1, &n);
        a->key_refused = vl_altkey_refused(m, n, sp, in_url);
    }
    lua_pop(L, 2);
}

/* maps the $batch response (table at t) back to the items */
void vl_batch_result(lua_State *L, vl_client *c, int cidx, vl_req *r, int t) {
    int n, i, ctx, items, pre, out, byid, resp, partial, again, nagain = 0, retry;
    double maxwait = 0, now = vl_client_now(c), jitter = vl_rng_unit(&c->rng);
    vl_push_handle(L, cidx, r);
    lua_getiuservalue(L, -1, 2);
    lua_remove(L, -2);
    lua_getfield(L, -1, "model");     /* the batch ctx */
    lua_remove(L, -2);
    ctx = lua_gettop(L);
    lua_getfield(L, ctx, "items"); items = lua_gettop(L);
    lua_getfield(L, ctx, "pre"); pre = lua_gettop(L);
    lua_getfield(L, ctx, "n"); n = (int)lua_tointeger(L, -1); lua_pop(L, 1);
    lua_getfield(L, ctx, "retry"); retry = lua_toboolean(L, -1); lua_pop(L, 1);
    lua_getfield(L, ctx, "partial"); partial = lua_gettop(L);
    lua_newtable(L); again = lua_gettop(L);
    lua_getfield(L, t, "responses");
    if (!lua_istable(L, -1)) {
        lua_settop(L, t - 1);
        vl_fail_protocol(L, c, cidx, r, "batch response has no responses array");
        return;
    }
    resp = lua_gettop(L);
    lua_newtable(L); byid = lua_gettop(L);
    {
        int k, m = (int)luaL_len(L, resp);
        for (k = 1; k <= m; k++) {
            lua_rawgeti(L, resp, k);
            if (lua_istable(L, -1)) {
                lua_getfield(L, -1, "id");
                if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER) {
                    lua_Integer id = (lua_Integer)strtol(lua_tostring(L, -1), NULL, 10);
                    lua_pop(L, 1);
                    lua_rawseti(L, byid, id);
                    continue;
                }
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
        }
    }
    lua_createtable(L, n, 0); out = lua_gettop(L);
    for (i = 1; i <= n; i++) {
        int it, meta, st, body, rtab;
        lua_rawgeti(L, pre, i);
        if (!lua_isnil(L, -1)) { lua_rawseti(L, out, i); continue; }
        lua_pop(L, 1);
        if (lua_istable(L, partial)) {        /* settled in an earlier round */
            lua_rawgeti(L, partial, i);
            if (!lua_isnil(L, -1)) { lua_rawseti(L, out, i); continue; }
            lua_pop(L, 1);
        }
        lua_rawgeti(L, items, i); meta = lua_gettop(L);
        lua_createtable(L, 0, 4); it = lua_gettop(L);
        lua_rawgeti(L, byid, i); rtab = lua_gettop(L);
        if (!lua_istable(L, rtab)) {
            vl_errinfo e;
            vl_fill_errinfo(&e, r, "protocol");
            e.message = "no response for this batch item";
            e.status = 0;
            lua_pushboolean(L, 0); lua_setfield(L, it, "ok");
            vl_error_push(L, &e); lua_setfield(L, it, "err");
            lua_settop(L, it);
            lua_rawseti(L, out, i);
            lua_pop(L, 1);
            continue;
        }
        lua_getfield(L, rtab, "status");
        st = (int)lua_tointeger(L, -1);
        lua_setfield(L, it, "status");
        lua_getfield(L, meta, "respelled");
        if (lua_toboolean(L, -1) && vl_altkey_understood(st)) {
            /* the other spelling of the key was understood: the client keeps it */
            lua_getfield(L, meta, "sp");
            c->key_spelling = (int)lua_tointeger(L, -1);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
        lua_getfield(L, rtab, "body"); body = lua_gettop(L);
        if (st >= 200 && st < 300) {
            int res, fam;
            lua_getfield(L, meta, "res"); res = (int)lua_tointeger(L, -1); lua_pop(L, 1);
            lua_getfield(L, meta, "family"); fam = (int)lua_tointeger(L, -1); lua_pop(L, 1);
            if ((res == VL_RES_MODEL || res == VL_RES_CREATED) && !lua_istable(L, body)) {
                /* no entity: only a 204 on an upsert is empty by design (the model sent) */
                int upsert, empty = lua_isnil(L, body) || (lua_type(L, body) == LUA_TSTRING && lua_rawlen(L, body) == 0);
                lua_getfield(L, meta, "upsert");
                upsert = st == 204 && empty && lua_toboolean(L, -1);
                lua_pop(L, 1);
                if (upsert) {
                    lua_getfield(L, meta, "model");
                    if (!vl_model_kind(L, -1)) { lua_pop(L, 1); lua_pushboolean(L, 1); }
                    lua_pushboolean(L, 1); lua_setfield(L, it, "ok");
                    lua_setfield(L, it, "value");
                } else {
                    vl_errinfo e;
                    vl_fill_errinfo(&e, r, "protocol");
                    e.status = st;
                    e.message = empty ? "empty response body in batch response where an entity was expected"
                        : "batch response body is not a JSON object";
                    vl_error_push(L, &e);
                    lua_setfield(L, it, "err");
                    lua_pushboolean(L, 0); lua_setfield(L, it, "ok");
                }
            } else if (res == VL_RES_MODEL || res == VL_RES_CREATED) {
                if (vl_to_model(L, body, fam)) {
                    lua_remove(L, -2);
                    if (res == VL_RES_CREATED) {
                        lua_getfield(L, meta, "model");
                        if (vl_model_kind(L, -1)) {
                            vl_model_push_field(L, -2, "id");
                            if (lua_type(L, -1) == LUA_TSTRING) vl_model_set_id(L, -2, lua_tostring(L, -1));
                            lua_pop(L, 1);
                        }
                        lua_pop(L, 1);
                    }
                    lua_pushboolean(L, 1); lua_setfield(L, it, "ok");
                    lua_setfield(L, it, "value");
                } else {
                    vl_errinfo e;
                    const char *m = lua_tostring(L, -1);
                    vl_fill_errinfo(&e, r, "protocol");
                    e.status = st;
                    e.message = m ? m : "invalid entity in batch response";
                    vl_error_push(L, &e);
                    lua_setfield(L, it, "err");
                    lua_pushboolean(L, 0); lua_setfield(L, it, "ok");
                }
            } else {
                if (res == VL_RES_UPDATED) {
                    lua_getfield(L, meta, "model");
                    if (vl_model_kind(L, -1)) vl_model_clean(L, -1);
                    lua_pop(L, 1);
                }
                lua_pushboolean(L, 1); lua_setfield(L, it, "ok");
                lua_pushboolean(L, 1); lua_setfield(L, it, "value");
            }
        } else {
            vl_errinfo e;
            vl_attempt a;
            vl_decision d;
            const char *ra_s = NULL, *ra_ms = NULL, *ra_xms = NULL, *btxt = NULL;
            size_t bn = 0;
            double ra;
            vl_fill_errinfo(&e, r, vl_policy_status_kind(st));
            e.status = st;
            e.request_id = NULL; e.date = NULL; e.client_request_id = NULL;
            lua_getfield(L, rtab, "headers");
            if (lua_istable(L, -1)) {
                lua_pushnil(L);
                while (lua_next(L, -2)) {
                    if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING) {
                        const char *k = lua_tostring(L, -2), *v = lua_tostring(L, -1);
                        /* the strings stay alive: the headers table is on the stack */
                        if (strcasecmp(k, "retry-after") == 0) ra_s = v;
                        else if (strcasecmp(k, "retry-after-ms") == 0) ra_ms = v;
                        else if (strcasecmp(k, "x-ms-retry-after-ms") == 0) ra_xms = v;
                        else if (strcasecmp(k, "request-id") == 0) e.request_id = v;
                        else if (strcasecmp(k, "client-request-id") == 0) e.client_request_id = v;
                    }
                    lua_pop(L, 1);
                }
            }
            if (lua_type(L, body) == LUA_TSTRING) btxt = lua_tolstring(L, body, &bn);
            ra = vl_retry_after(ra_ms, ra_xms, ra_s, btxt, bn, (double)time(NULL));
            e.retry_after = ra;
            e.method = NULL; e.url = NULL;
            /* the policy decides whether this item goes again (a POST only when throttled) */
            memset(&a, 0, sizeof a);
            a.kind = VL_K_BATCH_ITEM;
            lua_getfield(L, meta, "post");
            a.method = lua_toboolean(L, -1) ? VL_POST : VL_GET;
            lua_pop(L, 1);
            a.status = st;
            a.retry_after = ra;
            a.retry_items = retry;
            a.retries = r->retries;
            a.max_retries = c->max_retries;
            a.now = now;
            a.deadline = r->deadline;
            a.backoff_base = c->backoff_base;
            a.backoff_cap = c->backoff_cap;
            a.jitter = jitter;
            key_verdict(L, meta, body, st, &a);
            d = vl_policy_decide(&a);
            if (d.action == VL_A_RETRY || d.action == VL_A_RESPELL) {
                lua_pushinteger(L, i);
                lua_rawseti(L, again, ++nagain);
                if (d.action == VL_A_RETRY && d.wait > maxwait) maxwait = d.wait;
                if (d.action == VL_A_RESPELL) {      /* the step goes again in the other spelling */
                    lua_getfield(L, meta, "sp");
                    lua_pushinteger(L, !lua_tointeger(L, -1));
                    lua_setfield(L, meta, "sp");
                    lua_pop(L, 1);
                    lua_pushboolean(L, 1);
                    lua_setfield(L, meta, "respelled");
                }
            }
            vl_error_push_graph(L, &e, lua_istable(L, body) ? body : 0);
            if (a.key_refused && !a.respellable) {
                lua_pushliteral(L, "Graph refused the alternate key in both spellings (externalcourseActivityId "
                                "and externalCourseActivityId)");
                lua_setfield(L, -2, "note");
            }
            lua_setfield(L, it, "err");
            lua_pop(L, 1);   /* headers */
            lua_pushboolean(L, 0); lua_setfield(L, it, "ok");
        }
        lua_settop(L, it);
        lua_rawseti(L, out, i);
        lua_pop(L, 1);        /* meta */
    }
    if (nagain > 0) {
        /* throttled items go again, alone in a new $batch, after the longest wait */
        double wait = maxwait;
        {
            luaL_Buffer b;
            size_t bl, k;
            const char *body0;
            char *nb;
            for (k = 1; k <= (size_t)nagain; k++) {       /* they are not settled */
                lua_rawgeti(L, again, (lua_Integer)k);
                lua_pushnil(L);
                lua_rawset(L, out);
            }
            lua_pushvalue(L, out);
            lua_setfield(L, ctx, "partial");
            lua_getfield(L, ctx, "body0");
            body0 = lua_tolstring(L, -1, &bl);
            luaL_buffinit(L, &b);
            luaL_addstring(&b, "{\"requests\":[");
            for (k = 1; k <= (size_t)nagain; k++) {
                lua_Integer off, len, idx;
                lua_rawgeti(L, again, (lua_Integer)k);
                idx = lua_tointeger(L, -1);
                lua_pop(L, 1);
                lua_rawgeti(L, items, idx);
                lua_getfield(L, -1, "off"); off = lua_tointeger(L, -1); lua_pop(L, 1);
                lua_getfield(L, -1, "len"); len = lua_tointeger(L, -1); lua_pop(L, 2);
                if (k > 1) luaL_addchar(&b, ',');
                if (off >= 0 && len > 0 && (size_t)(off + len) <= bl) {
                    /* the step as first built, its key in the spelling it goes in now */
                    lua_Integer ku, kb, sp;
                    char *dst;
                    lua_rawgeti(L, items, idx);
                    lua_getfield(L, -1, "ku"); ku = lua_tointeger(L, -1);
                    lua_getfield(L, -2, "kb"); kb = lua_tointeger(L, -1);
                    lua_getfield(L, -3, "sp"); sp = lua_tointeger(L, -1);
                    lua_pop(L, 4);
                    dst = luaL_prepbuffsize(&b, (size_t)len);
                    memcpy(dst, body0 + off, (size_t)len);
                    if (ku > 0 && ku - 1 + VL_ALTKEY_LEN <= len) vl_altkey_respell(dst + ku - 1, (int)sp);
                    if (kb > 0 && kb - 1 + VL_ALTKEY_LEN <= len) vl_altkey_respell(dst + kb - 1, (int)sp);
                    luaL_addsize(&b, (size_t)len);
                }
            }
            luaL_addstring(&b, "]}");
            luaL_pushresult(&b);
            {
                size_t nl;
                const char *ns = lua_tolstring(L, -1, &nl);
                nb = vl_dupn(ns, nl);
                if (nb) {
                    memset(r->body, 0, r->body_len);
                    free(r->body);
                    r->body = nb;
                    r->body_len = nl;
                    r->retries++;
                    r->not_before = now + wait;
                    vl_list_push(c, r, VL_L_BACKOFF);
                    lua_settop(L, t - 1);
                    return;
                }
            }
        }
    }
    lua_settop(L, out);
    lua_replace(L, t);
    lua_settop(L, t);
    vl_finish(L, c, cidx, r, 1);
}
