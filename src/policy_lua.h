/* The policy's thin Lua face (core._policy, core._retry_after), for its specs. */
#ifndef VL_POLICY_LUA_H
#define VL_POLICY_LUA_H

#include "luacompat.h"

/* Adds _policy and _retry_after to the module table on top of the stack. */
void vl_policy_open(lua_State *L);

#endif
