/* Results (see result.h): finished requests into handles, results and error objects. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "luacompat.h"

#include "json.h"
#include "model.h"
#include "result.h"
#include "transport.h"

/* ------------------------------------------------------------------ logging */

/* Calls the log hook (if any) with the event table at evidx; errors are swallowed (the hook
 * is protected and can never unwind through the client). */
void vl_client_log(lua_State *L, vl_client *c, int cidx, int evidx) {
    evidx = lua_absindex(L, evidx);
    if (!c->has_log) return;
    vl_push_refs_field(L, cidx, "log");
    if (lua_isnil(L, -1)) { lua_pop(L, 1); return; }
    lua_pushvalue(L, evidx);
    c->in_cb = 1;
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) lua_pop(L, 1);
    c->in_cb = 0;
}

void vl_log_attempt(lua_State *L, vl_client *c, int cidx, vl_req *r, int rc, double now) {
    if (!c->has_log) return;
    lua_createtable(L, 0, 12);
    lua_pushstring(L, (r->flags & VL_F_INTERNAL) ? "token" : "response");
    lua_setfield(L, -2, "event");
    lua_pushstring(L, r->opname);
    lua_setfield(L, -2, "op");
    lua_pushstring(L, vl_method_name(r->phase ? VL_GET : r->method));
    lua_setfield(L, -2, "method");
    lua_pushstring(L, r->phase ? r->alt_url : r->url);
    lua_setfield(L, -2, "url");
    lua_pushinteger(L, r->status);
    lua_setfield(L, -2, "status");
    lua_pushinteger(L, r->attempts);
    lua_setfield(L, -2, "attempt");
    lua_pushnumber(L, now - r->attempt_start);
    lua_setfield(L, -2, "elapsed");
    if (!(r->flags & VL_F_INTERNAL)) {
        lua_pushstring(L, r->crid);
        lua_setfield(L, -2, "client_request_id");
    }
    if (r->h_request_id[0]) { lua_pushstring(L, r->h_request_id); lua_setfield(L, -2, "request_id"); }
    if (rc != 0) {
        char buf[400];
        lua_pushstring(L, vl_attempt_log_error(r, buf, sizeof buf));
        lua_setfield(L, -2, "error");
    }
    /* the request headers we sent, Authorization redacted; the token body is never logged */
    lua_createtable(L, 0, 6);
    if (r->flags & VL_F_INTERNAL) {
        lua_pushliteral(L, "application/x-www-form-urlencoded");
        lua_setfield(L, -2, "content-type");
    } else {
        lua_pushliteral(L, "Bearer <redacted>");
        lua_setfield(L, -2, "authorization");
        lua_pushstring(L, r->crid);
        lua_setfield(L, -2, "client-request-id");
        if (r->method == VL_POST || r->method == VL_PATCH) {
            lua_pushliteral(L, "application/json");
            lua_setfield(L, -2, "content-type");
        }
        lua_pushliteral(L, "application/json");
        lua_setfield(L, -2, "accept");
    }
    if (c->user_agent) { lua_pushstring(L, c->user_agent); lua_setfield(L, -2, "user-agent"); }
    lua_setfield(L, -2, "headers");
    vl_client_log(L, c, cidx, -1);
    lua_pop(L, 1);
}

/* ------------------------------------------------------------------ finishing requests */

/* Stores the nres values on top of the stack as the handle's result (uservalue 1). */
void vl_handle_set_result(lua_State *L, int hidx, int nres) {
    int i, base;
    hidx = lua_absindex(L, hidx);
    base = lua_gettop(L) - nres;
    lua_createtable(L, nres, 1);
    for (i = 1; i <= nres; i++) {
        lua_pushvalue(L, base + i);
        lua_rawseti(L, -2, i);
    }
    lua_pushinteger(L, nres);
    lua_setfield(L, -2, "n");
    lua_setiuservalue(L, hidx, 1);
    lua_settop(L, base);
}

