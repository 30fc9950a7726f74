/* A strict JSON scanner over text (RFC 8259), pure logic: no Lua, no allocation. It lets a
 * model be decoded straight from the response text and keep unknown properties as slices of
 * it. It accepts a subset of what the cjson.safe decoder accepts (strings valid UTF-8 with
 * no raw control characters and no lone surrogates, numbers that stay finite, nesting at
 * most VL_JSCAN_MAX_DEPTH): text it refuses goes the cjson way, which gives the message. */
#ifndef VL_JSON_SCAN_H
#define VL_JSON_SCAN_H

#include <stddef.h>

#define VL_JSCAN_MAX_DEPTH 60   /* below cjson's and the models' limit of 64 */

/* Index of the first non-whitespace byte at or after i. */
size_t vl_jscan_ws(const char *s, size_t n, size_t i);
/* The string whose opening quote is s[i]: returns the index after its closing quote, or 0
 * when it is not one the scanner accepts. *esc: whether it holds escapes. */
size_t vl_jscan_string(const char *s, size_t n, size_t i, int *esc);
/* Any value starting at s[i] (no whitespace before it) nested depth deep: returns the index
 * after it, or 0. */
size_t vl_jscan_value(const char *s, size_t n, size_t i, int depth);
/* Integer literal s[0..n) (no fraction, no exponent) in [min, max]: 1 and *out, else 0. */
int vl_jscan_int(const char *s, size_t n, long min, long max, long *out);
/* Unescapes the body (between the quotes) of a string vl_jscan_string accepted into out,
 * which has room for n bytes (an escape never grows); returns the length written. *nul:
 * whether a \u0000 was among them. */
size_t vl_jscan_unescape(const char *s, size_t n, char *out, int *nul);

#endif
