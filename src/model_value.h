/* Model values: a field's value checked against its schema entry and packed into the form a
 * model stores; the stored form read back; messages; plain JSON values (unknown properties).
 * Depends on the schema only. */
#ifndef VL_MODEL_VALUE_H
#define VL_MODEL_VALUE_H

#include <stddef.h>
#include "luacompat.h"

#include "schema.h"

#define VL_MODE_LENIENT 0   /* reading server data: keep unknown enum members, odd formats */
#define VL_MODE_STRICT  1   /* constructors, assignment, viva.check */
#define VL_MODE_ADOPT   2   /* lenient, and the input table is ours (fresh from cjson): no copies */

/* Error sink: list == 0 raises at the first problem; otherwise appends
 * {field=, problem=, value=} to the table at index list. */
typedef struct vl_sink {
    int list;
    int n;
} vl_sink;

/* Reports a problem of field (with the value at vidx when with_value); returns 0. */
int vl_report(lua_State *L, vl_sink *S, const char *field, const char *problem, int vidx, int with_value);
int vl_report_rule(lua_State *L, vl_sink *S, const char *field, const vl_field *f, int vidx);
/* Pushes a short printable rendering of the value at idx for messages ("x" quoted and
 * escaped, numbers, nil, viva.null, type names). */
void vl_push_repr(lua_State *L, int idx);

/* Field index by any spelling (name, wire name, alias), -1 if none. */
int vl_find_field(const vl_kind *k, const char *s, size_t n);
/* The field name closest to name (for "did you mean"), or NULL. */
const char *vl_suggest(const vl_kind *k, const char *name);

/* Pushes a validated deep copy of an arbitrary JSON value (unknown properties): strings
 * must be UTF-8, numbers finite (integral floats become integers), tables nest at most
 * VL_JSON_MAX_DEPTH deep. Reports (returns 0, pushes nothing) on failure. */
int vl_copy_json(lua_State *L, vl_sink *S, const char *field, int idx, int depth);
/* Pushes the Lua value of a JSON text already checked (a slice of a response): decoded by
 * cjson, then copied as vl_copy_json does, so values read alike whatever their origin. */
void vl_push_json_text(lua_State *L, const char *s, size_t n);
/* vl_copy_json, or for VL_MODE_ADOPT tables a check and the table itself. */
int vl_take_json(lua_State *L, vl_sink *S, int mode, const char *field, int idx, int depth);
/* Deep equality of plain values (tables compared by content). */
int vl_deep_equal(lua_State *L, int a, int b, int depth);

/* Validates the value at vidx (absolute index) for field f. Returns 2 when that value is to
 * be stored as it is (nothing pushed), 1 after pushing the form to store, or reports
 * (raising, or appending to the sink and returning 0 with nothing pushed). */
int vl_convert(lua_State *L, vl_sink *S, int mode, const vl_field *f, int vidx);
/* vl_convert, always pushing the value to store on success. */
int vl_convert_push(lua_State *L, vl_sink *S, int mode, const vl_field *f, int vidx);

/* Stored forms. A dateTimeTimeZone / itemBody is the string "<flags>A\0B" (flags: the state
 * of A in bits 0-1, of B in bits 2-3), or a table when it carries other keys. A string
 * list is "" for [], else "\1" a "\0" b ... (or a table when an item holds a NUL). */
enum { VL_SUB_ABSENT = 0, VL_SUB_NULL = 1, VL_SUB_STRING = 2 };
typedef struct vl_packed {
    int as, bs;
    const char *a, *b;
    size_t an, bn;
} vl_packed;
void vl_unpack(const char *s, size_t n, vl_packed *p);
/* Sub-field names of the two complex types, in output order. */
const char *vl_sub_a(const vl_field *f);
const char *vl_sub_b(const vl_field *f);
/* Push the Lua form (a fresh table) of a stored complex value / string list at sidx. */
void vl_push_complex(lua_State *L, const vl_field *f, int sidx);
void vl_push_strlist(lua_State *L, int sidx);

#endif
