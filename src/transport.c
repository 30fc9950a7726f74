/* libcurl transport: one multi handle per client, a pool of reusable easy handles (the
 * connection, DNS and TLS session caches live in the multi), HTTP/2 over TLS with PIPEWAIT,
 * https only (http only for allow_http on loopback), no redirects, per-attempt timeouts and
 * a response body cap enforced in the write callback. No Lua is ever called from here: the
 * callbacks only copy bytes, so no Lua error can unwind through libcurl. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <poll.h>

#include <curl/curl.h>

#include "state.h"
#include "transport.h"

const char *vl_method_name(int m) {
    switch (m) {
    case VL_POST: return "POST";
    case VL_PATCH: return "PATCH";
    case VL_DELETE: return "DELETE";
    default: return "GET";
    }
}

/* The driver's state, one per client: the multi (connection, DNS and TLS session caches), the
 * sockets libcurl wants watched, its timer, and the pool of reusable easy handles. */
struct vl_sock { curl_socket_t fd; int what; };
struct vl_curl {
    CURLM *multi;
    struct vl_sock *socks;
    int nsocks, socks_cap;
    double timer_due;           /* libcurl's timer (monotonic), < 0 when none */
    CURL **pool;
    int npool, pool_cap;
};

int vl_transport_global_init(void) {
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    /* curl_global_init is reference counted and thread-safe only where libcurl says so;
     * without that guarantee the host must initialise libcurl itself before its threads. */
    if ((v->features & CURL_VERSION_THREADSAFE) && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return -1;
    return 0;
}

const char *vl_transport_version(int *http2, const char **ssl) {
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    if (http2) *http2 = (v->features & CURL_VERSION_HTTP2) != 0;
    if (ssl) *ssl = v->ssl_version ? v->ssl_version : "";
    return v->version;
}

int vl_transport_has_sockets(const vl_client *c) { return c->io && c->io->nsocks > 0; }

/* The multi is driven with curl_multi_socket_action: libcurl tells us which sockets to watch
 * and when its timer is due, we poll() them and hand over only the sockets that are ready, so a
 * finished transfer costs no scan over every transfer in flight. Both callbacks are plain C. */
static int on_socket(CURL *e, curl_socket_t fd, int what, void *ud, void *sp) {
    vl_client *c = ud;
    int i;
    (void)e; (void)sp;
    for (i = 0; i < c->io->nsocks; i++)
        if (c->io->socks[i].fd == fd) break;
    if (what == CURL_POLL_REMOVE) {
        if (i < c->io->nsocks) c->io->socks[i] = c->io->socks[--c->io->nsocks];
        return 0;
    }
    if (i == c->io->nsocks) {
        if (c->io->nsocks == c->io->socks_cap) {
            int nc = c->io->socks_cap ? c->io->socks_cap * 2 : 16;
            struct vl_sock *ns = realloc(c->io->socks, (size_t)nc * sizeof *ns);
            if (!ns) return -1;
            c->io->socks = ns;
            c->io->socks_cap = nc;
        }
        c->io->socks[c->io->nsocks].fd = fd;
        c->io->nsocks++;
    }
    c->io->socks[i].what = what;
    return 0;
}

static int on_timer(CURLM *m, long ms, void *ud) {
    vl_client *c = ud;
    (void)m;
    c->io->timer_due = ms < 0 ? -1 : vl_now() + (double)ms / 1000.0;
    return 0;
}

int vl_transport_init(vl_client *c) {
    c->io = calloc(1, sizeof *c->io);
    if (!c->io) return 0;
    c->io->timer_due = -1;
    c->io->multi = curl_multi_init();
    if (!c->io->multi) return 0;
    curl_multi_setopt(c->io->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    curl_multi_setopt(c->io->multi, CURLMOPT_MAXCONNECTS, (long)(c->max_concurrency + 4));
    curl_multi_setopt(c->io->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(c->io->multi, CURLMOPT_SOCKETDATA, (void *)c);
    curl_multi_setopt(c->io->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(c->io->multi, CURLMOPT_TIMERDATA, (void *)c);
    return 1;
}

void vl_transport_timers(vl_client *c, double now) {
    int running;
    if (!c->io) return;
    if (c->io->timer_due >= 0 && c->io->timer_due <= now) {
        c->io->timer_due = -1;
        curl_multi_socket_action(c->io->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
}

void vl_transport_wait(vl_client *c, double wait) {
    struct pollfd stackfds[64], *fds = stackfds;
    int n = c->io->nsocks, i, ready, ms, running;
    double now = vl_now();
    if (c->io->timer_due >= 0 && c->io->timer_due - now < wait) wait = c->io->timer_due - now;
    if (wait < 0) wait = 0;
    ms = (int)(wait * 1000.0 + 0.999);
    if (n > 64) {
        fds = malloc((size_t)n * sizeof *fds);
        if (!fds) { fds = stackfds; n = 64; }
    }
    for (i = 0; i < n; i++) {
        fds[i].fd = c->io->socks[i].fd;
        fds[i].events = (short)(((c->io->socks[i].what & CURL_POLL_IN) ? POLLIN : 0) |
                                ((c->io->socks[i].what & CURL_POLL_OUT) ? POLLOUT : 0));
        fds[i].revents = 0;
    }
    ready = poll(fds, (nfds_t)n, ms);
    for (i = 0; ready > 0 && i < n; i++) {
        int ev = 0;
        if (!fds[i].revents) continue;
        ready--;
        if (fds[i].revents & (POLLIN | POLLHUP)) ev |= CURL_CSELECT_IN;
        if (fds[i].revents & POLLOUT) ev |= CURL_CSELECT_OUT;
        if (fds[i].revents & (POLLERR | POLLNVAL)) ev |= CURL_CSELECT_ERR;
        curl_multi_socket_action(c->io->multi, fds[i].fd, ev, &running);
    }
    if (fds != stackfds) free(fds);
    vl_transport_timers(c, vl_now());
}

void vl_transport_free(vl_client *c) {
    int i;
    if (!c->io) return;
    for (i = 0; i < c->io->npool; i++) curl_easy_cleanup(c->io->pool[i]);
    free(c->io->pool);
    c->io->pool = NULL;
    c->io->npool = c->io->pool_cap = 0;
    if (c->io->multi) {
        /* no callbacks into a client that is going away */
        curl_multi_setopt(c->io->multi, CURLMOPT_SOCKETFUNCTION, (curl_socket_callback)NULL);
        curl_multi_setopt(c->io->multi, CURLMOPT_TIMERFUNCTION, (curl_multi_timer_callback)NULL);
        curl_multi_cleanup(c->io->multi);
    }
    c->io->multi = NULL;
    free(c->io->socks);
    c->io->socks = NULL;
    c->io->nsocks = c->io->socks_cap = 0;
    free(c->io);
    c->io = NULL;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud) {
    vl_req *r = ud;
    size_t n = size * nmemb;
    size_t cap = r->c ? r->c->max_body : 0;
    if (cap && r->resp_len + n > cap) {
        r->too_big = 1;
        return CURL_WRITEFUNC_ERROR;
    }
    if (r->resp_len + n + 1 > r->resp_cap) {
        size_t nc = r->resp_cap ? r->resp_cap : 4096;
        char *np;
        while (nc < r->resp_len + n + 1) nc *= 2;
        np = realloc(r->resp, nc);
        if (!np) return CURL_WRITEFUNC_ERROR;
        r->resp = np;
        r->resp_cap = nc;
    }
    memcpy(r->resp + r->resp_len, p, n);
    r->resp_len += n;
    r->resp[r->resp_len] = 0;
    return n;
}

/* copies a header value (trimmed) into dst if the line is "name: value" */
static int header_is(const char *line, size_t n, const char *name, char *dst, size_t dn) {
    size_t k = strlen(name), i, j;
    if (n <= k || line[k] != ':' || strncasecmp(line, name, k) != 0) return 0;
    i = k + 1;
    while (i < n && (line[i] == ' ' || line[i] == '\t')) i++;
    j = n;
    while (j > i && (line[j - 1] == '\r' || line[j - 1] == '\n' || line[j - 1] == ' ' || line[j - 1] == '\t')) j--;
    if (j - i >= dn) j = i + dn - 1;
    memcpy(dst, line + i, j - i);
    dst[j - i] = 0;
    return 1;
}

void vl_transport_reset_response(vl_req *r) {
    r->status = 0;
    r->resp_len = 0;
    if (r->resp) r->resp[0] = 0;
    r->too_big = 0;
    r->errbuf[0] = 0;
    r->h_request_id[0] = r->h_client_request_id[0] = r->h_date[0] = r->h_retry_after[0] = 0;
    r->h_retry_after_ms[0] = r->h_x_retry_after_ms[0] = r->h_content_type[0] = 0;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud) {
    vl_req *r = ud;
    size_t n = size * nmemb;
    if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        /* a new response (after a 1xx): forget the headers of the previous one */
        r->h_request_id[0] = r->h_client_request_id[0] = r->h_date[0] = r->h_retry_after[0] = 0;
        r->h_retry_after_ms[0] = r->h_x_retry_after_ms[0] = r->h_content_type[0] = 0;
        return n;
    }
    switch (tolower((unsigned char)p[0])) {
    case 'r':
        if (header_is(p, n, "request-id", r->h_request_id, sizeof r->h_request_id)) break;
        if (header_is(p, n, "retry-after", r->h_retry_after, sizeof r->h_retry_after)) break;
        header_is(p, n, "retry-after-ms", r->h_retry_after_ms, sizeof r->h_retry_after_ms);
        break;
    case 'c':
        if (header_is(p, n, "client-request-id", r->h_client_request_id, sizeof r->h_client_request_id)) break;
        header_is(p, n, "content-type", r->h_content_type, sizeof r->h_content_type);
        break;
    case 'd':
        header_is(p, n, "date", r->h_date, sizeof r->h_date);
        break;
    case 'x':
        header_is(p, n, "x-ms-retry-after-ms", r->h_x_retry_after_ms, sizeof r->h_x_retry_after_ms);
        break;
    default:
        break;
    }
    return n;
}

/* Called each time libcurl is about to send the request on a (new or reused) connection. A
 * second call within one attempt is libcurl re-sending by itself, because a reused connection
 * died before any response byte came back (HTTP/1.1 and HTTP/2 alike, with or without a body).
 * For a write the server may have committed the first copy: stop here, so that our own retry
 * logic, which knows the request is ambiguous, decides (alternate-key lookup, a counted retry
 * with Retry-Attempt, or a "may have been processed" error). Reads and the token form (safe to
 * repeat) keep libcurl's re-send. */
static int on_prereq(void *ud, char *ip, char *local_ip, int port, int local_port) {
    vl_req *r = ud;
    (void)ip; (void)local_ip; (void)port; (void)local_port;
    if (!r) return CURL_PREREQFUNC_OK;
    if (r->sends++ > 0 && !(r->flags & VL_F_INTERNAL) && r->phase == 0 && r->method != VL_GET) {
        r->resend_blocked = 1;
        return CURL_PREREQFUNC_ABORT;
    }
    return CURL_PREREQFUNC_OK;
}

/* Options that never change for a client's handles: set once per easy handle, which is then
 * reused from the pool without curl_easy_reset (the per-request options are always set). */
static int static_options(vl_client *c, CURL *e) {
    int rc = 0;
#define SET(opt, val) do { if (rc == 0) rc = (int)curl_easy_setopt(e, opt, val); } while (0)
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_PROTOCOLS_STR, c->allow_http ? "http,https" : "https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, c->allow_http ? "http,https" : "https");
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (c->ca_file) SET(CURLOPT_CAINFO, c->ca_file);
    SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    SET(CURLOPT_PIPEWAIT, 1L);
    SET(CURLOPT_MAXLIFETIME_CONN, 600L);
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_ACCEPT_ENCODING, "");
    SET(CURLOPT_CONNECTTIMEOUT_MS, c->connect_ms);
#if LIBCURL_VERSION_NUM >= 0x075700
    /* the multi keeps the parsed CA store (a system bundle costs tens of ms to load): only the
     * first connection, or c:warmup(), pays it, not each new connection in a frame loop */
    SET(CURLOPT_CA_CACHE_TIMEOUT, 86400L);
#endif
    SET(CURLOPT_WRITEFUNCTION, on_write);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_PREREQFUNCTION, on_prereq);
    /* A DNS lookup still pending when its connect timeout hits, or when the client is closed,
     * must not make libcurl join its resolver thread (a poll(0) or close() would wait for
     * getaddrinfo): the thread is left to finish on its own. */
    SET(CURLOPT_QUICK_EXIT, 1L);
    if (c->user_agent) SET(CURLOPT_USERAGENT, c->user_agent);
#undef SET
    return rc;
}

static CURL *get_easy(vl_client *c) {
    CURL *e;
    if (c->io->npool > 0) return c->io->pool[--c->io->npool];
    e = curl_easy_init();
    if (e && static_options(c, e) != 0) {
        curl_easy_cleanup(e);
        e = NULL;
    }
    return e;
}

static void zero_slist(struct curl_slist *h) {
    for (; h; h = h->next) {
        volatile char *p = (volatile char *)h->data;
        while (p && *p) *p++ = 0;
    }
}

/* token may be NULL (token endpoint). Returns 0 or a CURLcode / -1. */
int vl_transport_start(vl_client *c, vl_req *r, const char *token) {
    CURL *e;
    struct curl_slist *h = NULL, *t;
    char line[160];
    long remaining_ms;
    double now = vl_now();
    int rc = 0;

    e = get_easy(c);
    if (!e) return -1;
    vl_transport_reset_response(r);
    r->sends = r->resend_blocked = 0;
#define SET(opt, val) do { if (rc == 0) rc = (int)curl_easy_setopt(e, opt, val); } while (0)
    SET(CURLOPT_URL, r->url);
    /* managed identity's endpoints are plain http by protocol (IMDS, App Service's local one) */
    SET(CURLOPT_PROTOCOLS_STR, c->allow_http || ((r->flags & VL_F_INTERNAL) && c->mi_kind) ? "http,https" : "https");
    /* Plain http (allow_http, loopback only) never goes through a proxy: the token form and the
     * bearer token would travel in clear to it. https may use the environment's proxy, but only
     * through a CONNECT tunnel, with the origin's certificate verified end to end. */
    if (strncasecmp(r->url, "http:", 5) == 0) {
        SET(CURLOPT_PROXY, "");
        SET(CURLOPT_HTTPPROXYTUNNEL, 0L);
    } else {
        SET(CURLOPT_PROXY, (char *)NULL);
        SET(CURLOPT_HTTPPROXYTUNNEL, 1L);
    }
    SET(CURLOPT_PRIVATE, (void *)r);
    remaining_ms = (long)((r->deadline - now) * 1000.0);
    if (remaining_ms < 1) remaining_ms = 1;
    SET(CURLOPT_TIMEOUT_MS, remaining_ms < c->attempt_ms ? remaining_ms : c->attempt_ms);
    SET(CURLOPT_WRITEDATA, (void *)r);
    SET(CURLOPT_HEADERDATA, (void *)r);
    SET(CURLOPT_PREREQDATA, (void *)r);
    SET(CURLOPT_ERRORBUFFER, r->errbuf);
    SET(CURLOPT_CUSTOMREQUEST, (char *)NULL);
    switch (r->method) {
    case VL_POST:
        SET(CURLOPT_POST, 1L);
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
        SET(CURLOPT_POSTFIELDS, r->body ? r->body : "");
        break;
    case VL_PATCH:
        SET(CURLOPT_CUSTOMREQUEST, "PATCH");
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
        SET(CURLOPT_POSTFIELDS, r->body ? r->body : "");
        break;
    case VL_DELETE:
        SET(CURLOPT_HTTPGET, 1L);
        SET(CURLOPT_CUSTOMREQUEST, "DELETE");
        break;
    default:
        SET(CURLOPT_HTTPGET, 1L);
        break;
    }
#undef SET
    if (rc != 0) {
        curl_easy_cleanup(e);
        return rc;
    }
    /* headers: every value here is ours (no CR/LF can come from a caller) */
    if (r->flags & VL_F_INTERNAL) {
        h = curl_slist_append(h, "Accept: application/json");
        if (h && r->method == VL_POST)
            h = (t = curl_slist_append(h, "Content-Type: application/x-www-form-urlencoded")) ? t : h;
        if (h && r->xhdr) h = (t = curl_slist_append(h, r->xhdr)) ? t : h;
    } else {
        if (token) {
            size_t tl = strlen(token);
            char *ah = malloc(tl + 32);
            if (ah) {
                memcpy(ah, "Authorization: Bearer ", 22);
                memcpy(ah + 22, token, tl + 1);
                h = curl_slist_append(h, ah);
                memset(ah, 0, tl + 22);
                free(ah);
            }
        }
        if ((t = curl_slist_append(h, "Accept: application/json")) != NULL) h = t;
        if (r->method == VL_POST || r->method == VL_PATCH)
            if ((t = curl_slist_append(h, "Content-Type: application/json")) != NULL) h = t;
        snprintf(line, sizeof line, "client-request-id: %s", r->crid);
        if ((t = curl_slist_append(h, line)) != NULL) h = t;
        if ((t = curl_slist_append(h, "return-client-request-id: true")) != NULL) h = t;
        if (r->family == VL_FAM_ACTIVITY && r->method == VL_GET)
            if ((t = curl_slist_append(h, "Prefer: include-unknown-enum-members")) != NULL) h = t;
        if (r->attempts > 0) {
            snprintf(line, sizeof line, "Retry-Attempt: %d", r->attempts);
            if ((t = curl_slist_append(h, line)) != NULL) h = t;
        }
    }
    if (h && (t = curl_slist_append(h, "Expect:")) != NULL) h = t;
    if (!h) {
        curl_easy_cleanup(e);
        return -1;
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    r->hdrs = h;
    r->easy = e;
    r->attempt_start = now;
    if (curl_multi_add_handle(c->io->multi, e) != CURLM_OK) {
        r->easy = NULL;
        zero_slist(h);
        curl_slist_free_all(h);
        r->hdrs = NULL;
        curl_easy_cleanup(e);
        return -1;
    }
    c->nactive++;
    /* in a poll with a budget, libcurl sends the request now, so its cost is the admission's
     * (the budget times each unit) rather than a batch of them all after the budget ran out */
    if (c->has_budget) vl_transport_timers(c, vl_now());
    return 0;
}

/* Removes the easy from the multi (before anything else, as curl requires) and keeps it
 * for the next request unless the pool is full. */
void vl_transport_release(vl_client *c, vl_req *r) {
    if (r->easy) {
        if (c && c->io && c->io->multi) {
            curl_multi_remove_handle(c->io->multi, r->easy);
            c->nactive--;
        }
        if (c && c->io && c->io->npool < c->max_concurrency + 4) {
            if (c->io->npool == c->io->pool_cap) {
                int nc = c->io->pool_cap ? c->io->pool_cap * 2 : 8;
                CURL **np = realloc(c->io->pool, (size_t)nc * sizeof *np);
                if (np) { c->io->pool = np; c->io->pool_cap = nc; }
            }
            if (c->io->npool < c->io->pool_cap) {
                /* do not leave pointers to r in a pooled handle */
                curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, NULL);
                curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, NULL);
                curl_easy_setopt(r->easy, CURLOPT_PRIVATE, NULL);
                curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, NULL);
                curl_easy_setopt(r->easy, CURLOPT_HEADERDATA, NULL);
                curl_easy_setopt(r->easy, CURLOPT_PREREQDATA, NULL);
                c->io->pool[c->io->npool++] = r->easy;
                r->easy = NULL;
            }
        }
        if (r->easy) curl_easy_cleanup(r->easy);
        r->easy = NULL;
    }
    if (r->hdrs) {
        zero_slist(r->hdrs);
        curl_slist_free_all(r->hdrs);
        r->hdrs = NULL;
    }
}

/* Did the request (possibly) reach the server? Only failures before anything was sent are
 * safe to repeat for a POST. */
static int was_sent(vl_req *r, CURLcode rc) {
    long reqsize = 0;
    if (r->resend_blocked) return 1;        /* the first copy went out on the dead connection */
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        return 0;
    default:
        break;
    }
    if (r->easy && curl_easy_getinfo(r->easy, CURLINFO_REQUEST_SIZE, &reqsize) == CURLE_OK && reqsize == 0)
        return 0;
    return 1;
}