/* Pushes the handle userdata of r (or nil). */
void vl_push_handle(lua_State *L, int cidx, vl_req *r) {
    vl_push_refs_field(L, cidx, "handles");
    lua_rawgetp(L, -1, r);
    lua_remove(L, -2);
}

/* Finishes r with the nres values on top of the stack (they are popped). Whatever can raise
 * (the result table, the done list growing) comes first: until the request leaves its list at
 * the end it is still the engine's, and a memory error leaves it where it was. */
void vl_finish(lua_State *L, vl_client *c, int cidx, vl_req *r, int nres) {
    int hidx;
    vl_push_handle(L, cidx, r);
    hidx = lua_gettop(L);
    if (lua_isnil(L, hidx)) {           /* cannot happen: every public request is registered */
        lua_settop(L, hidx - 1 - nres);
        vl_req_drop(c, r);
        r->done = 1;
        return;
    }
    lua_insert(L, hidx - nres);        /* handle below the results */
    vl_handle_set_result(L, hidx - nres, nres);
    /* now the handle is on top */
    if (!(r->flags & VL_F_SYNC)) {
        vl_push_refs_field(L, cidx, "done");
        lua_pushvalue(L, -2);
        lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
        lua_pop(L, 1);
        c->ndone++;
    }
    vl_push_refs_field(L, cidx, "handles");
    lua_pushnil(L);
    lua_rawsetp(L, -2, r);             /* clearing a key never allocates */
    lua_pop(L, 2);
    vl_req_drop(c, r);
    r->done = 1;
    r->c = NULL;
}

void vl_fill_errinfo(vl_errinfo *e, vl_req *r, const char *kind) {
    memset(e, 0, sizeof *e);
    e->kind = kind;
    e->status = r->status;
    e->request_id = r->h_request_id;
    e->client_request_id = r->h_client_request_id[0] ? r->h_client_request_id : r->crid;
    e->date = r->h_date;
    e->retry_after = -1;
    e->attempts = r->attempts;
    e->method = vl_method_name(r->phase ? VL_GET : r->method);
    e->url = r->phase ? r->alt_url : r->url;
}

static int body_is_json(vl_req *r) {
    return r->resp_len > 0 && (r->resp[0] == '{' || r->resp[0] == '[' ||
           strstr(r->h_content_type, "json") != NULL);
}

/* Pushes an error for the HTTP response of r. */
void vl_push_http_error(lua_State *L, vl_req *r, const char *kind, double retry_after, const char *extra) {
    vl_errinfo e;
    int top = lua_gettop(L);
    vl_fill_errinfo(&e, r, kind);
    e.retry_after = retry_after;
    if (!kind) {
        if (r->status == 429 || r->status == 503) e.kind = "throttled";
        else if (r->status == 401) e.kind = "auth";
        else e.kind = "http";
    }
    if (extra) e.message = extra;
    if (body_is_json(r) && vl_json_decode(L, r->resp, r->resp_len) && lua_istable(L, -1)) {
        vl_error_push_graph(L, &e, -1);
        if (extra) {         /* our note wins over Graph's message */
            lua_pushstring(L, extra);
            lua_setfield(L, -2, "message");
        }
    } else {
        lua_settop(L, top);
        if (!e.message) e.message = r->status ? "HTTP error without a Graph error body" : NULL;
        vl_error_push(L, &e);
    }
    if (lua_gettop(L) > top + 1) {
        lua_replace(L, top + 1);
        lua_settop(L, top + 1);
    }
}

void vl_push_transport_error(lua_State *L, vl_req *r, int rc, const char *msg) {
    vl_errinfo e;
    char cause[400];
    vl_fill_errinfo(&e, r, "transport");
    e.status = 0;
    e.cause = vl_attempt_cause(r, cause, sizeof cause);
    e.code = NULL;
    e.message = msg;
    vl_error_push(L, &e);
    if (r->rc < 0) {             /* an external driver's outcome: no curl code */
        lua_pushliteral(L, "driver");
        lua_setfield(L, -2, "code");
        return;
    }
    lua_pushstring(L, "CURLE");
    lua_setfield(L, -2, "code");
    lua_pushinteger(L, (lua_Integer)rc);
    lua_setfield(L, -2, "curl_code");
}

