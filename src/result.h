/* Results: a finished request into its handle (result values, error objects, the caller's
 * model updated), the waiters of a failed token fetch, the log hook. Lua side of the engine. */
#ifndef VL_RESULT_H
#define VL_RESULT_H

#include "luacompat.h"

#include "error.h"
#include "state.h"

/* the client's refs table (uservalue 1) field k, pushed */
void vl_push_refs_field(lua_State *L, int cidx, const char *k);
void vl_handle_set_result(lua_State *L, int hidx, int nres);
void vl_push_handle(lua_State *L, int cidx, vl_req *r);
/* Finishes r with the nres values on top of the stack (popped). */
void vl_finish(lua_State *L, vl_client *c, int cidx, vl_req *r, int nres);
/* Takes r off the engine and its I/O (whatever list it is in) before it is finished or freed. */
void vl_req_drop(vl_client *c, vl_req *r);
void vl_fill_errinfo(vl_errinfo *e, vl_req *r, const char *kind);
void vl_fail_protocol(lua_State *L, vl_client *c, int cidx, vl_req *r, const char *msg);
void vl_fail_msg(lua_State *L, vl_client *c, int cidx, vl_req *r, const char *kind, const char *msg);
/* Pushes the error for the HTTP response of r (kind NULL: by status). */
void vl_push_http_error(lua_State *L, vl_req *r, const char *kind, double retry_after, const char *extra);
void vl_push_transport_error(lua_State *L, vl_req *r, int rc, const char *msg);
int  vl_to_model(lua_State *L, int tidx, int family);
/* Decodes the JSON body of r; pushes the table, or returns 0 after pushing nothing. */
int  vl_decode_body(lua_State *L, vl_req *r);
/* A 2xx (or a found lookup) into r's result; not for $batch (batch.h). */
void vl_succeed(lua_State *L, vl_client *c, int cidx, vl_req *r);
void vl_client_fail_waiters(lua_State *L, vl_client *c, int cidx, int erridx);
void vl_client_fail_waiters_by(lua_State *L, vl_client *c, int cidx, int erridx, double by);
void vl_client_log(lua_State *L, vl_client *c, int cidx, int evidx);
void vl_log_attempt(lua_State *L, vl_client *c, int cidx, vl_req *r, int rc, double now);

#endif
