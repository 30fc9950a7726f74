/* UTF-8 validation. See utf8.h. */
#include <string.h>

#include "utf8.h"

int vl_utf8_valid(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    /* ASCII fast path: OR the words together, test once */
    unsigned long long acc = 0;
    if (n >= 8) {
        for (; i + 16 <= n; i += 16) {
            unsigned long long w1, w2;
            memcpy(&w1, s + i, 8);
            memcpy(&w2, s + i + 8, 8);
            acc |= w1 | w2;
        }
        if (i + 8 <= n) {
            unsigned long long w;
            memcpy(&w, s + i, 8);
            acc |= w;
        }
        unsigned long long last;                      /* the tail, overlapping */
        memcpy(&last, s + n - 8, 8);
        acc |= last;
    } else {
        for (; i < n; i++) acc |= s[i];
    }
    if (!(acc & 0x8080808080808080ULL)) return 1;
    i = 0;
    while (i < n) {
        if (s[i] < 0x80) { i++; continue; }
        size_t k = vl_utf8_seq(s + i, n - i);
        if (!k) return 0;
        i += k;
    }
    return 1;
}
