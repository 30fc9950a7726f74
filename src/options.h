/* Option tables of the Lua API: unknown names are typos (raised with the nearest known name). */
#ifndef VL_OPTIONS_H
#define VL_OPTIONS_H

#include "luacompat.h"

/* The name in the NULL-ended list nearest to name (case-insensitive edit distance), when it
 * is close enough to be a typo of it; else NULL. */
const char *vl_nearest(const char *name, const char *const *names);

/* Raises "<where>: unknown option 'k'[; did you mean 'x'?]" for the first key of the table at
 * t that is not in the NULL-ended list known (a non-string key is unknown too). */
void vl_check_keys(lua_State *L, int t, const char *where, const char *const *known);

#endif
