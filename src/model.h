/* Models: learning course activities, providers and contents as userdata.
 * See README "Models" for the Lua face; this is the C interface the client uses. */
#ifndef VL_MODEL_H
#define VL_MODEL_H

#include <lua.h>

/* Adds assignment, self_initiated, provider, content, decode, check, null (and
 * encode_json / decode_json helpers) to the module table on top of the stack. Safe to run
 * more than once per lua_State. */
void vl_model_open(lua_State *L);

/* "assignment" | "self_initiated" | "activity" | "provider" | "content", or NULL when the
 * value at idx is not a model. */
const char *vl_model_kind(lua_State *L, int idx);

/* Builds a model from the (decoded JSON) table at tidx. family: "activity" | "provider" |
 * "content" (NULL: guess). The concrete type comes from @odata.type. Lenient like a
 * reader of server data: unknown properties and enum members are kept. Pushes the model
 * and returns 1; on invalid data pushes nil, msg and returns 0 (never raises). */
int vl_model_from_table(lua_State *L, int tidx, const char *family);

/* Full body JSON: Graph names, @odata.type on derived types, externalcourseActivityId. */
void vl_model_push_json(lua_State *L, int idx);
/* PATCH body of the fields changed since construction / decode / clean (+ @odata.type on
 * derived types); pushes nil when nothing changed. */
void vl_model_push_changes_json(lua_State *L, int idx);
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

/* ---- internal to the core ---- */
/* Pushes a short printable rendering of the value at idx for messages ("x" quoted and
 * escaped, numbers, nil, viva.null, type names). */
void vl_push_repr(lua_State *L, int idx);
struct vl_buf;
void vl_model_put_json(struct vl_buf *b, int idx, int changes_only);

#endif