static int outcome_of(vl_req *r, CURLcode rc) {
    if (rc == CURLE_OK) return VL_T_NONE;
    if (r->too_big || rc == CURLE_FILESIZE_EXCEEDED) return VL_T_TOO_LARGE;
    if (rc == CURLE_HTTP2_STREAM && r->phase == 0 && r->body_len > 0 && r->uploaded < (long long)r->body_len)
        /* the server reset the stream before it had the whole body: it refused the body (nginx
         * does so for one over its size limit, instead of a readable 413) and would again */
        return VL_T_BODY_REFUSED;
    if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_SSL_CERTPROBLEM ||
        rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_URL_MALFORMAT)
        return VL_T_FATAL;
    if (!r->sent) return VL_T_NOT_SENT;
    if (rc == CURLE_OPERATION_TIMEDOUT) return VL_T_TIMEOUT;
    if (rc == CURLE_HTTP2_STREAM || rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR) return VL_T_RESET;
    return VL_T_MAYBE_SENT;
}

const char *vl_attempt_log_error(const vl_req *r, char *buf, size_t n) {
    CURLcode rc = (CURLcode)r->rc;
    if (r->rc < 0) return r->errbuf;
    snprintf(buf, n, "%s: %s", curl_easy_strerror(rc), r->errbuf);
    return buf;
}

