/* Schema of every model type (graph-api.md §2, CSDL is the authority) and format checks. */
#include <string.h>

#include "schema.h"

static const char *const course_status[] = { "notStarted", "inProgress", "completed", "unknownFutureValue", NULL };
static const char *const assignment_type[] = { "required", "recommended", "unknownFutureValue", "peerRecommended", NULL };
static const char *const level[] = { "beginner", "intermediate", "advanced", "unknownFutureValue", NULL };
const char *const vl_body_types[] = { "text", "html", NULL };

#define N  VF_NULLABLE
#define R  VF_REQUIRED
#define I32 -2147483647L - 1, 2147483647L
/*  name                           wire                         alias                        type         flags enums            range */
#define ID_FIELD \
  { "id",                          NULL,                        NULL,                        VT_STRING,   0,    NULL,            0, 0 }
#define CONTEXT_FIELD \
  { "@odata.context",              NULL,                        NULL,                        VT_ANNOT,    N,    NULL,            0, 0 }
#define ACTIVITY_FIELDS \
  ID_FIELD, \
  { "completedDateTime",           NULL,                        NULL,                        VT_DTO,      N,    NULL,            0, 0 }, \
  { "completionPercentage",        NULL,                        NULL,                        VT_INT32,    N,    NULL,            0, 100 }, \
  { "externalCourseActivityId",    "externalcourseActivityId",  "externalcourseActivityId",  VT_STRING,   N,    NULL,            0, 0 }, \
  { "learnerUserId",               NULL,                        NULL,                        VT_STRING,   R,    NULL,            0, 0 }, \
  { "learningContentId",           NULL,                        NULL,                        VT_STRING,   R,    NULL,            0, 0 }, \
  { "learningProviderId",          NULL,                        NULL,                        VT_STRING,   N,    NULL,            0, 0 }, \
  { "status",                      NULL,                        NULL,                        VT_ENUM,     N|R,  course_status,   0, 0 }

static const vl_field assignment_fields[] = {
  ACTIVITY_FIELDS,
  { "assignedDateTime",            NULL,                        NULL,                        VT_DTO,      N,    NULL,            0, 0 },
  { "assignerUserId",              NULL,                        NULL,                        VT_STRING,   N,    NULL,            0, 0 },
  { "assignmentType",              NULL,                        NULL,                        VT_ENUM,     R,    assignment_type, 0, 0 },
  { "dueDateTime",                 NULL,                        NULL,                        VT_DTTZ,     N,    NULL,            0, 0 },
  { "notes",                       NULL,                        NULL,                        VT_BODY,     N,    vl_body_types,   0, 0 },
  CONTEXT_FIELD,
};

static const vl_field self_initiated_fields[] = {
  ACTIVITY_FIELDS,
  { "startedDateTime",             NULL,                        NULL,                        VT_DTO,      N,    NULL,            0, 0 },
  CONTEXT_FIELD,
};

static const vl_field activity_fields[] = {
  ACTIVITY_FIELDS,
  CONTEXT_FIELD,
};

static const vl_field provider_fields[] = {
  ID_FIELD,
  { "displayName",                 NULL,                        NULL,                        VT_STRING,   R,    NULL,            0, 0 },
  { "squareLogoWebUrlForDarkTheme", NULL,                       NULL,                        VT_STRING,   R,    NULL,            0, 0 },
  { "longLogoWebUrlForDarkTheme",  NULL,                        NULL,                        VT_STRING,   R,    NULL,            0, 0 },
  { "squareLogoWebUrlForLightTheme", NULL,                      NULL,                        VT_STRING,   R,    NULL,            0, 0 },
  { "longLogoWebUrlForLightTheme", NULL,                        NULL,                        VT_STRING,   R,    NULL,            0, 0 },
  { "loginWebUrl",                 NULL,                        NULL,                        VT_STRING,   N,    NULL,            0, 0 },
  { "isCourseActivitySyncEnabled", NULL,                        NULL,                        VT_BOOL,     N,    NULL,            0, 0 },
  CONTEXT_FIELD,
};

