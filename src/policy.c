/* The retry policy (see policy.h): every retry rule of the client in one place. */
#include <stddef.h>

#include "policy.h"

/* a background refresh that failed is tried again after this long (the token is still good) */
#define BACKGROUND_RETRY 30.0

const char *vl_policy_status_kind(long status) {
    if (status == 429 || status == 503) return "throttled";
    if (status == 401) return "auth";
    return "http";
}

double vl_policy_wait(const vl_attempt *a) {
    double ceiling = a->backoff_base;
    int i;
    if (a->retry_after >= 0) {
        double spread = a->retry_after * 0.25 < 2.0 ? a->retry_after * 0.25 : 2.0;
        return a->retry_after + a->jitter * spread;
    }
    for (i = 0; i < a->retries && ceiling < a->backoff_cap; i++) ceiling *= 2;
    if (ceiling > a->backoff_cap) ceiling = a->backoff_cap;
    return a->jitter * ceiling;
}

static vl_decision fail(int reason, const char *kind) {
    vl_decision d;
    d.action = VL_A_FAIL;
    d.reason = reason;
    d.kind = kind;
    d.wait = -1;
    return d;
}

static vl_decision act(int action) {
    vl_decision d;
    d.action = action;
    d.reason = VL_R_NONE;
    d.kind = NULL;
    d.wait = 0;
    return d;
}

static const char *kind_of(const vl_attempt *a) {
    return a->transport != VL_T_NONE ? "transport" : vl_policy_status_kind(a->status);
}

/* again (RETRY or LOOKUP) after the wait, unless retries or the deadline are used up */
static vl_decision again(const vl_attempt *a, int action) {
    vl_decision d;
    double wait;
    if (a->retries >= a->max_retries) return fail(VL_R_EXHAUSTED, kind_of(a));
    wait = vl_policy_wait(a);
    if (a->now + wait >= a->deadline) {
        d = fail(VL_R_DEADLINE, kind_of(a));
        d.wait = wait;
        return d;
    }
    d = act(action);
    d.wait = wait;
    return d;
}

int vl_policy_token_transient(const vl_attempt *a) {
    /* retrying cannot help against an untrusted certificate or a bad URL */
    if (a->transport != VL_T_NONE) return a->transport != VL_T_FATAL;
    if (a->status == 429 || a->status >= 500 || a->token_transient) return 1;
    /* managed identity: 404 and 410 while IMDS is updating, 408 (IMDS doc, MSAL Node's retry
     * policies); App Service retries 404 and 408 too */
    if (a->token_mi == 1) return a->status == 404 || a->status == 408 || a->status == 410;
    if (a->token_mi == 2) return a->status == 404 || a->status == 408;
    return 0;
}

static vl_decision token(const vl_attempt *a) {
    int transient = vl_policy_token_transient(a);
    vl_decision d;
    if (a->token_valid) {
        /* keep the valid token, try again later (never past its expiry) */
        d = act(VL_A_RETRY);
        d.wait = a->retry_after > BACKGROUND_RETRY ? a->retry_after : BACKGROUND_RETRY;
        if (a->now + d.wait > a->token_expires) d.wait = a->token_expires - a->now;
        return d;
    }
    if (!transient) return fail(VL_R_NOT_TRANSIENT, "auth");
    if (a->retries >= a->max_retries) return fail(VL_R_EXHAUSTED, "auth");
    /* the waiters' deadlines are theirs: auth ends the ones the wait would pass */
    d = act(VL_A_RETRY);
    d.wait = vl_policy_wait(a);
    return d;
}

static vl_decision transport(const vl_attempt *a) {
    switch (a->transport) {
    case VL_T_TOO_LARGE: return fail(VL_R_TOO_LARGE, "protocol");
    case VL_T_BODY_REFUSED: return fail(VL_R_BODY_REFUSED, "transport");
    case VL_T_FATAL: return fail(VL_R_FATAL, "transport");
    case VL_T_SETUP: return fail(VL_R_SETUP, "transport");
    default: break;
    }
    /* nothing reached the server, or the request is safe to repeat */
    if (a->transport == VL_T_NOT_SENT || a->kind == VL_K_LOOKUP || a->method != VL_POST)
        return again(a, a->kind == VL_K_LOOKUP ? VL_A_LOOKUP : VL_A_RETRY);
    /* an ambiguous create: find out by the alternate key before sending it again */
    if (a->has_alt) return again(a, VL_A_LOOKUP);
    return fail(VL_R_MAYBE_DONE, "transport");
}

/* Graph refused the alternate key's spelling (graph-api.md §6 #1): once with the other one.
 * Safe for every method, a POST too: a 400 is the service refusing the request as written,
 * before anything was created or changed. Not a retry (no wait, max_retries untouched): the
 * request is corrected, and a second refusal is final. */
static int respell(const vl_attempt *a) {
    return a->status == 400 && a->key_refused && a->respellable;
}

vl_decision vl_policy_decide(const vl_attempt *a) {
    long st = a->status;
    if (a->kind == VL_K_TOKEN) return token(a);
    if (a->kind == VL_K_BATCH_ITEM) {
        if (st >= 200 && st < 300) return act(VL_A_SUCCEED);
        if (respell(a)) return act(VL_A_RESPELL);
        /* an item throttled was not processed; a 503/504 one only when it is safe to repeat */
        if (a->retry_items && (st == 429 || ((st == 503 || st == 504) && a->method != VL_POST)))
            return again(a, VL_A_RETRY);
        return fail(VL_R_HTTP, vl_policy_status_kind(st));
    }
    if (a->transport != VL_T_NONE) return transport(a);
    /* exactly one forced refresh and one replay */
    if (st == 401 && a->auth_replays == 0 && a->refreshable) return act(VL_A_REFRESH);
    if (respell(a)) return act(VL_A_RESPELL);
    if (a->kind == VL_K_LOOKUP) {
        if (st == 200) return act(VL_A_SUCCEED);
        if (st == 404) return act(VL_A_RESEND);   /* the create did not happen */
        if (st == 429 || st == 503 || st == 504) return again(a, VL_A_LOOKUP);
        return fail(VL_R_HTTP, vl_policy_status_kind(st));
    }
    if (st >= 200 && st < 300) return act(VL_A_SUCCEED);
    /* a DELETE retried after a failure may find the entity already gone */
    if (st == 404 && a->del404ok && a->retries > 0) return act(VL_A_GONE);
    if (st == 429) return again(a, VL_A_RETRY);
    if (st == 503 || st == 504) {
        if (a->method == VL_POST && a->has_alt) return again(a, VL_A_LOOKUP);
        /* 503 and 504 may come after the server committed: a POST without an alternate key
         * (a create without external id, a $batch) is final, whatever the Retry-After */
        if (a->method == VL_POST) return fail(VL_R_MAYBE_DONE, vl_policy_status_kind(st));
        return again(a, VL_A_RETRY);
    }
    return fail(VL_R_HTTP, vl_policy_status_kind(st));
}
