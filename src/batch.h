/* $batch: its body from items of any batchable operation, and the response back to them. */
#ifndef VL_BATCH_H
#define VL_BATCH_H

#include "luacompat.h"

#include "ops.h"
#include "state.h"

void vl_p_batch(lua_State *L, int a, spec *s);
void vl_batch_result(lua_State *L, vl_client *c, int cidx, vl_req *r, int t);

#endif
