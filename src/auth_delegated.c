/* Delegated sign-in (see auth_delegated.h). The device code flow follows Entra's v2.0 device
 * code doc: the devicecode endpoint answers a user_code and Entra's instruction (`message`), which
 * go to the device_code callback (the core prints nothing); the token endpoint is then polled
 * every `interval` seconds through authorization_pending, slow_down (interval + 5 s, as RFC 8628
 * and MSAL do), authorization_declined and expired_token. Waiting between polls is the engine's
 * timer (tok.retry_at), never a sleep in a callback. Every delegated grant asks for
 * offline_access, so a refresh token comes back; each answer rotates it (the hook gets the new
 * one). Neither the refresh token nor the device code is ever logged or put in an error. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth_delegated.h"
#include "url_enc.h"
#include "result.h"

#define DEVICE_GRANT "urn:ietf:params:oauth:grant-type:device_code"
#define SLOW_DOWN_STEP 5.0

int vl_dlg_delegated(const vl_client *c) {
    return c->auth == VL_AUTH_PASSWORD || c->auth == VL_AUTH_DEVICE || c->auth == VL_AUTH_REFRESH;
}

int vl_dlg_next_grant(const vl_client *c) {
    if (!vl_dlg_delegated(c)) return VL_G_CLIENT;
    if (c->dlg.refresh_token) return VL_G_REFRESH;
    if (c->auth == VL_AUTH_PASSWORD) return VL_G_PASSWORD;
    if (c->auth == VL_AUTH_DEVICE) return c->dlg.device_code ? VL_G_DEVICE_POLL : VL_G_DEVICECODE;
    return -1;
}

int vl_dlg_background_ok(const vl_client *c) {
    /* a refresh ahead of expiry must never put a sign-in prompt in front of the user */
    return c->dlg.refresh_token != NULL || c->auth == VL_AUTH_PASSWORD;
}

static void add_field(luaL_Buffer *b, const char *name, const char *value) {
    luaL_addchar(b, '&');
    luaL_addstring(b, name);
    luaL_addchar(b, '=');
    vl_url_add_form(b, value, strlen(value));
}

void vl_dlg_form(luaL_Buffer *b, vl_client *c, int grant) {
    switch (grant) {
    case VL_G_REFRESH:
        add_field(b, "grant_type", "refresh_token");
        add_field(b, "refresh_token", c->dlg.refresh_token);
        break;
    case VL_G_DEVICE_POLL:
        add_field(b, "grant_type", DEVICE_GRANT);
        add_field(b, "device_code", c->dlg.device_code);
        break;
    case VL_G_DEVICECODE:
        return;                         /* client_id and scope are all it takes */
    default:
        break;
    }
    /* the app's own credential (secret or assertion) is added by auth.c for every grant */
}

const char *vl_dlg_url(const vl_client *c, int grant) {
    return grant == VL_G_DEVICECODE ? c->dlg.devicecode_url : c->token_url;
}

const char *vl_dlg_opname(int grant) {
    return grant == VL_G_DEVICECODE ? "devicecode" : "token";
}

static void push_error(lua_State *L, const char *code, const char *msg) {
    vl_errinfo e;
    memset(&e, 0, sizeof e);
    e.kind = "auth";
    e.code = code;
    e.message = msg;
    e.retry_after = -1;
    vl_error_push(L, &e);
}

static int printable(const char *s, size_t n) {
    size_t i;
    if (n == 0) return 0;
    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f) return 0;
    return 1;
}

static const char *str_field(lua_State *L, int tidx, const char *k, size_t *n) {
    const char *s = NULL;
    lua_getfield(L, tidx, k);
    if (lua_type(L, -1) == LUA_TSTRING) s = lua_tolstring(L, -1, n);
    lua_pop(L, 1);                      /* still referenced by the table */
    return s;
}