static const vl_field content_fields[] = {
  ID_FIELD,
  { "externalId",                  NULL,                        NULL,                        VT_STRING,   R,    NULL,            0, 0 },
  { "title",                       NULL,                        NULL,                        VT_STRING,   R,    NULL,            0, 0 },
  { "description",                 NULL,                        NULL,                        VT_STRING,   N,    NULL,            0, 0 },
  { "contentWebUrl",               NULL,                        NULL,                        VT_STRING,   R,    NULL,            0, 0 },
  { "sourceName",                  NULL,                        NULL,                        VT_STRING,   N,    NULL,            0, 0 },
  { "thumbnailWebUrl",             NULL,                        NULL,                        VT_STRING,   N,    NULL,            0, 0 },
  { "languageTag",                 NULL,                        NULL,                        VT_STRING,   R,    NULL,            0, 0 },
  { "numberOfPages",               NULL,                        NULL,                        VT_INT32,    N,    NULL,            0, 2147483647L },
  { "duration",                    NULL,                        NULL,                        VT_DURATION, N,    NULL,            0, 0 },
  { "format",                      NULL,                        NULL,                        VT_STRING,   N,    NULL,            0, 0 },
  { "level",                       NULL,                        NULL,                        VT_ENUM,     N,    level,           0, 0 },
  { "createdDateTime",             NULL,                        NULL,                        VT_DTO,      N,    NULL,            0, 0 },
  { "lastModifiedDateTime",        NULL,                        NULL,                        VT_DTO,      N,    NULL,            0, 0 },
  { "contributors",                NULL,                        NULL,                        VT_STRLIST,  0,    NULL,            0, 0 },
  { "additionalTags",              NULL,                        NULL,                        VT_STRLIST,  0,    NULL,            0, 0 },
  { "skillTags",                   NULL,                        NULL,                        VT_STRLIST,  0,    NULL,            0, 0 },
  { "isActive",                    NULL,                        NULL,                        VT_BOOL,     N,    NULL,            0, 0 },
  { "isPremium",                   NULL,                        NULL,                        VT_BOOL,     N,    NULL,            0, 0 },
  { "isSearchable",                NULL,                        NULL,                        VT_BOOL,     N,    NULL,            0, 0 },
  CONTEXT_FIELD,
};
#undef N
#undef R
#undef I32

#define NF(a) (int)(sizeof(a) / sizeof((a)[0]))
VL_STATIC_ASSERT(NF(assignment_fields) <= VL_MAX_FIELDS, assignment_fields_fit_the_change_mask);
VL_STATIC_ASSERT(NF(self_initiated_fields) <= VL_MAX_FIELDS, self_initiated_fields_fit_the_change_mask);
VL_STATIC_ASSERT(NF(activity_fields) <= VL_MAX_FIELDS, activity_fields_fit_the_change_mask);
VL_STATIC_ASSERT(NF(provider_fields) <= VL_MAX_FIELDS, provider_fields_fit_the_change_mask);
VL_STATIC_ASSERT(NF(content_fields) <= VL_MAX_FIELDS, content_fields_fit_the_change_mask);
const vl_kind vl_kinds[VL_NKINDS] = {
  { "assignment",     "learningAssignment",          "#microsoft.graph.learningAssignment",          "#microsoft.graph.learningAssignment",          "activity", assignment_fields,     NF(assignment_fields) },
  { "self_initiated", "learningSelfInitiatedCourse", "#microsoft.graph.learningSelfInitiatedCourse", "#microsoft.graph.learningSelfInitiatedCourse", "activity", self_initiated_fields, NF(self_initiated_fields) },
  { "activity",       "learningCourseActivity",      NULL,                                           "#microsoft.graph.learningCourseActivity",      "activity", activity_fields,       NF(activity_fields) },
  { "provider",       "learningProvider",            NULL,                                           "#microsoft.graph.learningProvider",            "provider", provider_fields,       NF(provider_fields) },
  { "content",        "learningContent",             NULL,                                           "#microsoft.graph.learningContent",             "content",  content_fields,        NF(content_fields) },
};

/* ------------------------------------------------------------------ formats */

