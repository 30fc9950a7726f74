/* The engine (see engine.h): retry decisions by the policy, admission, backoffs and the drive
 * loop, over the client's I/O. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "altkey.h"
#include "auth.h"
#include "batch.h"
#include "engine.h"
#include "io.h"
#include "result.h"
#include "transport.h"

/* ------------------------------------------------------------------ retry decisions */

static double hint_of(vl_req *r) {
    return vl_retry_after(r->h_retry_after_ms, r->h_x_retry_after_ms, r->h_retry_after, r->resp, r->resp_len,
                          (double)time(NULL));
}

/* What the policy needs to know about the finished attempt of r. */
static void attempt_of(vl_client *c, vl_req *r, vl_attempt *a, double now) {
    memset(a, 0, sizeof *a);
    a->kind = r->phase ? VL_K_LOOKUP : VL_K_REQUEST;
    a->method = r->method;
    a->transport = r->outcome;
    a->status = r->outcome == VL_T_NONE ? r->status : 0;
    a->retry_after = a->transport == VL_T_NONE && a->status >= 400 ? hint_of(r) : -1;
    a->has_alt = r->alt_url != NULL;
    {
        /* the key this attempt carried: in the lookup's URL, else in the URL or the body */
        int in_url = r->phase ? r->key_alt >= 0 : r->key_url >= 0;
        int carried = in_url || (!r->phase && r->key_body >= 0);
        a->respellable = carried && !r->respelled;
        a->key_refused = carried && a->status == 400 &&
                         vl_altkey_refused(r->resp, r->resp_len, r->key_spelling, in_url);
    }
    a->del404ok = (r->flags & VL_F_DEL404OK) != 0;
    a->refreshable = vl_auth_refreshable(c);
    a->auth_replays = r->auth_replays;
    a->retries = r->retries;
    a->max_retries = c->max_retries;
    a->now = now;
    a->deadline = r->deadline;
    a->backoff_base = c->backoff_base;
    a->backoff_cap = c->backoff_cap;
    a->jitter = vl_rng_unit(&c->rng);
}

/* Finishes r with the error the policy's decision d names. */
static void fail_decided(lua_State *L, vl_client *c, int cidx, vl_req *r, const vl_attempt *a, const vl_decision *d) {
    int rc = r->rc;
    char msg[200];
    lua_pushnil(L);
    switch (d->reason) {
    case VL_R_TOO_LARGE:
        snprintf(msg, sizeof msg, "response body exceeds max_body_bytes (%lu)", (unsigned long)c->max_body);
        r->status = r->http_status;
        vl_push_http_error(L, r, "protocol", -1, msg);
        lua_pushstring(L, "body_too_large");
        lua_setfield(L, -2, "code");
        break;
    case VL_R_BODY_REFUSED:
        snprintf(msg, sizeof msg, "the server reset the HTTP/2 stream after %lu of the %lu bytes of the request "
                 "body: most likely it refused the body as too large (HTTP 413); not retried",
                 (unsigned long)r->uploaded, (unsigned long)r->body_len);
        vl_push_transport_error(L, r, rc, msg);
        break;
    case VL_R_FATAL:
        vl_push_transport_error(L, r, rc, vl_transport_tls_failed(r)
                             ? "TLS verification failed (the server certificate is not trusted; see ca_file)"
                             : "transport failure");
        break;
    case VL_R_MAYBE_DONE:
        if (a->transport != VL_T_NONE) {
            vl_push_transport_error(L, r, rc, "the request may have been processed; a POST without an external id is not re-sent");
        } else {
            vl_push_http_error(L, r, NULL, a->retry_after, NULL);
            lua_pushliteral(L, "the request may have been processed; a POST without an external id is not re-sent");
            lua_setfield(L, -2, "note");
        }
        break;
    case VL_R_EXHAUSTED:
        if (a->transport == VL_T_NONE) vl_push_http_error(L, r, NULL, a->retry_after, NULL);
        else vl_push_transport_error(L, r, rc, c->max_retries > 0 ? "transport failure; retries exhausted"
                                                              : "transport failure (max_retries = 0)");
        break;
    case VL_R_DEADLINE:
        snprintf(msg, sizeof msg, "giving up: the next attempt (in %.3gs) would pass the %.3gs deadline",
                 d->wait, c->deadline_s);
        if (a->transport == VL_T_NONE) {
            vl_push_http_error(L, r, NULL, a->retry_after, NULL);
            lua_pushstring(L, msg);
            lua_setfield(L, -2, "note");
        } else {
            vl_push_transport_error(L, r, rc, msg);
        }
        break;
    default:
        vl_push_http_error(L, r, NULL, -1, NULL);
        if (a->key_refused && r->respelled) {
            lua_pushliteral(L, "Graph refused the alternate key in both spellings (externalcourseActivityId "
                            "and externalCourseActivityId)");
            lua_setfield(L, -2, "note");
        }
        break;
    }
    vl_finish(L, c, cidx, r, 2);
}

