/* util: URL building and checking (segments, OData keys, query and form values, base URLs and
 * the nextLink origin check). No libcurl: every id is checked and encoded here. */
#ifndef VL_URL_H
#define VL_URL_H

#include <stddef.h>
#include "luacompat.h"

/* A parsed base URL (graph_url, authority_url): scheme, host and port used to check nextLinks. */
typedef struct vl_origin {
    char scheme[8];
    char host[256];
    long port;
    char *base;          /* the base URL without a trailing slash (malloc) */
} vl_origin;

/* Parses and checks a base URL; on failure returns a static-ish message in err (size n). */
int  vl_origin_parse(vl_origin *o, const char *url, int allow_http, const char *what, char *err, size_t n);
void vl_origin_free(vl_origin *o);
int  vl_host_is_loopback(const char *host);
/* Appends one percent-encoded path segment; returns NULL or an error message (static). */
const char *vl_url_add_segment(luaL_Buffer *b, const char *s, size_t n);
/* Appends ('literal') for an OData key: quotes doubled, then percent-encoded. */
const char *vl_url_add_key(luaL_Buffer *b, const char *name, const char *s, size_t n);
/* Appends a query value percent-encoded. */
void vl_url_add_query(luaL_Buffer *b, const char *s, size_t n);
/* 1 when link has the scheme, host and port of o and no userinfo; else 0 with a message. */
int  vl_url_same_origin(const vl_origin *o, const char *link, size_t n, char *err, size_t errn);
/* percent-encodes s (for form bodies) into b */
void vl_url_add_form(luaL_Buffer *b, const char *s, size_t n);

#endif