void vl_fail_msg(lua_State *L, vl_client *c, int cidx, vl_req *r, const char *kind, const char *msg) {
    vl_errinfo e;
    vl_fill_errinfo(&e, r, kind);
    e.message = msg;
    lua_pushnil(L);
    vl_error_push(L, &e);
    vl_finish(L, c, cidx, r, 2);
}

/* Waiters of a failed token fetch: each gets a copy of the error at erridx. */
void vl_client_fail_waiters(lua_State *L, vl_client *c, int cidx, int erridx) {
    vl_client_fail_waiters_by(L, c, cidx, erridx, -1);
}

/* The same for the waiters whose deadline comes before `by` only (all of them when by < 0). */
void vl_client_fail_waiters_by(lua_State *L, vl_client *c, int cidx, int erridx, double by) {
    vl_req *r, *next;
    erridx = lua_absindex(L, erridx);
    for (r = c->token_h; r; r = next) {
        next = r->next;
        if (by >= 0 && r->deadline > by) continue;
        lua_pushnil(L);
        lua_newtable(L);
        lua_pushnil(L);
        while (lua_next(L, erridx)) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, -4);
        }
        /* the token requests made for it, or its own attempts if it had more (a 401 first) */
        lua_getfield(L, -1, "attempts");
        if (lua_tointeger(L, -1) < r->attempts) {
            lua_pushinteger(L, r->attempts);
            lua_setfield(L, -3, "attempts");
        }
        lua_pop(L, 1);
        lua_pushstring(L, r->crid);
        lua_setfield(L, -2, "client_request_id");
        luaL_setmetatable(L, VL_ERR_MT);
        vl_finish(L, c, cidx, r, 2);
    }
}


/* The error a failed verdict names: refused before it was sent (r->v.kind), or the policy's
 * reason for the last attempt. */
void vl_fail_decided(lua_State *L, vl_client *c, int cidx, vl_req *r) {
    const vl_verdict *v = &r->v;
    int rc = r->rc;
    char msg[200];
    if (v->kind) {
        vl_fail_msg(L, c, cidx, r, v->kind, v->msg);
        return;
    }
    lua_pushnil(L);
    switch (v->reason) {
    case VL_R_TOO_LARGE:
        snprintf(msg, sizeof msg, "response body exceeds max_body_bytes (%lu)", (unsigned long)c->max_body);
        r->status = r->http_status;
        vl_push_http_error(L, r, "protocol", -1, msg);
        lua_pushstring(L, "body_too_large");
        lua_setfield(L, -2, "code");
        break;
    case VL_R_BODY_REFUSED:
        snprintf(msg, sizeof msg, "the server reset the HTTP/2 stream after %lu of the %lu bytes of the request "
                 "body: most likely it refused the body as too large (HTTP 413); not retried",
                 (unsigned long)r->uploaded, (unsigned long)r->body_len);
        vl_push_transport_error(L, r, rc, msg);
        break;
    case VL_R_FATAL:
        vl_push_transport_error(L, r, rc, vl_transport_tls_failed(r)
                             ? "TLS verification failed (the server certificate is not trusted; see ca_file)"
                             : "transport failure");
        break;
    case VL_R_MAYBE_DONE:
        if (v->transport != VL_T_NONE) {
            vl_push_transport_error(L, r, rc, "the request may have been processed; a POST without an external id is not re-sent");
        } else {
            vl_push_http_error(L, r, NULL, v->retry_after, NULL);
            lua_pushliteral(L, "the request may have been processed; a POST without an external id is not re-sent");
            lua_setfield(L, -2, "note");
        }
        break;
    case VL_R_EXHAUSTED:
        if (v->transport == VL_T_NONE) vl_push_http_error(L, r, NULL, v->retry_after, NULL);
        else vl_push_transport_error(L, r, rc, c->max_retries > 0 ? "transport failure; retries exhausted"
                                                              : "transport failure (max_retries = 0)");
        break;
    case VL_R_DEADLINE:
        snprintf(msg, sizeof msg, "giving up: the next attempt (in %.3gs) would pass the %.3gs deadline",
                 v->wait, c->deadline_s);
        if (v->transport == VL_T_NONE) {
            vl_push_http_error(L, r, NULL, v->retry_after, NULL);
            lua_pushstring(L, msg);
            lua_setfield(L, -2, "note");
        } else {
            vl_push_transport_error(L, r, rc, msg);
        }
        break;
    default:
        vl_push_http_error(L, r, NULL, -1, NULL);
        if (v->key_refused_twice) {
            lua_pushliteral(L, "Graph refused the alternate key in both spellings (externalcourseActivityId "
                            "and externalCourseActivityId)");
            lua_setfield(L, -2, "note");
        }
        break;
    }
    vl_finish(L, c, cidx, r, 2);
}

