/* auth, the fetching half (binding level: it calls the token_provider and builds auth errors):
 * single flight, the token request (an ordinary request handed to the client's I/O, io.h), its
 * answer, the waiters served or failed. The token state the engine reads is token.h. */
#ifndef VL_AUTH_H
#define VL_AUTH_H

#include "luacompat.h"

#include "state.h"
#include "token.h"

void vl_auth_free(vl_client *c);    /* the token and every credential; idempotent */
void vl_auth_tick(lua_State *L, vl_client *c, int cidx, double now);  /* start refreshes, serve waiters */
void vl_auth_token_done(lua_State *L, vl_client *c, int cidx, vl_req *r, int rc);

/* viva.client's certificate, client_assertion and managed_identity options (table at t):
 * how many are given; vl_auth_configure sets up the one given (raises on bad input). */
int  vl_auth_given(lua_State *L, int t);
void vl_auth_configure(lua_State *L, vl_client *c, int t, int cidx);
/* c->token_url from the authority and the tenant (raises on a bad tenant) */
void vl_auth_token_url(lua_State *L, vl_client *c);
/* pushes { method =, tenant =, client_id =, url =, source =, thumbprint =, alg = } (no secret) */
void vl_auth_push_info(lua_State *L, const vl_client *c);

#endif
