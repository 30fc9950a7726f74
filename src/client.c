/* The Graph client: client userdata (configuration, request building, synchronous calls,
 * submit/poll) and request handles. See README "Client".
 *
 * Every call, synchronous or not, becomes a request (vl_req, malloc'd, owned by its handle
 * userdata). The client keeps its requests in C lists (ready = admission queue, backoff,
 * waiting for a token, active) and its in-flight handles in a Lua table (uservalue), so a
 * submitted handle the caller drops still completes and shows up in poll(). Results are
 * built in Lua between libcurl calls, never inside a libcurl callback. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "client.h"
#include "json.h"
#include "model.h"

#define VL_CLIENT_MT "vivalearning.client"
#define VL_HANDLE_MT "vivalearning.request"

typedef struct vl_handle { vl_req *r; } vl_handle;

static const char *FAMNAME[] = { "activity", "provider", "content" };

/* ------------------------------------------------------------------ small helpers */

char *vl_strdup(const char *s) {
    size_t n;
    char *p;
    if (!s) return NULL;
    n = strlen(s);
    p = malloc(n + 1);
    if (p) memcpy(p, s, n + 1);
    return p;
}

void vl_zfree(char *p) {
    if (p) {
        volatile char *v = p;
        while (*v) *v++ = 0;
        free(p);
    }
}

static char *dupn(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (p) { memcpy(p, s, n); p[n] = 0; }
    return p;
}

/* ------------------------------------------------------------------ lists */

static vl_req **head_of(vl_client *c, int list, vl_req ***tail) {
    switch (list) {
    case VL_L_READY: *tail = &c->ready_t; return &c->ready_h;
    case VL_L_BACKOFF: *tail = &c->backoff_t; return &c->backoff_h;
    case VL_L_TOKEN: *tail = &c->token_t; return &c->token_h;
    default: *tail = &c->active_t; return &c->active_h;
    }
}

void vl_list_push(vl_client *c, vl_req *r, int list) {
    vl_req **t, **h = head_of(c, list, &t);
    r->list = list;
    r->next = NULL;
    r->prev = *t;
    if (*t) (*t)->next = r; else *h = r;
    *t = r;
}

void vl_list_push_front(vl_client *c, vl_req *r, int list) {
    vl_req **t, **h = head_of(c, list, &t);
    r->list = list;
    r->prev = NULL;
    r->next = *h;
    if (*h) (*h)->prev = r; else *t = r;
    *h = r;
}

void vl_list_remove(vl_client *c, vl_req *r) {
    vl_req **t, **h;
    if (r->list == VL_L_NONE) return;
    h = head_of(c, r->list, &t);
    if (r->prev) r->prev->next = r->next; else *h = r->next;
    if (r->next) r->next->prev = r->prev; else *t = r->prev;
    r->prev = r->next = NULL;
    r->list = VL_L_NONE;
}

void vl_req_free(vl_req *r) {
    if (!r) return;
    free(r->url);
    if (r->body) { memset(r->body, 0, r->body_len); free(r->body); }
    free(r->alt_url);
    free(r->resp);
    free(r);
}

/* ------------------------------------------------------------------ client access */

static vl_client *check_client(lua_State *L, int idx) {
    vl_client *c = luaL_checkudata(L, idx, VL_CLIENT_MT);
    if (c->closed) luaL_error(L, "vivalearning: attempt to use a closed client");
    if (c->in_cb) luaL_error(L, "vivalearning: the client cannot be used from its own token_provider or log callback");
    return c;
}

/* refs table: client uservalue 1 = { handles = {[lightud]=handle}, done = {...}, token_provider=, log= } */
static void push_refs(lua_State *L, int cidx) { lua_getiuservalue(L, cidx, 1); }

static void push_refs_field(lua_State *L, int cidx, const char *k) {
    push_refs(L, cidx);
    lua_getfield(L, -1, k);
    lua_remove(L, -2);
}

/* ------------------------------------------------------------------ logging */

/* Calls the log hook (if any) with the event table at evidx; errors are swallowed (the hook
 * is protected and can never unwind through the client). */
void vl_client_log(lua_State *L, vl_client *c, int cidx, int evidx) {
    evidx = lua_absindex(L, evidx);
    if (!c->has_log) return;
    push_refs_field(L, cidx, "log");
    if (lua_isnil(L, -1)) { lua_pop(L, 1); return; }
    lua_pushvalue(L, evidx);
    c->in_cb = 1;
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) lua_pop(L, 1);
    c->in_cb = 0;
}

