/* The retry policy: one pure function from what happened to one attempt to what to do next.
 * The engine (Graph requests and their alternate-key lookups), $batch items and the token
 * fetch all ask it; nothing else decides whether to retry. No Lua, no I/O, no clock, no RNG:
 * the caller passes the time and a random draw in, so the same attempt always gets the same
 * decision (spec/policy_spec.lua drives it through core._policy). */
#ifndef VL_POLICY_H
#define VL_POLICY_H

/* methods (also the engine's) */
enum { VL_GET, VL_POST, VL_PATCH, VL_DELETE };

/* what a transport says about an attempt that got no HTTP response */
enum vl_transport_outcome {
    VL_T_NONE = 0,        /* a response came: look at the status */
    VL_T_NOT_SENT,        /* nothing reached the server (connect failed, DNS, refused) */
    VL_T_MAYBE_SENT,      /* the request may have reached the server (connection died after) */
    VL_T_TIMEOUT,         /* the attempt timed out: it may have been processed */
    VL_T_RESET,           /* the stream or connection was reset: it may have been processed */
    VL_T_FATAL,           /* retrying cannot help: TLS verification, bad URL, unsupported scheme */
    VL_T_TOO_LARGE,       /* the response body went over max_body_bytes */
    VL_T_BODY_REFUSED,    /* reset before the whole request body was up: the server refused it */
    VL_T_SETUP            /* the transfer could not be set up: nothing was sent */
};

/* who asks */
enum vl_attempt_kind {
    VL_K_REQUEST = 0,     /* a Graph request */
    VL_K_LOOKUP,          /* the GET by alternate key after an ambiguous create */
    VL_K_BATCH_ITEM,      /* one item of a $batch response */
    VL_K_TOKEN            /* a token request (or the token provider) */
};

typedef struct vl_attempt {
    int kind;             /* VL_K_* */
    int method;           /* VL_GET ... of the request (a lookup is a GET of a POST) */
    long status;          /* HTTP status, 0 without a response */
    int transport;        /* VL_T_* */
    double retry_after;   /* the server's wait in seconds (any form), < 0 when none */
    int has_alt;          /* a create with an alternate key (external id) to look up by */
    int key_refused;      /* a 400 that refuses the alternate key's spelling sent (altkey.h) */
    int respellable;      /* the request carries the key and was not sent in the other spelling yet */
    int del404ok;         /* a 404 after a retry means the entity is gone (DELETE) */
    int refreshable;      /* the token can be refreshed (not a fixed token) */
    int auth_replays;     /* replays after a 401 so far */
    int retries, max_retries;
    int retry_items;      /* $batch: the caller asked for { retry = true } */
    int token_transient;  /* token: the endpoint said the error is transient (OAuth) */
    int token_valid;      /* token: a valid token is still held (a background refresh failed) */
    int token_mi;         /* token: from a managed identity endpoint (VL_MI_*: 1 IMDS, 2 App Service) */
    double token_expires; /* token: when the held one expires */
    double now, deadline; /* monotonic seconds */
    double backoff_base, backoff_cap;
    double jitter;        /* a random draw in [0, 1) */
} vl_attempt;

enum vl_action {
    VL_A_SUCCEED = 0,     /* build the result */
    VL_A_FAIL,            /* finish with an error of kind `kind` (reason says which message) */
    VL_A_RETRY,           /* the same request again after `wait` seconds */
    VL_A_LOOKUP,          /* the GET by alternate key after `wait` seconds */
    VL_A_RESEND,          /* the lookup found nothing: the create again, now */
    VL_A_REFRESH,         /* refresh the token and replay, now */
    VL_A_GONE,            /* a retried DELETE found the entity gone: success (true) */
    VL_A_RESPELL          /* the same request again, now, with the other spelling of the key */
};

enum vl_reason {
    VL_R_NONE = 0,
    VL_R_HTTP,            /* the response's own error */
    VL_R_EXHAUSTED,       /* max_retries reached */
    VL_R_DEADLINE,        /* the next attempt would pass the deadline */
    VL_R_MAYBE_DONE,      /* a POST without alternate key may have been processed: not re-sent */
    VL_R_FATAL,           /* retrying cannot help */
    VL_R_TOO_LARGE,       /* response body over the cap */
    VL_R_BODY_REFUSED,    /* the server refused the request body */
    VL_R_SETUP,           /* the transfer could not be set up */
    VL_R_NOT_TRANSIENT    /* token: a permanent error */
};

typedef struct vl_decision {
    int action;           /* VL_A_* */
    int reason;           /* VL_R_* when action is VL_A_FAIL (and for the wait's origin) */
    const char *kind;     /* error kind for VL_A_FAIL: http auth throttled transport protocol validation */
    double wait;          /* seconds, for VL_A_RETRY / VL_A_LOOKUP (token: also the failed wait) */
} vl_decision;

vl_decision vl_policy_decide(const vl_attempt *a);

/* The wait before retry number a->retries + 1: never earlier than the server asked, a little
 * later at random (callers throttled together do not all come back at once), else full jitter
 * exponential backoff. Pure: the draw is a->jitter. */
double vl_policy_wait(const vl_attempt *a);

/* Token: whether a failed fetch is worth another try (the same rule vl_policy_decide uses). */
int vl_policy_token_transient(const vl_attempt *a);

/* The error kind of an HTTP status. */
const char *vl_policy_status_kind(long status);

#endif
