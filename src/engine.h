/* engine: queues, admission control, backoff timers, request lifetimes and the retry decisions
 * (by the policy), over whichever I/O the client has. No libcurl, no Lua: it takes finished
 * attempts (the complete list) and leaves each request that is over there with its verdict
 * (state.h); the binding (drive.c) turns verdicts into results and says when to wait. */
#ifndef VL_ENGINE_H
#define VL_ENGINE_H

#include "state.h"

/* Backoffs due at now go back to the admission queue. */
void vl_engine_promote(vl_client *c, double now);
/* Starts what may start (max_concurrency, token usable); a request refused before it is sent
 * (body over Graph's limit, deadline passed, transfer not set up) goes to the complete list
 * with its verdict. */
void vl_engine_admit(vl_client *c, double now);
/* The attempts libcurl finished go onto the complete list (the token request too). */
void vl_engine_collect(vl_client *c);
/* The policy's decision for the finished attempt of r (on the complete list, not the token
 * request): r is queued again (retry, lookup, replay after a token refresh) or stays on the
 * complete list with r->decided set and its verdict. */
void vl_engine_decide(vl_client *c, vl_req *r, double now);
/* Nothing queued, waiting, running or to be built. */
int  vl_engine_idle(const vl_client *c);
/* How long the I/O may wait from now (at most max): until the next backoff or token retry;
 * 0 when a request could start now. */
double vl_engine_wait(const vl_client *c, double now, double max);

#endif