static void log_attempt(lua_State *L, vl_client *c, int cidx, vl_req *r, CURLcode rc, double now) {
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
    if (rc != CURLE_OK) {
        lua_pushfstring(L, "%s: %s", curl_easy_strerror(rc), r->errbuf[0] ? r->errbuf : "");
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
static void handle_set_result(lua_State *L, int hidx, int nres) {
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
static void push_handle(lua_State *L, int cidx, vl_req *r) {
    push_refs_field(L, cidx, "handles");
    lua_rawgetp(L, -1, r);
    lua_remove(L, -2);
}

/* Finishes r with the nres values on top of the stack (they are popped). */
static void finish(lua_State *L, vl_client *c, int cidx, vl_req *r, int nres) {
    int hidx;
    vl_list_remove(c, r);
    if (r->easy) vl_transport_release(c, r);
    push_handle(L, cidx, r);
    hidx = lua_gettop(L);
    if (lua_isnil(L, hidx)) {           /* cannot happen: every public request is registered */
        lua_settop(L, hidx - 1 - nres);
        r->done = 1;
        return;
    }
    lua_insert(L, hidx - nres);        /* handle below the results */
    handle_set_result(L, hidx - nres, nres);
    /* now the handle is on top */
    if (!(r->flags & VL_F_SYNC)) {
        push_refs_field(L, cidx, "done");
        lua_pushvalue(L, -2);
        lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
        lua_pop(L, 1);
        c->ndone++;
    }
    push_refs_field(L, cidx, "handles");
    lua_pushnil(L);
    lua_rawsetp(L, -2, r);
    lua_pop(L, 2);
    r->done = 1;
    r->c = NULL;
}

static void fill_errinfo(vl_errinfo *e, vl_req *r, const char *kind) {
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
static void push_http_error(lua_State *L, vl_req *r, const char *kind, double retry_after, const char *extra) {
    vl_errinfo e;
    int top = lua_gettop(L);
    fill_errinfo(&e, r, kind);
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

static void push_transport_error(lua_State *L, vl_req *r, CURLcode rc, const char *msg) {
    vl_errinfo e;
    char cause[CURL_ERROR_SIZE + 96];
    fill_errinfo(&e, r, "transport");
    e.status = 0;
    snprintf(cause, sizeof cause, "%s (%d): %s", curl_easy_strerror(rc), (int)rc,
             r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc));
    e.cause = cause;
    e.code = NULL;
    e.message = msg;
    vl_error_push(L, &e);
    lua_pushstring(L, "CURLE");
    lua_setfield(L, -2, "code");
    lua_pushinteger(L, (lua_Integer)rc);
    lua_setfield(L, -2, "curl_code");
}

static void fail_msg(lua_State *L, vl_client *c, int cidx, vl_req *r, const char *kind, const char *msg) {
    vl_errinfo e;
    fill_errinfo(&e, r, kind);
    e.message = msg;
    lua_pushnil(L);
    vl_error_push(L, &e);
    finish(L, c, cidx, r, 2);
}

/* Waiters of a failed token fetch: each gets a copy of the error at erridx. */
void vl_client_fail_waiters(lua_State *L, vl_client *c, int cidx, int erridx) {
    erridx = lua_absindex(L, erridx);
    while (c->token_h) {
        vl_req *r = c->token_h;
        lua_pushnil(L);
        lua_newtable(L);
        lua_pushnil(L);
        while (lua_next(L, erridx)) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, -4);
        }
        lua_pushinteger(L, r->attempts);
        lua_setfield(L, -2, "attempts");
        lua_pushstring(L, r->crid);
        lua_setfield(L, -2, "client_request_id");
        luaL_setmetatable(L, VL_ERR_MT);
        finish(L, c, cidx, r, 2);
    }
}

void vl_client_release_waiters(vl_client *c) {
    while (c->token_t) {
        vl_req *r = c->token_t;
        vl_list_remove(c, r);
        vl_list_push_front(c, r, VL_L_READY);
    }
}

/* ------------------------------------------------------------------ results */

/* Decodes the JSON body of r; pushes the table or returns 0 after pushing nothing. */
static int decode_body(lua_State *L, vl_req *r) {
    if (!r->resp_len) return 0;
    if (!vl_json_decode(L, r->resp, r->resp_len)) { lua_pop(L, 2); return 0; }
    if (!lua_istable(L, -1)) { lua_pop(L, 1); return 0; }
    return 1;
}

static void fail_protocol(lua_State *L, vl_client *c, int cidx, vl_req *r, const char *msg) {
    lua_pushnil(L);
    push_http_error(L, r, "protocol", -1, msg);
    finish(L, c, cidx, r, 2);
}

/* ctx table of the handle (uservalue 2) field k, pushed */
static void push_ctx(lua_State *L, int cidx, vl_req *r, const char *k) {
    push_handle(L, cidx, r);
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
static int to_model(lua_State *L, int tidx, int family) {
    /* response metadata, not a property: it must never travel back in a body */
    tidx = lua_absindex(L, tidx);
    lua_pushnil(L);
    lua_setfield(L, tidx, "@odata.context");
    return vl_model_from_table(L, tidx, FAMNAME[family]);
}

static int push_page(lua_State *L, int t, int family) {
    int i, n, out;
    t = lua_absindex(L, t);
    lua_getfield(L, t, "value");
    if (!lua_istable(L, -1)) { lua_pop(L, 1); return 0; }
    n = (int)luaL_len(L, -1);
    lua_createtable(L, 0, 3);
    out = lua_gettop(L);
    lua_createtable(L, n, 0);
    for (i = 1; i <= n; i++) {
        lua_rawgeti(L, out - 1, i);
        if (!lua_istable(L, -1) || !to_model(L, -1, family)) { lua_settop(L, out - 2); return 0; }
        lua_rawseti(L, -3, i);
        lua_pop(L, 1);
    }
    lua_setfield(L, out, "value");
    lua_getfield(L, t, "@odata.nextLink");
    if (lua_type(L, -1) == LUA_TSTRING) lua_setfield(L, out, "next_link"); else lua_pop(L, 1);
    lua_getfield(L, t, "@odata.count");
    if (lua_type(L, -1) == LUA_TNUMBER) lua_setfield(L, out, "count"); else lua_pop(L, 1);
    lua_remove(L, out - 1);
    return 1;
}

static void batch_result(lua_State *L, vl_client *c, int cidx, vl_req *r, int t);

static void succeed(lua_State *L, vl_client *c, int cidx, vl_req *r) {
    int top = lua_gettop(L);
    int res = r->phase ? VL_RES_MODEL : r->res;
    switch (res) {
    case VL_RES_MODEL:
    case VL_RES_CREATED:
        if (!r->resp_len && !r->phase) {       /* 204 on an upsert: the model we sent */
            push_ctx(L, cidx, r, "model");
            if (lua_isnil(L, -1)) { lua_pop(L, 1); lua_pushboolean(L, 1); }
            finish(L, c, cidx, r, 1);
            return;
        }
        if (!decode_body(L, r)) { fail_protocol(L, c, cidx, r, "response body is not a JSON object"); return; }
        if (!to_model(L, -1, r->family)) {
            const char *m = lua_tostring(L, -1);
            char msg[300];
            snprintf(msg, sizeof msg, "response is not a valid %s: %s", FAMNAME[r->family], m ? m : "?");
            lua_settop(L, top);
            fail_protocol(L, c, cidx, r, msg);
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
        finish(L, c, cidx, r, 1);
        return;
    case VL_RES_UPDATED:
        push_ctx(L, cidx, r, "model");
        if (vl_model_kind(L, -1)) vl_model_clean(L, -1);
        lua_pop(L, 1);
        lua_pushboolean(L, 1);
        finish(L, c, cidx, r, 1);
        return;
    case VL_RES_PAGE:
        if (!decode_body(L, r)) { fail_protocol(L, c, cidx, r, "response body is not a JSON object"); return; }
        if (!push_page(L, -1, r->family)) {
            lua_settop(L, top);
            fail_protocol(L, c, cidx, r, "response is not a valid collection page");
            return;
        }
        lua_remove(L, -2);
        finish(L, c, cidx, r, 1);
        return;
    case VL_RES_BATCH:
        if (!decode_body(L, r)) { fail_protocol(L, c, cidx, r, "batch response is not a JSON object"); return; }
        batch_result(L, c, cidx, r, lua_gettop(L));
        return;
    default:
        lua_pushboolean(L, 1);
        finish(L, c, cidx, r, 1);
        return;
    }
}

/* ------------------------------------------------------------------ retry decisions */

static void schedule_retry(lua_State *L, vl_client *c, int cidx, vl_req *r, double hint, int phase,
                           CURLcode rc, int is_http) {
    double now = vl_now(), wait;
    if (r->retries >= c->max_retries) {
        lua_pushnil(L);
        if (is_http) push_http_error(L, r, NULL, hint, NULL);
        else push_transport_error(L, r, rc, c->max_retries > 0 ? "transport failure; retries exhausted"
                                                                : "transport failure (max_retries = 0)");
        finish(L, c, cidx, r, 2);
        return;
    }
    if (hint >= 0) {
        /* never earlier than asked; a little later, at random, so that callers throttled
         * together do not all come back in the same instant */
        double spread = hint * 0.25 < 2.0 ? hint * 0.25 : 2.0;
        wait = hint + vl_rng_unit(&c->rng) * spread;
    } else {
        wait = vl_backoff(&c->rng, r->retries, c->backoff_base, c->backoff_cap);
    }
    if (now + wait >= r->deadline) {
        char msg[160];
        snprintf(msg, sizeof msg, "giving up: the next attempt (in %.3gs) would pass the %.3gs deadline",
                 wait, c->deadline_s);
        lua_pushnil(L);
        if (is_http) push_http_error(L, r, NULL, hint, NULL);
        else push_transport_error(L, r, rc, msg);
        if (is_http) {
            lua_pushstring(L, msg);
            lua_setfield(L, -2, "note");
        }
        finish(L, c, cidx, r, 2);
        return;
    }
    r->retries++;
    r->phase = phase;
    r->not_before = now + wait;
    vl_list_push(c, r, VL_L_BACKOFF);
}

static double hint_of(vl_req *r) {
    double h = vl_retry_after_ms(r->h_retry_after_ms);
    if (h < 0) h = vl_retry_after_ms(r->h_x_retry_after_ms);
    if (h < 0) h = vl_retry_after_header(r->h_retry_after, (double)time(NULL));
    if (h < 0 && r->resp_len) h = vl_retry_after_body(r->resp, r->resp_len);
    return h;
}

static void on_complete(lua_State *L, vl_client *c, int cidx, vl_req *r, CURLcode rc) {
    double now = vl_now();
    int sent = rc == CURLE_OK ? 1 : vl_transport_was_sent(r, rc);
    long st = 0, nconn = 0, ver = 0;
    if (r->easy) {
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &st);
        if (curl_easy_getinfo(r->easy, CURLINFO_NUM_CONNECTS, &nconn) == CURLE_OK) c->st_connects += nconn;
        if (curl_easy_getinfo(r->easy, CURLINFO_HTTP_VERSION, &ver) == CURLE_OK && ver == CURL_HTTP_VERSION_2_0) c->st_h2++;
    }
    c->st_attempts++;
    r->status = rc == CURLE_OK ? st : 0;
    vl_list_remove(c, r);
    vl_transport_release(c, r);
    r->attempts++;
    log_attempt(L, c, cidx, r, rc, now);
    if (r->flags & VL_F_INTERNAL) {
        vl_auth_token_done(L, c, cidx, r, rc);
        return;
    }
    if (rc != CURLE_OK) {
        if (r->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
            char msg[96];
            snprintf(msg, sizeof msg, "response body exceeds max_body_bytes (%lu)", (unsigned long)c->max_body);
            r->status = st;
            lua_pushnil(L);
            push_http_error(L, r, "protocol", -1, msg);
            lua_pushstring(L, "body_too_large");
            lua_setfield(L, -2, "code");
            finish(L, c, cidx, r, 2);
            return;
        }
        if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_SSL_CERTPROBLEM ||
            rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_URL_MALFORMAT) {
            /* retrying cannot help */
            lua_pushnil(L);
            push_transport_error(L, r, rc, rc == CURLE_PEER_FAILED_VERIFICATION
                                 ? "TLS verification failed (the server certificate is not trusted; see ca_file)"
                                 : "transport failure");
            finish(L, c, cidx, r, 2);
            return;
        }
        if (!sent || r->phase == 1 || r->method != VL_POST) {
            /* nothing reached the server, or the request is safe to repeat */
            schedule_retry(L, c, cidx, r, -1, r->phase, rc, 0);
            return;
        }
        if (r->alt_url) {
            /* an ambiguous create: find out by the alternate key before sending it again */
            schedule_retry(L, c, cidx, r, -1, 1, rc, 0);
            return;
        }
        lua_pushnil(L);
        push_transport_error(L, r, rc, "the request may have been processed; a POST without an external id is not re-sent");
        finish(L, c, cidx, r, 2);
        return;
    }
    if (r->status == 401 && r->auth_replays == 0 && vl_auth_refreshable(c)) {
        /* exactly one forced refresh and one replay */
        r->auth_replays++;
        vl_auth_invalidate(c, r->token_gen);
        vl_list_push_front(c, r, VL_L_READY);
        return;
    }
    if (r->phase == 1) {                       /* alternate-key lookup after an ambiguous create */
        if (r->status == 200) { succeed(L, c, cidx, r); return; }
        if (r->status == 404) {                /* not there: the create did not happen; send it again */
            r->phase = 0;
            vl_list_push_front(c, r, VL_L_READY);
            return;
        }
        if (r->status == 429 || r->status == 503 || r->status == 504) {
            schedule_retry(L, c, cidx, r, hint_of(r), 1, rc, 1);
            return;
        }
        lua_pushnil(L);
        push_http_error(L, r, NULL, -1, NULL);
        finish(L, c, cidx, r, 2);
        return;
    }
    if (r->status >= 200 && r->status < 300) { succeed(L, c, cidx, r); return; }
    if (r->status == 404 && (r->flags & VL_F_DEL404OK) && r->retries > 0) {
        /* a DELETE retried after a failure may find the entity already gone */
        lua_pushboolean(L, 1);
        finish(L, c, cidx, r, 1);
        return;
    }
    if (r->status == 429) { schedule_retry(L, c, cidx, r, hint_of(r), 0, rc, 1); return; }
    if (r->status == 503 || r->status == 504) {
        if (r->method == VL_POST && r->alt_url) { schedule_retry(L, c, cidx, r, hint_of(r), 1, rc, 1); return; }
        if (r->method == VL_POST && r->status == 504) {
            lua_pushnil(L);
            push_http_error(L, r, NULL, -1, NULL);
            finish(L, c, cidx, r, 2);
            return;
        }
        schedule_retry(L, c, cidx, r, hint_of(r), 0, rc, 1);
        return;
    }
    lua_pushnil(L);
    push_http_error(L, r, NULL, -1, NULL);
    finish(L, c, cidx, r, 2);
}

/* ------------------------------------------------------------------ the engine */

static void admit(lua_State *L, vl_client *c, int cidx, double now) {
    while (c->ready_h && c->nactive < c->max_concurrency) {
        vl_req *r = c->ready_h;
        int rc;
        vl_list_remove(c, r);
        if (now >= r->deadline) {
            char msg[96];
            snprintf(msg, sizeof msg, "deadline of %.3gs passed before the request could be sent", c->deadline_s);
            fail_msg(L, c, cidx, r, "transport", msg);
            continue;
        }
        if (!vl_auth_usable(c, now)) {
            vl_list_push(c, r, VL_L_TOKEN);
            continue;
        }
        r->token_gen = c->tok.gen;
        if (r->phase == 1) {
            char *u = r->url; int m = r->method;
            r->url = r->alt_url; r->method = VL_GET;
            rc = vl_transport_start(c, r, c->tok.value);
            r->url = u; r->method = m;
        } else {
            rc = vl_transport_start(c, r, c->tok.value);
        }
        if (rc != 0) {
            fail_msg(L, c, cidx, r, "transport", "could not set up the transfer");
            continue;
        }
        vl_list_push(c, r, VL_L_ACTIVE);
        if (c->nactive > c->st_max_active) c->st_max_active = c->nactive;
    }
}

static void promote(vl_client *c, double now) {
    vl_req *r = c->backoff_h;
    while (r) {
        vl_req *n = r->next;
        if (r->not_before <= now) {
            vl_list_remove(c, r);
            vl_list_push(c, r, VL_L_READY);
        }
        r = n;
    }
}

static void process(lua_State *L, vl_client *c, int cidx) {
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
        vl_req *r = NULL;
        if (m->msg != CURLMSG_DONE) continue;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        if (!r) continue;
        on_complete(L, c, cidx, r, m->data.result);
    }
}

static int idle(vl_client *c) {
    return !c->active_h && !c->ready_h && !c->backoff_h && !c->token_h && !c->token_req;
}

/* Drives transfers until `until` is done (sync calls), or something finished (poll), or
 * timeout seconds passed, or nothing is left to do. */
static void drive(lua_State *L, vl_client *c, int cidx, vl_req *until, double timeout) {
    double end = vl_now() + timeout;
    for (;;) {
        double now = vl_now(), wait;
        promote(c, now);
        vl_auth_tick(L, c, cidx, now);
        admit(L, c, cidx, now);
        vl_transport_timers(c, vl_now());
        process(L, c, cidx);
        if (until ? until->done : c->ndone > 0) break;
        if (c->closed || idle(c)) break;
        now = vl_now();
        if (now >= end) {
            /* out of time: still look at the sockets once, without waiting (poll(0) in a frame loop) */
            if (c->nsocks > 0) {
                vl_transport_wait(c, 0);
                process(L, c, cidx);
            }
            break;
        }
        wait = end - now;
        if (c->ready_h && c->nactive < c->max_concurrency) wait = 0;
        else {
            vl_req *r;
            for (r = c->backoff_h; r; r = r->next)
                if (r->not_before - now < wait) wait = r->not_before - now;
            if (c->token_h && !c->tok.fetching && c->tok.retry_at - now < wait) wait = c->tok.retry_at - now;
        }
        if (wait < 0) wait = 0;
        if (wait > 3600) wait = 3600;      /* the loop comes back here anyway */
        if (wait > 0 || c->nactive > 0) {
            vl_transport_wait(c, wait);
            process(L, c, cidx);
            if (until ? until->done : c->ndone > 0) break;
        }
    }
}

/* ------------------------------------------------------------------ building requests */

typedef struct spec {
    const char *op;
    int method, res, family, flags;
    int path;        /* stack index of the path string (relative to the version root) */
    int body;        /* stack index of the body string or 0 */
    int alt;         /* stack index of the alternate-key path or 0 */
    int model;       /* stack index of the caller's model (ctx) or 0 */
    int immediate;   /* number of immediate results pushed (validation errors, no-op) */
} spec;

static const char *arg_string(lua_State *L, int idx, const char *what, size_t *n) {
    if (lua_type(L, idx) != LUA_TSTRING)
        luaL_error(L, "vivalearning: %s must be a string, got %s", what, luaL_typename(L, idx));
    return lua_tolstring(L, idx, n);
}

/* Appends a segment; on a bad id pushes nil, validation error and returns 0. */
static int add_seg(lua_State *L, luaL_Buffer *b, const char *s, size_t n, const char *what) {
    const char *e = vl_url_add_segment(b, s, n);
    if (e) {
        luaL_pushresult(b);
        lua_pop(L, 1);
        vl_error_validation(L, "%s: %s", what, e);
        return 0;
    }
    return 1;
}

/* the model at idx (a model, or a table turned into one by the strict constructors).
 * Returns the stack index of the model or 0 after pushing nil, err. */
static int check_model(lua_State *L, int idx, int family) {
    const char *kind = vl_model_kind(L, idx);
    idx = lua_absindex(L, idx);
    if (kind) {
        int ok = family == VL_FAM_ACTIVITY ? (strcmp(kind, "assignment") == 0 || strcmp(kind, "self_initiated") == 0 ||
                                              strcmp(kind, "activity") == 0)
                                           : strcmp(kind, FAMNAME[family]) == 0;
        if (!ok) luaL_error(L, "vivalearning: %s model expected, got %s", FAMNAME[family], kind);
        return idx;
    }
    if (lua_type(L, idx) != LUA_TTABLE)
        luaL_error(L, "vivalearning: %s model or table expected, got %s", FAMNAME[family], luaL_typename(L, idx));
    {
        /* a plain table: validated by the model constructors (upvalue 1 = module table) */
        const char *ctor = FAMNAME[family];
        if (family == VL_FAM_ACTIVITY) {
            const char *t = NULL;
            lua_getfield(L, idx, "@odata.type");
            t = lua_tostring(L, -1);
            lua_pop(L, 1);
            if (t && strstr(t, "learningSelfInitiatedCourse")) ctor = "self_initiated";
            else if (t && strstr(t, "learningAssignment")) ctor = "assignment";
            else {
                vl_error_validation(L, "@odata.type must name learningAssignment or learningSelfInitiatedCourse");
                return 0;
            }
        }
        lua_getfield(L, lua_upvalueindex(1), ctor);
        if (!lua_isfunction(L, -1)) luaL_error(L, "vivalearning: model constructor %s missing", ctor);
        lua_pushvalue(L, idx);
        if (lua_pcall(L, 1, 1, 0) != LUA_OK || !vl_model_kind(L, -1)) {
            const char *m = lua_tostring(L, -1);
            char msg[400];
            snprintf(msg, sizeof msg, "%s", m ? m : "invalid model");
            lua_pop(L, 1);
            vl_error_validation(L, "%s", msg);
            return 0;
        }
        return lua_gettop(L);
    }
}

static int model_string_field(lua_State *L, int m, const char *f, int *ok) {
    vl_model_push_field(L, m, f);
    *ok = lua_type(L, -1) == LUA_TSTRING;
    return lua_gettop(L);
}

#define PATH_ACT "/employeeExperience/learningCourseActivities"
#define PATH_PROV "/employeeExperience/learningProviders"

/* Each parser reads the call's arguments from index a on, pushes path/body/etc. and fills s.
 * On a runtime validation failure it pushes nil, err and sets s->immediate = 2. */

static void p_create(lua_State *L, int a, spec *s) {
    luaL_Buffer b;
    size_t pn, en;
    const char *p = arg_string(L, a, "provider id", &pn);
    int m, ok, ext;
    s->method = VL_POST; s->res = VL_RES_CREATED; s->family = VL_FAM_ACTIVITY;
    if (!(m = check_model(L, a + 1, VL_FAM_ACTIVITY))) { s->immediate = 2; return; }
    s->model = m;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, PATH_PROV);
    if (!add_seg(L, &b, p, pn, "provider id")) { s->immediate = 2; return; }
    luaL_addstring(&b, "/learningCourseActivities");
    luaL_pushresult(&b);
    s->path = lua_gettop(L);
    vl_model_push_json(L, m);
    s->body = lua_gettop(L);
    ext = model_string_field(L, m, "externalCourseActivityId", &ok);
    if (ok) {
        const char *e = lua_tolstring(L, ext, &en);
        const char *err;
        luaL_buffinit(L, &b);
        luaL_addstring(&b, PATH_PROV);
        vl_url_add_segment(&b, p, pn);
        luaL_addstring(&b, "/learningCourseActivities");
        err = vl_url_add_key(&b, "externalcourseActivityId", e, en);
        luaL_pushresult(&b);
        if (err) { vl_error_validation(L, "externalCourseActivityId: %s", err); s->immediate = 2; return; }
        s->alt = lua_gettop(L);
    }
}

