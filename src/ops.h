/* Operations: one declaration per operation in the ops table, its request builder (path,
 * body, method, result kind) and pages. Used by the binding (sync calls, submit) and $batch. */
#ifndef VL_OPS_H
#define VL_OPS_H

#include "luacompat.h"

#include "state.h"

typedef struct spec {
    const char *op;
    int method, res, family, flags;
    int path;        /* stack index of the path string (relative to the version root) */
    int body;        /* stack index of the body string or 0 */
    int alt;         /* stack index of the alternate-key path or 0 */
    int model;       /* stack index of the caller's model (ctx) or 0 */
    int immediate;   /* number of immediate results pushed (validation errors, no-op) */
} spec;

typedef void (*parser_fn)(lua_State *L, int a, spec *s);

/* One declaration per operation: its name (the sync method, submit's and a $batch item's op),
 * its builder, the family of its pages, and the fields a $batch item gives as its arguments:
 * item[0] names them in order; when its last field is absent, item[1] is the other form (an
 * update by id and changes, a content by external id). "{f}" passes { f = value }. An op with
 * no item form cannot be a $batch item. */
#define VL_OPF_204_MODEL 1   /* a 204 answers with the model sent (upsert) */
typedef struct opdef {
    const char *name;
    parser_fn fn;
    int page_family;
    const char *item[2];
    int flags;
} opdef;

void vl_p_page_common(lua_State *L, int a, spec *s, vl_client *c, int family);
/* the ops table, ended by a NULL name; "batch" has no builder here (batch.h builds it) */
extern const opdef vl_ops[];
const opdef *vl_find_op(const char *name);

#endif
