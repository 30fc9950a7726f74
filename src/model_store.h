/* The model object (userdata + user values), its kind, its fields as stored, and the
 * picking of a kind for a table. Depends on model_value.h (the stored forms). */
#ifndef VL_MODEL_STORE_H
#define VL_MODEL_STORE_H

#include "luacompat.h"

#include "model_value.h"
#include "schema.h"

typedef struct vl_model {
    unsigned int kind;
    unsigned int dirty;          /* bit i: field i changed since construction/decode/clean */
} vl_model;
#define VL_BIT(i) (1U << (i))

/* Unknown properties: nil; a table name -> value (a model made from a Lua table); or, for a
 * model decoded from JSON text, the text of those members as they came ("a":[],"b":1):
 * compact, written back verbatim by tojson, decoded on each read. */
#define VL_UV_EXTRAS 1
#define VL_UV_FIELD(i) ((i) + 2)

/* Registry keys (addresses): the metatable of a kind is registry[vl_model_mt_key(kind)],
 * and it holds its kind index at [vl_model_tag_key()]. Set up by the Lua face. */
const void *vl_model_tag_key(void);
const void *vl_model_mt_key(int kind);

/* Creates the per-kind name tables and the family-guessing table (once per state). */
void vl_model_store_open(lua_State *L);

/* The model at idx, or NULL (vl_checkmodel raises a type error). */
vl_model *vl_tomodel(lua_State *L, int idx);
vl_model *vl_checkmodel(lua_State *L, int idx);
/* "assignment" | "self_initiated" | "activity" | "provider" | "content", or NULL when the
 * value at idx is not a model. */
const char *vl_model_kind(lua_State *L, int idx);

/* Pushes a new empty model of the kind. */
vl_model *vl_model_new(lua_State *L, int kind);
/* Pushes the kind's name table (spelling -> field index). */
void vl_push_names(lua_State *L, int kind);
/* Fills the model at ud from the table at tidx (names: the kind's name table index). */
void vl_model_fill(lua_State *L, int ud, int names, int tidx, int mode, vl_sink *S);
/* Pushes the Lua value of field fi of the model at ud (fresh tables for complex types). */
void vl_push_field(lua_State *L, int ud, const vl_field *f, int fi);

/* Unknown property by name: pushes its Lua value (a fresh copy of tables) and returns 1, or
 * returns 0 with nothing pushed. */
int vl_extras_get(lua_State *L, int ud, const char *key, size_t kn);
/* Raw-text form only: pushes the key and value of the member at byte *pos and advances it;
 * 0 (nothing pushed) at the end or for the other forms. Start at *pos = 0. */
int vl_extras_raw_next(lua_State *L, int ud, size_t *pos);
/* Pushes a fresh table of every unknown property (either form), or nil when none. */
void vl_extras_push_all(lua_State *L, int ud);

/* Field index of a key given as bytes (-1: @odata.type, -2: none), by a per-kind map. */
typedef struct vl_keymap vl_keymap;
const vl_keymap *vl_keymap_of(lua_State *L, int kind);
int vl_keymap_get(const vl_keymap *km, const char *s, size_t n);

/* Kind picking. */
const char *vl_guess_prop(const char *s, size_t n);  /* family a property tells, or NULL */
int vl_kind_of_odata(const char *t);                 /* kind index, -1 if not ours */
int vl_has_key(lua_State *L, int tidx, const char *key);
const char *vl_family_of_context(const char *ctx);   /* from @odata.context, or NULL */
/* Family of a table without @odata.type: from @odata.context, else from its properties. */
const char *vl_guess_family(lua_State *L, int tidx);

#endif
