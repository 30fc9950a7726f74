/* JSON for the vivalearning core.
 *
 * Decoding goes through a private lua-cjson safe-mode instance (cjson.safe.new(): NaN,
 * Infinity and hex numbers rejected, nesting depth limited), kept in the registry.
 * Encoding is done here, in C, without printf's locale: integers as integers, other
 * numbers in the shortest form that reads back exactly, strings checked for UTF-8.
 * Scratch memory is a vl_buf (buf.h): Lua owns it, so a Lua error leaks nothing.
 * This layer knows nothing of models: a buffer's put_udata hook writes them. */
#ifndef VL_JSON_H
#define VL_JSON_H

#include <stddef.h>
#include "luacompat.h"

#include "buf.h"
#include "utf8.h"

#define VL_JSON_MAX_DEPTH 64   /* decode and encode nesting limit */

/* Pushes the decoded value and returns 1; on error pushes nil, msg and returns 0. */
int vl_json_decode(lua_State *L, const char *s, size_t n);
/* Same, for a string already on the stack at idx (no copy of the text). */
int vl_json_decode_at(lua_State *L, int idx);

/* ---- internal to the core ---- */
void vl_json_open(lua_State *L);       /* creates the cjson instance once per lua_State */
void vl_json_push_decoder(lua_State *L);  /* pushes the cjson.safe instance's decode */

/* String with escapes. check_utf8: returns 0 (and writes nothing meaningful) when the
 * bytes are not valid UTF-8; with check_utf8 == 0 the caller vouches for them. */
int  vl_json_put_string(vl_buf *b, const char *s, size_t n, int check_utf8);
void vl_json_put_integer(vl_buf *b, lua_Integer i);
int  vl_json_put_number(vl_buf *b, lua_Number d);   /* 0 for NaN/Inf */
/* Any plain value at idx; full userdata through b->put_udata (raises a Lua error with a
 * message on failure). */
void vl_json_put_value(vl_buf *b, int idx, int depth);
/* Pushes the JSON text of the value at idx with b->put_udata = put_udata; returns 1, or
 * pushes nil, msg and returns 0 (memory errors go on up). */
int vl_json_encode_with(lua_State *L, int idx, vl_buf_udata_fn put_udata);

#endif
