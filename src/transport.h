/* transport/curl: the libcurl multi driver, the only part of the core that knows libcurl (and
 * the only file that includes libcurl's header). It moves the bytes of the attempts the engine
 * starts and reports how each ended; it never calls Lua. */
#ifndef VL_TRANSPORT_H
#define VL_TRANSPORT_H

#include <stddef.h>

struct vl_client;
struct vl_req;

/* curl_global_init where libcurl says it is thread-safe; 0 on success. */
int  vl_transport_global_init(void);
/* libcurl's version, whether it has HTTP/2, and its TLS library. */
const char *vl_transport_version(int *http2, const char **ssl);

int  vl_transport_init(struct vl_client *c);           /* 1 on success */
void vl_transport_free(struct vl_client *c);
int  vl_transport_has_sockets(const struct vl_client *c);
void vl_transport_timers(struct vl_client *c, double now);    /* runs libcurl's timer when due */
void vl_transport_wait(struct vl_client *c, double wait);     /* polls the sockets, hands events to libcurl */
int  vl_transport_start(struct vl_client *c, struct vl_req *r, const char *token);  /* 0 ok */
void vl_transport_release(struct vl_client *c, struct vl_req *r);   /* out of the multi, easy kept in the pool */
void vl_transport_abandon(struct vl_client *c, struct vl_req *r);   /* out of the multi and freed (close, gc) */
/* The next attempt libcurl finished, with its status, headers, body, counters and outcome
 * (VL_T_*) filled and its handle released; NULL when there is none. */
struct vl_req *vl_transport_next_done(struct vl_client *c);
void vl_transport_reset_response(struct vl_req *r);
const char *vl_method_name(int m);
/* The cause of a failed attempt for an error ("X (n): text") or the log ("X: text"): libcurl's,
 * or an external driver's report. */
const char *vl_attempt_cause(const struct vl_req *r, char *buf, size_t n);
const char *vl_attempt_log_error(const struct vl_req *r, char *buf, size_t n);
/* The attempt failed on the server's certificate. */
int  vl_transport_tls_failed(const struct vl_req *r);

#endif
