/* A minimal Lua script host for `make check` (Lua 5.4; a plain build for every Lua): `lua_host script.lua args...` runs the script
 * like `lua5.4` does. Built with the sanitizers, it carries their runtime itself, so nothing has
 * to be LD_PRELOADed into the environment that the specs' child processes (curl, sh) inherit.
 *
 * Built with -DVL_FORCED_GC it is the forced-GC host (Lua's own EMERGENCYGCTESTS idea, without
 * rebuilding Lua): its allocator fails every growing allocation once, so Lua runs a full
 * emergency collection and asks again, and that retry succeeds. Every object that is not
 * reachable is then collected, and every pending finalizer can run, at each allocation a C
 * function makes: a missing anchor or a finalizer that frees something under a running call
 * shows up at once (with ASan, as a use-after-free). Lua retries only once its state is fully
 * built, so the allocator is installed after luaL_newstate. lauxlib's buffer boxes call the
 * allocator from lua_getallocf directly, with no retry (a failure there is a memory error):
 * the host defines lua_getallocf (exported with -rdynamic; liblua calls it through the PLT)
 * and hands those callers a plain allocator. VL_FORCED_GC_STATS=1 prints the counts at exit. */
#define _GNU_SOURCE     /* RTLD_NEXT */
#include <stdio.h>
#include <stdlib.h>

#include "../src/luacompat.h" /* the host builds for every Lua (spec/client_memory_spec.lua) */
#include <lualib.h>
#if LUA_VERSION_NUM == 501 && defined(__has_include)
#if __has_include(<luajit.h>)
#include <luajit.h> /* LUAJIT_VERSION */
#endif
#endif

#ifdef VL_FORCED_GC
#include <dlfcn.h>
#endif

typedef struct host_alloc {
    int failed;         /* the last growing allocation failed: the next one should be its retry */
    void *block;        /* what it asked for */
    size_t osize, nsize;
    unsigned long count, unretried;
    /* vl_host_fail_alloc(n): the n-th growing allocation from now fails, and its retry after
     * the emergency collection too, so Lua raises a memory error there */
    long fail_in;
    int injected, fired;
} host_alloc;

#ifdef VL_FORCED_GC
/* busted leaves with os.exit(code, true): the count is printed at exit */
static host_alloc *forced_stats;

static void forced_report(void) {
    if (forced_stats && getenv("VL_FORCED_GC_STATS"))
        fprintf(stderr, "forced-GC host: %lu forced collections, %lu failures not retried\n",
                forced_stats->count, forced_stats->unretried);
}
#endif

static void *host_alloc_f(void *ud, void *ptr, size_t osize, size_t nsize) {
    host_alloc *f = ud;
    size_t old = ptr ? osize : 0;    /* for a new block osize is the object's type */
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    if (nsize > old) {
        int fail = 0;
        if (f->failed && ptr == f->block && osize == f->osize && nsize == f->nsize) {
            f->failed = 0;              /* the retry, after the collection */
            if (f->injected) {
                f->injected = 0;
                return NULL;            /* fails too: a memory error */
            }
            return realloc(ptr, nsize);
        }
        /* another allocation while one failed: Lua could not collect (inside a collection
         * step, where only a stack shrink allocates, and does without on failure) */
        if (f->failed) f->unretried++;
        f->injected = 0;
        if (f->fail_in > 0 && --f->fail_in == 0) {
            f->injected = f->fired = fail = 1;
        } else {
#ifdef VL_FORCED_GC
            f->count++;
            fail = 1;                   /* Lua: full emergency collection, then asks again */
#endif
        }
        f->failed = fail;
        if (fail) {
            f->block = ptr; f->osize = osize; f->nsize = nsize;
#if LUA_VERSION_NUM < 502
            /* 5.1 and LuaJIT raise at the first failure: no emergency collection, no retry to
             * wait for (a later allocation of the same size is a new one) */
            f->failed = f->injected = 0;
#endif
            return NULL;
        }
    }
    return realloc(ptr, nsize);
}

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VL_HOST_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define VL_HOST_SANITIZED 1
#endif