/* Sends r again in the other spelling of the alternate key: the one byte of its name in the
 * URLs and the body (altkey.h); the next attempt is r's first in that spelling. */
static void respell(vl_req *r) {
    int to = !r->key_spelling;
    if (r->key_url >= 0) vl_altkey_respell(r->url + r->key_url, to);
    if (r->key_alt >= 0) vl_altkey_respell(r->alt_url + r->key_alt, to);
    if (r->key_body >= 0) vl_altkey_respell(r->body + r->key_body, to);
    r->key_spelling = to;
    r->respelled = 1;
}

/* The engine's half of a finished attempt, once and without Lua: r goes onto the complete list
 * until on_complete has built its outcome (the token request too: the list owns it from
 * here, not c->token_req). The transport has filled in how the attempt went. */
static void attempt_done(vl_client *c, vl_req *r) {
    c->st_attempts++;
    r->attempt_end = vl_client_now(c);
    vl_list_push(c, r, VL_L_COMPLETE);
    if (r->flags & VL_F_INTERNAL) c->token_req = NULL;
    r->attempts++;
    r->logged = 0;
}

/* The outcome of a finished attempt, as the policy decides: every way out moves r off the
 * complete list (finished, retried, replayed) after what can raise; a memory error before
 * that leaves it there. */
static void on_complete(lua_State *L, vl_client *c, int cidx, vl_req *r) {
    vl_attempt a;
    vl_decision d;
    double now;
    if (!r->logged) {
        vl_log_attempt(L, c, cidx, r, r->rc, r->attempt_end);
        r->logged = 1;
    }
    if (r->flags & VL_F_INTERNAL) {
        vl_auth_token_done(L, c, cidx, r, r->rc);
        return;
    }
    now = vl_client_now(c);
    attempt_of(c, r, &a, now);
    d = vl_policy_decide(&a);
    /* the other spelling got an answer that shows the key was understood (done, not found,
     * a conflict on it): the client's next requests are built with it (remembered per client) */
    if (r->respelled && vl_altkey_understood(a.transport == VL_T_NONE ? a.status : 0))
        c->key_spelling = r->key_spelling;
    switch (d.action) {
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
    case VL_A_REFRESH:
        r->auth_replays++;
        vl_auth_invalidate(c, r->token_gen);
        vl_list_push_front(c, r, VL_L_READY);
        return;
    case VL_A_RESPELL:               /* a 400 refused the key as spelled: nothing happened */
        respell(r);
        vl_list_push_front(c, r, VL_L_READY);
        return;
    case VL_A_RESEND:                /* the lookup found nothing: the create did not happen */
        r->phase = 0;
        vl_list_push_front(c, r, VL_L_READY);
        return;
    case VL_A_RETRY:
    case VL_A_LOOKUP:
        r->retries++;
        r->phase = d.action == VL_A_LOOKUP;
        r->not_before = now + d.wait;
        vl_list_push(c, r, VL_L_BACKOFF);
        return;
    default:
        fail_decided(L, c, cidx, r, &a, &d);
        return;
    }
}

/* ------------------------------------------------------------------ the engine */

/* Graph's request size limit (4 MiB, the emulator's default max_body_bytes): a bigger body is
 * refused before it is sent, rather than uploaded to be answered 413 (over HTTP/2 with a reset
 * stream). */
#define VL_MAX_REQUEST_BODY ((size_t)4 * 1024 * 1024)

