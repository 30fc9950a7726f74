/* auth, the Lua-free half: the client's one token, whether it is usable, when it is refreshed
 * (5 minutes ahead, half-way for short-lived tokens), its invalidation after a 401. The engine
 * asks only this; fetching a token (the form, the token_provider, the OAuth errors) is auth.h. */
#ifndef VL_TOKEN_H
#define VL_TOKEN_H

#include "state.h"

int  vl_auth_usable(vl_client *c, double now);      /* token present and not expired */
int  vl_auth_refreshable(vl_client *c);             /* not a fixed token */
void vl_auth_invalidate(vl_client *c, unsigned gen);
void vl_token_free(vl_client *c);                /* the token only (auth.h frees the credentials) */
/* A new token (copied), valid for lifetime seconds from t0 (<= 0: for ever). */
void vl_token_set(vl_client *c, const char *tok, double lifetime, double t0);

#endif
