/* The client's I/O dispatch (see io.h). */
#include "io.h"
#include "transport.h"

/* io = "external": the attempt waits for the driver's take() (external.c hands it out). */
static int ext_start(vl_client *c, vl_req *r) {
    vl_transport_reset_response(r);
    r->xid = ++c->next_xid;
    r->handed = 0;
    r->attempt_start = vl_client_now(c);
    c->nactive++;
    return 0;
}

int vl_io_start(vl_client *c, vl_req *r, const char *token) {
    if (c->external) return ext_start(c, r);
    return vl_transport_start(c, r, token);
}

void vl_io_budget_begin(vl_client *c, double budget) {
    c->has_budget = 1;
    c->budget_used = 0;
    c->budget_mark = vl_now();
    c->budget_end = c->budget_mark + budget;
}

int vl_io_budget_spent(const vl_client *c) {
    return c->has_budget && c->budget_used > 0 && vl_now() + c->unit_cost >= c->budget_end;
}

void vl_io_budget_use(vl_client *c) {
    double now, d;
    if (!c->has_budget) return;
    /* the time since the last unit ended (or the poll began): this unit, and what came between */
    now = vl_now();
    d = now - c->budget_mark;
    c->budget_mark = now;
    c->unit_cost = c->unit_cost > 0 ? c->unit_cost * 0.875 + d * 0.125 : d;
    c->budget_used++;
}