int vl_transport_tls_failed(const vl_req *r) { return r->rc == (int)CURLE_PEER_FAILED_VERIFICATION; }

/* Out of the multi and freed, not pooled: the client is going away or the handle is dropped. */
void vl_transport_abandon(vl_client *c, vl_req *r) {
    if (r->easy) {
        if (c && c->io && c->io->multi) {
            curl_multi_remove_handle(c->io->multi, r->easy);
            c->nactive--;
        }
        curl_easy_cleanup(r->easy);
        r->easy = NULL;
    }
    if (r->hdrs) {
        zero_slist(r->hdrs);
        curl_slist_free_all(r->hdrs);
        r->hdrs = NULL;
    }
}

/* What libcurl knows of a finished attempt, read once: the status, the counters, whether it
 * may have reached the server; then the handle goes back to the pool. */
static void finish(vl_client *c, vl_req *r, CURLcode rc) {
    long st = 0, nconn = 0, ver = 0;
    curl_off_t up = 0;
    r->rc = (int)rc;
    r->sent = rc == CURLE_OK ? 1 : was_sent(r, rc);
    if (r->easy) {
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &st);
        curl_easy_getinfo(r->easy, CURLINFO_SIZE_UPLOAD_T, &up);
        if (curl_easy_getinfo(r->easy, CURLINFO_NUM_CONNECTS, &nconn) == CURLE_OK) c->st_connects += nconn;
        if (curl_easy_getinfo(r->easy, CURLINFO_HTTP_VERSION, &ver) == CURLE_OK && ver == CURL_HTTP_VERSION_2_0) c->st_h2++;
    }
    r->http_status = st;
    r->status = rc == CURLE_OK ? st : 0;
    vl_transport_release(c, r);
    r->uploaded = (long long)up;
    if (rc != CURLE_OK && r->resend_blocked)
        snprintf(r->errbuf, sizeof r->errbuf, "the connection died after the %s was sent; libcurl's own re-send "
                 "was stopped", vl_method_name(r->method));
    r->outcome = outcome_of(r, rc);
}

vl_req *vl_transport_next_done(vl_client *c) {
    CURLMsg *m;
    int left;
    if (!c->io) return NULL;
    while ((m = curl_multi_info_read(c->io->multi, &left)) != NULL) {
        vl_req *r = NULL;
        if (m->msg != CURLMSG_DONE) continue;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        if (!r) continue;
        finish(c, r, m->data.result);
        return r;
    }
    return NULL;
}

const char *vl_attempt_cause(const vl_req *r, char *buf, size_t n) {
    CURLcode rc = (CURLcode)r->rc;
    if (r->rc < 0) return r->errbuf;          /* an external driver's report */
    snprintf(buf, n, "%s (%d): %s", curl_easy_strerror(rc), (int)rc, r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc));
    return buf;
}
