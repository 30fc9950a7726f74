/* util: the clocks, the per-client random generator (no global state), Retry-After in every
 * form Graph and Azure use, and exponential backoff with full jitter. No Lua. */
#ifndef VL_RETRY_H
#define VL_RETRY_H

#include <stddef.h>
#include <stdint.h>

typedef struct vl_rng { uint64_t s[2]; } vl_rng;
void     vl_rng_seed(vl_rng *r, const void *salt);
uint64_t vl_rng_next(vl_rng *r);
double   vl_rng_unit(vl_rng *r);               /* [0,1) */
void     vl_uuid4(vl_rng *r, char out[37]);
double   vl_now(void);                          /* monotonic seconds */
/* Retry-After parsing. Each returns seconds >= 0, or -1 when absent/invalid. */
double vl_retry_after_header(const char *v, double wall_now);
double vl_retry_after_ms(const char *v);
double vl_retry_after_body(const char *body, size_t n);  /* "Retry after N minutes" */
double vl_retry_after(const char *ms, const char *xms, const char *hdr, const char *body, size_t n, double wall_now);
/* Full jitter: uniform in [0, min(cap, base * 2^retry)]. */
double vl_backoff(vl_rng *r, int retry, double base, double cap);

#endif