/* ------------------------------------------------------------------ results */

/* Decodes the JSON body of r; pushes the table or returns 0 after pushing nothing. */
int vl_decode_body(lua_State *L, vl_req *r) {
    if (!r->resp_len) return 0;
    if (!vl_json_decode(L, r->resp, r->resp_len)) { lua_pop(L, 2); return 0; }
    if (!lua_istable(L, -1)) { lua_pop(L, 1); return 0; }
    return 1;
}

void vl_fail_protocol(lua_State *L, vl_client *c, int cidx, vl_req *r, const char *msg) {
    lua_pushnil(L);
    vl_push_http_error(L, r, "protocol", -1, msg);
    vl_finish(L, c, cidx, r, 2);
}

/* ctx table of the handle (uservalue 2) field k, pushed */
static void push_ctx(lua_State *L, int cidx, vl_req *r, const char *k) {
    vl_push_handle(L, cidx, r);
    if (lua_isnil(L, -1)) return;
    lua_getiuservalue(L, -1, 2);
    lua_remove(L, -2);
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, k);
        lua_remove(L, -2);
    } else {
        lua_pop(L, 1);
        lua_pushnil(L);
    }
}

/* model from the decoded table at tidx; pushes model or nil, msg */
int vl_to_model(lua_State *L, int tidx, int family) {
    /* response metadata, not a property: it must never travel back in a body */
    tidx = lua_absindex(L, tidx);
    lua_pushnil(L);
    lua_setfield(L, tidx, "@odata.context");
    return vl_model_from_table(L, tidx, vl_famname[family]);
}

/* pushes the page built from the decoded table at t and returns NULL, or pushes nothing and
 * returns what is wrong with it: a page that cannot be read must never look like the last one */
static const char *push_page(lua_State *L, int t, int family) {
    int i, n, out, keys = 0, lt, bad;
    t = lua_absindex(L, t);
    lua_getfield(L, t, "@odata.nextLink");     /* absent or null: the last page */
    lt = lua_type(L, -1);
    bad = lt != LUA_TSTRING && lt != LUA_TNIL && !(lt == LUA_TLIGHTUSERDATA && lua_touserdata(L, -1) == NULL);
    lua_pop(L, 1);
    if (bad) return "page @odata.nextLink is not a string";
    lua_getfield(L, t, "value");
    if (!lua_istable(L, -1)) { lua_pop(L, 1); return "page has no value array"; }
    n = (int)luaL_len(L, -1);
    /* an object (keys other than 1..n) is not an array */
    lua_pushnil(L);
    while (lua_next(L, -2)) { lua_pop(L, 1); keys++; }
    if (keys != n) { lua_pop(L, 1); return "page value is not an array"; }
    lua_createtable(L, 0, 3);
    out = lua_gettop(L);
    lua_createtable(L, n, 0);
    for (i = 1; i <= n; i++) {
        lua_rawgeti(L, out - 1, i);
        if (!lua_istable(L, -1) || !vl_to_model(L, -1, family)) { lua_settop(L, out - 2); return "response is not a valid collection page"; }
        lua_rawseti(L, -3, i);
        lua_pop(L, 1);
    }
    lua_setfield(L, out, "value");
    lua_getfield(L, t, "@odata.nextLink");
    if (lua_type(L, -1) == LUA_TSTRING) lua_setfield(L, out, "next_link"); else lua_pop(L, 1);
    lua_getfield(L, t, "@odata.count");
    if (lua_type(L, -1) == LUA_TNUMBER) lua_setfield(L, out, "count"); else lua_pop(L, 1);
    lua_remove(L, out - 1);
    return NULL;
}

