/* The engine (see engine.h): admission, backoffs and the policy's decisions, over the
 * client's I/O. No Lua, no libcurl: verdicts are left on the requests for the binding. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "altkey.h"
#include "engine.h"
#include "io.h"
#include "token.h"
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
        int in_url = r->phase ? r->key_alt != 0 : r->key_url != 0;
        int carried = in_url || (!r->phase && r->key_body != 0);
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

/* r is over: it waits on the complete list (where it may already be) for the binding. */
static void decided(vl_client *c, vl_req *r, int action, int reason) {
    r->v.action = action;
    r->v.reason = reason;
    r->decided = 1;
    if (r->list != VL_L_COMPLETE) vl_list_push(c, r, VL_L_COMPLETE);
}

/* Sends r again in the other spelling of the alternate key: the one byte of its name in the
 * URLs and the body (altkey.h); the next attempt is r's first in that spelling. */
static void respell(vl_req *r) {
    int to = !r->key_spelling;
    if (r->key_url) vl_altkey_respell(r->url + r->key_url - 1, to);
    if (r->key_alt) vl_altkey_respell(r->alt_url + r->key_alt - 1, to);
    if (r->key_body) vl_altkey_respell(r->body + r->key_body - 1, to);
    r->key_spelling = to;
    r->respelled = 1;
}

/* r is refused before it is sent: an error of kind with msg, no attempt to log. */
static void refused(vl_client *c, vl_req *r, const char *kind, const char *msg) {
    memset(&r->v, 0, sizeof r->v);
    r->v.kind = kind;
    r->v.retry_after = -1;
    snprintf(r->v.msg, sizeof r->v.msg, "%s", msg);
    r->logged = 1;
    decided(c, r, VL_A_FAIL, VL_R_NONE);
}

void vl_engine_decide(vl_client *c, vl_req *r, double now) {
    vl_attempt a;
    vl_decision d;
    attempt_of(c, r, &a, now);
    d = vl_policy_decide(&a);
    memset(&r->v, 0, sizeof r->v);
    r->v.transport = a.transport;
    r->v.retry_after = a.retry_after;
    r->v.wait = d.wait;
    r->v.key_refused_twice = a.key_refused && r->respelled;
    /* the other spelling got an answer that shows the key was understood (done, not found,
     * a conflict on it): the client's next requests are built with it (remembered per client) */
    if (r->respelled && vl_altkey_understood(a.transport == VL_T_NONE ? a.status : 0))
        c->key_spelling = r->key_spelling;
    switch (d.action) {
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
    case VL_A_SUCCEED:
    case VL_A_GONE:
        decided(c, r, d.action, VL_R_NONE);
        return;
    default:
        decided(c, r, VL_A_FAIL, d.reason);
        return;
    }
}

/* ------------------------------------------------------------------ the engine */

/* Graph's request size limit (4 MiB, the emulator's default max_body_bytes): a bigger body is
 * refused before it is sent, rather than uploaded to be answered 413 (over HTTP/2 with a reset
 * stream). */
#define VL_MAX_REQUEST_BODY ((size_t)4 * 1024 * 1024)

void vl_engine_admit(vl_client *c, double now) {
    while (c->ready_h && c->nactive < c->max_concurrency && !c->closed && !vl_io_budget_spent(c)) {
        vl_req *r = c->ready_h;
        int rc;
        if (r->phase == 0 && r->body_len > VL_MAX_REQUEST_BODY && !(r->flags & VL_F_INTERNAL)) {
            char msg[160];
            snprintf(msg, sizeof msg, "request body of %lu bytes is over Graph's request limit of %lu bytes; "
                     "nothing was sent", (unsigned long)r->body_len, (unsigned long)VL_MAX_REQUEST_BODY);
            refused(c, r, "validation", msg);
            continue;
        }
        if (now >= r->deadline) {
            char msg[96];
            snprintf(msg, sizeof msg, "deadline of %.3gs passed before the request could be sent", c->deadline_s);
            refused(c, r, "transport", msg);
            continue;
        }
        if (!vl_auth_usable(c, now)) {
            vl_list_push(c, r, VL_L_TOKEN);
            continue;
        }
        if (r->flags & VL_F_SIGNIN) {      /* signed in: nothing to send, nothing to log */
            memset(&r->v, 0, sizeof r->v);
            r->v.retry_after = -1;
            r->logged = 1;
            decided(c, r, VL_A_SUCCEED, VL_R_NONE);
            continue;
        }
        r->token_gen = c->tok.gen;
        r->decided = 0;
        if (r->phase == 1) {
            char *u = r->url; int m = r->method;
            r->url = r->alt_url; r->method = VL_GET;
            rc = vl_io_start(c, r, c->tok.value);
            r->url = u; r->method = m;
        } else {
            rc = vl_io_start(c, r, c->tok.value);
        }
        if (rc != 0) {
            refused(c, r, "transport", "could not set up the transfer");
            continue;
        }
        vl_list_push(c, r, VL_L_ACTIVE);
        vl_io_budget_use(c);
        if (c->nactive > c->st_max_active) c->st_max_active = c->nactive;
    }
}

void vl_engine_promote(vl_client *c, double now) {
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

/* The engine's half of a finished attempt: r goes onto the complete list until the binding has
 * logged it and the policy has decided (the token request too: the list owns it from here,
 * not c->token_req). The transport has filled in how the attempt went. */
static void attempt_done(vl_client *c, vl_req *r) {
    c->st_attempts++;
    r->attempt_end = vl_client_now(c);
    vl_list_push(c, r, VL_L_COMPLETE);
    if (r->flags & VL_F_INTERNAL) c->token_req = NULL;
    r->attempts++;
    r->logged = 0;
    r->decided = 0;
}

void vl_engine_collect(vl_client *c) {
    vl_req *r;
    while ((r = vl_transport_next_done(c)) != NULL) attempt_done(c, r);
}

int vl_engine_idle(const vl_client *c) {
    return !c->active_h && !c->ready_h && !c->backoff_h && !c->token_h && !c->token_req && !c->complete_h;
}

double vl_engine_wait(const vl_client *c, double now, double max) {
    double wait = max;
    if (c->ready_h && c->nactive < c->max_concurrency) wait = 0;
    else {
        vl_req *r;
        for (r = c->backoff_h; r; r = r->next)
            if (r->not_before - now < wait) wait = r->not_before - now;
        if (c->token_h && !c->tok.fetching && c->tok.retry_at - now < wait) wait = c->tok.retry_at - now;
    }
    if (wait < 0) wait = 0;
    if (wait > 3600) wait = 3600;      /* the drive loop comes back here anyway */
    return wait;
}
