/* Tokens: client credentials (or the password grant, for delegated test setups), a fixed
 * token, or a Lua token_provider. One token per client, fetched on first use, refreshed
 * 5 minutes before expiry (half-way for short-lived tokens), one fetch at a time for all
 * waiters (single flight). Token endpoint errors become auth errors with the OAuth `error`
 * and the AADSTS code. The secret only ever travels in the token request body; neither the
 * body nor the token is logged or put in an error. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "token.h"
#include "io.h"
#include "json.h"
#include "result.h"
#include "transport.h"
#include "url_enc.h"

/* Pushes an auth error (message must hold no secret). */
static void push_auth_error(lua_State *L, long status, const char *code, const char *msg, int attempts) {
    vl_errinfo e;
    memset(&e, 0, sizeof e);
    e.kind = "auth";
    e.status = status;
    e.code = code;
    e.message = msg;
    e.retry_after = -1;
    e.attempts = attempts;
    vl_error_push(L, &e);
}

/* Replaces every occurrence of the client's secrets in the string on top of the stack. */
static void redact_top(lua_State *L, vl_client *c) {
    const char *secrets[3];
    int i;
    secrets[0] = c->client_secret; secrets[1] = c->password; secrets[2] = c->tok.value;
    for (i = 0; i < 3; i++) {
        if (!secrets[i] || !*secrets[i]) continue;
        luaL_gsub(L, lua_tostring(L, -1), secrets[i], "<redacted>");
        lua_remove(L, -2);
    }
}

/* A fetch failed (its auth error at erridx): the policy says whether to try again and when.
 * transport is the attempt's VL_T_* (VL_T_NONE for an HTTP answer or the provider), status its
 * HTTP status (0 for none), oauth_transient whether the endpoint called the error transient. */
static void token_failed(lua_State *L, vl_client *c, int cidx, int erridx, int transport, long status,
                         int oauth_transient, double now) {
    vl_attempt a;
    vl_decision d;
    erridx = lua_absindex(L, erridx);
    c->tok.fetching = 0;
    c->tok.failures++;
    memset(&a, 0, sizeof a);
    a.kind = VL_K_TOKEN;
    a.method = VL_POST;
    a.transport = transport;
    a.status = status;
    a.token_transient = oauth_transient;
    /* the token endpoint's Retry-After (set on transient errors only) */
    a.retry_after = -1;
    lua_getfield(L, erridx, "retry_after");
    if (lua_type(L, -1) == LUA_TNUMBER && lua_tonumber(L, -1) >= 0) a.retry_after = lua_tonumber(L, -1);
    lua_pop(L, 1);
    a.retries = c->tok.failures - 1;
    a.max_retries = c->max_retries;
    a.token_valid = vl_auth_usable(c, now);
    a.token_expires = c->tok.expires_at;
    a.now = now;
    a.deadline = now + c->deadline_s;
    a.backoff_base = c->backoff_base;
    a.backoff_cap = c->backoff_cap;
    a.jitter = vl_rng_unit(&c->rng);
    d = vl_policy_decide(&a);
    if (d.action == VL_A_RETRY && a.token_valid) {
        /* a background refresh failed: keep the valid token, try again later */
        c->tok.retry_at = now + d.wait;
        return;
    }
    if (d.action == VL_A_RETRY) {
        char note[160];
        c->tok.retry_at = now + d.wait;
        /* a waiter whose deadline comes first ends now, with the error and its retry_after */
        snprintf(note, sizeof note, "giving up: the next token request (in %.3gs) would pass the %.3gs deadline",
                 d.wait, c->deadline_s);
        lua_pushstring(L, note);
        lua_setfield(L, erridx, "note");
        vl_client_fail_waiters_by(L, c, cidx, erridx, c->tok.retry_at);
        lua_pushnil(L);
        lua_setfield(L, erridx, "note");
        return;
    }
    c->tok.failures = 0;
    c->tok.retry_at = 0;
    vl_client_fail_waiters(L, c, cidx, erridx);
}