static void p_get(lua_State *L, int a, spec *s) {
    luaL_Buffer b;
    size_t n;
    const char *id = arg_string(L, a, "id", &n);
    s->method = VL_GET; s->res = VL_RES_MODEL; s->family = VL_FAM_ACTIVITY;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, PATH_ACT);
    if (!add_seg(L, &b, id, n, "id")) { s->immediate = 2; return; }
    luaL_pushresult(&b);
    s->path = lua_gettop(L);
}

static void p_get_by_external_id(lua_State *L, int a, spec *s) {
    luaL_Buffer b;
    size_t pn, en;
    const char *p = arg_string(L, a, "provider id", &pn);
    const char *e = arg_string(L, a + 1, "external id", &en), *err;
    s->method = VL_GET; s->res = VL_RES_MODEL; s->family = VL_FAM_ACTIVITY;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, PATH_PROV);
    if (!add_seg(L, &b, p, pn, "provider id")) { s->immediate = 2; return; }
    luaL_addstring(&b, "/learningCourseActivities");
    err = vl_url_add_key(&b, "externalcourseActivityId", e, en);
    luaL_pushresult(&b);
    if (err) { lua_pop(L, 1); vl_error_validation(L, "external id: %s", err); s->immediate = 2; return; }
    s->path = lua_gettop(L);
}

