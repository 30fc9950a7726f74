/* auth_delegated: delegated sign-in on top of auth's token state machine: which grant the next
 * token request makes (refresh token, password, device code), its form, and what an answer
 * means (device-code polling, refresh-token rotation, the errors that need the user again).
 * The refresh token comes in and goes out through the client's options and hook only: this
 * layer knows no files. */
#ifndef VL_AUTH_DELEGATED_H
#define VL_AUTH_DELEGATED_H

#include "luacompat.h"

#include "state.h"

int  vl_dlg_delegated(const vl_client *c);
/* the grant of the next token request (VL_G_*), or -1 when nothing is left to sign in with */
int  vl_dlg_next_grant(const vl_client *c);
/* whether a token that is still valid may be renewed in the background (never by a prompt) */
int  vl_dlg_background_ok(const vl_client *c);
/* adds the grant's fields (after client_id and scope) to the form; the URL it goes to */
void vl_dlg_form(luaL_Buffer *b, vl_client *c, int grant);
const char *vl_dlg_url(const vl_client *c, int grant);
const char *vl_dlg_opname(int grant);

/* A 200 of the devicecode endpoint (decoded at tidx): hands the instruction to the device_code
 * callback and starts polling. 0 = done; 1 = failed, with an auth error pushed. */
int  vl_dlg_devicecode_answer(lua_State *L, vl_client *c, int cidx, int tidx, double now);
/* A token answer (decoded at tidx) of a delegated grant: keeps its refresh token and hands it to
 * on_refresh_token. 0 = done; 1 = the hook failed, with an auth error pushed. */
int  vl_dlg_keep_refresh(lua_State *L, vl_client *c, int cidx, int tidx);

enum { VL_DLG_GENERAL, VL_DLG_POLL_AGAIN, VL_DLG_RESTART, VL_DLG_FAIL };
/* An OAuth error of the request in flight: POLL_AGAIN (pending, slow_down: the next poll is
 * due at tok.retry_at), RESTART (the refresh token is gone, sign in again with the password or
 * a new device code), FAIL (*hint says what the user must do), GENERAL (nothing special). */
int  vl_dlg_oauth_error(vl_client *c, const char *err, long aadsts, double now, const char **hint);
/* A device code past its expiry while still polled: pushes the expired_token error (1), else 0 */
int  vl_dlg_expired(lua_State *L, vl_client *c, double now);
void vl_dlg_clear_device(vl_client *c);
void vl_dlg_free(vl_client *c);

#endif