static void call_provider(lua_State *L, vl_client *c, int cidx, double now, int force) {
    int top = lua_gettop(L), st;
    lua_getiuservalue(L, cidx, 1);
    lua_getfield(L, -1, "token_provider");
    lua_createtable(L, 0, 1);
    lua_pushboolean(L, force);
    lua_setfield(L, -2, "force");
    c->in_cb = 1;
    c->tok.fetching = 1;
    st = lua_pcall(L, 1, 2, 0);
    /* over before anything below can raise: a memory error must not leave a fetch running */
    c->in_cb = 0;
    c->tok.fetching = 0;
    if (st == LUA_ERRMEM) lua_error(L);   /* the waiters stay queued; never an auth error */
    if (st != LUA_OK) {
        if (!lua_isstring(L, -1)) { lua_pop(L, 1); lua_pushliteral(L, "(error object is not a string)"); }
        lua_pushfstring(L, "token_provider raised an error: %s", lua_tostring(L, -1));
        redact_top(L, c);
        push_auth_error(L, 0, "token_provider_error", lua_tostring(L, -1), 0);
        token_failed(L, c, cidx, -1, VL_T_NONE, 0, 0, now);
        lua_settop(L, top);
        return;
    }
    if (lua_type(L, -2) == LUA_TSTRING && lua_rawlen(L, -2) > 0) {
        size_t n, i;
        const char *t = lua_tolstring(L, -2, &n);
        double life = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : 0;
        for (i = 0; i < n; i++)
            if ((unsigned char)t[i] <= 0x20 || t[i] == 0x7f) break;
        if (!isfinite(life)) {
            /* with a NaN expiry the token is never usable: it would be asked for again and again */
            lua_pushfstring(L, "token_provider returned expires_in = %f (a finite number of seconds expected)", life);
        } else if (i == n) {
            vl_token_set(c, t, life, now);
            lua_settop(L, top);
            vl_client_release_waiters(c);
            return;
        } else {
            lua_pushliteral(L, "token_provider returned a token with whitespace or control characters");
        }
    } else if (lua_isstring(L, -1)) {
        lua_pushfstring(L, "token_provider failed: %s", lua_tostring(L, -1));
        redact_top(L, c);
    } else {
        lua_pushliteral(L, "token_provider returned no token");
    }
    push_auth_error(L, 0, "token_provider_error", lua_tostring(L, -1), 0);
    token_failed(L, c, cidx, -1, VL_T_NONE, 0, 0, now);
    lua_settop(L, top);
}

static void start_fetch(lua_State *L, vl_client *c, int cidx, double now) {
    luaL_Buffer b;
    vl_req *r;
    const char *body;
    size_t bl;
    int top = lua_gettop(L);
    /* the form first: a buffer that cannot grow raises, and nothing is ours yet */
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "client_id=");
    vl_url_add_form(&b, c->client_id, strlen(c->client_id));
    luaL_addstring(&b, "&scope=");
    vl_url_add_form(&b, c->scope, strlen(c->scope));
    if (c->auth == VL_AUTH_PASSWORD) {
        luaL_addstring(&b, "&grant_type=password&username=");
        vl_url_add_form(&b, c->username, strlen(c->username));
        luaL_addstring(&b, "&password=");
        vl_url_add_form(&b, c->password, strlen(c->password));
        if (c->client_secret) {
            luaL_addstring(&b, "&client_secret=");
            vl_url_add_form(&b, c->client_secret, strlen(c->client_secret));
        }
    } else {
        luaL_addstring(&b, "&grant_type=client_credentials&client_secret=");
        vl_url_add_form(&b, c->client_secret, strlen(c->client_secret));
    }
    luaL_pushresult(&b);
    body = lua_tolstring(L, -1, &bl);
    r = calloc(1, sizeof *r);
    if (r) {
        r->flags = VL_F_INTERNAL;
        r->method = VL_POST;
        r->res = VL_RES_TOKEN;
        r->opname = "token";
        r->c = c;
        r->url = vl_strdup(c->token_url);
        r->body = malloc(bl + 1);
        if (r->body) { memcpy(r->body, body, bl + 1); r->body_len = bl; }
    }
    lua_settop(L, top);   /* the Lua copy of the body is garbage now; Lua strings cannot be wiped */
    if (r) {
        r->op_start = now;
        r->deadline = now + c->deadline_s;
    }
    if (!r || !r->url || !r->body || vl_io_start(c, r, NULL) != 0) {
        vl_req_free(r);
        push_auth_error(L, 0, "token_request_failed", "could not set up the token request", 0);
        token_failed(L, c, cidx, -1, VL_T_SETUP, 0, 0, now);
        lua_settop(L, top);
        return;
    }
    c->tok.fetching = 1;
    c->token_req = r;
}

void vl_auth_tick(lua_State *L, vl_client *c, int cidx, double now) {
    int need;
    if (c->auth == VL_AUTH_FIXED || c->tok.fetching) return;
    need = c->token_h != NULL;
    if (!need && !(c->tok.value && now >= c->tok.refresh_at)) return;
    if (now < c->tok.retry_at) return;
    if (!need && !c->ready_h && !c->active_h && !c->backoff_h) return;   /* nobody needs it now */
    if (c->auth == VL_AUTH_PROVIDER) call_provider(L, c, cidx, now, c->tok.value == NULL && c->tok.gen > 0);
    else start_fetch(L, c, cidx, now);
}

static const char *first_line(lua_State *L, const char *s) {
    const char *e = s;
    while (*e && *e != '\r' && *e != '\n') e++;
    lua_pushlstring(L, s, (size_t)(e - s));
    return lua_tostring(L, -1);
}

