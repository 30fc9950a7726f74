/* The client's I/O: an attempt goes to the libcurl driver (transport.h) or waits for an
 * external driver's take() (external.h). The one place that knows there are two. */
#ifndef VL_IO_H
#define VL_IO_H

#include "state.h"

/* Hands an attempt of r to the client's I/O; token may be NULL (token endpoint). 0 when handed. */
int vl_io_start(vl_client *c, vl_req *r, const char *token);

#endif