static void p_get_for_user(lua_State *L, int a, spec *s) {
    luaL_Buffer b;
    size_t un, n;
    const char *u = arg_string(L, a, "user id", &un);
    const char *id = arg_string(L, a + 1, "id", &n);
    s->method = VL_GET; s->res = VL_RES_MODEL; s->family = VL_FAM_ACTIVITY;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "/users");
    if (!add_seg(L, &b, u, un, "user id")) { s->immediate = 2; return; }
    luaL_addstring(&b, PATH_ACT);
    if (!add_seg(L, &b, id, n, "id")) { s->immediate = 2; return; }
    luaL_pushresult(&b);
    s->path = lua_gettop(L);
}

/* update/update_provider share this: (prefix..., model) or (prefix..., id, changes) */
static void p_update_common(lua_State *L, int a, spec *s, int family, const char *prefix, int has_provider) {
    luaL_Buffer b;
    size_t pn = 0, idn;
    const char *p = has_provider ? arg_string(L, a, "provider id", &pn) : NULL;
    int ai = a + (has_provider ? 1 : 0);
    const char *id;
    int idx;
    s->method = VL_PATCH; s->family = family;
    if (lua_type(L, ai) == LUA_TSTRING) {
        id = lua_tolstring(L, ai, &idn);
        luaL_checktype(L, ai + 1, LUA_TTABLE);
        s->res = VL_RES_TRUE;
        if (vl_model_kind(L, ai + 1)) vl_model_push_changes_json(L, ai + 1);
        else if (!vl_json_encode(L, ai + 1)) {
            const char *m = lua_tostring(L, -1);
            char msg[300];
            snprintf(msg, sizeof msg, "changes: %s", m ? m : "not encodable");
            lua_pop(L, 2);
            vl_error_validation(L, "%s", msg);
            s->immediate = 2;
            return;
        }
        if (lua_isnil(L, -1)) { lua_pop(L, 1); lua_pushboolean(L, 1); s->immediate = 1; return; }
        s->body = lua_gettop(L);
    } else {
        int m, ok;
        if (!vl_model_kind(L, ai))
            luaL_error(L, "vivalearning: update takes a model (its changes are sent), or an id and a changes table");
        m = check_model(L, ai, family);
        if (!m) { s->immediate = 2; return; }
        s->model = m;
        s->res = VL_RES_UPDATED;
        idx = model_string_field(L, m, "id", &ok);
        if (!ok) { lua_pop(L, 1); vl_error_validation(L, "the model has no id (create it first)"); s->immediate = 2; return; }
        id = lua_tolstring(L, idx, &idn);
        vl_model_push_changes_json(L, m);
        if (lua_isnil(L, -1)) {            /* nothing changed: nothing is sent */
            lua_pop(L, 1);
            lua_pushboolean(L, 1);
            s->immediate = 1;
            return;
        }
        s->body = lua_gettop(L);
    }
    luaL_buffinit(L, &b);
    luaL_addstring(&b, prefix);
    if (has_provider) {
        if (!add_seg(L, &b, p, pn, "provider id")) { s->immediate = 2; return; }
        luaL_addstring(&b, "/learningCourseActivities");
    }
    if (!add_seg(L, &b, id, idn, "id")) { s->immediate = 2; return; }
    luaL_pushresult(&b);
    s->path = lua_gettop(L);
}

