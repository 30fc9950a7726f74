/* util: error records and the error objects made from them (viva.error, its metatable). */
#ifndef VL_ERROR_H
#define VL_ERROR_H

#include "luacompat.h"

#define VL_ERR_MT "vivalearning.error"
typedef struct vl_errinfo {
    const char *kind;          /* http auth throttled transport validation protocol */
    long status;               /* 0 when none */
    const char *code;          /* Graph code / OAuth error / curl name */
    const char *message;
    const char *request_id, *client_request_id, *date;
    double retry_after;        /* < 0 when none */
    int attempts;
    const char *cause;         /* transport cause "CURLE_X: text" */
    const char *method, *url;
} vl_errinfo;
void vl_error_open(lua_State *L);             /* metatable */
void vl_error_push(lua_State *L, const vl_errinfo *e);   /* pushes the error table */
/* Pushes an error for an HTTP response; tidx is its decoded body (Graph error) or 0. */
void vl_error_push_graph(lua_State *L, vl_errinfo *e, int tidx);
/* Pushes nil, err(kind=validation, message) and returns 2. */
int  vl_error_validation(lua_State *L, const char *fmt, ...);

#endif
