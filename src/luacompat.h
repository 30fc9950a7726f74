/* luacompat.h: one C API over Lua 5.1, 5.2, 5.3, 5.4 and LuaJIT 2.1. Every file of the
 * core includes this instead of <lua.h>/<lauxlib.h>. On 5.4 it adds nothing.
 *
 * - 5.1, 5.2 and LuaJIT: Debian's lua-compat53 (compat-5.3.h, its functions static) gives the
 *   5.3 API; continuations go through its LUA_KFUNCTION (5.2) or do not exist (5.1, LuaJIT:
 *   lua_pcallk/lua_callk are plain calls there, see VL_HAS_YIELDK).
 * - below 5.4: the 5.4-only API the core uses, emulated. A userdata's several user values
 *   live in one table (its uservalue on 5.2/5.3, its environment on 5.1/LuaJIT), created with
 *   the userdata. */
#ifndef VL_LUACOMPAT_H
#define VL_LUACOMPAT_H

#include <lua.h>
#include <lauxlib.h>
#include <stdint.h>

#if LUA_VERSION_NUM < 503
#include <compat-5.3.h>
#endif

#if LUA_VERSION_NUM < 502
#define VL_HAS_YIELDK 0 /* no continuations: a C call cannot be resumed after a yield */
#else
#define VL_HAS_YIELDK 1
#endif

#ifndef LUA_KFUNCTION /* 5.3, 5.4: a continuation is a plain function */
#define LUA_KFUNCTION(name) static int(name)(lua_State * L, int status, lua_KContext ctx)
#endif

/* An integer in lua_pushfstring/luaL_error: "... " VL_FMTI " ...", VL_ARGI(v). 5.1 and 5.2 have
 * no %I (and their %f rounds to 14 digits), so the integer goes in as a string made here. */
#if LUA_VERSION_NUM >= 503
#define VL_FMTI "%I"
#define VL_ARGI(v) ((LUAI_UACINT)(v))
#else
#include <stdio.h>
static inline const char *vl_compat_itoa(char *buf, lua_Integer v) {
    snprintf(buf, 24, "%lld", (long long)v);
    return buf;
}
#define VL_FMTI "%s"
#define VL_ARGI(v) vl_compat_itoa((char[24]){0}, (lua_Integer)(v))
#endif

#if LUA_VERSION_NUM < 503
/* lua_Integer is ptrdiff_t there (64 bits on every target we build for), but numbers are
 * doubles: compat-5.3's lua_numbertointeger does not check the range, 5.3's does. */
#ifndef LUA_MAXINTEGER
#define LUA_MAXINTEGER PTRDIFF_MAX
#define LUA_MININTEGER PTRDIFF_MIN
#endif
#undef lua_numbertointeger
#define lua_numbertointeger(n, p)                                                            \
    ((n) >= (lua_Number)(LUA_MININTEGER) && (n) < -(lua_Number)(LUA_MININTEGER) &&           \
     (*(p) = (lua_Integer)(n), 1))
#endif

/* A closed Lua io file handle: 5.2+ clear closef; 5.1 (FILE **) and LuaJIT (its first member
 * the FILE *) clear the FILE pointer, the only member compat-5.3's luaL_Stream has there. */
#if LUA_VERSION_NUM >= 502
#define VL_STREAM_CLOSED(p) ((p)->closef == NULL)
#else
#define VL_STREAM_CLOSED(p) ((p)->f == NULL)
#endif

#if LUA_VERSION_NUM < 504

#define luaL_pushfail(L) lua_pushnil(L)

/* A userdata with n user values: their table is made here. */
static inline void *vl_compat_newuserdatauv(lua_State *L, size_t sz, int n) {
    void *p = lua_newuserdata(L, sz);
    if (n > 0) {
        lua_createtable(L, n, 0);
        lua_setuservalue(L, -2);
    }
    return p;
}
#define lua_newuserdatauv(L, sz, n) vl_compat_newuserdatauv((L), (sz), (n))

/* Pushes user value n of the userdata at idx (n within the count it was made with: the core
 * never asks beyond it, so unlike 5.4 there is no LUA_TNONE for a value it does not have). */
static inline int vl_compat_getiuservalue(lua_State *L, int idx, int n) {
    int t;
    if (lua_getuservalue(L, idx) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_pushnil(L);
        return LUA_TNONE;
    }
    t = lua_rawgeti(L, -1, n);
    lua_remove(L, -2);
    return t;
}
#define lua_getiuservalue(L, idx, n) vl_compat_getiuservalue((L), (idx), (n))

/* Pops a value into user value n of the userdata at idx; 0 when it has no user values. */
static inline int vl_compat_setiuservalue(lua_State *L, int idx, int n) {
    idx = lua_absindex(L, idx);
    if (lua_getuservalue(L, idx) != LUA_TTABLE) {
        lua_pop(L, 2);
        return 0;
    }
    lua_insert(L, -2);
    lua_rawseti(L, -2, n);
    lua_pop(L, 1);
    return 1;
}
#define lua_setiuservalue(L, idx, n) vl_compat_setiuservalue((L), (idx), (n))

/* The message of 5.4's luaL_typeerror: "<tname> expected, got <type or __name>". */
static inline int vl_compat_typeerror(lua_State *L, int arg, const char *tname) {
    const char *got;
    if (luaL_getmetafield(L, arg, "__name") == LUA_TSTRING) got = lua_tostring(L, -1);
    else if (lua_type(L, arg) == LUA_TLIGHTUSERDATA) got = "light userdata";
    else got = luaL_typename(L, arg);
    return luaL_argerror(L, arg, lua_pushfstring(L, "%s expected, got %s", tname, got));
}
#define luaL_typeerror(L, arg, tname) vl_compat_typeerror((L), (arg), (tname))

#endif /* LUA_VERSION_NUM < 504 */

#endif