static void p_update(lua_State *L, int a, spec *s) { p_update_common(L, a, s, VL_FAM_ACTIVITY, PATH_PROV, 1); }
static void p_update_provider(lua_State *L, int a, spec *s) { p_update_common(L, a, s, VL_FAM_PROVIDER, PATH_PROV, 0); }

static void p_delete(lua_State *L, int a, spec *s) {
    luaL_Buffer b;
    size_t pn, n;
    const char *p = arg_string(L, a, "provider id", &pn);
    const char *id = arg_string(L, a + 1, "id", &n);
    s->method = VL_DELETE; s->res = VL_RES_TRUE; s->family = VL_FAM_ACTIVITY; s->flags |= VL_F_DEL404OK;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, PATH_PROV);
    if (!add_seg(L, &b, p, pn, "provider id")) { s->immediate = 2; return; }
    luaL_addstring(&b, "/learningCourseActivities");
    if (!add_seg(L, &b, id, n, "id")) { s->immediate = 2; return; }
    luaL_pushresult(&b);
    s->path = lua_gettop(L);
}

static void p_create_provider(lua_State *L, int a, spec *s) {
    int m;
    s->method = VL_POST; s->res = VL_RES_CREATED; s->family = VL_FAM_PROVIDER;
    if (!(m = check_model(L, a, VL_FAM_PROVIDER))) { s->immediate = 2; return; }
    s->model = m;
    lua_pushliteral(L, PATH_PROV);
    s->path = lua_gettop(L);
    vl_model_push_json(L, m);
    s->body = lua_gettop(L);
}

static void p_get_provider(lua_State *L, int a, spec *s) {
    luaL_Buffer b;
    size_t n;
    const char *id = arg_string(L, a, "provider id", &n);
    s->method = VL_GET; s->res = VL_RES_MODEL; s->family = VL_FAM_PROVIDER;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, PATH_PROV);
    if (!add_seg(L, &b, id, n, "provider id")) { s->immediate = 2; return; }
    luaL_pushresult(&b);
    s->path = lua_gettop(L);
}

static void p_delete_provider(lua_State *L, int a, spec *s) {
    p_get_provider(L, a, s);
    s->method = VL_DELETE; s->res = VL_RES_TRUE; s->flags |= VL_F_DEL404OK;
}

/* provider, id | {external_id=} → .../learningContents/{id} or (externalId='x') */
static int content_path(lua_State *L, int a, spec *s, int model) {
    luaL_Buffer b;
    size_t pn, n;
    const char *p = arg_string(L, a, "provider id", &pn), *id, *err;
    int by_ext = 0;
    if (model) {
        int ok, f = model_string_field(L, model, "id", &ok);
        if (!ok) {
            lua_pop(L, 1);
            f = model_string_field(L, model, "externalId", &ok);
            if (!ok) { lua_pop(L, 1); vl_error_validation(L, "content needs an id or an externalId"); s->immediate = 2; return 0; }
            by_ext = 1;
        }
        id = lua_tolstring(L, f, &n);
    } else if (lua_type(L, a + 1) == LUA_TTABLE) {
        lua_getfield(L, a + 1, "external_id");
        if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "vivalearning: {external_id = string} expected");
        id = lua_tolstring(L, -1, &n);
        by_ext = 1;
    } else {
        id = arg_string(L, a + 1, "content id", &n);
    }
    luaL_buffinit(L, &b);
    luaL_addstring(&b, PATH_PROV);
    if (!add_seg(L, &b, p, pn, "provider id")) { s->immediate = 2; return 0; }
    luaL_addstring(&b, "/learningContents");
    if (by_ext) {
        err = vl_url_add_key(&b, "externalId", id, n);
        if (err) { luaL_pushresult(&b); lua_pop(L, 1); vl_error_validation(L, "externalId: %s", err); s->immediate = 2; return 0; }
    } else if (!add_seg(L, &b, id, n, "content id")) { s->immediate = 2; return 0; }
    luaL_pushresult(&b);
    s->path = lua_gettop(L);
    return 1;
}

static void p_upsert_content(lua_State *L, int a, spec *s) {
    int m;
    s->method = VL_PATCH; s->res = VL_RES_MODEL; s->family = VL_FAM_CONTENT;
    arg_string(L, a, "provider id", NULL);
    if (!(m = check_model(L, a + 1, VL_FAM_CONTENT))) { s->immediate = 2; return; }
    s->model = m;
    if (!content_path(L, a, s, m)) return;
    vl_model_push_json(L, m);
    s->body = lua_gettop(L);
}

static void p_get_content(lua_State *L, int a, spec *s) {
    s->method = VL_GET; s->res = VL_RES_MODEL; s->family = VL_FAM_CONTENT;
    content_path(L, a, s, 0);
}

static void p_delete_content(lua_State *L, int a, spec *s) {
    s->method = VL_DELETE; s->res = VL_RES_TRUE; s->family = VL_FAM_CONTENT; s->flags |= VL_F_DEL404OK;
    content_path(L, a, s, 0);
}

/* ---- pages ---- */

/* Pushes the query string ("" or "?$top=..&..") of a page call; options table at o. */
static void page_query(lua_State *L, int o) {
    lua_Integer top = -1, skip = -1;
    int count, first = 1;
    const char *sel = NULL;
    size_t seln = 0, k;
    luaL_Buffer b;
    char nb[64];
    lua_getfield(L, o, "top");
    if (!lua_isnil(L, -1) && (!lua_isinteger(L, -1) || (top = lua_tointeger(L, -1)) < 0))
        luaL_error(L, "vivalearning: top must be a non-negative integer");
    lua_pop(L, 1);
    lua_getfield(L, o, "skip");
    if (!lua_isnil(L, -1) && (!lua_isinteger(L, -1) || (skip = lua_tointeger(L, -1)) < 0))
        luaL_error(L, "vivalearning: skip must be a non-negative integer");
    lua_pop(L, 1);
    lua_getfield(L, o, "count");
    count = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, o, "select");
    if (lua_type(L, -1) == LUA_TTABLE) {
        int t = lua_gettop(L);
        lua_Integer i, cnt = luaL_len(L, t);
        for (i = 1; i <= cnt; i++) {
            lua_rawgeti(L, t, i);
            if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "vivalearning: select must list field names");
            lua_pop(L, 1);
        }
        lua_getglobal(L, "table");
        lua_getfield(L, -1, "concat");
        lua_remove(L, -2);
        lua_pushvalue(L, t);
        lua_pushliteral(L, ",");
        lua_call(L, 2, 1);
        lua_remove(L, t);
    } else if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING) {
        luaL_error(L, "vivalearning: select must be a string or a list of field names");
    }
    /* the select string (or nil) stays on the stack until the query is built */
    if (lua_type(L, -1) == LUA_TSTRING) {
        sel = lua_tolstring(L, -1, &seln);
        for (k = 0; k < seln; k++) {
            char ch = sel[k];
            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                  ch == ',' || ch == '_' || ch == '@' || ch == '.' || ch == '#'))
                luaL_error(L, "vivalearning: select: invalid field name list");
        }
        if (seln == 0) sel = NULL;
    }
    luaL_buffinit(L, &b);
    if (top >= 0) {
        snprintf(nb, sizeof nb, "%c$top=%lld", first ? '?' : '&', (long long)top);
        luaL_addstring(&b, nb);
        first = 0;
    }
    if (skip >= 0) {
        snprintf(nb, sizeof nb, "%c$skip=%lld", first ? '?' : '&', (long long)skip);
        luaL_addstring(&b, nb);
        first = 0;
    }
    if (count) {
        luaL_addstring(&b, first ? "?$count=true" : "&$count=true");
        first = 0;
    }
    if (sel) {
        luaL_addstring(&b, first ? "?$select=" : "&$select=");
        vl_url_add_query(&b, sel, seln);
    }
    luaL_pushresult(&b);
    lua_remove(L, -2);     /* the select value */
}