static double num_field(lua_State *L, int tidx, const char *k, double def) {
    double v = def;
    lua_getfield(L, tidx, k);
    if (lua_type(L, -1) == LUA_TNUMBER || lua_type(L, -1) == LUA_TSTRING) {
        int ok;
        lua_Number x = lua_tonumberx(L, -1, &ok);
        if (ok && isfinite(x) && x >= 0) v = x;
    }
    lua_pop(L, 1);
    return v;
}

int vl_dlg_devicecode_answer(lua_State *L, vl_client *c, int cidx, int tidx, double now) {
    size_t dn = 0, un = 0, vn = 0, mn = 0;
    const char *dc = str_field(L, tidx, "device_code", &dn);
    const char *uc = str_field(L, tidx, "user_code", &un);
    const char *uri = str_field(L, tidx, "verification_uri", &vn);
    const char *msg = str_field(L, tidx, "message", &mn);
    double expires_in = num_field(L, tidx, "expires_in", 900);
    double interval = num_field(L, tidx, "interval", 5);
    int st;
    if (!dc || !printable(dc, dn) || !uc || !printable(uc, un) || !uri || !printable(uri, vn)) {
        push_error(L, "invalid_devicecode_response",
                   "the devicecode endpoint answered 200 without a usable device_code, user_code and verification_uri");
        return 1;
    }
    vl_dlg_clear_device(c);
    c->dlg.device_code = vl_dupn(dc, dn);
    if (!c->dlg.device_code) { push_error(L, "token_request_failed", "out of memory"); return 1; }
    if (interval > 3600) interval = 3600;
    c->dlg.interval = interval;
    c->dlg.expires_at = now + expires_in;
    /* the instruction, as Entra words it, for the application to show */
    vl_push_refs_field(L, cidx, "device_code");
    lua_createtable(L, 0, 5);
    if (msg && mn) lua_pushlstring(L, msg, mn);
    else lua_pushfstring(L, "To sign in, use a web browser to open the page %s and enter the code %s to authenticate.", uri, uc);
    lua_setfield(L, -2, "message");
    lua_pushlstring(L, uc, un);
    lua_setfield(L, -2, "user_code");
    lua_pushlstring(L, uri, vn);
    lua_setfield(L, -2, "verification_uri");
    lua_pushnumber(L, expires_in);
    lua_setfield(L, -2, "expires_in");
    lua_pushnumber(L, interval);
    lua_setfield(L, -2, "interval");
    c->in_cb = 1;
    st = lua_pcall(L, 1, 0, 0);
    c->in_cb = 0;
    if (st == LUA_ERRMEM) { vl_dlg_clear_device(c); lua_error(L); }
    if (st != LUA_OK) {
        const char *e = lua_isstring(L, -1) ? lua_tostring(L, -1) : "(error object is not a string)";
        vl_dlg_clear_device(c);
        lua_pushfstring(L, "device_code callback raised an error: %s", e);
        push_error(L, "device_code_callback_error", lua_tostring(L, -1));
        return 1;
    }
    /* the first poll after one interval (the user has just been told) */
    c->tok.retry_at = now + interval;
    return 0;
}

