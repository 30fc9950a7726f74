/* A growable byte buffer whose memory Lua owns: a C-stack array first, then a userdata on
 * the Lua stack, so a Lua error raised while it fills leaks nothing. */
#ifndef VL_BUF_H
#define VL_BUF_H

#include <stddef.h>
#include <string.h>
#include "luacompat.h"

#define VL_BUF_INIT 2048
struct vl_buf;
/* Writes the userdata value at idx (a model) into the buffer; NULL: not encodable. Set by
 * the layer that knows models, so the JSON writers need not know them. */
typedef void (*vl_buf_udata_fn)(struct vl_buf *b, int idx);
typedef struct vl_buf {
    lua_State *L;
    char *p;          /* init, or the memory of the userdata at stack index box */
    size_t n, cap;
    int box;          /* absolute stack index reserved by vl_buf_init */
    vl_buf_udata_fn put_udata;
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

#endif
