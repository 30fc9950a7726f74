/* io = "external" (see external.h): requests out as tables, outcomes in. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "luacompat.h"

#include "external.h"
#include "transport.h"

static const char *const OUTCOMES[] = { "not_sent", "maybe_sent", "timeout", "reset", "fatal", "too_large", NULL };
static const int OUTCOME_T[] = { VL_T_NOT_SENT, VL_T_MAYBE_SENT, VL_T_TIMEOUT, VL_T_RESET, VL_T_FATAL, VL_T_TOO_LARGE };

static void set_header(lua_State *L, const char *k, const char *v) {
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

/* the headers libcurl would send (transport.c), names in lower case */
static void push_headers(lua_State *L, vl_client *c, vl_req *r) {
    char line[32];
    int method = r->phase ? VL_GET : r->method;
    lua_createtable(L, 0, 8);
    if (r->flags & VL_F_INTERNAL) {
        if (method == VL_POST) set_header(L, "content-type", "application/x-www-form-urlencoded");
        set_header(L, "accept", "application/json");
        if (r->xhdr) {
            /* "Name: value" (ours): the name in lower case */
            const char *colon = strchr(r->xhdr, ':');
            if (colon) {
                luaL_Buffer b;
                const char *p;
                luaL_buffinit(L, &b);
                for (p = r->xhdr; p < colon; p++) luaL_addchar(&b, (char)tolower((unsigned char)*p));
                luaL_pushresult(&b);
                lua_pushstring(L, colon + 1 + (colon[1] == ' '));
                lua_settable(L, -3);
            }
        }
    } else {
        if (c->tok.value) {
            lua_pushfstring(L, "Bearer %s", c->tok.value);
            lua_setfield(L, -2, "authorization");
        }
        set_header(L, "accept", "application/json");
        if (method == VL_POST || method == VL_PATCH) set_header(L, "content-type", "application/json");
        set_header(L, "client-request-id", r->crid);
        set_header(L, "return-client-request-id", "true");
        if (r->family == VL_FAM_ACTIVITY && method == VL_GET) set_header(L, "prefer", "include-unknown-enum-members");
        if (r->attempts > 0) {
            snprintf(line, sizeof line, "%d", r->attempts);
            set_header(L, "retry-attempt", line);
        }
    }
    if (c->user_agent) set_header(L, "user-agent", c->user_agent);
}

static void push_one(lua_State *L, vl_client *c, vl_req *r, double now) {
    int method = r->phase ? VL_GET : r->method;
    double timeout = (double)c->attempt_ms / 1000.0;
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, (lua_Integer)r->xid);
    lua_setfield(L, -2, "id");
    lua_pushstring(L, vl_method_name(method));
    lua_setfield(L, -2, "method");
    lua_pushstring(L, r->phase ? r->alt_url : r->url);
    lua_setfield(L, -2, "url");
    push_headers(L, c, r);
    lua_setfield(L, -2, "headers");
    if (r->body && (method == VL_POST || method == VL_PATCH)) {
        lua_pushlstring(L, r->body, r->body_len);
        lua_setfield(L, -2, "body");
    }
    if (r->deadline - now < timeout) timeout = r->deadline - now;
    if (timeout < 0.001) timeout = 0.001;
    lua_pushnumber(L, timeout);
    lua_setfield(L, -2, "timeout");
}

void vl_ext_take(lua_State *L, vl_client *c) {
    double now = vl_client_now(c);
    vl_req *r;
    int n = 0;
    lua_newtable(L);
    /* build everything first: a memory error must not leave an attempt handed and lost */
    if (c->token_req && !c->token_req->handed) {
        push_one(L, c, c->token_req, now);
        lua_rawseti(L, -2, ++n);
    }
    for (r = c->active_h; r; r = r->next) {
        if (r->handed) continue;
        push_one(L, c, r, now);
        lua_rawseti(L, -2, ++n);
    }
    if (c->token_req) c->token_req->handed = 1;
    for (r = c->active_h; r; r = r->next) r->handed = 1;
}

static vl_req *find(vl_client *c, lua_Integer id) {
    vl_req *r;
    if (c->token_req && c->token_req->handed && c->token_req->xid == id) return c->token_req;
    for (r = c->active_h; r; r = r->next)
        if (r->handed && r->xid == id) return r;
    return NULL;
}

static void copy_header(char *dst, size_t dn, const char *v, size_t n) {
    if (n >= dn) n = dn - 1;
    memcpy(dst, v, n);
    dst[n] = 0;
}

