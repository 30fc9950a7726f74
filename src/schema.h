/* The one table that describes every model type: field, type, nullability, enum, range.
 * Adding a field is one line in schema.c. */
#ifndef VL_SCHEMA_H
#define VL_SCHEMA_H

#include <stddef.h>

typedef enum {
    VT_STRING,    /* Edm.String */
    VT_INT32,     /* Edm.Int32 within [min, max] */
    VT_BOOL,      /* Edm.Boolean */
    VT_DTO,       /* Edm.DateTimeOffset: 2021-05-11T22:57:17Z or +hh:mm */
    VT_DURATION,  /* Edm.Duration: ISO 8601, PT20M */
    VT_ENUM,      /* evolvable enum: members in enums */
    VT_DTTZ,      /* graph.dateTimeTimeZone {dateTime, timeZone} */
    VT_BODY,      /* graph.itemBody {contentType, content} */
    VT_STRLIST,   /* Collection(Edm.String) */
    VT_ANNOT      /* OData annotation kept as given (@odata.context) */
} vl_vtype;

/* Limits the models are built for, checked at compile time (schema.c, model.c). */
#define VL_MAX_FIELDS 32                       /* a model's change mask: one bit per field */
#define VL_MAX_NAMES (3 * VL_MAX_FIELDS + 1)   /* per field its name, wire name and alias; @odata.type */

/* Static assertion in C99: an array of negative size, named after the rule it checks. */
#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define VL_STATIC_ASSERT(cond, rule) _Static_assert(cond, #rule)
#else
#define VL_STATIC_ASSERT(cond, rule) typedef char vl_static_assert_##rule[(cond) ? 1 : -1]
#endif

#define VF_NULLABLE 1   /* CSDL Nullable=true */
#define VF_REQUIRED 2   /* needed to create one (viva.check) */

typedef struct vl_field {
    const char *name;           /* Graph JSON name as exposed to Lua */
    const char *wire;           /* name written to JSON when it differs (NULL: name) */
    const char *alias;          /* other spelling accepted on input (NULL: none) */
    unsigned char type, flags;
    const char *const *enums;   /* VT_ENUM (and VT_BODY contentType): NULL-terminated */
    long min, max;              /* VT_INT32 range */
} vl_field;

typedef struct vl_kind {
    const char *kind;           /* "assignment" */
    const char *type_name;      /* "learningAssignment" */
    const char *odata_type;     /* written as @odata.type; NULL for base/provider/content */
    const char *full_type;      /* "#microsoft.graph.<type_name>" */
    const char *family;         /* "activity" | "provider" | "content" */
    const vl_field *fields;     /* fields[0] is id */
    int nfields;
} vl_kind;

enum { VL_K_ASSIGNMENT, VL_K_SELF, VL_K_ACTIVITY, VL_K_PROVIDER, VL_K_CONTENT, VL_NKINDS };

extern const vl_kind vl_kinds[VL_NKINDS];
extern const char *const vl_body_types[];     /* bodyType: text, html */

/* Formats (1 = valid). */
int vl_valid_dto(const char *s, size_t n);        /* DateTimeOffset with Z or offset */
int vl_valid_local_dt(const char *s, size_t n);   /* dateTimeTimeZone.dateTime */
int vl_valid_duration(const char *s, size_t n);   /* Edm.Duration */
int vl_enum_index(const char *const *e, const char *s, size_t n);   /* -1 if not a member */
int vl_enum_index_nocase(const char *const *e, const char *s, size_t n);   /* ASCII case ignored */

/* What is wrong with a date-time string: the form, or (in the right form) the values. */
enum { VL_DT_OK = 0, VL_DT_SHAPE, VL_DT_DATE /* not on the calendar */, VL_DT_TIME /* not a time of day */ };
int vl_dto_check(const char *s, size_t n);        /* DateTimeOffset */
int vl_local_dt_check(const char *s, size_t n);   /* dateTimeTimeZone.dateTime */

#endif
