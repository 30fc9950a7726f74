/* auth: the token state machine (cache, refresh ahead, single flight, forced refresh after a
 * 401). A token fetch is an ordinary request handed to the client's I/O (io.h). */
#ifndef VL_AUTH_H
#define VL_AUTH_H

#include "luacompat.h"

#include "state.h"

int  vl_auth_usable(vl_client *c, double now);      /* token present and not expired */
void vl_auth_tick(lua_State *L, vl_client *c, int cidx, double now);  /* start refreshes, serve waiters */
void vl_auth_invalidate(vl_client *c, unsigned gen);
int  vl_auth_refreshable(vl_client *c);
void vl_auth_token_done(lua_State *L, vl_client *c, int cidx, vl_req *r, int rc);
void vl_auth_free(vl_client *c);

#endif
