/* Option tables of the Lua API. See options.h. */
#include <string.h>

#include "luacompat.h"

#include "options.h"

static int lower(int c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

/* Case-insensitive edit distance; long names are never typos of each other. */
static int distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b), i, j;
    int row[65];
    if (la > 64 || lb > 64) return 1000;
    for (j = 0; j <= lb; j++) row[j] = (int)j;
    for (i = 1; i <= la; i++) {
        int prev = row[0];
        row[0] = (int)i;
        for (j = 1; j <= lb; j++) {
            int cur = row[j];
            int v = prev + (lower((unsigned char)a[i - 1]) == lower((unsigned char)b[j - 1]) ? 0 : 1);
            if (row[j] + 1 < v) v = row[j] + 1;
            if (row[j - 1] + 1 < v) v = row[j - 1] + 1;
            row[j] = v;
            prev = cur;
        }
    }
    return row[lb];
}

const char *vl_nearest(const char *name, const char *const *names) {
    const char *best = NULL;
    int bestd = 1000, limit = (int)(strlen(name) / 3);
    for (; *names; names++) {
        int d = distance(name, *names);
        if (d < bestd) { bestd = d; best = *names; }
    }
    if (limit < 2) limit = 2;
    return bestd <= limit ? best : NULL;
}

void vl_check_keys(lua_State *L, int t, const char *where, const char *const *known) {
    t = lua_absindex(L, t);
    lua_pushnil(L);
    while (lua_next(L, t)) {
        const char *const *k;
        const char *name, *best;
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            luaL_error(L, "%s: unknown option (a %s key)", where, luaL_typename(L, -1));
            return;
        }
        name = lua_tostring(L, -1);
        for (k = known; *k; k++) if (strcmp(*k, name) == 0) break;
        if (*k) continue;
        best = vl_nearest(name, known);
        if (best) luaL_error(L, "%s: unknown option '%s'; did you mean '%s'?", where, name, best);
        else luaL_error(L, "%s: unknown option '%s'", where, name);
        return;
    }
}