static int digits(const char *s, size_t n, size_t at, size_t k, int *out) {
    int v = 0;
    if (at + k > n) return 0;
    for (size_t i = at; i < at + k; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

/* YYYY-MM-DDTHH:MM:SS[.f{1,12}] ; returns the length consumed, 0 if invalid. When only the
 * values are wrong, *why says which part (VL_DT_DATE, VL_DT_TIME); else VL_DT_SHAPE. */
static size_t date_time_part(const char *s, size_t n, int *why) {
    int y, mo, d, h, mi, se;
    size_t i = 0;
    *why = VL_DT_SHAPE;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    if (i < 4 || i > 9 || !digits(s, n, 0, i, &y)) return 0;
    if (i >= n || s[i] != '-' || !digits(s, n, i + 1, 2, &mo)) return 0;
    i += 3;
    if (i >= n || s[i] != '-' || !digits(s, n, i + 1, 2, &d)) return 0;
    i += 3;
    if (i >= n || s[i] != 'T' || !digits(s, n, i + 1, 2, &h)) return 0;
    i += 3;
    if (i >= n || s[i] != ':' || !digits(s, n, i + 1, 2, &mi)) return 0;
    i += 3;
    if (i >= n || s[i] != ':' || !digits(s, n, i + 1, 2, &se)) return 0;
    i += 3;
    if (i < n && s[i] == '.') {
        size_t f = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
        if (i == f || i - f > 12) return 0;
    }
    static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
        (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))) {
        *why = VL_DT_DATE;
        return 0;
    }
    if (h > 23 || mi > 59 || se > 59) {
        *why = VL_DT_TIME;
        return 0;
    }
    *why = VL_DT_OK;
    return i;
}

static int offset_part(const char *s, size_t n) {
    int h, m;
    if (n == 1 && s[0] == 'Z') return 1;
    return n == 6 && (s[0] == '+' || s[0] == '-') && digits(s, n, 1, 2, &h) && s[3] == ':' &&
           digits(s, n, 4, 2, &m) && h <= 23 && m <= 59;
}

int vl_dto_check(const char *s, size_t n) {
    int why;
    size_t k = date_time_part(s, n, &why);
    if (!k) return why;
    return offset_part(s + k, n - k) ? VL_DT_OK : VL_DT_SHAPE;
}

int vl_local_dt_check(const char *s, size_t n) {
    int why;
    size_t k = date_time_part(s, n, &why);
    if (!k) return why;
    return k == n || offset_part(s + k, n - k) ? VL_DT_OK : VL_DT_SHAPE;
}

int vl_valid_dto(const char *s, size_t n) { return vl_dto_check(s, n) == VL_DT_OK; }

int vl_valid_local_dt(const char *s, size_t n) { return vl_local_dt_check(s, n) == VL_DT_OK; }

int vl_valid_duration(const char *s, size_t n) {
    size_t i = 0;
    int any = 0;
    if (i < n && s[i] == '-') i++;
    if (i >= n || s[i] != 'P') return 0;
    i++;
    /* [n D] */
    size_t j = i;
    while (j < n && s[j] >= '0' && s[j] <= '9') j++;
    if (j > i) {
        if (j >= n || s[j] != 'D') return 0;
        i = j + 1;
        any = 1;
    }
    if (i == n) return any;
    if (s[i] != 'T') return 0;
    i++;
    int tany = 0;
    static const char units[] = "HMS";
    int u = 0;
    while (i < n) {
        j = i;
        while (j < n && s[j] >= '0' && s[j] <= '9') j++;
        if (j == i) return 0;
        if (j < n && s[j] == '.') {             /* fraction: seconds only */
            size_t f = ++j;
            while (j < n && s[j] >= '0' && s[j] <= '9') j++;
            if (j == f || j >= n || s[j] != 'S') return 0;
        }
        if (j >= n) return 0;
        while (u < 3 && units[u] != s[j]) u++;
        if (u == 3) return 0;
        u++;
        i = j + 1;
        tany = 1;
    }
    return tany;
}

int vl_enum_index(const char *const *e, const char *s, size_t n) {
    for (int i = 0; e[i]; i++)
        if (strlen(e[i]) == n && memcmp(e[i], s, n) == 0) return i;
    return -1;
}

static int lower_ascii(int c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

int vl_enum_index_nocase(const char *const *e, const char *s, size_t n) {
    for (int i = 0; e[i]; i++) {
        size_t j = 0;
        if (strlen(e[i]) != n) continue;
        while (j < n && lower_ascii((unsigned char)e[i][j]) == lower_ascii((unsigned char)s[j])) j++;
        if (j == n) return i;
    }
    return -1;
}
