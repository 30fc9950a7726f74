/* Strict JSON scanner. See json_scan.h. */
#include "json_scan.h"
#include "utf8.h"

size_t vl_jscan_ws(const char *s, size_t n, size_t i) {
    while (i < n && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) i++;
    return i;
}

static int hex4(const char *s, unsigned *v) {
    unsigned r = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[k];
        r <<= 4;
        if (c >= '0' && c <= '9') r |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') r |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') r |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *v = r;
    return 1;
}

size_t vl_jscan_string(const char *s, size_t n, size_t i, int *esc) {
    const unsigned char *u = (const unsigned char *)s;
    *esc = 0;
    i++;                                          /* the opening quote */
    for (;;) {
        while (i < n && u[i] >= 0x20 && u[i] < 0x80 && u[i] != '"' && u[i] != '\\') i++;
        if (i >= n) return 0;
        unsigned c = u[i];
        if (c == '"') return i + 1;
        if (c < 0x20) return 0;                   /* raw control character */
        if (c >= 0x80) {
            size_t k = vl_utf8_seq(u + i, n - i);
            if (!k) return 0;
            i += k;
            continue;
        }
        /* backslash */
        *esc = 1;
        if (i + 1 >= n) return 0;
        c = u[i + 1];
        if (c == 'u') {
            unsigned v, w;
            if (i + 6 > n || !hex4(s + i + 2, &v)) return 0;
            i += 6;
            if (v >= 0xDC00 && v <= 0xDFFF) return 0;          /* lone low surrogate */
            if (v >= 0xD800 && v <= 0xDBFF) {                  /* must pair */
                if (i + 6 > n || s[i] != '\\' || s[i + 1] != 'u' || !hex4(s + i + 2, &w) ||
                    w < 0xDC00 || w > 0xDFFF)
                    return 0;
                i += 6;
            }
            continue;
        }
        if (c != '"' && c != '\\' && c != '/' && c != 'b' && c != 'f' && c != 'n' && c != 'r' && c != 't')
            return 0;
        i += 2;
    }
}

static size_t digits(const char *s, size_t n, size_t i) {
    while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    return i;
}

static size_t number(const char *s, size_t n, size_t i) {
    size_t start, ndig;
    long exp = 0;
    if (s[i] == '-') i++;
    if (i >= n) return 0;
    start = i;
    if (s[i] == '0') i++;
    else if (s[i] >= '1' && s[i] <= '9') i = digits(s, n, i);
    else return 0;
    ndig = i - start;
    if (i < n && s[i] == '.') {
        size_t j = digits(s, n, i + 1);
        if (j == i + 1) return 0;
        i = j;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        int neg = 0;
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
        size_t j = digits(s, n, i);
        if (j == i || j - i > 4) return 0;
        for (; i < j; i++) exp = exp * 10 + (s[i] - '0');
        if (neg) exp = -exp;
    }
    /* would overflow to infinity (cjson would then return inf): leave it to cjson */
    if ((long)ndig + (exp > 0 ? exp : 0) > 300) return 0;
    return i;
}

static size_t literal(const char *s, size_t n, size_t i, const char *w, size_t wn) {
    if (n - i < wn) return 0;
    for (size_t k = 0; k < wn; k++)
        if (s[i + k] != w[k]) return 0;
    return i + wn;
}

size_t vl_jscan_value(const char *s, size_t n, size_t i, int depth) {
    int esc;
    if (i >= n) return 0;
    switch (s[i]) {
    case '"': return vl_jscan_string(s, n, i, &esc);
    case 't': return literal(s, n, i, "true", 4);
    case 'f': return literal(s, n, i, "false", 5);
    case 'n': return literal(s, n, i, "null", 4);
    case '[':
    case '{': {
        char close = s[i] == '[' ? ']' : '}';
        if (depth + 1 > VL_JSCAN_MAX_DEPTH) return 0;
        i = vl_jscan_ws(s, n, i + 1);
        if (i < n && s[i] == close) return i + 1;
        for (;;) {
            if (close == '}') {
                if (i >= n || s[i] != '"' || !(i = vl_jscan_string(s, n, i, &esc))) return 0;
                i = vl_jscan_ws(s, n, i);
                if (i >= n || s[i] != ':') return 0;
                i = vl_jscan_ws(s, n, i + 1);
            }
            if (!(i = vl_jscan_value(s, n, i, depth + 1))) return 0;
            i = vl_jscan_ws(s, n, i);
            if (i < n && s[i] == ',') {
                i = vl_jscan_ws(s, n, i + 1);
                continue;
            }
            if (i < n && s[i] == close) return i + 1;
            return 0;
        }
    }
    default:
        if (s[i] == '-' || (s[i] >= '0' && s[i] <= '9')) return number(s, n, i);
        return 0;
    }
}

int vl_jscan_int(const char *s, size_t n, long min, long max, long *out) {
    size_t i = 0;
    int neg = 0;
    long long v = 0;                              /* 10 digits fit, whatever long's width */
    if (n && s[0] == '-') { neg = 1; i = 1; }
    if (i == n || n - i > 10) return 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        v = v * 10 + (s[i] - '0');
    }
    if (neg) v = -v;
    if (v < min || v > max) return 0;
    *out = (long)v;
    return 1;
}

static size_t put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t vl_jscan_unescape(const char *s, size_t n, char *out, int *nul) {
    size_t i = 0, o = 0;
    *nul = 0;
    while (i < n) {
        if (s[i] != '\\') { out[o++] = s[i++]; continue; }
        char c = s[i + 1];
        unsigned v, w;
        switch (c) {
        case 'b': out[o++] = '\b'; break;
        case 'f': out[o++] = '\f'; break;
        case 'n': out[o++] = '\n'; break;
        case 'r': out[o++] = '\r'; break;
        case 't': out[o++] = '\t'; break;
        case 'u':
            hex4(s + i + 2, &v);                  /* checked by vl_jscan_string */
            if (v >= 0xD800 && v <= 0xDBFF) {
                hex4(s + i + 8, &w);
                v = 0x10000 + ((v - 0xD800) << 10) + (w - 0xDC00);
                i += 6;
            }
            if (v == 0) *nul = 1;
            o += put_utf8(out + o, v);
            i += 6;
            continue;
        default: out[o++] = c; break;             /* " \ / */
        }
        i += 2;
    }
    return o;
}
