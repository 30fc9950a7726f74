/* The Lua face of the models and the C interface the client uses. See README "Models". */
#ifndef VL_MODEL_LUA_H
#define VL_MODEL_LUA_H

#include "luacompat.h"

/* Adds assignment, self_initiated, provider, content, decode, check, null (and
 * json_encode / json_decode helpers) to the module table on top of the stack. Safe to run
 * more than once per lua_State. */
void vl_model_open(lua_State *L);

/* Builds a model from the (decoded JSON) table at tidx. family: "activity" | "provider" |
 * "content" (NULL: guess). The concrete type comes from @odata.type. Lenient like a
 * reader of server data: unknown properties and enum members are kept. Pushes the model
 * and returns 1; on invalid data pushes nil, msg and returns 0 (never raises). */
int vl_model_from_table(lua_State *L, int tidx, const char *family);

/* PATCH body of an update by id from the plain changes table at tidx, validated as
 * assignments to the fields of a model of the family are ("activity": the type @odata.type
 * names, the base type when none). Pushes the body, or nil when nothing is to change, and
 * returns 1; pushes nil, msg and returns 0 when a field is invalid (never raises). */
int vl_model_push_changes_of_table(lua_State *L, int tidx, const char *family);
/* Lua value of a field by Graph name (either alternate-key spelling); nil when unset,
 * viva.null when explicitly null; nil for names the type does not have. */
void vl_model_push_field(lua_State *L, int idx, const char *field);
void vl_model_clean(lua_State *L, int idx);                   /* forget changes */
int  vl_model_set_id(lua_State *L, int idx, const char *id);  /* 1, or 0 if not a model */

#endif
