/* The engine's state (see state.h): lists, the one free of a request, small string helpers. */
#include <stdlib.h>
#include <string.h>

#include "state.h"

const char *const vl_famname[] = { "activity", "provider", "content" };

char *vl_strdup(const char *s) {
    size_t n;
    char *p;
    if (!s) return NULL;
    n = strlen(s);
    p = malloc(n + 1);
    if (p) memcpy(p, s, n + 1);
    return p;
}

void vl_zfree(char *p) {
    if (p) {
        volatile char *v = p;
        while (*v) *v++ = 0;
        free(p);
    }
}

char *vl_dupn(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (p) { memcpy(p, s, n); p[n] = 0; }
    return p;
}

static vl_req **head_of(vl_client *c, int list, vl_req ***tail) {
    switch (list) {
    case VL_L_READY: *tail = &c->ready_t; return &c->ready_h;
    case VL_L_BACKOFF: *tail = &c->backoff_t; return &c->backoff_h;
    case VL_L_TOKEN: *tail = &c->token_t; return &c->token_h;
    case VL_L_COMPLETE: *tail = &c->complete_t; return &c->complete_h;
    default: *tail = &c->active_t; return &c->active_h;
    }
}

void vl_list_push(vl_client *c, vl_req *r, int list) {
    vl_req **t, **h;
    vl_list_remove(c, r);
    h = head_of(c, list, &t);
    r->list = list;
    r->next = NULL;
    r->prev = *t;
    if (*t) (*t)->next = r; else *h = r;
    *t = r;
}

void vl_list_push_front(vl_client *c, vl_req *r, int list) {
    vl_req **t, **h;
    vl_list_remove(c, r);
    h = head_of(c, list, &t);
    r->list = list;
    r->prev = NULL;
    r->next = *h;
    if (*h) (*h)->prev = r; else *t = r;
    *h = r;
}

void vl_list_remove(vl_client *c, vl_req *r) {
    vl_req **t, **h;
    if (r->list == VL_L_NONE) return;
    h = head_of(c, r->list, &t);
    if (r->prev) r->prev->next = r->next; else *h = r->next;
    if (r->next) r->next->prev = r->prev; else *t = r->prev;
    r->prev = r->next = NULL;
    r->list = VL_L_NONE;
}

void vl_req_free(vl_req *r) {
    if (!r) return;
    if (r->c) vl_list_remove(r->c, r);
    free(r->url);
    if (r->body) { memset(r->body, 0, r->body_len); free(r->body); }
    free(r->alt_url);
    vl_zfree(r->xhdr);
    free(r->resp);
    free(r);
}

void vl_client_release_waiters(vl_client *c) {
    while (c->token_t) {
        vl_req *r = c->token_t;
        vl_list_remove(c, r);
        vl_list_push_front(c, r, VL_L_READY);
    }
}

double vl_client_now(const vl_client *c) {
    return c->has_clock ? c->ext_now : vl_now();
}
