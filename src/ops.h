/* Operations: one declaration per operation in the ops table, its request builder (path,
 * body, method, result kind) and pages. Used by the binding (sync calls, submit) and $batch. */
#ifndef VL_OPS_H
#define VL_OPS_H

#include <lua.h>

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

typedef struct opdef { const char *name; parser_fn fn; int page_family; } opdef;

void vl_p_page_common(lua_State *L, int a, spec *s, vl_client *c, int family);
/* the builder of an op a $batch item may name, or NULL */
parser_fn vl_find_batch_parser(const char *op);
/* the ops table, ended by a NULL name; "batch" has no builder here (batch.h builds it) */
extern const opdef vl_ops[];
const opdef *vl_find_op(const char *name);

#endif
