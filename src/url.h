/* util: URL checking (base URLs, loopback hosts, the nextLink origin check). No Lua, no
 * libcurl; building URLs into a Lua buffer is url_enc.h. */
#ifndef VL_URL_H
#define VL_URL_H

#include <stddef.h>

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
/* 1 when link has the scheme, host and port of o and no userinfo; else 0 with a message. */
int  vl_url_same_origin(const vl_origin *o, const char *link, size_t n, char *err, size_t errn);

#endif
