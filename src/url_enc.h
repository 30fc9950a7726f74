/* util: URL building into a Lua buffer (segments, OData keys, query and form values): every id
 * is checked and encoded here. Used by the binding-level request builders (ops.c, auth.c). */
#ifndef VL_URL_ENC_H
#define VL_URL_ENC_H

#include <stddef.h>
#include "luacompat.h"

/* Appends one percent-encoded path segment; returns NULL or an error message (static). */
const char *vl_url_add_segment(luaL_Buffer *b, const char *s, size_t n);
/* Appends ('literal') for an OData key: quotes doubled, then percent-encoded. */
const char *vl_url_add_key(luaL_Buffer *b, const char *name, const char *s, size_t n);
/* Appends a query value percent-encoded. */
void vl_url_add_query(luaL_Buffer *b, const char *s, size_t n);
/* percent-encodes s (for form bodies) into b */
void vl_url_add_form(luaL_Buffer *b, const char *s, size_t n);

#endif