void vl_ext_deliver(lua_State *L, vl_client *c) {
    lua_Integer id = luaL_checkinteger(L, 2);
    vl_req *r = find(c, id);
    int outcome = VL_T_NONE;
    long status = 0;
    const char *body = NULL;
    size_t blen = 0;
    char *copy = NULL;
    const char *oname = "too_large";
    const char *detail = NULL;      /* what the driver saw, for the error's cause */
    if (!r) luaL_error(L, "vivalearning: deliver: no request in flight with id %d", (int)id);
    if (lua_istable(L, 3)) {
        lua_getfield(L, 3, "status");
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 100 || lua_tointeger(L, -1) > 599)
            luaL_error(L, "vivalearning: deliver: response status must be an HTTP status (an integer from 100 to 599)");
        status = (long)lua_tointeger(L, -1);
        lua_pop(L, 1);
        lua_getfield(L, 3, "body");
        if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "vivalearning: deliver: response body must be a string");
        body = lua_tolstring(L, -1, &blen);    /* anchored by the response table */
        lua_pop(L, 1);
        lua_getfield(L, 3, "headers");
        if (!lua_isnil(L, -1) && !lua_istable(L, -1))
            luaL_error(L, "vivalearning: deliver: response headers must be a table of strings");
        if (lua_istable(L, -1)) {
            lua_pushnil(L);
            while (lua_next(L, -2)) {
                if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
                    luaL_error(L, "vivalearning: deliver: response headers must be a table of strings");
                lua_pop(L, 1);
            }
        }
        if (body && c->max_body && blen > c->max_body) {
            outcome = VL_T_TOO_LARGE;
            body = NULL;
        }
        if (body && blen) {
            copy = malloc(blen + 1);
            if (!copy) luaL_error(L, "vivalearning: out of memory");
            memcpy(copy, body, blen);
            copy[blen] = 0;
        }
    } else if (lua_isnoneornil(L, 3)) {
        int i;
        const char *o = luaL_checkstring(L, 4);
        for (i = 0; OUTCOMES[i]; i++)
            if (strcmp(OUTCOMES[i], o) == 0) break;
        if (!OUTCOMES[i])
            luaL_error(L, "vivalearning: deliver: outcome must be one of not_sent, maybe_sent, timeout, reset, "
                       "fatal, too_large, got '%s'", o);
        outcome = OUTCOME_T[i];
        oname = OUTCOMES[i];
        if (!lua_isnoneornil(L, 5)) detail = luaL_checkstring(L, 5);   /* anchored by the caller */
    } else {
        luaL_error(L, "vivalearning: deliver: response must be a table { status =, headers =, body = }, "
                   "or nil and an outcome");
    }
    /* nothing below raises: the attempt is over */
    vl_transport_reset_response(r);
    if (lua_istable(L, 3)) {
        lua_getfield(L, 3, "headers");
        if (lua_istable(L, -1)) {
            lua_pushnil(L);
            while (lua_next(L, -2)) {
                size_t n;
                const char *k = lua_tostring(L, -2), *v = lua_tolstring(L, -1, &n);
                if (strcasecmp(k, "request-id") == 0) copy_header(r->h_request_id, sizeof r->h_request_id, v, n);
                else if (strcasecmp(k, "client-request-id") == 0) copy_header(r->h_client_request_id, sizeof r->h_client_request_id, v, n);
                else if (strcasecmp(k, "date") == 0) copy_header(r->h_date, sizeof r->h_date, v, n);
                else if (strcasecmp(k, "retry-after") == 0) copy_header(r->h_retry_after, sizeof r->h_retry_after, v, n);
                else if (strcasecmp(k, "retry-after-ms") == 0) copy_header(r->h_retry_after_ms, sizeof r->h_retry_after_ms, v, n);
                else if (strcasecmp(k, "x-ms-retry-after-ms") == 0) copy_header(r->h_x_retry_after_ms, sizeof r->h_x_retry_after_ms, v, n);
                else if (strcasecmp(k, "content-type") == 0) copy_header(r->h_content_type, sizeof r->h_content_type, v, n);
                lua_pop(L, 1);
            }
        }
        lua_pop(L, 1);
    }
    free(r->resp);
    r->resp = copy;
    r->resp_len = copy ? blen : 0;
    r->resp_cap = copy ? blen + 1 : 0;
    r->http_status = status;
    r->status = outcome == VL_T_NONE ? status : 0;
    r->outcome = outcome;
    r->too_big = outcome == VL_T_TOO_LARGE;
    r->rc = outcome == VL_T_NONE ? 0 : VL_RC_DRIVER;
    r->sent = outcome != VL_T_NOT_SENT;
    if (outcome != VL_T_NONE && detail)
        snprintf(r->errbuf, sizeof r->errbuf, "the driver reported: %s (%s)", oname, detail);
    else if (outcome != VL_T_NONE)
        snprintf(r->errbuf, sizeof r->errbuf, "the driver reported: %s", oname);
    r->uploaded = (long long)r->body_len;
    r->handed = 0;
    r->attempt_end = vl_client_now(c);
    r->attempts++;
    r->logged = 0;
    c->st_attempts++;
    c->nactive--;
    if (r == c->token_req) c->token_req = NULL;
    vl_list_push(c, r, VL_L_COMPLETE);
}

void vl_ext_push_wakeup(lua_State *L, vl_client *c) {
    double now = vl_client_now(c), t = HUGE_VAL;
    vl_req *r;
    if (c->complete_h || (c->ready_h && c->nactive < c->max_concurrency)) {
        lua_pushnumber(L, now);
        return;
    }
    for (r = c->backoff_h; r; r = r->next)
        if (r->not_before < t) t = r->not_before;
    if (c->token_h && !c->tok.fetching && !c->token_req) t = c->tok.retry_at < t ? c->tok.retry_at : t;
    if (c->auth != VL_AUTH_FIXED && c->tok.value && !c->tok.fetching && !c->token_req &&
        (c->ready_h || c->active_h || c->backoff_h) && c->tok.refresh_at < t) {
        double at = c->tok.refresh_at > c->tok.retry_at ? c->tok.refresh_at : c->tok.retry_at;
        if (at < t) t = at;
    }
    if (t == HUGE_VAL) lua_pushnil(L);
    else lua_pushnumber(L, t < now ? now : t);
}
