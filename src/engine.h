/* engine: queues, admission control, backoff timers and the retry decisions (by the policy),
 * over whichever I/O the client has. No libcurl here. */
#ifndef VL_ENGINE_H
#define VL_ENGINE_H

#include "luacompat.h"

#include "state.h"

/* Drives the I/O until `until` is done (sync calls), or something finished (poll), or timeout
 * seconds passed, or nothing is left; one non-blocking turn for io = "external". */
void vl_drive(lua_State *L, vl_client *c, int cidx, vl_req *until, double timeout);
/* One non-blocking turn of the engine: backoffs due, token, admission, finished attempts. */
void vl_engine_step(lua_State *L, vl_client *c, int cidx);

#endif
