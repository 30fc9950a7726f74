/* The client's I/O dispatch (see io.h). */
#include "external.h"
#include "io.h"
#include "transport.h"

int vl_io_start(vl_client *c, vl_req *r, const char *token) {
    if (c->external) return vl_ext_start(c, r);
    return vl_transport_start(c, r, token);
}
