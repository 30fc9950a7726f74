/* Retry policy pieces: Retry-After in every form Graph and Azure use, exponential backoff
 * with full jitter, the per-client random generator (no global state) and the clocks. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "retry.h"

double vl_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void vl_rng_seed(vl_rng *r, const void *salt) {
    uint64_t x = 0;
    struct timespec ts;
    FILE *f = fopen("/dev/urandom", "rb");
    if (f) {
        if (fread(&x, sizeof x, 1, f) != 1) x = 0;
        fclose(f);
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    x ^= (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)(uintptr_t)salt;
    r->s[0] = splitmix(&x);
    r->s[1] = splitmix(&x);
    if (!r->s[0] && !r->s[1]) r->s[1] = 1;
}

/* xorshift128+ */
uint64_t vl_rng_next(vl_rng *r) {
    uint64_t s1 = r->s[0];
    const uint64_t s0 = r->s[1];
    r->s[0] = s0;
    s1 ^= s1 << 23;
    r->s[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return r->s[1] + s0;
}

double vl_rng_unit(vl_rng *r) { return (double)(vl_rng_next(r) >> 11) / 9007199254740992.0; }

void vl_uuid4(vl_rng *r, char out[37]) {
    unsigned char b[16];
    uint64_t a = vl_rng_next(r), c = vl_rng_next(r);
    int i;
    memcpy(b, &a, 8);
    memcpy(b + 8, &c, 8);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    for (i = 0; i < 16; i++) {
        static const char hx[] = "0123456789abcdef";
        int pos = i * 2 + (i >= 4) + (i >= 6) + (i >= 8) + (i >= 10);
        out[pos] = hx[b[i] >> 4];
        out[pos + 1] = hx[b[i] & 15];
    }
    out[8] = out[13] = out[18] = out[23] = '-';
    out[36] = 0;
}

/* A decimal number of seconds ("3", "2.128"); no exponent, no sign, no garbage. */
static double parse_decimal(const char *v) {
    const char *p = v;
    double x = 0, scale = 1;
    int digits = 0;
    while (*p == ' ' || *p == '\t') p++;
    while (isdigit((unsigned char)*p)) {
        if (x < 1e12) x = x * 10 + (*p - '0');
        p++; digits++;
    }
    if (*p == '.') {
        p++;
        while (isdigit((unsigned char)*p)) {
            scale /= 10;
            x += (*p - '0') * scale;
            p++; digits++;
        }
    }
    while (*p == ' ' || *p == '\t') p++;
    if (!digits || *p) return -1;
    return x;
}

/* days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil) */
static long days_from_civil(long y, unsigned m, unsigned d) {
    long era;
    unsigned yoe, doy, doe;
    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long)doe - 719468;
}

/* An HTTP-date in any of its three forms (RFC 9110 5.6.7): IMF-fixdate "Sun, 06 Nov 1994
 * 08:49:37 GMT", RFC 850 "Sunday, 06-Nov-94 08:49:37 GMT", asctime "Sun Nov  6 08:49:37 1994".
 * Seconds since the epoch, or -1. */
