/* auth, the fetching half (binding level: it calls the token_provider and builds auth errors):
 * single flight, the token request (an ordinary request handed to the client's I/O, io.h), its
 * answer, the waiters served or failed. The token state the engine reads is token.h. */
#ifndef VL_AUTH_H
#define VL_AUTH_H

#include <lua.h>

#include "state.h"
#include "token.h"

void vl_auth_tick(lua_State *L, vl_client *c, int cidx, double now);  /* start refreshes, serve waiters */
void vl_auth_token_done(lua_State *L, vl_client *c, int cidx, vl_req *r, int rc);

#endif
