/* Lua-owned growable buffer. See buf.h. */
#include "luacompat.h"

#include "buf.h"

void vl_buf_init(lua_State *L, vl_buf *b) {
    b->L = L;
    b->p = b->init;
    b->n = 0;
    b->cap = sizeof b->init;
    b->put_udata = NULL;
    lua_pushnil(L);
    b->box = lua_absindex(L, -1);
}

void vl_buf_grow(vl_buf *b, size_t extra) {
    size_t need = b->n + extra, cap = b->cap * 2;
    if (need < b->n) luaL_error(b->L, "JSON text too large");
    if (cap < need) cap = need;
    char *p = (char *)lua_newuserdatauv(b->L, cap, 0);
    memcpy(p, b->p, b->n);
    lua_replace(b->L, b->box);
    b->p = p;
    b->cap = cap;
}

void vl_buf_finish(vl_buf *b) {
    lua_pushlstring(b->L, b->p, b->n);
    lua_replace(b->L, b->box);
}
