/* Shared declarations of the vivalearning.core C module. */
#ifndef VL_CORE_H
#define VL_CORE_H

#include "luacompat.h"

#define VL_VERSION "0.2.0"

/* Each part of the core adds its functions to the module table on top of the stack.
 * All of them must be safe to run more than once in the same lua_State: busted
 * re-requires modules, so metatables are reused, never recreated. */
void vl_model_open(lua_State *L);
void vl_client_open(lua_State *L);

#endif
