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
