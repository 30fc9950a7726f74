/* Operations as data: one declaration per operation in the ops table, and the one builder
 * that turns a declaration and the call's arguments into a request (path, body, alternate
 * key); pages. Used by the binding (sync calls, submit) and $batch. */
#ifndef VL_OPS_H
#define VL_OPS_H

#include <stddef.h>

#include "luacompat.h"

#include "state.h"

typedef struct spec {
    const char *op;
    int method, res, family, flags;
    int path;        /* stack index of the path string (relative to the version root) */
    int absolute;    /* ... or of the whole URL (a page's next_link) */
    int body;        /* stack index of the body string or 0 */
    int alt;         /* stack index of the alternate-key path or 0 */
    int model;       /* stack index of the caller's model (ctx) or 0 */
    int immediate;   /* number of immediate results pushed (validation errors, no-op) */
    int spelling;    /* in: the alternate key's spelling to write (altkey.h) */
    size_t key_body, key_path, key_alt;   /* out: offset + 1 of the key's name in the body,
                                           * the path, the alternate-key path; 0: none */
} spec;

/* body kinds */
enum { VL_BODY_NONE, VL_BODY_MODEL, VL_BODY_CHANGES, VL_BODY_BATCH };
#define VL_OPF_204_MODEL 1   /* a 204 answers with the model sent (upsert) */
#define VL_OPF_DEL404OK  2   /* a 404 after a retry counts as deleted */
#define VL_OPF_SIGNIN    4   /* sign_in: no I/O, done once a token is usable */

/* One declaration per operation (the table is in ops.c): its name (the sync method, submit's
 * and a $batch item's op), method, path template, the alternate-key template of a create,
 * its named arguments in order (args[0]; args[1] the other form: an update by id and changes,
 * a content by { external_id = }; "{f}" is a table { f = value }, which a $batch item gives
 * as its field f), the body it sends, the result it answers (VL_RES_*, state.h), its family
 * and flags. Pages (VL_RES_PAGE) and $batch are not $batch items. */
typedef struct opdef {
    const char *name;
    int method;
    const char *path, *alt;
    const char *args[2];
    int body, res, family, flags;
} opdef;

/* Builds the request of op from its arguments at index a: pushes path, body, alternate key
 * and fills s; a validation failure pushes nil, err and sets s->immediate = 2. */
void vl_op_build(lua_State *L, const opdef *od, int a, spec *s);
int vl_op_batchable(const opdef *od);
/* A page call (options table at a); the nextLink is checked against the client's graph_url. */
void vl_p_page(lua_State *L, const opdef *od, int a, spec *s, vl_client *c);
/* the ops table, ended by a NULL name */
extern const opdef vl_ops[];
const opdef *vl_find_op(const char *name);
/* core._ops(): a read-only copy of the table, { name =, method =, path =, alt =, args = {...},
 * other_args =, body =, result =, family =, deleted_after_retry =, upsert_204_model = } each */
int vl_ops_list(lua_State *L);

#endif
