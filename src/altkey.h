/* The alternate key of a course activity and its two spellings (graph-api.md §6 #1): the
 * metadata and SDKs write externalcourseActivityId, every doc example externalCourseActivityId,
 * and which one the service takes is unverified. The client starts with one, sends the other
 * once when Graph refuses the key (a 400), and keeps the one that worked (per client). The two
 * names differ in one byte only, so a request built in one spelling becomes the other in place.
 * Plain C: no Lua, no I/O. */
#ifndef VL_ALTKEY_H
#define VL_ALTKEY_H

#include <stddef.h>

enum { VL_KEY_METADATA = 0, VL_KEY_DOCS = 1 };

#define VL_ALTKEY_LEN 24      /* strlen of either spelling */
#define VL_ALTKEY_DIFF 8      /* the byte where they differ: 'c' or 'C' */

/* "externalcourseActivityId" (VL_KEY_METADATA) or "externalCourseActivityId" (VL_KEY_DOCS) */
const char *vl_altkey_name(int spelling);
/* The spelling whose name is at s (VL_ALTKEY_LEN bytes), or -1. */
int vl_altkey_at(const char *s, size_t n);
/* Rewrites the name at s (VL_ALTKEY_LEN bytes, either spelling) to `spelling`. */
void vl_altkey_respell(char *s, int spelling);
/* Whether a 400's body (or its error message) says the key sent in `spelling` is what it
 * refused: it names that spelling (an unknown property, "Input field ... is invalid"), or,
 * when the key was in the URL (in_url), it is OData's key mismatch ("The key in the request
 * URI is not valid for resource ..."), which names no property. */
int vl_altkey_refused(const char *body, size_t n, int spelling, int in_url);
/* Whether an HTTP status shows the service understood the key it was sent (2xx, 404, 409):
 * a throttled, refused or failed attempt says nothing about the spelling. */
int vl_altkey_understood(long status);

#endif