#ifndef VL_HOST_SANITIZED
/* Plain builds only (the sanitizers own malloc): the executable's malloc and calloc stand in
 * for libc's in every library, so vl_host_fail_malloc(n) can fail the n-th C allocation (the
 * core's copies, libcurl's handles). Lua itself allocates with realloc and is not counted. */
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
static long c_fail_in;
static int c_fired;

void *malloc(size_t n) {
    if (c_fail_in > 0 && --c_fail_in == 0) { c_fired = 1; return NULL; }
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size) {
    if (c_fail_in > 0 && --c_fail_in == 0) { c_fired = 1; return NULL; }
    return __libc_calloc(n, size);
}

static int host_fail_malloc(lua_State *L) {
    lua_Integer n = luaL_checkinteger(L, 1);
    lua_pushboolean(L, c_fired);
    c_fired = 0;
    c_fail_in = n > 0 ? (long)n : 0;
    return 1;
}
#endif

/* vl_host_fail_alloc(n): arms the n-th growing allocation from now (0: disarms); returns
 * whether the previous arming fired. For the specs of what a memory error leaves behind. */
static int host_fail_alloc(lua_State *L) {
    void *ud;
    lua_Integer n = luaL_checkinteger(L, 1);
    host_alloc *f;
    lua_getallocf(L, &ud);
    f = ud;
    lua_pushboolean(L, f->fired);
    f->fired = 0;
    f->fail_in = n > 0 ? (long)n : 0;
    /* no failed allocation waits for its retry while Lua code runs: one still marked is one
     * Lua never retried (5.2 retries only while the collector runs), not to be failed later */
    f->failed = f->injected = 0;
    return 1;
}

#ifdef VL_FORCED_GC
static void *plain_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    (void)ud; (void)osize;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    return realloc(ptr, nsize);
}

lua_Alloc lua_getallocf(lua_State *L, void **ud) {
    static lua_Alloc (*real)(lua_State *, void **);
    lua_Alloc f;
    if (!real) *(void **)&real = dlsym(RTLD_NEXT, "lua_getallocf");
    f = real(L, ud);
    return f == host_alloc_f ? plain_alloc : f;
}
#endif

static int traceback(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL)
        msg = luaL_tolstring(L, 1, NULL);
    luaL_traceback(L, L, msg, 1);
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s script.lua [args...]\n", argv[0]);
        return 2;
    }
    static host_alloc f;
#ifdef LUAJIT_VERSION
    /* LuaJIT's own allocator is not realloc/free: the host's allocator from the start */
    lua_State *L = lua_newstate(host_alloc_f, &f);
#else
    lua_State *L = luaL_newstate();
#endif
    if (L == NULL) {
        fprintf(stderr, "%s: cannot create a Lua state\n", argv[0]);
        return 1;
    }
#ifndef LUAJIT_VERSION
    /* luaL_newstate's allocator is realloc/free too: blocks move freely between the two */
    lua_setallocf(L, host_alloc_f, &f);
#endif
#ifdef VL_FORCED_GC
    forced_stats = &f;
    atexit(forced_report);
    /* An emergency collection leaves the finalizers it found for the next GC step, and with a
     * collection at every allocation the debt that triggers a step never builds up. No pause
     * and a step that does a whole cycle: the next allocation after a collection runs the
     * pending finalizers. */
    lua_gc(L, LUA_GCINC, 1, 1000, 30);
#endif
    luaL_openlibs(L);
    lua_register(L, "vl_host_fail_alloc", host_fail_alloc);
#ifndef VL_HOST_SANITIZED
    lua_register(L, "vl_host_fail_malloc", host_fail_malloc);
#endif
    /* arg[-1] = host, arg[0] = script, arg[1..] = arguments, as lua.c sets them. */
    lua_createtable(L, argc, 2);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - 1);
    }
    lua_setglobal(L, "arg");
    lua_pushcfunction(L, traceback);
    int status = luaL_loadfile(L, argv[1]);
    if (status == LUA_OK) {
        for (int i = 2; i < argc; i++)
            lua_pushstring(L, argv[i]);
        status = lua_pcall(L, argc - 2, 0, 1);
    }
    if (status != LUA_OK)
        fprintf(stderr, "%s: %s\n", argv[0], lua_tostring(L, -1));
    lua_close(L);
    return status == LUA_OK ? 0 : 1;
}
