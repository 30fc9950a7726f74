/* bench/frame_host: a game-style C host embedding Lua 5.4 (make bench, make bench-frame).
 *
 *   frame_host SCRIPT [FRAMES]
 *
 * SCRIPT returns a table of runs, each { name =, gc = "host" | "auto", setup = function() ->
 * client, budget, before = function(frame), after = function(frame, done), finish = function()
 * -> text }. For each run the host calls setup, then FRAMES times at 60 fps: before (the game
 * submits), the client's poll(0, { budget = budget }) (budget nil: a plain poll(0)), after (the
 * game reads the results), and sleeps to the next frame. Only the poll is timed, with
 * CLOCK_MONOTONIC (wall) and CLOCK_THREAD_CPUTIME_ID (this thread's CPU), and the host prints
 * p50/p99/max of both, and which frame had the max. The Lua side (bench/frame.lua) holds what
 * the run does.
 *
 * gc = "host": the host runs Lua's collector itself, in the frame's spare time (stopped, then
 * stepped after each frame for up to GC_SLICE), as game engines do: left to itself, the
 * collector runs its steps inside whatever allocates, a poll included, and a step can take
 * half a millisecond. gc = "auto" leaves it to Lua, for comparison. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#define FRAME_NS 16666667L       /* 60 fps */
#define GC_SLICE 0.002            /* seconds of collector work per frame at most (gc = "host") */

typedef struct samples { double *wall, *cpu; int n, cap; } samples;

