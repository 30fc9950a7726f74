/* Tokens: client credentials with a secret, a certificate (signed assertion, assertion.h) or a
 * Lua client_assertion (a federated token), a managed identity (IMDS or App Service), the
 * password grant (legacy, for delegated test setups), a fixed token, or a Lua token_provider. One token per client, fetched on first use, refreshed
 * 5 minutes before expiry (half-way for short-lived tokens), one fetch at a time for all
 * waiters (single flight). Token endpoint errors become auth errors with the OAuth `error`
 * and the AADSTS code. The secret only ever travels in the token request body; neither the
 * body nor the token is logged or put in an error. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "assertion.h"
#include "auth.h"
#include "auth_delegated.h"
#include "token.h"
#include "io.h"
#include "json.h"
#include "options.h"
#include "result.h"
#include "transport.h"
#include "url_enc.h"

/* The token (token.c) and every credential the client holds. */
void vl_auth_free(vl_client *c) {
    vl_token_free(c);
    vl_cert_free(c->cert);
    c->cert = NULL;
    free(c->mi_url);
    vl_zfree(c->mi_header);
    vl_zfree(c->mi_secret);
    c->mi_url = c->mi_header = c->mi_secret = NULL;
    vl_dlg_free(c);
}

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
    const char *secrets[6];
    int i;
    secrets[0] = c->client_secret; secrets[1] = c->password; secrets[2] = c->tok.value;
    secrets[3] = c->mi_secret; secrets[4] = c->dlg.refresh_token; secrets[5] = c->dlg.device_code;
    for (i = 0; i < 6; i++) {
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
    a.token_mi = c->mi_kind;
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

/* Runs the client's Lua callback option `name` (token_provider, client_assertion) with the nargs
 * arguments on top of the stack, marked as inside a callback and fetching (the client refuses
 * re-entry), unmarked before anything below can raise: a memory error must not leave a fetch
 * running; it is raised again and the waiters stay queued (never an auth error). LUA_OK leaves
 * nres results; any other status leaves one message, "<name> raised an error: ...", redacted. */
static int call_callback(lua_State *L, vl_client *c, int cidx, const char *name, int nargs, int nres) {
    int st;
    lua_getiuservalue(L, cidx, 1);
    lua_getfield(L, -1, name);
    lua_remove(L, -2);
    lua_insert(L, -(nargs + 1));
    c->in_cb = 1;
    c->tok.fetching = 1;
    st = lua_pcall(L, nargs, nres, 0);
    c->in_cb = 0;
    c->tok.fetching = 0;
    if (st == LUA_ERRMEM) lua_error(L);
    if (st != LUA_OK) {
        if (!lua_isstring(L, -1)) { lua_pop(L, 1); lua_pushliteral(L, "(error object is not a string)"); }
        lua_pushfstring(L, "%s raised an error: %s", name, lua_tostring(L, -1));
        lua_remove(L, -2);
        redact_top(L, c);
    }
    return st;
}

/* A token or assertion as an HTTP header or form carries it: not empty, no whitespace or
 * control characters. */
static int token_chars_ok(const char *t, size_t n) {
    size_t i;
    for (i = 0; i < n; i++)
        if ((unsigned char)t[i] <= 0x20 || t[i] == 0x7f) return 0;
    return n > 0;
}

static void call_provider(lua_State *L, vl_client *c, int cidx, double now, int force) {
    int top = lua_gettop(L);
    lua_createtable(L, 0, 1);
    lua_pushboolean(L, force);
    lua_setfield(L, -2, "force");
    if (call_callback(L, c, cidx, "token_provider", 1, 2) != LUA_OK) {
        push_auth_error(L, 0, "token_provider_error", lua_tostring(L, -1), 0);
        token_failed(L, c, cidx, -1, VL_T_NONE, 0, 0, now);
        lua_settop(L, top);
        return;
    }
    if (lua_type(L, -2) == LUA_TSTRING && lua_rawlen(L, -2) > 0) {
        size_t n;
        const char *t = lua_tolstring(L, -2, &n);
        double life = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : 0;
        if (!isfinite(life)) {
            /* with a NaN expiry the token is never usable: it would be asked for again and again */
            lua_pushfstring(L, "token_provider returned expires_in = %f (a finite number of seconds expected)", life);
        } else if (token_chars_ok(t, n)) {
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

/* ------------------------------------------------------------ client assertions */

#define JWT_BEARER "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
#define ASSERTION_LIFETIME 600   /* MSAL's 10 minutes (entra-signin.md §2.3) */

/* The client assertion of this fetch (malloc'd, zeroed by the caller), or NULL when none is
 * used; *failed when making it failed (its auth error is reported to the waiters then). */
static char *cert_assertion(lua_State *L, vl_client *c, int cidx, double now, int *failed) {
    char err[200], *a;
    a = vl_assertion_make(c->cert, c->cert_alg, c->client_id, c->token_url, (long long)time(NULL),
                          ASSERTION_LIFETIME, err, sizeof err);
    if (a) return a;
    *failed = 1;
    lua_pushfstring(L, "certificate credential: %s", err);
    push_auth_error(L, 0, "client_assertion_failed", lua_tostring(L, -1), 0);
    token_failed(L, c, cidx, -1, VL_T_FATAL, 0, 0, now);
    return NULL;
}

/* client_assertion = function: called at each fetch (a federated token file is re-read each
 * time, so a rotated token is always the one sent). */
static char *lua_assertion(lua_State *L, vl_client *c, int cidx, double now, int *failed) {
    int top = lua_gettop(L);
    char *a = NULL;
    if (call_callback(L, c, cidx, "client_assertion", 0, 1) != LUA_OK) {
        /* its message is on top */
    } else if (lua_type(L, -1) == LUA_TSTRING) {
        size_t n;
        const char *t = lua_tolstring(L, -1, &n);
        if (token_chars_ok(t, n)) {
            a = vl_dupn(t, n);
            lua_settop(L, top);
            if (!a) luaL_error(L, "vivalearning: out of memory");
            return a;
        }
        lua_pushliteral(L, "client_assertion returned an empty assertion or one with whitespace or control characters");
    } else {
        lua_pushfstring(L, "client_assertion returned %s (a JWT string expected)", luaL_typename(L, -1));
    }
    *failed = 1;
    push_auth_error(L, 0, "client_assertion_failed", lua_tostring(L, -1), 0);
    token_failed(L, c, cidx, -1, VL_T_NONE, 0, 0, now);
    lua_settop(L, top);
    return NULL;
}

/* The client's own credential in the token form: its secret, or a client assertion. */
static void add_client_credential(luaL_Buffer *b, vl_client *c, const char *assertion) {
    if (assertion) {
        luaL_addstring(b, "&client_assertion_type=" JWT_BEARER "&client_assertion=");
        vl_url_add_form(b, assertion, strlen(assertion));
    } else if (c->client_secret) {
        luaL_addstring(b, "&client_secret=");
        vl_url_add_form(b, c->client_secret, strlen(c->client_secret));
    }
}

/* Hands the token request (body may be NULL: a GET) to the client's I/O; 1 when it is on its
 * way, 0 when setting it up failed (the waiters got the error). */
static int launch(lua_State *L, vl_client *c, int cidx, double now, int method, const char *url,
                  const char *opname, const char *body, size_t bl, const char *xhdr) {
    vl_req *r = calloc(1, sizeof *r);
    int ok = 0;
    if (r) {
        r->flags = VL_F_INTERNAL;
        r->method = method;
        r->res = VL_RES_TOKEN;
        r->opname = opname;
        r->c = c;
        r->url = vl_strdup(url);
        if (body) {
            r->body = malloc(bl + 1);
            if (r->body) { memcpy(r->body, body, bl + 1); r->body_len = bl; }
        }
        if (xhdr) r->xhdr = vl_strdup(xhdr);
        r->op_start = now;
        r->deadline = now + c->deadline_s;
        ok = r->url && (!body || r->body) && (!xhdr || r->xhdr);
    }
    if (!ok || vl_io_start(c, r, NULL) != 0) {
        vl_req_free(r);
        push_auth_error(L, 0, "token_request_failed", "could not set up the token request", 0);
        token_failed(L, c, cidx, -1, VL_T_SETUP, 0, 0, now);
        return 0;
    }
    c->tok.fetching = 1;
    c->token_req = r;
    return 1;
}

static void start_fetch(lua_State *L, vl_client *c, int cidx, double now) {
    luaL_Buffer b;
    const char *body;
    size_t bl;
    int top = lua_gettop(L), failed = 0;
    int grant = vl_dlg_next_grant(c);
    char *assertion = NULL;
    /* the devicecode request is client_id and scope only: no credential of the app's */
    if (grant != VL_G_DEVICECODE) {
        if (c->auth == VL_AUTH_CERT) assertion = cert_assertion(L, c, cidx, now, &failed);
        else if (c->auth == VL_AUTH_ASSERTION) assertion = lua_assertion(L, c, cidx, now, &failed);
    }
    if (failed) { lua_settop(L, top); return; }
    /* the form first: a buffer that cannot grow raises, and only the assertion is ours yet */
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "client_id=");
    vl_url_add_form(&b, c->client_id, strlen(c->client_id));
    luaL_addstring(&b, "&scope=");
    vl_url_add_form(&b, c->scope, strlen(c->scope));
    if (grant != VL_G_CLIENT && grant != VL_G_PASSWORD) {
        vl_dlg_form(&b, c, grant);
    } else if (c->auth == VL_AUTH_PASSWORD) {
        luaL_addstring(&b, "&grant_type=password&username=");
        vl_url_add_form(&b, c->username, strlen(c->username));
        luaL_addstring(&b, "&password=");
        vl_url_add_form(&b, c->password, strlen(c->password));
    } else {
        luaL_addstring(&b, "&grant_type=client_credentials");
    }
    if (grant != VL_G_DEVICECODE) add_client_credential(&b, c, assertion);
    vl_zfree(assertion);
    luaL_pushresult(&b);
    body = lua_tolstring(L, -1, &bl);
    if (launch(L, c, cidx, now, VL_POST, vl_dlg_url(c, grant), vl_dlg_opname(grant), body, bl, NULL))
        c->dlg.grant = grant;
    lua_settop(L, top);   /* the Lua copy of the body is garbage now; Lua strings cannot be wiped */
}

/* ------------------------------------------------------------ managed identity */

/* A GET of the identity endpoint (IMDS or App Service) with its one header; no secret in the
 * URL (the App Service header is the secret, zeroed with the request). */
static void start_mi_fetch(lua_State *L, vl_client *c, int cidx, double now) {
    int top = lua_gettop(L);
    launch(L, c, cidx, now, VL_GET, c->mi_url, "token", NULL, 0, c->mi_header);
    lua_settop(L, top);
}

/* Delegated sign-in that cannot go on (nothing left to sign in with, or a device code past its
 * expiry): the waiters get the error; 1 when that happened. */
static int delegated_blocked(lua_State *L, vl_client *c, int cidx, double now) {
    int top = lua_gettop(L);
    if (!vl_dlg_delegated(c)) return 0;
    if (vl_dlg_next_grant(c) < 0) {
        vl_errinfo e;
        memset(&e, 0, sizeof e);
        e.kind = "auth";
        e.code = "signin_required";
        e.message = "no sign-in left: the refresh token is gone; sign in again (vivalearning login)";
        e.retry_after = -1;
        vl_error_push(L, &e);
    } else if (!vl_dlg_expired(L, c, now)) {
        return 0;
    }
    vl_client_fail_waiters(L, c, cidx, -1);
    lua_settop(L, top);
    return 1;
}

void vl_auth_tick(lua_State *L, vl_client *c, int cidx, double now) {
    int need;
    if (c->auth == VL_AUTH_FIXED || c->tok.fetching) return;
    need = c->token_h != NULL;
    if (!need && !(c->tok.value && now >= c->tok.refresh_at)) return;
    if (now < c->tok.retry_at) return;
    if (!need && !c->ready_h && !c->active_h && !c->backoff_h) return;   /* nobody needs it now */
    if (!need && vl_dlg_delegated(c) && (!vl_dlg_background_ok(c) || vl_dlg_next_grant(c) < 0)) return;
    if (need && delegated_blocked(L, c, cidx, now)) return;
    if (c->auth == VL_AUTH_PROVIDER) call_provider(L, c, cidx, now, c->tok.value == NULL && c->tok.gen > 0);
    else if (c->auth == VL_AUTH_MI) start_mi_fetch(L, c, cidx, now);
    else start_fetch(L, c, cidx, now);
}

/* Managed identity answers carry expires_on (a string of epoch seconds); App Service's has no
 * expires_in at all (APPSVC). 0 when there is none. */
static double expires_on_life(lua_State *L, int t) {
    double on;
    lua_getfield(L, t, "expires_on");
    on = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return on > 0 ? on - (double)time(NULL) : 0;
}

/* The devicecode endpoint answered 200: the user gets the instruction, polling starts (the
 * waiters stay queued); a bad answer or a failing callback fails them. */
static void devicecode_done(lua_State *L, vl_client *c, int cidx, vl_req *r, double now) {
    int failed = 1;
    c->tok.fetching = 0;
    if (r->resp_len && vl_json_decode(L, r->resp, r->resp_len) && lua_istable(L, -1))
        failed = vl_dlg_devicecode_answer(L, c, cidx, lua_gettop(L), now);
    else {
        vl_errinfo e;
        memset(&e, 0, sizeof e);
        e.kind = "auth";
        e.status = r->status;
        e.code = "invalid_devicecode_response";
        e.message = "the devicecode endpoint answered 200 without a JSON object";
        e.retry_after = -1;
        vl_error_push(L, &e);
    }
    vl_req_free(r);
    if (failed) {
        c->tok.failures = 0;
        c->tok.retry_at = 0;
        vl_client_fail_waiters(L, c, cidx, -1);
    }
}

/* The user has not finished (authorization_pending, slow_down): poll again at tok.retry_at.
 * A waiter whose deadline comes before that ends now. */
static void poll_again(lua_State *L, vl_client *c, int cidx, vl_req *r) {
    vl_errinfo e;
    c->tok.fetching = 0;
    c->tok.failures = 0;
    vl_req_free(r);
    memset(&e, 0, sizeof e);
    e.kind = "auth";
    e.code = "authorization_pending";
    e.message = "device code sign-in still pending when the request's deadline passed (the user has not signed in yet)";
    e.retry_after = -1;
    vl_error_push(L, &e);
    vl_client_fail_waiters_by(L, c, cidx, -1, c->tok.retry_at);
    lua_pop(L, 1);
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
        e.message = c->auth == VL_AUTH_MI ? "could not reach the managed identity endpoint" : "could not reach the token endpoint";
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
    if (r->status == 200 && c->dlg.grant == VL_G_DEVICECODE) {
        devicecode_done(L, c, cidx, r, now);
        lua_settop(L, top);
        return;
    }
    if (r->status == 200 && r->resp_len && vl_json_decode(L, r->resp, r->resp_len) && lua_istable(L, -1)) {
        int t = lua_gettop(L);
        lua_getfield(L, t, "access_token");
        lua_getfield(L, t, "expires_in");
        if (lua_type(L, -2) == LUA_TSTRING && lua_rawlen(L, -2) > 0) {
            double life = lua_tonumber(L, -1);   /* number or numeric string */
            if (!(life > 0)) life = expires_on_life(L, t);   /* App Service: expires_on only */
            if (!isfinite(life)) life = 0;        /* 1e999 decodes to inf: no usable lifetime */
            size_t n;
            const char *tok = lua_tolstring(L, -2, &n);
            if (token_chars_ok(tok, n)) {
                int hook_failed;
                vl_token_set(c, tok, life > 0 ? life : 3599, t0);
                c->tok.fetching = 0;
                vl_req_free(r);
                hook_failed = vl_dlg_delegated(c) && vl_dlg_keep_refresh(L, c, cidx, t);
                if (hook_failed) {
                    /* the token is good, but the caller could not keep the refresh token */
                    vl_client_fail_waiters(L, c, cidx, -1);
                    lua_settop(L, top);
                    return;
                }
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
            if (!desc) {
                /* App Service's managed identity errors: {statusCode, message, correlationId} */
                lua_getfield(L, t, "message");
                desc = lua_isstring(L, -1) ? first_line(L, lua_tostring(L, -1)) : NULL;
            }
            if (!aadsts && desc && strncmp(desc, "AADSTS", 6) == 0) aadsts = strtol(desc + 6, NULL, 10);
            if (err && strcmp(err, "temporarily_unavailable") == 0) oauth_transient = 1;
        } else {
            lua_settop(L, top);
        }
        const char *hint = NULL;
        switch (vl_dlg_oauth_error(c, err, (long)aadsts, now, &hint)) {
        case VL_DLG_POLL_AGAIN:
            poll_again(L, c, cidx, r);
            lua_settop(L, top);
            return;
        case VL_DLG_RESTART:
            c->tok.fetching = 0;
            c->tok.failures = 0;
            c->tok.retry_at = 0;
            vl_req_free(r);
            lua_settop(L, top);
            return;
        default:
            break;
        }
        memset(&ta, 0, sizeof ta);
        ta.kind = VL_K_TOKEN;
        ta.status = r->status;
        ta.token_transient = oauth_transient;
        ta.token_mi = c->mi_kind;
        transient = vl_policy_token_transient(&ta);
        if (!transient && c->dlg.grant == VL_G_DEVICE_POLL) vl_dlg_clear_device(c);
        {
            char msg[640];
            snprintf(msg, sizeof msg, "%s%s%s request failed with HTTP %ld%s%s%s", hint ? hint : "", hint ? " (" : "",
                     c->auth == VL_AUTH_MI ? "managed identity token" : "token", r->status,
                     desc ? ": " : "", desc ? desc : "", hint ? ")" : "");
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

/* ------------------------------------------------------------ options (viva.client) */

static const char *const CERT_OPTS[] = { "cert", "key", "password", "pfx", "alg", NULL };
static const char *const MI_OPTS[] = { "client_id", "identity_endpoint", "identity_header", "imds_host", NULL };
static const char *const OURS[] = { "certificate", "client_assertion", "managed_identity", NULL };

#define IMDS_HOST "http://169.254.169.254"

int vl_auth_given(lua_State *L, int t) {
    int i, n = 0;
    for (i = 0; OURS[i]; i++) {
        lua_getfield(L, t, OURS[i]);
        n += !lua_isnil(L, -1) && !(lua_isboolean(L, -1) && !lua_toboolean(L, -1));
        lua_pop(L, 1);
    }
    return n;
}

void vl_auth_token_url(lua_State *L, vl_client *c) {
    luaL_Buffer b;
    char *u;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, c->authority.base);
    if (vl_url_add_segment(&b, c->tenant, strlen(c->tenant))) luaL_error(L, "viva.client: tenant is not a valid tenant id or domain");
    luaL_addstring(&b, "/oauth2/v2.0/token");
    luaL_pushresult(&b);
    u = vl_strdup(lua_tostring(L, -1));
    if (!u) luaL_error(L, "viva.client: out of memory");
    free(c->token_url);
    c->token_url = u;
    lua_pop(L, 1);
}

/* a string field of the table at t: NULL when absent; raises naming where.k when it is not a
 * non-empty string without CR, LF or NUL */
static const char *field_str(lua_State *L, int t, const char *where, const char *k, size_t *len) {
    const char *s;
    size_t n, i;
    lua_getfield(L, t, k);
    if (lua_isnil(L, -1)) { lua_pop(L, 1); return NULL; }
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "viva.client: %s.%s must be a string", where, k);
    s = lua_tolstring(L, -1, &n);
    if (n == 0) luaL_error(L, "viva.client: %s.%s must not be empty", where, k);
    if (len) *len = n;
    else
        for (i = 0; i < n; i++)
            if (s[i] == '\r' || s[i] == '\n' || s[i] == 0) luaL_error(L, "viva.client: %s.%s contains CR, LF or NUL", where, k);
    lua_pop(L, 1);   /* still referenced by the table */
    return s;
}

/* certificate = "PEM (certificate and key)" | { cert =, key =, password =, pfx =, alg = } */
static void configure_cert(lua_State *L, vl_client *c, int t) {
    const char *cert, *key, *pass, *pfx, *alg;
    size_t cl = 0, kl = 0, pl = 0;
    char err[200];
    int top = lua_gettop(L);
    lua_getfield(L, t, "certificate");
    if (lua_type(L, -1) == LUA_TSTRING) {
        cert = key = lua_tolstring(L, -1, &cl);
        kl = cl;
        pass = pfx = alg = NULL;
    } else if (lua_istable(L, -1)) {
        int ct = lua_gettop(L);
        vl_check_keys(L, ct, "viva.client: certificate", CERT_OPTS);
        cert = field_str(L, ct, "certificate", "cert", &cl);
        key = field_str(L, ct, "certificate", "key", &kl);
        pass = field_str(L, ct, "certificate", "password", NULL);
        pfx = field_str(L, ct, "certificate", "pfx", &pl);
        alg = field_str(L, ct, "certificate", "alg", NULL);
        if (!pfx && !cert) luaL_error(L, "viva.client: certificate needs cert (PEM text) or pfx (PKCS#12 bytes)");
        if (pfx && (cert || key)) luaL_error(L, "viva.client: certificate: give pfx, or cert and key, not both");
        if (cert && !key) { key = cert; kl = cl; }
    } else {
        luaL_error(L, "viva.client: certificate must be PEM text or a table {cert =, key =, password =, pfx =, alg =}");
        return;
    }
    if (alg && strcmp(alg, "RS256") != 0 && strcmp(alg, "PS256") != 0)
        luaL_error(L, "viva.client: certificate.alg must be \"RS256\" or \"PS256\"");
    if (!c->tenant || !c->client_id) luaL_error(L, "viva.client: certificate needs tenant and client_id");
    c->cert_alg = alg && strcmp(alg, "PS256") == 0 ? VL_ALG_PS256 : VL_ALG_RS256;
    c->cert = pfx ? vl_cert_load_pfx((const unsigned char *)pfx, pl, pass, err, sizeof err)
                  : vl_cert_load_pem(cert, cl, key, kl, pass, err, sizeof err);
    if (!c->cert) luaL_error(L, "viva.client: certificate: %s", err);
    c->auth = VL_AUTH_CERT;
    vl_auth_token_url(L, c);
    lua_settop(L, top);
}

/* client_assertion = function() return jwt end (a federated token: the Lua layer reads the file) */
static void configure_assertion(lua_State *L, vl_client *c, int t, int cidx) {
    int top = lua_gettop(L);
    lua_getfield(L, t, "client_assertion");
    if (!lua_isfunction(L, -1) && !luaL_getmetafield(L, -1, "__call"))
        luaL_error(L, "viva.client: client_assertion must be a function returning the assertion (a JWT)");
    if (!c->tenant || !c->client_id) luaL_error(L, "viva.client: client_assertion needs tenant and client_id");
    lua_settop(L, top);
    lua_getiuservalue(L, cidx, 1);
    lua_getfield(L, t, "client_assertion");
    lua_setfield(L, -2, "client_assertion");
    lua_pop(L, 1);
    c->auth = VL_AUTH_ASSERTION;
    vl_auth_token_url(L, c);
}

/* an http(s) URL of ours to put in a request: no whitespace or control characters */
static int url_ok(const char *u) {
    const char *p;
    if (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0) return 0;
    for (p = u; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) return 0;
    return 1;
}

/* managed_identity = true | { client_id =, identity_endpoint =, identity_header =, imds_host = }:
 * App Service when identity_endpoint is given (IDENTITY_ENDPOINT), else IMDS at imds_host
 * (AZURE_POD_IDENTITY_AUTHORITY_HOST; default the link-local 169.254.169.254). Plain http is
 * the protocol of both (never through a proxy, transport.c). */
static void configure_mi(lua_State *L, vl_client *c, int t) {
    const char *id = c->client_id, *ep = NULL, *hdr = NULL, *host = NULL, *sep;
    size_t sl;
    luaL_Buffer b;
    int top = lua_gettop(L), mt;
    lua_getfield(L, t, "managed_identity");
    mt = lua_gettop(L);
    if (lua_istable(L, mt)) {
        vl_check_keys(L, mt, "viva.client: managed_identity", MI_OPTS);
        if (field_str(L, mt, "managed_identity", "client_id", NULL)) id = field_str(L, mt, "managed_identity", "client_id", NULL);
        ep = field_str(L, mt, "managed_identity", "identity_endpoint", NULL);
        hdr = field_str(L, mt, "managed_identity", "identity_header", NULL);
        host = field_str(L, mt, "managed_identity", "imds_host", NULL);
    } else if (!lua_isboolean(L, mt)) {
        luaL_error(L, "viva.client: managed_identity must be true or a table {client_id =, identity_endpoint =, identity_header =, imds_host =}");
    }
    if (ep && !hdr) luaL_error(L, "viva.client: managed_identity.identity_endpoint needs identity_header (IDENTITY_HEADER is not set)");
    if (hdr && !ep) luaL_error(L, "viva.client: managed_identity.identity_header needs identity_endpoint (IDENTITY_ENDPOINT)");
    if (ep && host) luaL_error(L, "viva.client: managed_identity: give identity_endpoint (App Service) or imds_host (IMDS), not both");
    if (ep && !url_ok(ep)) luaL_error(L, "viva.client: managed_identity.identity_endpoint must be an http:// or https:// URL");
    if (host && !url_ok(host)) luaL_error(L, "viva.client: managed_identity.imds_host must be an http:// or https:// origin");
    if (hdr)
        for (sep = hdr; *sep; sep++)
            if ((unsigned char)*sep < 0x20 || *sep == 0x7f) luaL_error(L, "viva.client: managed_identity.identity_header contains control characters");
    luaL_buffinit(L, &b);
    if (ep) {
        luaL_addstring(&b, ep);
        luaL_addstring(&b, strchr(ep, '?') ? "&" : "?");
        luaL_addstring(&b, "api-version=2019-08-01&resource=");
    } else {
        if (!host) host = IMDS_HOST;
        sl = strlen(host);
        while (sl > 0 && host[sl - 1] == '/') sl--;
        luaL_addlstring(&b, host, sl);
        luaL_addstring(&b, "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=");
    }
    /* a resource, not a scope: https://graph.microsoft.com/.default -> https://graph.microsoft.com */
    sl = strlen(c->scope);
    if (sl > 9 && strcmp(c->scope + sl - 9, "/.default") == 0) sl -= 9;
    vl_url_add_form(&b, c->scope, sl);
    if (id) {
        luaL_addstring(&b, "&client_id=");
        vl_url_add_form(&b, id, strlen(id));
    }
    luaL_pushresult(&b);
    c->mi_url = vl_strdup(lua_tostring(L, -1));
    lua_pop(L, 1);
    if (ep) {
        size_t hl = strlen(hdr);
        c->mi_secret = vl_strdup(hdr);
        c->mi_header = malloc(hl + 20);
        if (c->mi_header) { memcpy(c->mi_header, "X-IDENTITY-HEADER: ", 19); memcpy(c->mi_header + 19, hdr, hl + 1); }
    } else {
        c->mi_header = vl_strdup("Metadata: true");
    }
    if (!c->mi_url || !c->mi_header || (ep && !c->mi_secret)) luaL_error(L, "viva.client: out of memory");
    c->mi_kind = ep ? VL_MI_APP_SERVICE : VL_MI_IMDS;
    c->auth = VL_AUTH_MI;
    lua_settop(L, top);
}

void vl_auth_configure(lua_State *L, vl_client *c, int t, int cidx) {
    lua_getfield(L, t, "certificate");
    if (!lua_isnil(L, -1)) { lua_pop(L, 1); configure_cert(L, c, t); return; }
    lua_getfield(L, t, "client_assertion");
    if (!lua_isnil(L, -1)) { lua_pop(L, 2); configure_assertion(L, c, t, cidx); return; }
    lua_pop(L, 2);
    configure_mi(L, c, t);
}

/* c:credential(): what the client signs in with, never a secret */
void vl_auth_push_info(lua_State *L, const vl_client *c) {
    static const char *const kinds[] = { "client_secret", "password", "token", "token_provider",
                                         "certificate", "client_assertion", "managed_identity" };
    lua_createtable(L, 0, 6);
    lua_pushstring(L, kinds[c->auth]);
    lua_setfield(L, -2, "method");
    if (c->tenant) { lua_pushstring(L, c->tenant); lua_setfield(L, -2, "tenant"); }
    if (c->client_id) { lua_pushstring(L, c->client_id); lua_setfield(L, -2, "client_id"); }
    if (c->auth == VL_AUTH_MI) {
        lua_pushstring(L, c->mi_url);
        lua_setfield(L, -2, "url");
        lua_pushstring(L, c->mi_kind == VL_MI_IMDS ? "imds" : "app_service");
        lua_setfield(L, -2, "source");
    } else if (c->token_url) {
        lua_pushstring(L, c->token_url);
        lua_setfield(L, -2, "url");
    }
    if (c->cert) {
        lua_pushstring(L, vl_cert_thumbprint(c->cert));
        lua_setfield(L, -2, "thumbprint");
        lua_pushstring(L, c->cert_alg == VL_ALG_PS256 ? "PS256" : "RS256");
        lua_setfield(L, -2, "alg");
    }
}
