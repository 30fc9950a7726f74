/* UTF-8 validation (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF). */
#ifndef VL_UTF8_H
#define VL_UTF8_H

#include <stddef.h>

/* True when the bytes are valid UTF-8. */
int vl_utf8_valid(const char *s, size_t n);

/* Length of the valid UTF-8 sequence at s (n > 0 bytes left), 0 if invalid. */
static inline size_t vl_utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    if (c < 0xC2) return 0;
    if (c < 0xE0) return (n >= 2 && (s[1] & 0xC0) == 0x80) ? 2 : 0;
    if (c < 0xF0) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && s[1] < 0xA0) return 0;     /* overlong */
        if (c == 0xED && s[1] > 0x9F) return 0;     /* surrogates */
        return 3;
    }
    if (c < 0xF5) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) return 0;
        if (c == 0xF0 && s[1] < 0x90) return 0;     /* overlong */
        if (c == 0xF4 && s[1] > 0x8F) return 0;     /* > U+10FFFF */
        return 4;
    }
    return 0;
}

#endif
