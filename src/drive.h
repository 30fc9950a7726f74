/* drive (binding): runs the engine over the client's I/O and turns what it decided into Lua
 * values (result.h, batch.h): the attempts logged, the token answers handed to auth, the
 * verdicts built into results. The engine itself (engine.h) has no Lua. */
#ifndef VL_DRIVE_H
#define VL_DRIVE_H

#include "luacompat.h"

#include "state.h"

/* Drives the I/O until `until` is done (sync calls), or something finished (poll), or timeout
 * seconds passed, or nothing is left; one non-blocking turn for io = "external". */
void vl_drive(lua_State *L, vl_client *c, int cidx, vl_req *until, double timeout);
/* One non-blocking turn: backoffs due, token, admission, finished attempts built. */
void vl_drive_step(lua_State *L, vl_client *c, int cidx);

#endif