void vl_succeed(lua_State *L, vl_client *c, int cidx, vl_req *r) {
    int top = lua_gettop(L);
    int res = r->phase ? VL_RES_MODEL : r->res;
    switch (res) {
    case VL_RES_MODEL:
    case VL_RES_CREATED:
        if (!r->resp_len && !r->phase && r->method == VL_PATCH && r->status == 204) {
            /* 204 on an upsert: the model we sent */
            push_ctx(L, cidx, r, "model");
            if (lua_isnil(L, -1)) { lua_pop(L, 1); lua_pushboolean(L, 1); }
            vl_finish(L, c, cidx, r, 1);
            return;
        }
        if (!r->resp_len) {                    /* any other empty success: the entity is missing */
            char msg[160];
            snprintf(msg, sizeof msg, "empty response body where a %s was expected", vl_famname[r->family]);
            vl_fail_protocol(L, c, cidx, r, msg);
            return;
        }
        if (!vl_decode_body(L, r)) { vl_fail_protocol(L, c, cidx, r, "response body is not a JSON object"); return; }
        if (!vl_to_model(L, -1, r->family)) {
            const char *m = lua_tostring(L, -1);
            char msg[300];
            snprintf(msg, sizeof msg, "response is not a valid %s: %s", vl_famname[r->family], m ? m : "?");
            lua_settop(L, top);
            vl_fail_protocol(L, c, cidx, r, msg);
            return;
        }
        lua_remove(L, -2);
        if (res == VL_RES_CREATED || r->phase) {
            /* the caller's model learns its id */
            push_ctx(L, cidx, r, "model");
            if (vl_model_kind(L, -1)) {
                vl_model_push_field(L, -2, "id");
                if (lua_type(L, -1) == LUA_TSTRING) vl_model_set_id(L, -2, lua_tostring(L, -1));
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
        }
        vl_finish(L, c, cidx, r, 1);
        return;
    case VL_RES_UPDATED:
        push_ctx(L, cidx, r, "model");
        if (vl_model_kind(L, -1)) vl_model_clean(L, -1);
        lua_pop(L, 1);
        lua_pushboolean(L, 1);
        vl_finish(L, c, cidx, r, 1);
        return;
    case VL_RES_PAGE:
        if (!vl_decode_body(L, r)) { vl_fail_protocol(L, c, cidx, r, "response body is not a JSON object"); return; }
        {
            const char *perr = push_page(L, -1, r->family);
            if (perr) {
                lua_settop(L, top);
                vl_fail_protocol(L, c, cidx, r, perr);
                return;
            }
        }
        lua_remove(L, -2);
        vl_finish(L, c, cidx, r, 1);
        return;
    default:
        lua_pushboolean(L, 1);
        vl_finish(L, c, cidx, r, 1);
        return;
    }
}


/* ------------------------------------------------------------------ lifetimes and refs */

void vl_req_drop(vl_client *c, vl_req *r) {
    if (c && c->external && r->list == VL_L_ACTIVE) c->nactive--;
    if (c) vl_list_remove(c, r);
    if (r->easy) vl_transport_release(c, r);
}

void vl_push_refs_field(lua_State *L, int cidx, const char *k) {
    lua_getiuservalue(L, cidx, 1);
    lua_getfield(L, -1, k);
    lua_remove(L, -2);
}