int vl_dlg_keep_refresh(lua_State *L, vl_client *c, int cidx, int tidx) {
    size_t n = 0, idn = 0;
    const char *rt = str_field(L, tidx, "refresh_token", &n);
    const char *idt = str_field(L, tidx, "id_token", &idn);
    int st;
    if (!rt || !printable(rt, n)) return 0;     /* none (no offline_access): keep the one we have */
    if (!c->dlg.refresh_token || strcmp(c->dlg.refresh_token, rt) != 0) {
        char *copy = vl_dupn(rt, n);
        if (!copy) return 0;            /* the old one still works: rotation keeps it valid */
        vl_zfree(c->dlg.refresh_token);
        c->dlg.refresh_token = copy;
    }
    if (!c->dlg.has_rt_hook) return 0;
    vl_push_refs_field(L, cidx, "on_refresh_token");
    lua_createtable(L, 0, 3);
    lua_pushlstring(L, rt, n);
    lua_setfield(L, -2, "refresh_token");
    if (idt && printable(idt, idn)) { lua_pushlstring(L, idt, idn); lua_setfield(L, -2, "id_token"); }
    lua_getfield(L, tidx, "scope");
    if (lua_type(L, -1) == LUA_TSTRING) lua_setfield(L, -2, "scope");
    else lua_pop(L, 1);
    c->in_cb = 1;
    st = lua_pcall(L, 1, 0, 0);
    c->in_cb = 0;
    if (st == LUA_ERRMEM) lua_error(L);
    if (st != LUA_OK) {
        const char *e = lua_isstring(L, -1) ? lua_tostring(L, -1) : "(error object is not a string)";
        /* the message is the hook's own; it must not echo the token it was given */
        lua_pushfstring(L, "on_refresh_token raised an error: %s", e);
        luaL_gsub(L, lua_tostring(L, -1), c->dlg.refresh_token, "<redacted>");
        push_error(L, "on_refresh_token_error", lua_tostring(L, -1));
        return 1;
    }
    return 0;
}

int vl_dlg_oauth_error(vl_client *c, const char *err, long aadsts, double now, const char **hint) {
    int grant = c->dlg.grant;
    *hint = NULL;
    if (!err) return VL_DLG_GENERAL;
    if (grant == VL_G_DEVICE_POLL) {
        if (strcmp(err, "authorization_pending") == 0 || strcmp(err, "slow_down") == 0) {
            if (err[0] == 's') c->dlg.interval += SLOW_DOWN_STEP;
            c->tok.retry_at = now + c->dlg.interval;
            return VL_DLG_POLL_AGAIN;
        }
        vl_dlg_clear_device(c);
        if (strcmp(err, "authorization_declined") == 0)
            *hint = "device code sign-in declined: the user refused the sign-in";
        else if (strcmp(err, "expired_token") == 0)
            *hint = "device code sign-in expired: the code was not used in time; sign in again";
        else if (strcmp(err, "bad_verification_code") == 0)
            *hint = "device code sign-in failed: the service no longer knows this device code; sign in again";
        else
            *hint = "device code sign-in failed";
        return VL_DLG_FAIL;
    }
    if (grant == VL_G_REFRESH && strcmp(err, "invalid_grant") == 0) {
        vl_zfree(c->dlg.refresh_token);
        c->dlg.refresh_token = NULL;
        if (c->auth == VL_AUTH_PASSWORD) return VL_DLG_RESTART;   /* the password is still here */
        *hint = "the sign-in has expired or was revoked: sign in again (vivalearning login)";
        return VL_DLG_FAIL;
    }
    if ((grant == VL_G_PASSWORD || grant == VL_G_REFRESH) &&
        (aadsts == 50076 || aadsts == 50079 || strcmp(err, "interaction_required") == 0)) {
        *hint = "the user needs multi-factor sign-in, which the password grant cannot do: "
                "use the device code (vivalearning login)";
        return VL_DLG_FAIL;
    }
    return VL_DLG_GENERAL;
}

int vl_dlg_expired(lua_State *L, vl_client *c, double now) {
    if (!c->dlg.device_code || now < c->dlg.expires_at) return 0;
    vl_dlg_clear_device(c);
    push_error(L, "expired_token",
               "device code sign-in expired: the code was not used in time; sign in again");
    return 1;
}

void vl_dlg_clear_device(vl_client *c) {
    vl_zfree(c->dlg.device_code);
    c->dlg.device_code = NULL;
    c->dlg.expires_at = 0;
}

void vl_dlg_free(vl_client *c) {
    vl_dlg_clear_device(c);
    vl_zfree(c->dlg.refresh_token);
    c->dlg.refresh_token = NULL;
    free(c->dlg.devicecode_url);
    c->dlg.devicecode_url = NULL;
}