/* returns 1 when a next_link was given (pushes the checked link as "absolute" path marker) */
static int page_next(lua_State *L, int o, spec *s, vl_client *c) {
    size_t n;
    const char *link;
    char err[200];
    lua_getfield(L, o, "next_link");
    if (lua_isnil(L, -1)) { lua_pop(L, 1); return 0; }
    link = arg_string(L, -1, "next_link", &n);
    if (!vl_url_same_origin(&c->graph, link, n, err, sizeof err)) {
        vl_errinfo e;
        memset(&e, 0, sizeof e);
        e.kind = "validation";
        e.code = "untrusted_next_link";
        e.message = err;
        e.retry_after = -1;
        lua_pop(L, 1);
        lua_pushnil(L);
        vl_error_push(L, &e);
        s->immediate = 2;
        return 1;
    }
    s->path = lua_gettop(L);
    s->flags |= 0x100;        /* path is an absolute URL */
    return 1;
}

static void p_page_common(lua_State *L, int a, spec *s, vl_client *c, int family) {
    luaL_Buffer b;
    luaL_checktype(L, a, LUA_TTABLE);
    s->method = VL_GET; s->res = VL_RES_PAGE; s->family = family;
    if (page_next(L, a, s, c)) return;
    luaL_buffinit(L, &b);
    if (family == VL_FAM_ACTIVITY) {
        lua_getfield(L, a, "user");
        if (lua_type(L, -1) == LUA_TSTRING) {
            size_t n;
            const char *u = lua_tolstring(L, -1, &n);
            lua_pop(L, 1);      /* the string stays in the options table */
            luaL_addstring(&b, "/users");
            if (!add_seg(L, &b, u, n, "user id")) { s->immediate = 2; return; }
        } else {
            lua_pop(L, 1);
            lua_getfield(L, a, "me");
            if (!lua_toboolean(L, -1)) luaL_error(L, "vivalearning: activities_page needs user = id or me = true");
            lua_pop(L, 1);
            luaL_addstring(&b, "/me");
        }
        luaL_addstring(&b, PATH_ACT);
    } else if (family == VL_FAM_PROVIDER) {
        luaL_addstring(&b, PATH_PROV);
    } else {
        size_t n;
        const char *p;
        lua_getfield(L, a, "provider");
        if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "vivalearning: contents_page needs provider = id");
        p = lua_tolstring(L, -1, &n);
        lua_pop(L, 1);
        luaL_addstring(&b, PATH_PROV);
        if (!add_seg(L, &b, p, n, "provider id")) { s->immediate = 2; return; }
        luaL_addstring(&b, "/learningContents");
    }
    page_query(L, a);
    luaL_addvalue(&b);
    luaL_pushresult(&b);
    s->path = lua_gettop(L);
}

/* ------------------------------------------------------------------ batch */

typedef void (*parser_fn)(lua_State *L, int a, spec *s);

static parser_fn find_batch_parser(const char *op) {
    if (strcmp(op, "create") == 0) return p_create;
    if (strcmp(op, "update") == 0) return p_update;
    if (strcmp(op, "delete") == 0) return p_delete;
    if (strcmp(op, "get") == 0) return p_get;
    if (strcmp(op, "get_by_external_id") == 0) return p_get_by_external_id;
    if (strcmp(op, "get_for_user") == 0) return p_get_for_user;
    if (strcmp(op, "upsert_content") == 0) return p_upsert_content;
    if (strcmp(op, "get_content") == 0) return p_get_content;
    if (strcmp(op, "delete_content") == 0) return p_delete_content;
    return NULL;
}

/* Builds the $batch body. items at index a. ctx table gets items meta.
 * Pushes the body string; immediate results per item go to ctx.pre[i]. */
