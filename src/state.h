/* The engine's state: the client and request records, the lists a request moves through,
 * and the one free of each (state.c). Plain C: no Lua, no libcurl. Every layer above reads it. */
#ifndef VL_STATE_H
#define VL_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "policy.h"
#include "retry.h"
#include "url.h"


/* what the result of a finished request looks like */
enum {
    VL_RES_MODEL,      /* decoded model of a family */
    VL_RES_CREATED,    /* decoded model; the original model gets the id */
    VL_RES_TRUE,       /* true (204 and friends) */
    VL_RES_UPDATED,    /* true, the original model is cleaned */
    VL_RES_PAGE,       /* { value = {...}, next_link =, count = } */
    VL_RES_BATCH,      /* results array */
    VL_RES_TOKEN       /* internal: token endpoint */
};
enum { VL_FAM_ACTIVITY, VL_FAM_PROVIDER, VL_FAM_CONTENT };

/* VL_L_COMPLETE: the transfer is over, the outcome not built yet (a memory error while it was
 * being built leaves the request there, and the next drive builds it again) */
enum { VL_L_NONE, VL_L_READY, VL_L_BACKOFF, VL_L_TOKEN, VL_L_ACTIVE, VL_L_COMPLETE };

#define VL_F_SYNC     1   /* a synchronous call waits for it; never returned by poll */
#define VL_F_INTERNAL 2   /* token request: owned by the client, no Lua handle */
#define VL_F_DEL404OK 4   /* DELETE: 404 after a retry counts as gone */
#define VL_F_SIGNIN   8   /* sign_in: no I/O, done once a token is usable */

typedef struct vl_client vl_client;
typedef struct vl_req vl_req;

/* What the engine decided about a request that is over (engine.c), kept on the request until
 * the binding has turned it into Lua values (a memory error there leaves it to be built again). */
typedef struct vl_verdict {
    int action;                 /* VL_A_SUCCEED, VL_A_GONE or VL_A_FAIL (policy.h) */
    int reason;                 /* VL_R_* of a VL_A_FAIL */
    int transport;              /* the last attempt's VL_T_* */
    double retry_after;         /* the server's wait, < 0 when none */
    double wait;                /* VL_R_DEADLINE: the wait that would have passed the deadline */
    const char *kind;           /* refused before it was sent: the error kind, message in msg */
    int key_refused_twice;      /* the last 400 refused the alternate key in its other spelling too */
    char msg[160];
} vl_verdict;

struct vl_req {
    vl_client *c;               /* NULL once detached (client collected) */
    vl_req *prev, *next;
    int list;
    int method, res, family, flags;
    const char *opname;         /* static */
    char *url;                  /* malloc */
    char *body; size_t body_len;/* malloc, zeroed before free */
    char *alt_url;              /* create: GET by alternate key after an ambiguous failure */
    char *xhdr;                 /* token request: one extra "Name: value" header line (managed
                                 * identity's Metadata or X-IDENTITY-HEADER); malloc, zeroed */
    int phase;                  /* 0 = the request itself, 1 = alternate-key lookup */
    /* the alternate key in the request (altkey.h): the spelling it was written in, whether
     * it was sent again in the other one, and where its name is in url, body and alt_url
     * (offset + 1; 0: not there, as in a request calloc leaves alone) */
    int key_spelling, respelled;
    size_t key_url, key_body, key_alt;
    int attempts, retries, auth_replays;
    int done, closed;
    int decided;                /* on the complete list with its verdict v, to be built */
    vl_verdict v;
    double deadline, not_before, attempt_start, op_start;
    unsigned token_gen;
    char crid[37];
    /* one attempt */
    void *easy;                 /* the libcurl driver's handle and header list (transport.c) */
    void *hdrs;
    char errbuf[256];           /* CURL_ERROR_SIZE */
    long status;
    long http_status;           /* the status line even when the transfer failed */
    int rc, sent, logged;       /* the attempt's CURLcode, whether it may have reached the
                                 * server, and whether the log hook has seen it */
    int outcome;                /* the attempt's transport outcome (VL_T_*, policy.h) */
    long xid;                   /* io = "external": the attempt's id in take()/deliver() */
    int handed;                 /* ... and whether take() has handed it out */
    double attempt_end;
    char *resp; size_t resp_len, resp_cap;
    int too_big;
    int sends;                  /* times libcurl began sending this attempt (> 1: its own re-send) */
    int resend_blocked;         /* ... which was stopped: a write is never re-sent behind our back */
    long long uploaded;        /* body bytes that went up in the last attempt (a reset before all of it: too large?) */
    char h_request_id[96], h_client_request_id[96], h_date[64], h_retry_after[64],
         h_retry_after_ms[32], h_x_retry_after_ms[32], h_content_type[96];
};

typedef struct vl_token {
    char *value;                /* malloc, zeroed before free */
    double expires_at, refresh_at;   /* monotonic */
    unsigned gen;               /* bumped on each new token */
    int fetching;               /* single flight */
    double retry_at;            /* background refresh failed: not before */
    int failures;               /* consecutive failed fetches */
} vl_token;

