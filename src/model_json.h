/* Model JSON: the body of a model (Graph names, @odata.type on derived types, the metadata
 * spelling externalcourseActivityId, unknown properties), its PATCH body, and plain values
 * with models inside. Depends on model_store.h and json.h. */
#ifndef VL_MODEL_JSON_H
#define VL_MODEL_JSON_H

#include "luacompat.h"

#include "buf.h"

/* Writes the model at idx (all fields, or only the changed ones without unknown ones). */
void vl_model_put_json(vl_buf *b, int idx, int changes_only);
/* Full body JSON of the model at idx (raises a type error for a non-model). */
void vl_model_push_json(lua_State *L, int idx);
/* PATCH body of the fields changed since construction / decode / clean (+ @odata.type on
 * derived types); pushes nil when nothing changed. */
void vl_model_push_changes_json(lua_State *L, int idx);
/* Pushes the JSON text of a plain Lua value (tables, strings, numbers, booleans, viva.null,
 * models) and returns 1; on error pushes nil, msg and returns 0 (memory errors go on up). */
int vl_json_encode(lua_State *L, int idx);

#endif
