/* JSON for the vivalearning core.
 *
 * Decoding goes through a private lua-cjson safe-mode instance (cjson.safe.new(): NaN,
 * Infinity and hex numbers rejected, nesting depth limited), kept in the registry.
 * Encoding is done here, in C, without printf's locale: integers as integers, other
 * numbers in the shortest form that reads back exactly, strings checked for UTF-8.
 * All scratch memory is owned by Lua (a C-stack array, then a userdata on the Lua
 * stack), so a Lua error raised in the middle leaks nothing. */
#ifndef VL_JSON_H
#define VL_JSON_H

#include <stddef.h>
#include <string.h>
#include <lua.h>

#define VL_JSON_MAX_DEPTH 64   /* decode and encode nesting limit */

/* Pushes the decoded value and returns 1; on error pushes nil, msg and returns 0. */
int vl_json_decode(lua_State *L, const char *s, size_t n);
/* Same, for a string already on the stack at idx (no copy of the text). */
int vl_json_decode_at(lua_State *L, int idx);
/* Pushes the JSON text of a plain Lua value (tables, strings, numbers, booleans, viva.null,
 * models) and returns 1; on error pushes nil, msg and returns 0. Never raises except on
 * memory errors... which it also catches. */
int vl_json_encode(lua_State *L, int idx);

/* ---- internal to the core ---- */
void vl_json_open(lua_State *L);       /* creates the cjson instance once per lua_State */
void vl_json_push_decoder(lua_State *L);  /* pushes the cjson.safe instance's decode */

#define VL_BUF_INIT 2048
typedef struct vl_buf {
    lua_State *L;
    char *p;          /* init, or the memory of the userdata at stack index box */
    size_t n, cap;
    int box;          /* absolute stack index reserved by vl_buf_init */
    char init[VL_BUF_INIT];
} vl_buf;

void vl_buf_init(lua_State *L, vl_buf *b);        /* pushes one placeholder slot */
void vl_buf_grow(vl_buf *b, size_t extra);
void vl_buf_finish(vl_buf *b);                    /* the result string replaces the placeholder */

static inline void vl_buf_addn(vl_buf *b, const char *s, size_t n) {
    if (b->cap - b->n < n) vl_buf_grow(b, n);
    memcpy(b->p + b->n, s, n);
    b->n += n;
}
static inline void vl_buf_addc(vl_buf *b, char c) {
    if (b->n == b->cap) vl_buf_grow(b, 1);
    b->p[b->n++] = c;
}
#define vl_buf_addlit(b, s) vl_buf_addn((b), "" s, sizeof(s) - 1)

/* String with escapes. check_utf8: returns 0 (and writes nothing meaningful) when the
 * bytes are not valid UTF-8; with check_utf8 == 0 the caller vouches for them. */
int  vl_json_put_string(vl_buf *b, const char *s, size_t n, int check_utf8);
void vl_json_put_integer(vl_buf *b, lua_Integer i);
int  vl_json_put_number(vl_buf *b, lua_Number d);   /* 0 for NaN/Inf */
/* Any plain value at idx (raises a Lua error with a message on failure). */
void vl_json_put_value(vl_buf *b, int idx, int depth);

/* True when the bytes are valid UTF-8 (RFC 3629: no overlongs, no surrogates). */
int vl_utf8_valid(const char *s, size_t n);

#endif
