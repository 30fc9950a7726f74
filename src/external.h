/* io = "external": the engine's sans-I/O face for a driver written in Lua (take, deliver,
 * next_wakeup). No libcurl, no sockets: a request is handed out as a table and its outcome is
 * handed back, so the driver may block, yield or fake as it likes. */
#ifndef VL_EXTERNAL_H
#define VL_EXTERNAL_H

#include "luacompat.h"

#include "state.h"

/* Pushes the array of attempts not handed out yet, { id, method, url, headers, body, timeout }
 * each, and marks them handed (only once the whole array is built). */
void vl_ext_take(lua_State *L, vl_client *c);
/* c:deliver(id, response | nil, outcome, detail): arguments 2 to 5 (detail, optional, what the
 * driver saw, goes into the cause: "the driver reported: reset (closed mid-body)"). Raises on a bad argument before
 * anything changes; then the attempt is over and waits on the complete list. */
void vl_ext_deliver(lua_State *L, vl_client *c);
/* Pushes when the engine next needs a tick (the client's clock), or nil when nothing waits. */
void vl_ext_push_wakeup(lua_State *L, vl_client *c);
/* The cause text of a failed attempt the driver reported ("the driver reported: reset"). */
#define VL_RC_DRIVER (-1)

#endif
