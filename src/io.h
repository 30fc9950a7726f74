/* The client's I/O: an attempt goes to the libcurl driver (transport.h) or waits for an
 * external driver's take() (external.h). The one place that knows there are two. */
#ifndef VL_IO_H
#define VL_IO_H

#include "state.h"

/* Hands an attempt of r to the client's I/O; token may be NULL (token endpoint). 0 when handed. */
int vl_io_start(vl_client *c, vl_req *r, const char *token);

/* poll's per-call budget (a frame loop's poll(0, { budget = 0.001 })): spent once one unit of
 * work (an attempt started, a finished attempt built) was done and another, of the average
 * cost so far, would end past the budget; so every poll makes progress and the rest waits for
 * the next one. Never spent outside such a poll. vl_io_budget_use: a unit just ended. */
void vl_io_budget_begin(vl_client *c, double budget);
int  vl_io_budget_spent(const vl_client *c);
void vl_io_budget_use(vl_client *c);

#endif
