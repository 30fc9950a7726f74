/* The alternate key's two spellings (see altkey.h). */
#include <string.h>

#include "altkey.h"

static const char *const NAMES[2] = { "externalcourseActivityId", "externalCourseActivityId" };

/* OData .NET's BadRequest_KeyMismatch, for a key name the entity type does not declare */
static const char KEY_MISMATCH[] = "The key in the request URI is not valid for resource";

const char *vl_altkey_name(int spelling) {
    return NAMES[spelling == VL_KEY_DOCS];
}

int vl_altkey_at(const char *s, size_t n) {
    int i;
    if (n < VL_ALTKEY_LEN) return -1;
    for (i = 0; i < 2; i++)
        if (memcmp(s, NAMES[i], VL_ALTKEY_LEN) == 0) return i;
    return -1;
}

void vl_altkey_respell(char *s, int spelling) {
    s[VL_ALTKEY_DIFF] = NAMES[spelling == VL_KEY_DOCS][VL_ALTKEY_DIFF];
}

static int contains(const char *h, size_t hn, const char *needle, size_t nn) {
    size_t i;
    if (!h || nn > hn) return 0;
    for (i = 0; i + nn <= hn; i++)
        if (h[i] == needle[0] && memcmp(h + i, needle, nn) == 0) return 1;
    return 0;
}

int vl_altkey_refused(const char *body, size_t n, int spelling, int in_url) {
    /* case-sensitive: the other spelling in the message is not about the one sent */
    if (contains(body, n, vl_altkey_name(spelling), VL_ALTKEY_LEN)) return 1;
    return in_url && contains(body, n, KEY_MISMATCH, sizeof KEY_MISMATCH - 1);
}

int vl_altkey_understood(long status) {
    return (status >= 200 && status < 300) || status == 404 || status == 409;
}