enum { VL_AUTH_SECRET, VL_AUTH_PASSWORD, VL_AUTH_FIXED, VL_AUTH_PROVIDER,
       VL_AUTH_CERT,        /* client credentials with a signed assertion (assertion.h) */
       VL_AUTH_ASSERTION,   /* client credentials with a Lua client_assertion (federated token) */
       VL_AUTH_MI,          /* managed identity (IMDS or App Service) */
       /* DEVICE: the device code flow (a user signs in elsewhere, MFA included); REFRESH: a
        * refresh token only (from the Lua layer's cache). PASSWORD, DEVICE and REFRESH are
        * delegated. */
       VL_AUTH_DEVICE, VL_AUTH_REFRESH };
enum { VL_MI_NONE, VL_MI_IMDS, VL_MI_APP_SERVICE };
/* what the token request in flight asks for */
enum { VL_G_CLIENT, VL_G_PASSWORD, VL_G_REFRESH, VL_G_DEVICECODE, VL_G_DEVICE_POLL };

/* Delegated sign-in (auth_delegated.c): the refresh token and a device code being polled. */
typedef struct vl_delegated {
    char *refresh_token;        /* the latest one (malloc, zeroed before free) */
    char *device_code;          /* the code being polled (malloc, zeroed before free) */
    char *devicecode_url;
    double interval, expires_at;/* its polling interval (s) and expiry (engine time) */
    int grant;                  /* VL_G_* of the token request in flight */
    int has_device_cb, has_rt_hook;
} vl_delegated;

struct vl_client {
    int closed;                 /* close asked for: every call refuses the client */
    int released;               /* what the client owns is freed (once, client_release) */
    int busy;                   /* depth of the client's own calls running; while > 0 a close
                                 * only marks the client, the outermost call releases it */
    int in_cb;                  /* inside token_provider or log hook */
    int auth;                   /* VL_AUTH_* */
    vl_origin graph, authority;
    char *tenant, *client_id, *client_secret, *username, *password, *scope, *ca_file, *user_agent;
    long connect_ms, attempt_ms;
    double deadline_s;
    int max_retries, max_concurrency;
    int key_spelling;           /* the alternate key's spelling requests are built with: the
                                 * one that last worked (altkey.h) */
    double backoff_base, backoff_cap;
    size_t max_body;
    int allow_http, has_log;
    vl_rng rng;
    struct vl_curl *io;         /* the libcurl driver's state (transport.c); NULL for io = "external" */
    int nactive;
    int ndone;                  /* finished handles not yet returned by poll */
    long st_attempts, st_connects, st_h2, st_max_active;   /* c:stats() */
    /* lists: ready (admission queue), backoff, waiting for a token, active, complete */
    vl_req *ready_h, *ready_t, *backoff_h, *backoff_t, *token_h, *token_t, *active_h, *active_t;
    vl_req *complete_h, *complete_t;
    /* certificate credential and managed identity (auth.c: cert_*, mi_*) */
    struct vl_cert *cert;
    int cert_alg;               /* VL_ALG_* */
    int mi_kind;                /* VL_MI_* */
    char *mi_url, *mi_header, *mi_secret;   /* the token URL, its header line, the header's value */
    vl_token tok;
    vl_delegated dlg;
    vl_req *token_req;          /* internal, in flight */
    vl_req *call_req;           /* the request the running call made, until it is handed over */
    char *token_url;
    /* io = "external" (external.c): a driver moves the bytes; no libcurl handle is ever used */
    int external;
    int has_clock;              /* clock = function: the engine's time (read once per call) */
    int has_driver;             /* driver = function: what sync calls run while they wait */
    double ext_now;             /* the clock's reading for the running call */
    long next_xid;
    /* poll(t, { budget = s }) (io.c): the running poll stops starting and taking attempts once
     * it has done one unit of work and the next one would end past budget_end; 0 outside such a
     * poll. unit_cost: a moving average of what a unit took (kept across polls) */
    int has_budget, budget_used;
    double budget_end, budget_mark, unit_cost;
};

/* family names, indexed by VL_FAM_* */
extern const char *const vl_famname[];

/* The engine's time: the client's clock when it has one, else the monotonic clock. */
double vl_client_now(const vl_client *c);

/* lists; a push moves r from the list it is in */
void vl_list_push(vl_client *c, vl_req *r, int list);
void vl_list_push_front(vl_client *c, vl_req *r, int list);
void vl_list_remove(vl_client *c, vl_req *r);
/* the requests waiting for a token go back to the front of the admission queue */
void vl_client_release_waiters(vl_client *c);
void vl_req_free(vl_req *r);   /* leaves its list first (r->c set) */
void vl_zfree(char *p);        /* zero a string, then free it */
char *vl_strdup(const char *s);
char *vl_dupn(const char *s, size_t n);

#endif
