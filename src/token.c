/* The token state (see token.h). */
#include <stdlib.h>

#include "token.h"

#define REFRESH_AHEAD 300.0

int vl_auth_usable(vl_client *c, double now) {
    return c->tok.value != NULL && now < c->tok.expires_at;
}

int vl_auth_refreshable(vl_client *c) { return c->auth != VL_AUTH_FIXED; }

/* After a 401: the token used (generation gen) is no good. A newer token is kept. */
void vl_auth_invalidate(vl_client *c, unsigned gen) {
    if (c->auth == VL_AUTH_FIXED || gen != c->tok.gen || !c->tok.value) return;
    vl_zfree(c->tok.value);
    c->tok.value = NULL;
    c->tok.expires_at = c->tok.refresh_at = 0;
    c->tok.retry_at = 0;
}

void vl_token_free(vl_client *c) {
    vl_zfree(c->tok.value);
    c->tok.value = NULL;
}

void vl_token_set(vl_client *c, const char *tok, double lifetime, double t0) {
    double ahead;
    vl_zfree(c->tok.value);
    c->tok.value = vl_strdup(tok);
    c->tok.gen++;
    if (lifetime <= 0) lifetime = 1e12;
    ahead = lifetime / 2 < REFRESH_AHEAD ? lifetime / 2 : REFRESH_AHEAD;
    /* managed identity tokens (about 24 h) are refreshed at half-life (entra-signin.md §9.2) */
    if (c->auth == VL_AUTH_MI && lifetime >= 7200) ahead = lifetime / 2;
    c->tok.expires_at = t0 + lifetime;
    c->tok.refresh_at = c->tok.expires_at - ahead;
    c->tok.retry_at = 0;
    c->tok.failures = 0;
}
