/* URL checking: base URL parsing, loopback hosts and the nextLink origin check (the encoders
 * that build URLs into a Lua buffer are url_enc.c). No Lua. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "url.h"

int vl_host_is_loopback(const char *host) {
    if (strcmp(host, "localhost") == 0 || strcmp(host, "::1") == 0 || strcmp(host, "[::1]") == 0)
        return 1;
    if (strncmp(host, "127.", 4) == 0) {
        const char *p = host + 4;
        int dots = 0;
        for (; *p; p++) {
            if (*p == '.') dots++;
            else if (!isdigit((unsigned char)*p)) return 0;
        }
        return dots == 2;
    }
    return 0;
}

/* Splits an absolute URL (RFC 3986: scheme "://" [userinfo "@"] host [":" port] path ["?" query]
 * ["#" fragment]); host may be an IPv6 literal in brackets. port is the scheme's default (443,
 * 80) when absent, 0 for another scheme. Returns 0 on success. */
static int split(const char *url, char *scheme, size_t ns, char *host, size_t nh, long *port,
                 int *has_user, int *has_query, char **path) {
    const char *p = url, *auth, *auth_end, *h, *h_end, *at = NULL, *q;
    size_t n;
    if (!isalpha((unsigned char)*p)) return 1;
    while (isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.') p++;
    n = (size_t)(p - url);
    if (p[0] != ':' || p[1] != '/' || p[2] != '/' || n >= ns) return 1;
    memcpy(scheme, url, n);
    scheme[n] = 0;
    auth = p + 3;
    auth_end = auth + strcspn(auth, "/?#");
    for (q = auth; q < auth_end; q++)
        if (*q == '@') at = q;
    *has_user = at != NULL;
    h = at ? at + 1 : auth;
    if (*h == '[') {                       /* IPv6 literal */
        h_end = memchr(h, ']', (size_t)(auth_end - h));
        if (!h_end) return 1;
        for (q = h + 1; q < h_end; q++)
            if (!isxdigit((unsigned char)*q) && *q != ':' && *q != '.') return 1;
        h_end++;
    } else {
        for (h_end = h; h_end < auth_end && *h_end != ':'; h_end++) {
            unsigned char ch = (unsigned char)*h_end;
            if (!isalnum(ch) && !strchr("-._~%!$&'()*+,;=", ch)) return 1;
        }
    }
    n = (size_t)(h_end - h);
    if (n == 0 || n >= nh) return 1;
    memcpy(host, h, n);
    host[n] = 0;
    *port = 0;
    if (h_end < auth_end) {
        long v = 0;
        if (*h_end != ':') return 1;
        for (q = h_end + 1; q < auth_end; q++) {
            if (!isdigit((unsigned char)*q)) return 1;
            v = v * 10 + (*q - '0');
            if (v > 65535) return 1;
        }
        if (q > h_end + 1) *port = v;
    }
    if (*port == 0) {
        if (strcasecmp(scheme, "https") == 0) *port = 443;
        else if (strcasecmp(scheme, "http") == 0) *port = 80;
    }
    *has_query = strpbrk(auth_end, "?#") != NULL;
    if (path) {
        n = strcspn(auth_end, "?#");
        *path = malloc(n + 2);
        if (!*path) return 1;
        if (n == 0) memcpy(*path, "/", 2);
        else { memcpy(*path, auth_end, n); (*path)[n] = 0; }
    }
    return 0;
}

static void lower(char *s) { for (; *s; s++) *s = (char)tolower((unsigned char)*s); }

int vl_origin_parse(vl_origin *o, const char *url, int allow_http, const char *what, char *err, size_t n) {
    int has_user = 0, has_query = 0;
    char *path = NULL;
    size_t len;
    memset(o, 0, sizeof *o);
    if (strpbrk(url, "\r\n\t ")) { snprintf(err, n, "%s: whitespace or CR/LF in URL", what); return 0; }
    if (split(url, o->scheme, sizeof o->scheme, o->host, sizeof o->host, &o->port, &has_user, &has_query, &path)) {
        snprintf(err, n, "%s: not a valid absolute URL", what);
        return 0;
    }
    lower(o->scheme); lower(o->host);
    free(path);
    if (has_user) { snprintf(err, n, "%s: credentials in the URL are not allowed", what); return 0; }
    if (has_query) { snprintf(err, n, "%s: query or fragment not allowed", what); return 0; }
    if (strcmp(o->scheme, "https") != 0) {
        if (strcmp(o->scheme, "http") != 0) { snprintf(err, n, "%s: scheme must be https", what); return 0; }
        if (!allow_http) { snprintf(err, n, "%s: plain http is refused (https required; allow_http permits http to loopback hosts only)", what); return 0; }
        if (!vl_host_is_loopback(o->host)) { snprintf(err, n, "%s: allow_http permits http to loopback hosts only, not %s", what, o->host); return 0; }
    }
    len = strlen(url);
    while (len > 0 && url[len - 1] == '/') len--;
    o->base = malloc(len + 1);
    if (!o->base) { snprintf(err, n, "out of memory"); return 0; }
    memcpy(o->base, url, len);
    o->base[len] = 0;
    return 1;
}

void vl_origin_free(vl_origin *o) {
    free(o->base);
    o->base = NULL;
}

int vl_url_same_origin(const vl_origin *o, const char *link, size_t n, char *err, size_t errn) {
    char scheme[16], host[256];
    long port = 0;
    int has_user = 0, has_query = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)link[i];
        if (ch <= 0x20 || ch == 0x7f) { snprintf(err, errn, "nextLink contains whitespace or control characters"); return 0; }
    }
    if (strlen(link) != n || split(link, scheme, sizeof scheme, host, sizeof host, &port, &has_user, &has_query, NULL)) {
        snprintf(err, errn, "nextLink is not an absolute URL");
        return 0;
    }
    lower(scheme); lower(host);
    if (has_user) { snprintf(err, errn, "nextLink carries credentials"); return 0; }
    if (strcmp(scheme, o->scheme) != 0) { snprintf(err, errn, "nextLink scheme %s differs from graph_url (%s)", scheme, o->scheme); return 0; }
    if (strcmp(host, o->host) != 0) { snprintf(err, errn, "nextLink host %s differs from graph_url host %s", host, o->host); return 0; }
    if (port != o->port) { snprintf(err, errn, "nextLink port %ld differs from graph_url port %ld", port, o->port); return 0; }
    return 1;
}
