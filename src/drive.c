/* drive (see drive.h): the engine's turns, with the Lua half of each finished request. */
#include "auth.h"
#include "batch.h"
#include "drive.h"
#include "engine.h"
#include "io.h"
#include "result.h"
#include "transport.h"

/* The Lua values of a request the engine is done with (r->decided): every way out moves r off
 * the complete list after what can raise (a $batch with throttled items goes back to the
 * backoff list); a memory error before that leaves it there, built again on the next turn. */
static void build(lua_State *L, vl_client *c, int cidx, vl_req *r) {
    switch (r->v.action) {
    case VL_A_SUCCEED:
        if (r->res == VL_RES_BATCH && !r->phase) {
            if (!vl_decode_body(L, r)) { vl_fail_protocol(L, c, cidx, r, "batch response is not a JSON object"); return; }
            vl_batch_result(L, c, cidx, r, lua_gettop(L));
            return;
        }
        vl_succeed(L, c, cidx, r);
        return;
    case VL_A_GONE:
        lua_pushboolean(L, 1);
        vl_finish(L, c, cidx, r, 1);
        return;
    default:
        vl_fail_decided(L, c, cidx, r);
        return;
    }
}

/* One finished attempt of r (the head of the complete list): logged once, then the token's
 * answer to auth, or the policy's decision (engine) and, when r is over, its values. */
static void settle_one(lua_State *L, vl_client *c, int cidx, vl_req *r) {
    if (!r->logged) {
        vl_log_attempt(L, c, cidx, r, r->rc, r->attempt_end);
        r->logged = 1;
    }
    if (r->flags & VL_F_INTERNAL) {
        vl_auth_token_done(L, c, cidx, r, r->rc);
        return;
    }
    if (!r->decided) vl_engine_decide(c, r, vl_client_now(c));
    if (r->decided) build(L, c, cidx, r);
}

/* Everything on the complete list: first the requests refused before they were sent (in the
 * order admission met them, as when admission built them itself), then the finished attempts. */
static void settle(lua_State *L, vl_client *c, int cidx) {
    vl_req *r, *next;
    for (r = c->complete_h; r; r = next) {
        next = r->next;
        if (r->decided && r->v.kind) build(L, c, cidx, r);
    }
    /* past poll's budget, the rest stays on the complete list, in order, for the next poll */
    while (c->complete_h && !vl_io_budget_spent(c)) {
        settle_one(L, c, cidx, c->complete_h);
        vl_io_budget_use(c);
    }
}

/* io = "external": a close from a hook or finalizer stops the turn (the driver sees it next) */
static void settle_ext(lua_State *L, vl_client *c, int cidx) {
    vl_req *r, *next;
    for (r = c->complete_h; r && !c->closed; r = next) {
        next = r->next;
        if (r->decided && r->v.kind) build(L, c, cidx, r);
    }
    while (c->complete_h && !c->closed) settle_one(L, c, cidx, c->complete_h);
}

static void process(lua_State *L, vl_client *c, int cidx) {
    settle(L, c, cidx);              /* left by a memory error, or refused by admission */
    vl_engine_collect(c);
    settle(L, c, cidx);
}

/* Drives transfers until `until` is done (sync calls), or something finished (poll), or
 * timeout seconds passed, or nothing is left to do, or the client was closed meanwhile (by a
 * hook or a finalizer: the caller's busy_call releases it when the call is over). */
void vl_drive(lua_State *L, vl_client *c, int cidx, vl_req *until, double timeout) {
    double end;
    if (c->external) {            /* the driver does the waiting: one turn, never a block */
        vl_drive_step(L, c, cidx);
        return;
    }
    end = vl_now() + timeout;
    while (!c->closed) {
        double now = vl_now(), wait;
        vl_engine_promote(c, now);
        vl_auth_tick(L, c, cidx, now);
        vl_engine_admit(c, now);
        if (c->closed) break;
        vl_transport_timers(c, vl_now());
        process(L, c, cidx);
        if (until ? until->done : c->ndone > 0) break;
        if (c->closed || vl_engine_idle(c) || vl_io_budget_spent(c)) break;
        now = vl_now();
        if (now >= end) {
            /* out of time: still look at the sockets once, without waiting (poll(0) in a frame loop) */
            if (vl_transport_has_sockets(c) && !vl_io_budget_spent(c)) {
                vl_transport_wait(c, 0);
                process(L, c, cidx);
            }
            break;
        }
        wait = vl_engine_wait(c, now, end - now);
        if (wait > 0 || c->nactive > 0) {
            vl_transport_wait(c, wait);
            process(L, c, cidx);
            if (until ? until->done : c->ndone > 0) break;
        }
    }
}

void vl_drive_step(lua_State *L, vl_client *c, int cidx) {
    double now = vl_client_now(c);
    vl_engine_promote(c, now);
    vl_auth_tick(L, c, cidx, now);
    vl_engine_admit(c, now);
    if (c->closed) return;
    if (c->external) {
        settle_ext(L, c, cidx);
        /* what finished may have freed a slot or queued a retry due now */
        if (!c->closed && c->ready_h) {
            vl_engine_admit(c, vl_client_now(c));
            settle_ext(L, c, cidx);
        }
    } else {
        process(L, c, cidx);
    }
}
