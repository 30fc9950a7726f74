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

typedef struct vl_client vl_client;
typedef struct vl_req vl_req;

struct vl_req {
    vl_client *c;               /* NULL once detached (client collected) */
    vl_req *prev, *next;
    int list;
    int method, res, family, flags;
    const char *opname;         /* static */
    char *url;                  /* malloc */
    char *body; size_t body_len;/* malloc, zeroed before free */
    char *alt_url;              /* create: GET by alternate key after an ambiguous failure */
    int phase;                  /* 0 = the request itself, 1 = alternate-key lookup */
    /* the alternate key in the request (altkey.h): the spelling it was written in, whether
     * it was sent again in the other one, and where its name is (-1: not there) */
    int key_spelling, respelled;
    long key_url, key_body, key_alt;
    int attempts, retries, auth_replays;
    int done, closed;
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

enum { VL_AUTH_SECRET, VL_AUTH_PASSWORD, VL_AUTH_FIXED, VL_AUTH_PROVIDER };

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
    vl_token tok;
    vl_req *token_req;          /* internal, in flight */
    vl_req *call_req;           /* the request the running call made, until it is handed over */
    char *token_url;
    /* io = "external" (external.c): a driver moves the bytes; no libcurl handle is ever used */
    int external;
    int has_clock;              /* clock = function: the engine's time (read once per call) */
    int has_driver;             /* driver = function: what sync calls run while they wait */
    double ext_now;             /* the clock's reading for the running call */
    long next_xid;
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