static double secs(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* the q-quantile of the n sorted values v (nearest rank) */
static double quantile(const double *v, int n, double q) {
    int k = (int)(q * n + 0.999999) - 1;
    if (k < 0) k = 0;
    if (k >= n) k = n - 1;
    return v[k];
}

static void report(const char *name, samples *s, int max_frame, const char *extra) {
    double *w, *c;
    size_t bytes = (size_t)s->n * sizeof *w;
    if (s->n == 0) return;
    w = malloc(bytes);
    c = malloc(bytes);
    if (!w || !c) { free(w); free(c); return; }
    memcpy(w, s->wall, bytes);
    memcpy(c, s->cpu, bytes);
    qsort(w, (size_t)s->n, sizeof *w, cmp);
    qsort(c, (size_t)s->n, sizeof *c, cmp);
    printf("%-34s wall p50 %.3f p99 %.3f max %.3f ms (frame %d) | CPU p50 %.3f p99 %.3f max %.3f ms | %d polls%s%s\n",
           name, quantile(w, s->n, .5) * 1e3, quantile(w, s->n, .99) * 1e3, w[s->n - 1] * 1e3, max_frame,
           quantile(c, s->n, .5) * 1e3, quantile(c, s->n, .99) * 1e3, c[s->n - 1] * 1e3, s->n,
           extra && *extra ? "; " : "", extra ? extra : "");
    free(w);
    free(c);
}

static int add(samples *s, double wall, double cpu) {
    if (s->n == s->cap) {
        int nc = s->cap ? s->cap * 2 : 256;
        double *nw = realloc(s->wall, (size_t)nc * sizeof *nw), *ncpu;
        if (!nw) return 0;
        s->wall = nw;
        ncpu = realloc(s->cpu, (size_t)nc * sizeof *ncpu);
        if (!ncpu) return 0;
        s->cpu = ncpu;
        s->cap = nc;
    }
    s->wall[s->n] = wall;
    s->cpu[s->n] = cpu;
    s->n++;
    return 1;
}

/* calls run[field](args on the stack: nargs) with nres results; 0 and a message on error */
static int call_field(lua_State *L, int run, const char *field, int nargs, int nres) {
    lua_getfield(L, run, field);
    lua_insert(L, -nargs - 1);
    if (lua_pcall(L, nargs, nres, 0) != LUA_OK) {
        fprintf(stderr, "frame_host: %s: %s\n", field, lua_tostring(L, -1));
        lua_pop(L, 1);
        return 0;
    }
    return 1;
}

/* one run (the table at index run); 0 on error */
static int run_one(lua_State *L, int run, int frames) {
    samples s = { NULL, NULL, 0, 0 };
    int client, opts, f, ok = 1, max_frame = 0;
    double max_wall = -1;
    struct timespec next;
    const char *name;
    int host_gc;
    double gc_max = 0;
    lua_getfield(L, run, "name");
    name = lua_tostring(L, -1) ? lua_tostring(L, -1) : "?";
    lua_getfield(L, run, "gc");
    host_gc = lua_tostring(L, -1) && strcmp(lua_tostring(L, -1), "host") == 0;
    lua_pop(L, 1);
    if (!call_field(L, run, "setup", 0, 2)) { lua_pop(L, 1); return 0; }
    /* the client, then the poll options (nil: a plain poll(0)) */
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushnil(L);
    } else {
        lua_createtable(L, 0, 1);
        lua_insert(L, -2);
        lua_setfield(L, -2, "budget");
    }
    opts = lua_gettop(L);
    client = opts - 1;
    if (host_gc) lua_gc(L, LUA_GCSTOP);
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (f = 1; f <= frames && ok; f++) {
        double w0, c0, w1, c1;
        lua_pushinteger(L, f);
        if (!call_field(L, run, "before", 1, 0)) { ok = 0; break; }
        lua_getfield(L, client, "poll");
        lua_pushvalue(L, client);
        lua_pushnumber(L, 0);
        lua_pushvalue(L, opts);
        w0 = secs(CLOCK_MONOTONIC);
        c0 = secs(CLOCK_THREAD_CPUTIME_ID);
        if (lua_pcall(L, 3, 1, 0) != LUA_OK) {
            fprintf(stderr, "frame_host: poll: %s\n", lua_tostring(L, -1));
            lua_pop(L, 1);
            ok = 0;
            break;
        }
        c1 = secs(CLOCK_THREAD_CPUTIME_ID);
        w1 = secs(CLOCK_MONOTONIC);
        if (!add(&s, w1 - w0, c1 - c0)) { ok = 0; lua_pop(L, 1); break; }
        if (w1 - w0 > max_wall) { max_wall = w1 - w0; max_frame = f; }
        lua_pushinteger(L, f);
        lua_insert(L, -2);
        if (!call_field(L, run, "after", 2, 0)) { ok = 0; break; }
        if (host_gc) {
            double g0 = secs(CLOCK_MONOTONIC), g;
            while (!lua_gc(L, LUA_GCSTEP, 0) && secs(CLOCK_MONOTONIC) - g0 < GC_SLICE) {}
            g = secs(CLOCK_MONOTONIC) - g0;
            if (g > gc_max) gc_max = g;
        }
        next.tv_nsec += FRAME_NS;
        if (next.tv_nsec >= 1000000000L) { next.tv_nsec -= 1000000000L; next.tv_sec++; }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
    }
    if (ok && call_field(L, run, "finish", 0, 1)) {
        char extra[600];
        if (host_gc)
            snprintf(extra, sizeof extra, "%s; host GC max %.3f ms a frame, Lua heap %d KB at the end",
                     lua_tostring(L, -1), gc_max * 1e3, lua_gc(L, LUA_GCCOUNT));
        else
            snprintf(extra, sizeof extra, "%s; Lua's own GC, heap %d KB at the end", lua_tostring(L, -1),
                     lua_gc(L, LUA_GCCOUNT));
        report(name, &s, max_frame, extra);
        lua_pop(L, 1);
    } else {
        ok = 0;
    }
    if (host_gc) lua_gc(L, LUA_GCRESTART);
    lua_settop(L, run);
    free(s.wall);
    free(s.cpu);
    return ok;
}

int main(int argc, char **argv) {
    lua_State *L;
    int frames = argc > 2 ? atoi(argv[2]) : 240, i, n, ok = 1;
    if (argc < 2 || frames <= 0) {
        fprintf(stderr, "usage: frame_host SCRIPT [FRAMES]\n");
        return 2;
    }
    L = luaL_newstate();
    if (!L) return 1;
    luaL_openlibs(L);                         /* package.path from LUA_PATH, as lua5.4 does */
    if (luaL_loadfile(L, argv[1]) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK || !lua_istable(L, -1)) {
        fprintf(stderr, "frame_host: %s: %s\n", argv[1], lua_isstring(L, -1) ? lua_tostring(L, -1) : "no table of runs");
        lua_close(L);
        return 1;
    }
    n = (int)lua_rawlen(L, -1);
    for (i = 1; i <= n && ok; i++) {
        lua_rawgeti(L, -1, i);
        ok = run_one(L, lua_gettop(L), frames);
        lua_pop(L, 1);
    }
    lua_close(L);                             /* the clients' __gc close them */
    return ok ? 0 : 1;
}