static double http_date(const char *v) {
    static const char *const months[] = { "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep",
                                          "oct", "nov", "dec" };
    long day = -1, year = -1, mon = -1, hh = -1, mi = -1, ss = -1;
    const char *p = v;
    while (*p) {
        const char *t;
        size_t n;
        while (*p == ' ' || *p == ',' || *p == '-' || *p == '\t') p++;
        t = p;
        while (*p && *p != ' ' && *p != ',' && *p != '-' && *p != '\t') p++;
        n = (size_t)(p - t);
        if (!n) break;
        if (isdigit((unsigned char)t[0])) {
            if (n == 8 && t[2] == ':' && t[5] == ':') {
                if (hh >= 0) return -1;
                hh = (t[0] - '0') * 10 + (t[1] - '0');
                mi = (t[3] - '0') * 10 + (t[4] - '0');
                ss = (t[6] - '0') * 10 + (t[7] - '0');
            } else {
                long x = 0;
                size_t i;
                for (i = 0; i < n; i++) {
                    if (!isdigit((unsigned char)t[i])) return -1;
                    x = x * 10 + (t[i] - '0');
                }
                if (n <= 2 && day < 0) day = x;
                else if (n == 4 && year < 0) year = x;
                else if (n == 2 && year < 0) year = x < 70 ? 2000 + x : 1900 + x;   /* RFC 850 */
                else return -1;
            }
        } else if (isalpha((unsigned char)t[0])) {
            /* a month; a weekday or the zone (GMT, UTC) is skipped */
            int i;
            for (i = 0; n == 3 && i < 12; i++)
                if (tolower((unsigned char)t[0]) == months[i][0] && tolower((unsigned char)t[1]) == months[i][1] &&
                    tolower((unsigned char)t[2]) == months[i][2]) mon = i + 1;
        } else {
            return -1;
        }
    }
    if (day < 1 || day > 31 || mon < 1 || year < 1970 || hh < 0 || hh > 23 || mi > 59 || ss > 60) return -1;
    return (double)days_from_civil(year, (unsigned)mon, (unsigned)day) * 86400.0 + (double)(hh * 3600 + mi * 60 + ss);
}

double vl_retry_after_header(const char *v, double wall_now) {
    double s;
    if (!v || !*v) return -1;
    s = parse_decimal(v);
    if (s >= 0) return isfinite(s) ? s : -1;
    /* an HTTP-date: the difference to the local clock, never negative */
    if (!isalpha((unsigned char)v[0])) return -1;
    s = http_date(v);
    if (s < 0) return -1;
    s -= wall_now;
    return s < 0 ? 0 : s;
}

double vl_retry_after_ms(const char *v) {
    double ms;
    if (!v || !*v) return -1;
    ms = parse_decimal(v);
    return ms < 0 || !isfinite(ms) ? -1 : ms / 1000.0;
}

/* Graph's learning pages document 429/503 bodies "Retry after {noOfMinutes} minutes" */
double vl_retry_after_body(const char *body, size_t n) {
    static const char needle[] = "etry after ";
    size_t i, k = sizeof needle - 1;
    if (!body) return -1;
    for (i = 1; i + k < n; i++) {
        if ((body[i - 1] == 'R' || body[i - 1] == 'r') && memcmp(body + i, needle, k) == 0) {
            const char *p = body + i + k;
            const char *end = body + n;
            double x = 0;
            int d = 0;
            while (p < end && isdigit((unsigned char)*p) && d < 9) { x = x * 10 + (*p - '0'); p++; d++; }
            if (!d || p >= end || *p != ' ') continue;
            p++;
            if ((size_t)(end - p) >= 6 && strncmp(p, "minute", 6) == 0) return x * 60;
            if ((size_t)(end - p) >= 6 && strncmp(p, "second", 6) == 0) return x;
        }
    }
    return -1;
}

double vl_backoff(vl_rng *r, int retry, double base, double cap) {
    double ceiling = base;
    int i;
    for (i = 0; i < retry && ceiling < cap; i++) ceiling *= 2;
    if (ceiling > cap) ceiling = cap;
    return vl_rng_unit(r) * ceiling;
}

/* The server's wait from every form it may take, the most precise first: retry-after-ms,
 * x-ms-retry-after-ms, Retry-After (seconds, fractional or an HTTP-date), then a "Retry after
 * N minutes" body. Any argument may be NULL. Seconds >= 0, or -1 when none. */
double vl_retry_after(const char *ms, const char *xms, const char *hdr, const char *body, size_t n, double wall_now) {
    double h = ms && *ms ? vl_retry_after_ms(ms) : -1;
    if (h < 0 && xms && *xms) h = vl_retry_after_ms(xms);
    if (h < 0 && hdr && *hdr) h = vl_retry_after_header(hdr, wall_now);
    if (h < 0 && body && n) h = vl_retry_after_body(body, n);
    return h;
}
