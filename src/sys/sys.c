/* vivalearning.sys: the little OS glue the pure-Lua layer needs and Lua 5.4 lacks
 * (Debian 12 has no luaposix for 5.4). Kept out of vivalearning.core on purpose: the core
 * knows nothing about files or terminals. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "../luacompat.h"
#include <lualib.h>

/* sys.fsync(fh): flush a Lua io file handle and fsync its descriptor, so what was written
 * survives a crash of the process or the machine. Returns true, or nil and a message. */
static int sys_fsync(lua_State *L) {
    luaL_Stream *p = (luaL_Stream *)luaL_checkudata(L, 1, LUA_FILEHANDLE);
    if (VL_STREAM_CLOSED(p))
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
    if (VL_STREAM_CLOSED(p))
        return luaL_error(L, "attempt to use a closed file");
    lua_pushboolean(L, isatty(fileno(p->f)) == 1);
    return 1;
}

/* sys.termsize(fh): columns and rows of the terminal a Lua io file handle is on (TIOCGWINSZ),
 * asked at every redraw so a progress bar follows a resized window. Returns cols, rows, or
 * nil and a message (not a terminal, or a terminal that reports no size). */
static int sys_termsize(lua_State *L) {
    luaL_Stream *p = (luaL_Stream *)luaL_checkudata(L, 1, LUA_FILEHANDLE);
    if (VL_STREAM_CLOSED(p))
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


/* The descriptor of an open Lua io file handle (raises on a closed one). */
static int fh_fd(lua_State *L, int idx) {
    luaL_Stream *p = (luaL_Stream *)luaL_checkudata(L, idx, LUA_FILEHANDLE);
    if (VL_STREAM_CLOSED(p))
        return luaL_error(L, "attempt to use a closed file");
    return fileno(p->f);
}

/* sys.lock(fh): an exclusive fcntl lock on the whole file, without waiting. The lock belongs
 * to the handle: closing it (or the process ending, even by SIGKILL) releases it. Returns
 * true; or nil, message, pid of the holder (when the system says) if another process has it;
 * or nil, message on other failures. Note: POSIX drops a process's locks on a file when
 * *any* of its descriptors for that file is closed, so the holder must not open and close
 * the same file elsewhere. */
static int sys_lock(lua_State *L) {
    int fd = fh_fd(L, 1);
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (fcntl(fd, F_SETLK, &fl) == 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    int e = errno;
    luaL_pushfail(L);
    if (e == EACCES || e == EAGAIN) {
        struct flock q;
        memset(&q, 0, sizeof q);
        q.l_type = F_WRLCK;
        q.l_whence = SEEK_SET;
        lua_pushliteral(L, "locked by another process");
        if (fcntl(fd, F_GETLK, &q) == 0 && q.l_type != F_UNLCK && q.l_pid > 0) {
            lua_pushinteger(L, (lua_Integer)q.l_pid);
            return 3;
        }
        return 2;
    }
    lua_pushfstring(L, "lock: %s", strerror(e));
    return 2;
}

/* sys.truncate(fh, size): flush the handle and cut its file to size bytes (in place: the
 * inode, and so a lock on it, stays). Returns true, or nil and a message. */
static int sys_truncate(lua_State *L) {
    luaL_Stream *p = (luaL_Stream *)luaL_checkudata(L, 1, LUA_FILEHANDLE);
    lua_Integer size = luaL_checkinteger(L, 2);
    luaL_argcheck(L, size >= 0, 2, "size >= 0 expected");
    if (VL_STREAM_CLOSED(p))
        return luaL_error(L, "attempt to use a closed file");
    if (fflush(p->f) != 0 || ftruncate(fileno(p->f), (off_t)size) != 0) {
        int e = errno;
        luaL_pushfail(L);
        lua_pushfstring(L, "truncate: %s", strerror(e));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* sys.stat(path | fh): { dev =, ino =, size =, mtime = (seconds, with the fraction),
 * type = "file" | "directory" | "other" } following symlinks; or nil, message, errno name
 * ("ENOENT" when the path does not exist). Files are compared by (dev, ino), not by name. */
static int sys_stat(lua_State *L) {
    struct stat st;
    int rc;
    if (lua_type(L, 1) == LUA_TSTRING)
        rc = stat(lua_tostring(L, 1), &st);
    else
        rc = fstat(fh_fd(L, 1), &st);
    if (rc != 0) {
        int e = errno;
        luaL_pushfail(L);
        lua_pushstring(L, strerror(e));
        lua_pushstring(L, e == ENOENT ? "ENOENT" : e == ENOTDIR ? "ENOTDIR" : e == EACCES ? "EACCES" : "other");
        return 3;
    }
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, (lua_Integer)st.st_dev);
    lua_setfield(L, -2, "dev");
    lua_pushinteger(L, (lua_Integer)st.st_ino);
    lua_setfield(L, -2, "ino");
    lua_pushinteger(L, (lua_Integer)st.st_size);
    lua_setfield(L, -2, "size");
    lua_pushnumber(L, (lua_Number)st.st_mtim.tv_sec + (lua_Number)st.st_mtim.tv_nsec / 1e9);
    lua_setfield(L, -2, "mtime");
    lua_pushstring(L, S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "directory" : "other");
    lua_setfield(L, -2, "type");
    return 1;
}

/* sys.getpid(): this process's id (named in journal lock messages). */
static int sys_getpid(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)getpid());
    return 1;
}

/* sys.fnv1a32(s): FNV-1a, 32 bits, of a string, as an integer 0..2^32-1 (vivalearning.hash).
 * In C so that it is exact and the same on every Lua: 5.1 and LuaJIT have no integers nor
 * bitwise operators, and the product does not fit a double's 53 bits. */
static int sys_fnv1a32(lua_State *L) {
    size_t n;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
    uint32_t h = 0x811c9dc5u;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x01000193u;
    lua_pushinteger(L, (lua_Integer)h);
    return 1;
}

/* sys.xorshift32(s): the next state of Marsaglia's 32-bit xorshift (13, 17, 5) from state s
 * (an integer 1..2^32-1), for vivalearning.sample's deterministic rows. */
static int sys_xorshift32(lua_State *L) {
    lua_Integer v = luaL_checkinteger(L, 1);
    luaL_argcheck(L, v >= 1 && v <= 0xffffffffLL, 1, "integer 1..2^32-1 expected");
    uint32_t x = (uint32_t)v;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    lua_pushinteger(L, (lua_Integer)x);
    return 1;
}

int luaopen_vivalearning_sys(lua_State *L);

int luaopen_vivalearning_sys(lua_State *L) {
    static const luaL_Reg funcs[] = {
        { "fnv1a32", sys_fnv1a32 },
        { "fsync", sys_fsync },
        { "getpid", sys_getpid },
        { "isatty", sys_isatty },
        { "lock", sys_lock },
        { "monotime", sys_monotime },
        { "sleep", sys_sleep },
        { "stat", sys_stat },
        { "termsize", sys_termsize },
        { "truncate", sys_truncate },
        { "xorshift32", sys_xorshift32 },
        { NULL, NULL },
    };
    luaL_newlib(L, funcs);
    return 1;
}