void vl_auth_token_done(lua_State *L, vl_client *c, int cidx, vl_req *r, int rc) {
    int top = lua_gettop(L);
    double now = vl_client_now(c);
    double t0 = r->attempt_start;
    c->token_req = NULL;
    if (rc != 0) {
        char cause[400];
        vl_errinfo e;

        memset(&e, 0, sizeof e);
        e.kind = "auth";
        e.code = "token_request_failed";
        e.message = "could not reach the token endpoint";
        e.cause = vl_attempt_cause(r, cause, sizeof cause);
        e.retry_after = -1;
        /* every token request of this fetch, this one included */
        e.attempts = c->tok.failures + 1;
        vl_error_push(L, &e);
        if (rc > 0) {
            lua_pushinteger(L, (lua_Integer)rc);
            lua_setfield(L, -2, "curl_code");
        }
        {
            int outcome = r->outcome != VL_T_NONE ? r->outcome : VL_T_MAYBE_SENT;
            vl_req_free(r);
            token_failed(L, c, cidx, -1, outcome, 0, 0, now);
        }
        lua_settop(L, top);
        return;
    }
    if (r->status == 200 && r->resp_len && vl_json_decode(L, r->resp, r->resp_len) && lua_istable(L, -1)) {
        int t = lua_gettop(L);
        lua_getfield(L, t, "access_token");
        lua_getfield(L, t, "expires_in");
        if (lua_type(L, -2) == LUA_TSTRING && lua_rawlen(L, -2) > 0) {
            double life = lua_tonumber(L, -1);   /* number or numeric string */
            if (!isfinite(life)) life = 0;        /* 1e999 decodes to inf: no usable lifetime */
            size_t n, i;
            const char *tok = lua_tolstring(L, -2, &n);
            for (i = 0; i < n; i++)
                if ((unsigned char)tok[i] <= 0x20 || tok[i] == 0x7f) break;
            if (i == n) {
                vl_token_set(c, tok, life > 0 ? life : 3599, t0);
                c->tok.fetching = 0;
                vl_req_free(r);
                lua_settop(L, top);
                vl_client_release_waiters(c);
                return;
            }
        }
        lua_settop(L, top);
        push_auth_error(L, r->status, "invalid_token_response", "the token endpoint answered 200 without a usable access_token", c->tok.failures + 1);
        {
            long st = r->status;
            vl_req_free(r);
            token_failed(L, c, cidx, -1, VL_T_NONE, st, 0, now);
        }
        lua_settop(L, top);
        return;
    }
    lua_settop(L, top);
    {
        /* an OAuth error: {error, error_description "AADSTS7000215: ...\r\nTrace ID...", error_codes} */
        const char *err = NULL, *desc = NULL;
        lua_Integer aadsts = 0;
        int oauth_transient = 0, transient;
        int t = 0;
        vl_attempt ta;
        if (r->resp_len && vl_json_decode(L, r->resp, r->resp_len) && lua_istable(L, -1)) {
            t = lua_gettop(L);
            lua_getfield(L, t, "error");
            err = lua_tostring(L, -1);
            lua_getfield(L, t, "error_description");
            desc = lua_isstring(L, -1) ? first_line(L, lua_tostring(L, -1)) : NULL;
            lua_getfield(L, t, "error_codes");
            if (lua_istable(L, -1)) {
                lua_rawgeti(L, -1, 1);
                aadsts = lua_tointeger(L, -1);
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
            if (!aadsts && desc && strncmp(desc, "AADSTS", 6) == 0) aadsts = strtol(desc + 6, NULL, 10);
            if (err && strcmp(err, "temporarily_unavailable") == 0) oauth_transient = 1;
        } else {
            lua_settop(L, top);
        }
        memset(&ta, 0, sizeof ta);
        ta.kind = VL_K_TOKEN;
        ta.status = r->status;
        ta.token_transient = oauth_transient;
        transient = vl_policy_token_transient(&ta);
        {
            char msg[512];
            snprintf(msg, sizeof msg, "token request failed with HTTP %ld%s%s", r->status, desc ? ": " : "", desc ? desc : "");
            lua_pushstring(L, msg);
            redact_top(L, c);
            push_auth_error(L, r->status, err ? err : "token_request_failed", lua_tostring(L, -1), c->tok.failures + 1);
            if (err) { lua_pushstring(L, err); lua_setfield(L, -2, "error"); }
            if (aadsts) { lua_pushinteger(L, aadsts); lua_setfield(L, -2, "aadsts"); }
            if (r->h_request_id[0]) { lua_pushstring(L, r->h_request_id); lua_setfield(L, -2, "request_id"); }
            if (transient) {
                double h = vl_retry_after(r->h_retry_after_ms, r->h_x_retry_after_ms, r->h_retry_after, NULL, 0,
                                          (double)time(NULL));
                if (h >= 0) { lua_pushnumber(L, h); lua_setfield(L, -2, "retry_after"); }
            }
        }
        {
            long st = r->status;
            vl_req_free(r);
            token_failed(L, c, cidx, -1, VL_T_NONE, st, oauth_transient, now);
        }
        lua_settop(L, top);
    }
}