static void p_batch(lua_State *L, int a, spec *s) {
    int n, i, ctx, pre, meta;
    vl_buf b;
    int first = 1;
    luaL_checktype(L, a, LUA_TTABLE);
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
        parser_fn fn = NULL;
        spec is;
        memset(&is, 0, sizeof is);
        lua_rawgeti(L, a, i);
        it = lua_gettop(L);
        if (!lua_istable(L, it)) luaL_error(L, "vivalearning: batch item %d must be a table", i);
        lua_getfield(L, it, "op");
        op = lua_tostring(L, -1);
        if (!op || !(fn = find_batch_parser(op))) luaL_error(L, "vivalearning: batch item %d: unknown op %s", i, op ? op : "(none)");
        lua_pop(L, 1);               /* op string stays referenced by the item table */
        base = lua_gettop(L);
        /* positional arguments from the item's fields */
        if (strcmp(op, "create") == 0 || strcmp(op, "update") == 0) {
            lua_getfield(L, it, "provider");
            lua_getfield(L, it, "model");
            if (lua_isnil(L, -1) && strcmp(op, "update") == 0) {
                lua_pop(L, 1);
                lua_getfield(L, it, "id");
                lua_getfield(L, it, "changes");
            }
        } else if (strcmp(op, "delete") == 0) {
            lua_getfield(L, it, "provider");
            lua_getfield(L, it, "id");
        } else if (strcmp(op, "get") == 0) {
            lua_getfield(L, it, "id");
        } else if (strcmp(op, "get_by_external_id") == 0) {
            lua_getfield(L, it, "provider");
            lua_getfield(L, it, "external_id");
        } else if (strcmp(op, "get_for_user") == 0) {
            lua_getfield(L, it, "user");
            lua_getfield(L, it, "id");
        } else if (strcmp(op, "upsert_content") == 0) {
            lua_getfield(L, it, "provider");
            lua_getfield(L, it, "model");
        } else {
            lua_getfield(L, it, "provider");
            lua_getfield(L, it, "id");
            if (lua_isnil(L, -1)) { lua_pop(L, 1); lua_getfield(L, it, "external_id"); if (!lua_isnil(L, -1)) { lua_newtable(L); lua_insert(L, -2); lua_setfield(L, -2, "external_id"); } }
        }
        fn(L, base + 1, &is);
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
            size_t pl, bl, off;
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
            vl_json_put_string(&b, path, pl, 0);
            if (is.body) {
                const char *body = lua_tolstring(L, is.body, &bl);
                vl_buf_addlit(&b, ",\"headers\":{\"Content-Type\":\"application/json\"},\"body\":");
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
            lua_pop(L, 1);
        }
        lua_settop(L, it - 1);
    }
    vl_buf_addlit(&b, "]}");
    vl_buf_finish(&b);
    s->body = lua_gettop(L);
    lua_pushvalue(L, s->body);
    lua_setfield(L, ctx, "body0");
    if (lua_type(L, a + 1) == LUA_TTABLE) {
        lua_getfield(L, a + 1, "retry");
        lua_setfield(L, ctx, "retry");
    } else if (!lua_isnoneornil(L, a + 1)) {
        luaL_error(L, "vivalearning: batch options must be a table ({ retry = true })");
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

/* maps the $batch response (table at t) back to the items */
static void batch_result(lua_State *L, vl_client *c, int cidx, vl_req *r, int t) {
    int n, i, ctx, items, pre, out, byid, resp, partial, again, nagain = 0, retry;
    double maxhint = -1;
    push_handle(L, cidx, r);
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
        fail_protocol(L, c, cidx, r, "batch response has no responses array");
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
            fill_errinfo(&e, r, "protocol");
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
        lua_getfield(L, rtab, "body"); body = lua_gettop(L);
        if (st >= 200 && st < 300) {
            int res, fam;
            lua_getfield(L, meta, "res"); res = (int)lua_tointeger(L, -1); lua_pop(L, 1);
            lua_getfield(L, meta, "family"); fam = (int)lua_tointeger(L, -1); lua_pop(L, 1);
            if ((res == VL_RES_MODEL || res == VL_RES_CREATED) && lua_istable(L, body)) {
                if (to_model(L, body, fam)) {
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
                    fill_errinfo(&e, r, "protocol");
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
            const char *kind = st == 429 || st == 503 ? "throttled" : st == 401 ? "auth" : "http";
            double ra = -1;
            fill_errinfo(&e, r, kind);
            e.status = st;
            e.request_id = NULL; e.date = NULL; e.client_request_id = NULL;
            lua_getfield(L, rtab, "headers");
            if (lua_istable(L, -1)) {
                lua_pushnil(L);
                while (lua_next(L, -2)) {
                    if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING) {
                        const char *k = lua_tostring(L, -2), *v = lua_tostring(L, -1);
                        if (strcasecmp(k, "retry-after") == 0) ra = vl_retry_after_header(v, (double)time(NULL));
                        else if (strcasecmp(k, "request-id") == 0) e.request_id = v;
                        else if (strcasecmp(k, "client-request-id") == 0) e.client_request_id = v;
                    }
                    lua_pop(L, 1);
                }
            }
            e.retry_after = ra;
            e.method = NULL; e.url = NULL;
            if (retry && (st == 429 || st == 503 || st == 504)) {
                int post;
                lua_getfield(L, meta, "post");
                post = lua_toboolean(L, -1);
                lua_pop(L, 1);
                if (st == 429 || !post) {     /* not processed, or safe to repeat */
                    lua_pushinteger(L, i);
                    lua_rawseti(L, again, ++nagain);
                    if (ra > maxhint) maxhint = ra;
                }
            }
            vl_error_push_graph(L, &e, lua_istable(L, body) ? body : 0);
            lua_setfield(L, it, "err");
            lua_pop(L, 1);   /* headers */
            lua_pushboolean(L, 0); lua_setfield(L, it, "ok");
        }
        lua_settop(L, it);
        lua_rawseti(L, out, i);
        lua_pop(L, 1);        /* meta */
    }
    if (nagain > 0 && r->retries < c->max_retries) {
        /* throttled items go again, alone in a new $batch, after the longest Retry-After */
        double now = vl_now(), wait;
        if (maxhint >= 0) {
            double spread = maxhint * 0.25 < 2.0 ? maxhint * 0.25 : 2.0;
            wait = maxhint + vl_rng_unit(&c->rng) * spread;
        } else {
            wait = vl_backoff(&c->rng, r->retries, c->backoff_base, c->backoff_cap);
        }
        if (now + wait < r->deadline) {
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
                if (off >= 0 && len > 0 && (size_t)(off + len) <= bl) luaL_addlstring(&b, body0 + off, (size_t)len);
            }
            luaL_addstring(&b, "]}");
            luaL_pushresult(&b);
            {
                size_t nl;
                const char *ns = lua_tolstring(L, -1, &nl);
                nb = dupn(ns, nl);
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
    finish(L, c, cidx, r, 1);
}

/* ------------------------------------------------------------------ ops table */

typedef struct opdef { const char *name; parser_fn fn; int page_family; } opdef;

/* pages are built by p_page_common (they need the client for the nextLink check) */
static void p_page(lua_State *L, int a, spec *s) { (void)L; (void)a; (void)s; }

static const opdef OPS[] = {
    { "create", p_create, -1 },
    { "get", p_get, -1 },
    { "get_by_external_id", p_get_by_external_id, -1 },
    { "get_for_user", p_get_for_user, -1 },
    { "update", p_update, -1 },
    { "delete", p_delete, -1 },
    { "activities_page", p_page, VL_FAM_ACTIVITY },
    { "providers_page", p_page, VL_FAM_PROVIDER },
    { "contents_page", p_page, VL_FAM_CONTENT },
    { "create_provider", p_create_provider, -1 },
    { "get_provider", p_get_provider, -1 },
    { "update_provider", p_update_provider, -1 },
    { "delete_provider", p_delete_provider, -1 },
    { "upsert_content", p_upsert_content, -1 },
    { "get_content", p_get_content, -1 },
    { "delete_content", p_delete_content, -1 },
    { "batch", p_batch, -1 },
    { NULL, NULL, -1 }
};

static const opdef *find_op(const char *name) {
    const opdef *o;
    for (o = OPS; o->name; o++)
        if (strcmp(o->name, name) == 0) return o;
    return NULL;
}

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
    if (od->page_family >= 0) p_page_common(L, a, &s, c, od->page_family);
    else od->fn(L, a, &s);

    h = lua_newuserdatauv(L, sizeof *h, 2);
    h->r = NULL;
    luaL_setmetatable(L, VL_HANDLE_MT);
    hidx = lua_gettop(L);
    r = calloc(1, sizeof *r);
    if (!r) luaL_error(L, "vivalearning: out of memory");
    h->r = r;
    r->opname = od->name;
    r->method = s.method; r->res = s.res; r->family = s.family;
    r->flags = (s.flags & 0xff) | (sync ? VL_F_SYNC : 0);
    vl_uuid4(&c->rng, r->crid);
    lua_createtable(L, 0, 1);
    if (s.model) { lua_pushvalue(L, s.model); lua_setfield(L, -2, "model"); }
    lua_setiuservalue(L, hidx, 2);
    if (s.immediate > 0) {
        /* answered without a request (validation error, nothing to update) */
        int k;
        for (k = 0; k < s.immediate; k++) lua_pushvalue(L, hidx - s.immediate + k);
        handle_set_result(L, hidx, s.immediate);
        r->done = 1;
        if (!sync) {
            push_refs_field(L, cidx, "done");
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
    if (s.flags & 0x100) r->url = dupn(path, pl);
    else {
        size_t bl = strlen(c->graph.base);
        r->url = malloc(bl + pl + 1);
        if (r->url) { memcpy(r->url, c->graph.base, bl); memcpy(r->url + bl, path, pl + 1); }
    }
    if (s.body) {
        size_t bl;
        const char *bs = lua_tolstring(L, s.body, &bl);
        r->body = dupn(bs, bl);
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
    r->op_start = vl_now();
    r->deadline = r->op_start + c->deadline_s;
    r->c = c;
    if (s.immediate < 0) {
        lua_pop(L, 1);
        lua_pushvalue(L, hidx);
        lua_replace(L, base + 1);
        lua_settop(L, base + 1);
        /* run the local-only batch through the result mapper */
        push_refs_field(L, cidx, "handles");
        lua_pushvalue(L, base + 1);
        lua_rawsetp(L, -2, r);
        lua_pop(L, 1);
        lua_newtable(L);
        lua_newtable(L);
        lua_setfield(L, -2, "responses");
        batch_result(L, c, cidx, r, lua_gettop(L));
        return r;
    }
    /* register and queue */
    push_refs_field(L, cidx, "handles");
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

/* sync call: c:op(...) */
static int op_call(lua_State *L) {
    vl_client *c = check_client(L, 1);
    const opdef *od = find_op(lua_tostring(L, lua_upvalueindex(2)));
    vl_req *r;
    int hidx;
    r = build(L, c, 1, od, 2, 1);
    hidx = lua_gettop(L);
    if (!r->done) drive(L, c, 1, r, 1e9);
    return push_result(L, hidx);
}

static int c_submit(lua_State *L) {
    vl_client *c = check_client(L, 1);
    const char *name = luaL_checkstring(L, 2);
    const opdef *od = find_op(name);
    if (!od) return luaL_error(L, "vivalearning: unknown operation '%s'", name);
    build(L, c, 1, od, 3, 0);
    return 1;
}

static int c_poll(lua_State *L) {
    vl_client *c = check_client(L, 1);
    double t = luaL_optnumber(L, 2, 0);
    if (t < 0) t = 0;
    if (c->ndone == 0) drive(L, c, 1, NULL, t);
    c->ndone = 0;
    push_refs(L, 1);
    lua_getfield(L, -1, "done");
    lua_newtable(L);
    lua_setfield(L, -3, "done");
    return 1;
}

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
    lua_pushinteger(L, n);
    return 1;
}

/* ------------------------------------------------------------------ close / gc */

static void detach_list(vl_client *c, vl_req *h) {
    while (h) {
        vl_req *n = h->next;
        if (h->easy) {
            curl_multi_remove_handle(c->multi, h->easy);
            curl_easy_cleanup(h->easy);
            h->easy = NULL;
            c->nactive--;
        }
        if (h->hdrs) { curl_slist_free_all(h->hdrs); h->hdrs = NULL; }
        h->prev = h->next = NULL;
        h->list = VL_L_NONE;
        h->c = NULL;
        h->closed = 1;
        h->done = 1;
        if (h->flags & VL_F_INTERNAL) vl_req_free(h);
        h = n;
    }
}

static void client_release(vl_client *c) {
    if (c->closed) return;
    c->closed = 1;
    detach_list(c, c->active_h);
    detach_list(c, c->ready_h);
    detach_list(c, c->backoff_h);
    detach_list(c, c->token_h);
    c->active_h = c->active_t = c->ready_h = c->ready_t = NULL;
    c->backoff_h = c->backoff_t = c->token_h = c->token_t = NULL;
    if (c->token_req) {
        vl_req *t = c->token_req;
        if (t->easy) { curl_multi_remove_handle(c->multi, t->easy); curl_easy_cleanup(t->easy); t->easy = NULL; }
        if (t->hdrs) curl_slist_free_all(t->hdrs);
        t->hdrs = NULL;
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

static int c_close(lua_State *L) {
    vl_client *c = luaL_checkudata(L, 1, VL_CLIENT_MT);
    if (c->in_cb) return luaL_error(L, "vivalearning: cannot close the client from its own callback");
    client_release(c);
    return 0;
}

static int c_gc(lua_State *L) {
    vl_client *c = luaL_checkudata(L, 1, VL_CLIENT_MT);
    client_release(c);
    return 0;
}

static int c_tostring(lua_State *L) {
    vl_client *c = luaL_checkudata(L, 1, VL_CLIENT_MT);
    if (c->closed) lua_pushliteral(L, "vivalearning.client (closed)");
    else lua_pushfstring(L, "vivalearning.client (%s)", c->graph.base);
    return 1;
}

static int handle_gc(lua_State *L) {
    vl_handle *h = luaL_checkudata(L, 1, VL_HANDLE_MT);
    vl_req *r = h->r;
    if (!r) return 0;
    h->r = NULL;
    if (r->c && !r->done) {
        vl_client *c = r->c;
        vl_list_remove(c, r);
        if (r->easy) vl_transport_release(c, r);
    }
    if (r->hdrs) { curl_slist_free_all(r->hdrs); r->hdrs = NULL; }
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

static char *opt_str(lua_State *L, int t, const char *k, const char *def) {
    const char *s;
    size_t n, i;
    lua_getfield(L, t, k);
    if (lua_isnil(L, -1)) { lua_pop(L, 1); return def ? vl_strdup(def) : NULL; }
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "viva.client: %s must be a string", k);
    s = lua_tolstring(L, -1, &n);
    for (i = 0; i < n; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == 0) luaL_error(L, "viva.client: %s contains CR, LF or NUL", k);
    if (n == 0) luaL_error(L, "viva.client: %s must not be empty", k);
    lua_pop(L, 1);
    return vl_strdup(s);     /* string still referenced by the table */
}

static double opt_num(lua_State *L, int t, const char *k, double def, double lo, double hi) {
    double v;
    lua_getfield(L, t, k);
    if (lua_isnil(L, -1)) { lua_pop(L, 1); return def; }
    if (lua_type(L, -1) != LUA_TNUMBER) luaL_error(L, "viva.client: %s must be a number", k);
    v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (!(v >= lo && v <= hi)) luaL_error(L, "viva.client: %s must be between %f and %f", k, lo, hi);
    return v;
}

static const char *KNOWN[] = {
    "graph_url", "authority_url", "tenant", "client_id", "client_secret", "token", "token_provider",
    "username", "password", "scope", "ca_file", "timeouts", "max_retries", "max_concurrency", "user_agent",
    "log", "allow_http", "max_body_bytes", "backoff", NULL
};

static int c_new(lua_State *L) {
    vl_client *c;
    int cidx, has_secret, has_token, has_provider, n;
    char err[300];
    const char **k;
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    /* unknown options are typos */
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        int ok = 0;
        if (lua_type(L, -2) == LUA_TSTRING)
            for (k = KNOWN; *k; k++) if (strcmp(*k, lua_tostring(L, -2)) == 0) ok = 1;
        if (!ok) return luaL_error(L, "viva.client: unknown option '%s'", lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?");
        lua_pop(L, 1);
    }
    c = lua_newuserdatauv(L, sizeof *c, 1);
    memset(c, 0, sizeof *c);
    c->closed = 1;            /* until fully built: __gc of a half-built client frees what exists */
    luaL_setmetatable(L, VL_CLIENT_MT);
    cidx = lua_gettop(L);
    lua_createtable(L, 0, 4);
    lua_newtable(L); lua_setfield(L, -2, "handles");
    lua_newtable(L); lua_setfield(L, -2, "done");
    lua_setiuservalue(L, cidx, 1);
    c->closed = 0;
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
        const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
        char ua[96];
        snprintf(ua, sizeof ua, "lua-vivalearning/%s libcurl/%s", VL_VERSION, v->version);
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
    has_secret = c->client_secret != NULL || c->password != NULL;
    n = has_secret + has_token + has_provider;
    if (n != 1)
        return luaL_error(L, "viva.client: give exactly one of client_secret (with tenant and client_id), token, or token_provider");
    if (has_secret) {
        luaL_Buffer b;
        if (!c->tenant || !c->client_id) return luaL_error(L, "viva.client: client_secret needs tenant and client_id");
        if (c->password && !c->username) return luaL_error(L, "viva.client: password needs username");
        c->auth = c->password ? VL_AUTH_PASSWORD : VL_AUTH_SECRET;
        luaL_buffinit(L, &b);
        luaL_addstring(&b, c->authority.base);
        if (vl_url_add_segment(&b, c->tenant, strlen(c->tenant))) return luaL_error(L, "viva.client: tenant is not a valid tenant id or domain");
        luaL_addstring(&b, "/oauth2/v2.0/token");
        luaL_pushresult(&b);
        c->token_url = vl_strdup(lua_tostring(L, -1));
        lua_pop(L, 1);
    } else if (has_token) {
        size_t tl, i;
        const char *t;
        lua_getfield(L, 1, "token");
        t = lua_tolstring(L, -1, &tl);
        for (i = 0; i < tl; i++)
            if ((unsigned char)t[i] <= 0x20 || t[i] == 0x7f) return luaL_error(L, "viva.client: token contains whitespace or control characters");
        if (tl == 0) return luaL_error(L, "viva.client: token must not be empty");
        c->auth = VL_AUTH_FIXED;
        c->tok.value = vl_strdup(t);
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
    c->max_retries = (int)opt_num(L, 1, "max_retries", 3, 0, 20);
    c->max_concurrency = (int)opt_num(L, 1, "max_concurrency", 16, 1, 1024);
    c->max_body = (size_t)opt_num(L, 1, "max_body_bytes", 16.0 * 1024 * 1024, 1024, 1024.0 * 1024 * 1024);
    vl_rng_seed(&c->rng, c);
    if (!vl_transport_init(c)) return luaL_error(L, "viva.client: curl_multi_init failed");
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
        for (o = OPS; o->name; o++) {
            lua_pushvalue(L, mod);
            lua_pushstring(L, o->name);
            lua_pushcclosure(L, op_call, 2);
            lua_setfield(L, -2, o->name);
        }
        lua_pushvalue(L, mod);
        lua_pushcclosure(L, c_submit, 1);
        lua_setfield(L, -2, "submit");
        lua_pushcfunction(L, c_poll);
        lua_setfield(L, -2, "poll");
        lua_pushcfunction(L, c_pending);
        lua_setfield(L, -2, "pending");
        lua_pushcfunction(L, c_stats);
        lua_setfield(L, -2, "stats");
        lua_pushcfunction(L, c_close);
        lua_setfield(L, -2, "close");
        lua_pushvalue(L, -1);
        lua_setfield(L, mod, "client_methods");
        lua_setfield(L, mt, "__index");
        lua_pushcfunction(L, c_gc);
        lua_setfield(L, mt, "__gc");
        lua_pushcfunction(L, c_gc);
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
