/* Declarations shared by the files of the client: client.c, engine.c, ops.c and batch.c. */
#ifndef VL_CLIENT_INTERNAL_H
#define VL_CLIENT_INTERNAL_H

#include "client.h"

/* family names, indexed by VL_FAM_* (client.c) */
extern const char *const vl_famname[];

/* ---------- building requests (ops.c, batch.c) ---------- */
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

/* ---------- client.c ---------- */
char *vl_dupn(const char *s, size_t n);
void vl_push_refs_field(lua_State *L, int cidx, const char *k);

/* ---------- engine.c ---------- */
void vl_handle_set_result(lua_State *L, int hidx, int nres);
void vl_push_handle(lua_State *L, int cidx, vl_req *r);
void vl_finish(lua_State *L, vl_client *c, int cidx, vl_req *r, int nres);
void vl_fill_errinfo(vl_errinfo *e, vl_req *r, const char *kind);
void vl_fail_protocol(lua_State *L, vl_client *c, int cidx, vl_req *r, const char *msg);
int  vl_to_model(lua_State *L, int tidx, int family);
void vl_drive(lua_State *L, vl_client *c, int cidx, vl_req *until, double timeout);

/* ---------- ops.c ---------- */
void vl_p_page_common(lua_State *L, int a, spec *s, vl_client *c, int family);
parser_fn vl_find_batch_parser(const char *op);
/* the ops table, ended by a NULL name */
extern const opdef vl_ops[];
const opdef *vl_find_op(const char *name);

/* ---------- batch.c ---------- */
void vl_p_batch(lua_State *L, int a, spec *s);
void vl_batch_result(lua_State *L, vl_client *c, int cidx, vl_req *r, int t);

#endif