/* r stays on the ready list until it moves on: a memory error in fail_msg leaves it queued */
static void admit(lua_State *L, vl_client *c, int cidx, double now) {
    while (c->ready_h && c->nactive < c->max_concurrency && !c->closed) {
        vl_req *r = c->ready_h;
        int rc;
        if (r->phase == 0 && r->body_len > VL_MAX_REQUEST_BODY && !(r->flags & VL_F_INTERNAL)) {
            char msg[160];
            snprintf(msg, sizeof msg, "request body of %lu bytes is over Graph's request limit of %lu bytes; "
                     "nothing was sent", (unsigned long)r->body_len, (unsigned long)VL_MAX_REQUEST_BODY);
            vl_fail_msg(L, c, cidx, r, "validation", msg);
            continue;
        }
        if (now >= r->deadline) {
            char msg[96];
            snprintf(msg, sizeof msg, "deadline of %.3gs passed before the request could be sent", c->deadline_s);
            vl_fail_msg(L, c, cidx, r, "transport", msg);
            continue;
        }
        if (!vl_auth_usable(c, now)) {
            vl_list_push(c, r, VL_L_TOKEN);
            continue;
        }
        r->token_gen = c->tok.gen;
        if (r->phase == 1) {
            char *u = r->url; int m = r->method;
            r->url = r->alt_url; r->method = VL_GET;
            rc = vl_io_start(c, r, c->tok.value);
            r->url = u; r->method = m;
        } else {
            rc = vl_io_start(c, r, c->tok.value);
        }
        if (rc != 0) {
            vl_fail_msg(L, c, cidx, r, "transport", "could not set up the transfer");
            continue;
        }
        vl_list_push(c, r, VL_L_ACTIVE);
        if (c->nactive > c->st_max_active) c->st_max_active = c->nactive;
    }
}

static void promote(vl_client *c, double now) {
    vl_req *r = c->backoff_h;
    while (r) {
        vl_req *n = r->next;
        if (r->not_before <= now) {
            vl_list_remove(c, r);
            vl_list_push(c, r, VL_L_READY);
        }
        r = n;
    }
}

static void process(lua_State *L, vl_client *c, int cidx) {
    vl_req *r;
    while (c->complete_h) on_complete(L, c, cidx, c->complete_h);   /* left by a memory error */
    while ((r = vl_transport_next_done(c)) != NULL) {
        attempt_done(c, r);
        on_complete(L, c, cidx, r);
    }
}

static int idle(vl_client *c) {
    return !c->active_h && !c->ready_h && !c->backoff_h && !c->token_h && !c->token_req && !c->complete_h;
}

/* Drives transfers until `until` is done (sync calls), or something finished (poll), or
 * timeout seconds passed, or nothing is left to do, or the client was closed meanwhile (by a
 * hook or a finalizer: the caller's busy_call releases it when the call is over). */
void vl_drive(lua_State *L, vl_client *c, int cidx, vl_req *until, double timeout) {
    double end;
    if (c->external) {            /* the driver does the waiting: one turn, never a block */
        vl_engine_step(L, c, cidx);
        return;
    }
    end = vl_now() + timeout;
    while (!c->closed) {
        double now = vl_now(), wait;
        promote(c, now);
        vl_auth_tick(L, c, cidx, now);
        admit(L, c, cidx, now);
        if (c->closed) break;
        vl_transport_timers(c, vl_now());
        process(L, c, cidx);
        if (until ? until->done : c->ndone > 0) break;
        if (c->closed || idle(c)) break;
        now = vl_now();
        if (now >= end) {
            /* out of time: still look at the sockets once, without waiting (poll(0) in a frame loop) */
            if (vl_transport_has_sockets(c)) {
                vl_transport_wait(c, 0);
                process(L, c, cidx);
            }
            break;
        }
        wait = end - now;
        if (c->ready_h && c->nactive < c->max_concurrency) wait = 0;
        else {
            vl_req *r;
            for (r = c->backoff_h; r; r = r->next)
                if (r->not_before - now < wait) wait = r->not_before - now;
            if (c->token_h && !c->tok.fetching && c->tok.retry_at - now < wait) wait = c->tok.retry_at - now;
        }
        if (wait < 0) wait = 0;
        if (wait > 3600) wait = 3600;      /* the loop comes back here anyway */
        if (wait > 0 || c->nactive > 0) {
            vl_transport_wait(c, wait);
            process(L, c, cidx);
            if (until ? until->done : c->ndone > 0) break;
        }
    }
}


/* ------------------------------------------------------------------ the engine's face */




void vl_engine_step(lua_State *L, vl_client *c, int cidx) {
    double now = vl_client_now(c);
    promote(c, now);
    vl_auth_tick(L, c, cidx, now);
    admit(L, c, cidx, now);
    if (c->closed) return;
    if (c->external) {
        while (c->complete_h && !c->closed) on_complete(L, c, cidx, c->complete_h);
        /* what finished may have freed a slot or queued a retry due now */
        if (!c->closed && c->ready_h) admit(L, c, cidx, vl_client_now(c));
    } else {
        process(L, c, cidx);
    }
}
