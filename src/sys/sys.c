/* vivalearning.sys: the little OS glue the pure-Lua layer needs and Lua 5.4 lacks
 * (Debian 12 has no luaposix for 5.4). Kept out of vivalearning.core on purpose: the core
 * knows nothing about files or terminals. */
#include <errno.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

/* sys.fsync(fh): flush a Lua io file handle and fsync its descriptor, so what was written
 * survives a crash of the process or the machine. Returns true, or nil and a message. */
static int sys_fsync(lua_State *L) {
    luaL_Stream *p = (luaL_Stream *)luaL_checkudata(L, 1, LUA_FILEHANDLE);
    if (p->closef == NULL)
        return luaL_error(L, "attempt to use a closed file");
    if (fflush(p->f) != 0 || fsync(fileno(p->f)) != 0) {
        int e = errno;
        luaL_pushfail(L);
        lua_pushfstring(L, "fsync: %s", strerror(e));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* sys.isatty(fh): whether a Lua io file handle is a terminal (progress bars draw only there). */
static int sys_isatty(lua_State *L) {
    luaL_Stream *p = (luaL_Stream *)luaL_checkudata(L, 1, LUA_FILEHANDLE);
    if (p->closef == NULL)
        return luaL_error(L, "attempt to use a closed file");
    lua_pushboolean(L, isatty(fileno(p->f)) == 1);
    return 1;
}

/* sys.termsize(fh): columns and rows of the terminal a Lua io file handle is on (TIOCGWINSZ),
 * asked at every redraw so a progress bar follows a resized window. Returns cols, rows, or
 * nil and a message (not a terminal, or a terminal that reports no size). */
static int sys_termsize(lua_State *L) {
    luaL_Stream *p = (luaL_Stream *)luaL_checkudata(L, 1, LUA_FILEHANDLE);
    if (p->closef == NULL)
        return luaL_error(L, "attempt to use a closed file");
    struct winsize ws;
    if (ioctl(fileno(p->f), TIOCGWINSZ, &ws) != 0) {
        int e = errno;
        luaL_pushfail(L);
        lua_pushfstring(L, "termsize: %s", strerror(e));
        return 2;
    }
    if (ws.ws_col == 0) {
        luaL_pushfail(L);
        lua_pushliteral(L, "termsize: the terminal reports no size");
        return 2;
    }
    lua_pushinteger(L, ws.ws_col);
    lua_pushinteger(L, ws.ws_row);
    return 2;
}

/* sys.monotime(): seconds on a monotonic clock, for rates and ETAs that a wall-clock step
 * must not disturb. */
static int sys_monotime(lua_State *L) {
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return luaL_error(L, "clock_gettime: %s", strerror(errno));
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

/* sys.sleep(seconds): sleep without a busy loop or a child process (Retry-After waits when
 * nothing else is in flight). Resumes after a signal for the time that is left. */
static int sys_sleep(lua_State *L) {
    lua_Number s = luaL_checknumber(L, 1);
    luaL_argcheck(L, s >= 0 && s <= 86400, 1, "seconds 0..86400 expected");
    struct timespec req, rem;
    req.tv_sec = (time_t)s;
    req.tv_nsec = (long)((s - (lua_Number)req.tv_sec) * 1e9);
    while (nanosleep(&req, &rem) != 0 && errno == EINTR)
        req = rem;
    return 0;
}

int luaopen_vivalearning_sys(lua_State *L);

int luaopen_vivalearning_sys(lua_State *L) {
    static const luaL_Reg funcs[] = {
        { "fsync", sys_fsync },
        { "isatty", sys_isatty },
        { "monotime", sys_monotime },
        { "sleep", sys_sleep },
        { "termsize", sys_termsize },
        { NULL, NULL },
    };
    luaL_newlib(L, funcs);
    return 1;
}
