/* Models: learningAssignment, learningSelfInitiatedCourse, learningCourseActivity (base),
 * learningProvider, learningContent as userdata driven by the schema in schema.c.
 *
 * Layout: one userdata per model, a small C header (kind, change bits) and one Lua
 * user value per schema field (user value i+2 = field i; user value 1 = table of unknown
 * properties, or nil). Field values are plain Lua values (strings are shared with Lua's
 * string table, so identical ids cost nothing); explicit JSON null is the lightuserdata
 * NULL (= viva.null = cjson.null). The two complex types are packed into one short string
 * "<flags>A\0B" (interned too), or kept as a table when they carry extra keys. Nothing is
 * malloc'd: every byte belongs to Lua, so errors (longjmp) leak nothing and no __gc is
 * needed. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#include "core.h"
#include "json.h"
#include "model.h"
#include "schema.h"

typedef struct vl_model {
    unsigned int kind;
    unsigned int dirty;          /* bit i: field i changed since construction/decode/clean */
} vl_model;
#define BIT(i) (1U << (i))
VL_STATIC_ASSERT(sizeof(unsigned int) * CHAR_BIT >= VL_MAX_FIELDS, change_mask_has_a_bit_per_field);

/* Registry / metatable keys: addresses of these constants (never written). */
static const char vl_model_tag = 't';                 /* metatable[&tag] = kind index */
static const char vl_mt_keys[VL_NKINDS] = { 0 };      /* registry[&vl_mt_keys[k]] = metatable */
static const char vl_names_keys[VL_NKINDS] = { 0 };   /* registry[&vl_names_keys[k]] = names */
static const char vl_guess_key = 'g';                 /* registry[&guess] = property -> family */
static const char vl_ptrmap_key = 'p';                /* names[&ptrmap] = pointer map userdata */

/* Field lookup by the address of an interned key string: Lua interns short strings, so a key
 * that cjson produced is the very string object the names table holds (and keeps alive).
 * A miss falls back to the names table, so this is only a shortcut. */
#define PTRMAP_SLOTS 128
/* every name of a kind has a slot, and one stays free (open addressing) */
VL_STATIC_ASSERT(PTRMAP_SLOTS > VL_MAX_NAMES, name_map_has_a_slot_per_name_and_one_free);
typedef struct vl_ptrmap {
    const void *key[PTRMAP_SLOTS];
    int idx[PTRMAP_SLOTS];
} vl_ptrmap;

static unsigned ptrmap_slot(const void *p) {
    unsigned long long v = (unsigned long long)(size_t)p;
    return (unsigned)((((v >> 3) * 0x9E3779B97F4A7C15ULL) >> 32) % PTRMAP_SLOTS);
}

static void ptrmap_put(vl_ptrmap *pm, const void *p, int idx) {
    unsigned h = ptrmap_slot(p);
    for (int n = 0; n < PTRMAP_SLOTS; n++, h = (h + 1) % PTRMAP_SLOTS)
        if (!pm->key[h] || pm->key[h] == p) {
            pm->key[h] = p;
            pm->idx[h] = idx;
            return;
        }
    /* full: the key stays out of the shortcut (lookups fall back to the names table) */
}

static int ptrmap_get(const vl_ptrmap *pm, const void *p, int *idx) {
    unsigned h = ptrmap_slot(p);
    for (int n = 0; n < PTRMAP_SLOTS && pm->key[h]; n++, h = (h + 1) % PTRMAP_SLOTS)
        if (pm->key[h] == p) {
            *idx = pm->idx[h];
            return 1;
        }
    return 0;
}

#define MODE_LENIENT 0   /* reading server data: keep unknown enum members, odd formats */
#define MODE_STRICT  1   /* constructors, assignment, viva.check */
#define MODE_ADOPT   2   /* lenient, and the input table is ours (fresh from cjson): no copies */

#define UV_EXTRAS 1
#define UV_FIELD(i) ((i) + 2)

#define VL_STR_(x) #x
#define VL_STR(x) VL_STR_(x)

#define ISNULL(L, i) (lua_type((L), (i)) == LUA_TLIGHTUSERDATA && lua_touserdata((L), (i)) == NULL)

/* ------------------------------------------------------------------ helpers */

/* The model at idx, or NULL. The tag names the kind, and the metatable must then be that
 * kind's own: the metatable is reachable from Lua, so a tag copied onto another userdata's
 * metatable (or changed) proves nothing. */
static vl_model *tomodel(lua_State *L, int idx) {
    vl_model *m = NULL;
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) != LUA_TUSERDATA || !lua_getmetatable(L, idx)) return NULL;
    if (lua_rawgetp(L, -1, &vl_model_tag) == LUA_TNUMBER && lua_isinteger(L, -1)) {
        lua_Integer k = lua_tointeger(L, -1);
        if (k >= 0 && k < VL_NKINDS) {
            lua_rawgetp(L, LUA_REGISTRYINDEX, &vl_mt_keys[k]);
            if (lua_rawequal(L, -1, -3)) m = (vl_model *)lua_touserdata(L, idx);
            lua_pop(L, 1);
            if (m && m->kind != (unsigned int)k) m = NULL;
        }
    }
    lua_pop(L, 2);
    return m;
}

static vl_model *checkmodel(lua_State *L, int idx) {
    vl_model *m = tomodel(L, idx);
    if (!m) luaL_typeerror(L, idx, "vivalearning model");
    return m;
}

const char *vl_model_kind(lua_State *L, int idx) {
    vl_model *m = tomodel(L, idx);
    return m ? vl_kinds[m->kind].kind : NULL;
}

static int find_field(const vl_kind *k, const char *s, size_t n) {
    for (int i = 0; i < k->nfields; i++) {
        const vl_field *f = &k->fields[i];
        if ((strlen(f->name) == n && memcmp(f->name, s, n) == 0) ||
            (f->wire && strlen(f->wire) == n && memcmp(f->wire, s, n) == 0) ||
            (f->alias && strlen(f->alias) == n && memcmp(f->alias, s, n) == 0))
            return i;
    }
    return -1;
}

static int lower(int c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

/* Case-insensitive edit distance (capped inputs). */
static int edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    int row[65];
    if (la > 64 || lb > 64) return 1000;
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int prev = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int cur = row[j];
            int cost = lower((unsigned char)a[i - 1]) == lower((unsigned char)b[j - 1]) ? 0 : 1;
            int v = prev + cost;
            if (row[j] + 1 < v) v = row[j] + 1;
            if (row[j - 1] + 1 < v) v = row[j - 1] + 1;
            row[j] = v;
            prev = cur;
        }
    }
    return row[lb];
}

static const char *suggest(const vl_kind *k, const char *name) {
    const char *best = NULL;
    int bestd = 1000;
    size_t n = strlen(name);
    for (int i = 0; i < k->nfields; i++) {
        if (k->fields[i].name[0] == '@') continue;
        int d = edit_distance(name, k->fields[i].name);
        if (d < bestd) { bestd = d; best = k->fields[i].name; }
    }
    int limit = (int)(n / 3);
    if (limit < 2) limit = 2;
    return bestd <= limit ? best : NULL;
}

/* Pushes a short printable rendering of the value at idx (for messages). */
static void push_repr(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TNONE:
    case LUA_TNIL: lua_pushliteral(L, "nil"); return;
    case LUA_TBOOLEAN: lua_pushstring(L, lua_toboolean(L, idx) ? "true" : "false"); return;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) lua_pushfstring(L, "%I", (LUAI_UACINT)lua_tointeger(L, idx));
        else lua_pushfstring(L, "%f", (LUAI_UACNUMBER)lua_tonumber(L, idx));
        return;
    case LUA_TSTRING: {
        size_t n;
        const unsigned char *s = (const unsigned char *)lua_tolstring(L, idx, &n);
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        luaL_addchar(&b, '"');
        /* printable ASCII and valid UTF-8 as they are, anything else as \xNN, so that the
         * message itself is always valid UTF-8 (it may end up in a JSON results file) */
        for (size_t i = 0; i < n && i < 60;) {
            size_t k = 1;
            if (s[i] >= 0x80) {
                k = s[i] >= 0xF0 ? 4 : s[i] >= 0xE0 ? 3 : 2;
                if (i + k > n || !vl_utf8_valid((const char *)s + i, k)) k = 0;
            }
            if (k == 0 || s[i] < 0x20 || s[i] == 0x7f || s[i] == '"' || s[i] == '\\') {
                char e[8];
                snprintf(e, sizeof e, "\\x%02x", s[i]);
                luaL_addstring(&b, e);
                i++;
            } else {
                luaL_addlstring(&b, (const char *)s + i, k);
                i += k;
            }
        }
        if (n > 60) luaL_addstring(&b, "...");
        luaL_addchar(&b, '"');
        if (n > 60) {
            char e[40];
            snprintf(e, sizeof e, " (%zu bytes)", n);
            luaL_addstring(&b, e);
        }
        luaL_pushresult(&b);
        return;
    }
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) { lua_pushliteral(L, "viva.null"); return; }
        break;
    default: break;
    }
    lua_pushstring(L, luaL_typename(L, idx));
}

void vl_push_repr(lua_State *L, int idx) { push_repr(L, idx); }

/* The rule a field follows, as used in messages ("integer 0..100 expected"). */
static void rule_text(const vl_field *f, char *buf, size_t sz) {
    switch (f->type) {
    case VT_STRING:
    case VT_ANNOT: snprintf(buf, sz, "string expected"); break;
    case VT_INT32: snprintf(buf, sz, "integer %ld..%ld expected", f->min, f->max); break;
    case VT_BOOL: snprintf(buf, sz, "boolean expected"); break;
    case VT_DTO: snprintf(buf, sz, "DateTimeOffset string with Z or +hh:mm offset expected"); break;
    case VT_DURATION: snprintf(buf, sz, "ISO 8601 duration string expected (e.g. PT20M)"); break;
    case VT_ENUM: {
        size_t o = (size_t)snprintf(buf, sz, "one of ");
        for (int i = 0; f->enums[i] && o < sz; i++)
            o += (size_t)snprintf(buf + o, sz - o, "%s%s", i ? ", " : "", f->enums[i]);
        if (o < sz) snprintf(buf + o, sz - o, " expected");
        break;
    }
    case VT_DTTZ: snprintf(buf, sz, "dateTimeTimeZone table {dateTime=, timeZone=} expected"); break;
    case VT_BODY: snprintf(buf, sz, "itemBody table {contentType=, content=} or string expected"); break;
    case VT_STRLIST: snprintf(buf, sz, "array of strings expected"); break;
    default: snprintf(buf, sz, "valid value expected"); break;
    }
}

/* Error sink: list == 0 raises at the first problem; otherwise appends
 * {field=, problem=, value=} to the table at index list. */
typedef struct sink {
    int list;
    int n;
} sink;

static int report(lua_State *L, sink *S, const char *field, const char *problem, int vidx, int with_value) {
    if (vidx) vidx = lua_absindex(L, vidx);
    if (S->list) {
        lua_createtable(L, 0, 3);
        lua_pushstring(L, field);
        lua_setfield(L, -2, "field");
        lua_pushstring(L, problem);
        lua_setfield(L, -2, "problem");
        if (vidx) {
            lua_pushvalue(L, vidx);
            lua_setfield(L, -2, "value");
        }
        lua_rawseti(L, S->list, ++S->n);
        return 0;
    }
    if (with_value) {
        push_repr(L, vidx);
        return luaL_error(L, "%s: %s, got %s", field, problem, lua_tostring(L, -1));
    }
    return luaL_error(L, "%s: %s", field, problem);
}

static int report_rule(lua_State *L, sink *S, const char *field, const vl_field *f, int vidx) {
    char rule[260];
    rule_text(f, rule, sizeof rule);
    if (f->type == VT_ENUM && lua_type(L, vidx) == LUA_TSTRING) {
        /* a member in the wrong case: name the right spelling */
        size_t n, o = strlen(rule);
        const char *s = lua_tolstring(L, vidx, &n);
        int i = vl_enum_index_nocase(f->enums, s, n);
        if (i >= 0) snprintf(rule + o, sizeof rule - o, " (did you mean '%s'?)", f->enums[i]);
    }
    return report(L, S, field, rule, vidx, 1);
}

/* A date-time whose form is right but whose values are not: says which part. */
static const char *dt_problem(int why) {
    return why == VL_DT_DATE ? "not a calendar date" : why == VL_DT_TIME ? "not a time of day (00:00:00 to 23:59:59)" : NULL;
}

/* ------------------------------------------------------------------ JSON-ish values */

/* Pushes a validated deep copy of an arbitrary JSON value (unknown properties): strings
 * must be UTF-8, numbers finite (integral floats become integers), tables nest at most
 * VL_JSON_MAX_DEPTH deep. Reports (returns 0, pushes nothing) on failure. */
static int copy_json(lua_State *L, sink *S, const char *field, int idx, int depth) {
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN:
        lua_pushvalue(L, idx);
        return 1;
    case LUA_TNUMBER: {
        if (lua_isinteger(L, idx)) { lua_pushvalue(L, idx); return 1; }
        lua_Number d = lua_tonumber(L, idx);
        lua_Integer i;
        if (d != d || d - d != 0) return report(L, S, field, "finite number expected", idx, 1);
        if (d > -9007199254740992.0 && d < 9007199254740992.0 && lua_numbertointeger(d, &i) &&
            (lua_Number)i == d)
            lua_pushinteger(L, i);
        else
            lua_pushvalue(L, idx);
        return 1;
    }
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        if (!vl_utf8_valid(s, n)) return report(L, S, field, "valid UTF-8 string expected", idx, 1);
        lua_pushvalue(L, idx);
        return 1;
    }
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) { lua_pushvalue(L, idx); return 1; }
        break;
    case LUA_TTABLE: {
        if (depth >= VL_JSON_MAX_DEPTH)
            return report(L, S, field, "JSON value nested at most " VL_STR(VL_JSON_MAX_DEPTH) " levels deep expected", idx, 1);
        luaL_checkstack(L, 6, "copy");
        lua_newtable(L);
        int out = lua_gettop(L);
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            int kt = lua_type(L, -2);
            if (kt != LUA_TSTRING && kt != LUA_TNUMBER) {
                lua_pop(L, 3);
                return report(L, S, field, "table with string or number keys expected", idx, 1);
            }
            if (kt == LUA_TSTRING) {
                size_t n;
                const char *s = lua_tolstring(L, -2, &n);
                if (!vl_utf8_valid(s, n)) {
                    lua_pop(L, 3);
                    return report(L, S, field, "keys in valid UTF-8 expected", idx, 1);
                }
            }
            if (!copy_json(L, S, field, -1, depth + 1)) {
                lua_pop(L, 3);
                return 0;
            }
            lua_pushvalue(L, -3);
            lua_insert(L, -2);
            lua_rawset(L, out);
            lua_pop(L, 1);
        }
        return 1;
    }
    default:
        break;
    }
    return report(L, S, field, "JSON value expected", idx, 1);
}

/* Validates like copy_json without copying (for tables nobody else holds). Returns 1, or
 * reports and returns 0. */
static int check_json(lua_State *L, sink *S, const char *field, int idx, int depth) {
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) != LUA_TTABLE) {
        if (!copy_json(L, S, field, idx, depth)) return 0;
        lua_pop(L, 1);
        return 1;
    }
    if (depth >= VL_JSON_MAX_DEPTH)
        return report(L, S, field, "JSON value nested at most " VL_STR(VL_JSON_MAX_DEPTH) " levels deep expected", idx, 1);
    luaL_checkstack(L, 4, "check");
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int kt = lua_type(L, -2);
        size_t n;
        const char *s = kt == LUA_TSTRING ? lua_tolstring(L, -2, &n) : NULL;
        if ((kt != LUA_TSTRING && kt != LUA_TNUMBER) || (s && !vl_utf8_valid(s, n))) {
            lua_pop(L, 2);
            return report(L, S, field, "table with string (UTF-8) or number keys expected", idx, 1);
        }
        if (!check_json(L, S, field, -1, depth + 1)) {
            lua_pop(L, 2);
            return 0;
        }
        lua_pop(L, 1);
    }
    return 1;
}

/* copy_json, or for MODE_ADOPT tables check_json and push the table itself. */
static int take_json(lua_State *L, sink *S, int mode, const char *field, int idx, int depth) {
    if (mode == MODE_ADOPT && lua_type(L, idx) == LUA_TTABLE) {
        if (!check_json(L, S, field, idx, depth)) return 0;
        lua_pushvalue(L, idx);
        return 1;
    }
    return copy_json(L, S, field, idx, depth);
}

/* Deep equality of plain values (tables compared by content). */
static int deep_equal(lua_State *L, int a, int b, int depth) {
    a = lua_absindex(L, a);
    b = lua_absindex(L, b);
    if (lua_type(L, a) != LUA_TTABLE || lua_type(L, b) != LUA_TTABLE) return lua_rawequal(L, a, b);
    if (depth > VL_JSON_MAX_DEPTH) return 0;
    luaL_checkstack(L, 4, "compare");
    lua_Integer na = 0, nb = 0;
    lua_pushnil(L);
    while (lua_next(L, a)) {
        na++;
        lua_pushvalue(L, -2);
        lua_rawget(L, b);
        int eq = deep_equal(L, -1, -2, depth + 1);
        lua_pop(L, 2);
        if (!eq) { lua_pop(L, 1); return 0; }
    }
    lua_pushnil(L);
    while (lua_next(L, b)) { nb++; lua_pop(L, 1); }
    return na == nb;
}

/* ------------------------------------------------------------------ complex types */

/* Sub-field names of the two complex types, in output order. */
static const char *sub_a(const vl_field *f) { return f->type == VT_DTTZ ? "dateTime" : "contentType"; }
static const char *sub_b(const vl_field *f) { return f->type == VT_DTTZ ? "timeZone" : "content"; }

enum { SUB_ABSENT = 0, SUB_NULL = 1, SUB_STRING = 2 };

typedef struct packed {
    int as, bs;
    const char *a, *b;
    size_t an, bn;
} packed;

static void unpack(const char *s, size_t n, packed *p) {
    unsigned flags = (unsigned char)s[0];
    const char *sep = memchr(s + 1, '\0', n - 1);
    p->as = (int)(flags & 3);
    p->bs = (int)((flags >> 2) & 3);
    p->a = s + 1;
    p->an = (size_t)(sep - (s + 1));
    p->b = sep + 1;
    p->bn = n - (size_t)(sep + 1 - s);
}

/* Checks one sub-field value at vidx; returns its state or -1 after reporting. */
static void sub_report(lua_State *L, sink *S, const vl_field *f, const char *fname, int which,
                       const char *problem, int vidx, int with_value) {
    char path[160];
    snprintf(path, sizeof path, "%s.%s", fname, which ? sub_b(f) : sub_a(f));
    report(L, S, path, problem, vidx, with_value);
}

static int check_sub(lua_State *L, sink *S, int mode, const vl_field *f, const char *fname, int which, int vidx,
                     int t, const char **sp, size_t *np) {
    int required = (f->type == VT_DTTZ && which == 0);
    if (t == LUA_TNIL) {
        if (mode == MODE_STRICT && required) {
            sub_report(L, S, f, fname, which, "string expected (required)", vidx, 1);
            return -1;
        }
        return SUB_ABSENT;
    }
    if (t == LUA_TLIGHTUSERDATA && lua_touserdata(L, vidx) == NULL) {
        if (mode == MODE_STRICT && required) {
            sub_report(L, S, f, fname, which, "non-null string expected", vidx, 1);
            return -1;
        }
        return SUB_NULL;
    }
    const char *rule = f->type == VT_DTTZ
        ? (which == 0 ? "date-time string expected (e.g. 2022-09-22T16:05:00.0000000)" : "time zone name string expected")
        : (which == 0 ? "one of text, html expected" : "string expected");
    if (t != LUA_TSTRING) {
        sub_report(L, S, f, fname, which, rule, vidx, 1);
        return -1;
    }
    size_t n;
    const char *s = lua_tolstring(L, vidx, &n);
    if (!vl_utf8_valid(s, n)) {
        sub_report(L, S, f, fname, which, "valid UTF-8 string expected", vidx, 1);
        return -1;
    }
    if (mode == MODE_STRICT) {
        if (memchr(s, '\0', n)) {
            sub_report(L, S, f, fname, which, "string without NUL bytes expected", vidx, 1);
            return -1;
        }
        int ok = 1;
        char prob[120];
        if (f->type == VT_DTTZ && which == 0) {
            int why = vl_local_dt_check(s, n);
            ok = why == VL_DT_OK;
            if (dt_problem(why)) rule = dt_problem(why);
        } else if (f->type == VT_DTTZ) {
            ok = n > 0;
        } else if (which == 0 && vl_enum_index(vl_body_types, s, n) < 0) {
            int i = vl_enum_index_nocase(vl_body_types, s, n);
            ok = 0;
            if (i >= 0) {
                snprintf(prob, sizeof prob, "%s (did you mean '%s'?)", rule, vl_body_types[i]);
                rule = prob;
            }
        }
        if (!ok) {
            sub_report(L, S, f, fname, which, rule, vidx, 1);
            return -1;
        }
    }
    *sp = s;
    *np = n;
    return SUB_STRING;
}

/* Converts a dateTimeTimeZone / itemBody value (table, or string shorthand for itemBody).
 * Pushes the stored form and returns 1, or reports and returns 0. */
static int convert_complex(lua_State *L, sink *S, int mode, const vl_field *f, const char *fname, int vidx) {
    vidx = lua_absindex(L, vidx);
    if (f->type == VT_BODY && mode == MODE_STRICT && lua_type(L, vidx) == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(L, vidx, &n);
        if (!vl_utf8_valid(s, n)) return report(L, S, fname, "valid UTF-8 string expected", vidx, 1);
        if (memchr(s, '\0', n)) return report(L, S, fname, "string without NUL bytes expected", vidx, 1);
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        luaL_addchar(&b, (char)(SUB_STRING | (SUB_STRING << 2)));
        luaL_addstring(&b, "text");
        luaL_addchar(&b, '\0');
        luaL_addlstring(&b, s, n);
        luaL_pushresult(&b);
        return 1;
    }
    if (lua_type(L, vidx) != LUA_TTABLE) return report_rule(L, S, fname, f, vidx);
    luaL_checkstack(L, 8, "complex");
    int ta = lua_getfield(L, vidx, sub_a(f));
    int tb = lua_getfield(L, vidx, sub_b(f));
    int ib = lua_gettop(L), ia = ib - 1;
    int before = S->n;
    const char *a = NULL, *bb = NULL;
    size_t an = 0, bn = 0;
    int as = check_sub(L, S, mode, f, fname, 0, ia, ta, &a, &an);
    int bs = check_sub(L, S, mode, f, fname, 1, ib, tb, &bb, &bn);
    if (as < 0 || bs < 0) {
        lua_pop(L, 2);
        return 0;
    }
    /* other keys: none when the key count matches (the common case, no string compares) */
    int extra = 0, count = 0;
    lua_pushnil(L);
    while (lua_next(L, vidx)) {
        lua_pop(L, 1);
        count++;
    }
    if (count != (as != SUB_ABSENT) + (bs != SUB_ABSENT)) lua_pushnil(L);
    else count = -1;
    while (count >= 0 && lua_next(L, vidx)) {
        if (lua_type(L, -2) == LUA_TSTRING) {
            const char *key = lua_tostring(L, -2);
            if (strcmp(key, sub_a(f)) == 0 || strcmp(key, sub_b(f)) == 0) {
                lua_pop(L, 1);
                continue;
            }
            if (mode == MODE_STRICT && key[0] != '@') {
                char path[200], prob[200];
                snprintf(path, sizeof path, "%s.%s", fname, key);
                snprintf(prob, sizeof prob, "unknown key (%s and %s expected)", sub_a(f), sub_b(f));
                report(L, S, path, prob, -1, 1);
                lua_pop(L, 1);
                continue;
            }
        } else {
            report(L, S, fname, "table with string keys expected", vidx, 1);
            lua_pop(L, 1);
            continue;
        }
        extra = 1;
        lua_pop(L, 1);
    }
    if (S->n != before) {
        lua_pop(L, 2);
        return 0;
    }
    if (!extra && !(a && memchr(a, '\0', an))) {
        char small[256];
        if (an + bn + 2 <= sizeof small) {
            small[0] = (char)(as | (bs << 2));
            if (an) memcpy(small + 1, a, an);
            small[an + 1] = '\0';
            if (bn) memcpy(small + an + 2, bb, bn);
            lua_pushlstring(L, small, an + bn + 2);
        } else {
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            luaL_addchar(&b, (char)(as | (bs << 2)));
            if (a) luaL_addlstring(&b, a, an);
            luaL_addchar(&b, '\0');
            if (bb) luaL_addlstring(&b, bb, bn);
            luaL_pushresult(&b);
        }
        lua_replace(L, ia);
        lua_pop(L, 1);
        return 1;
    }
    /* table form: a validated copy */
    lua_pop(L, 2);
    return take_json(L, S, mode, fname, vidx, 1);
}

/* Pushes the Lua table form of a stored complex value at sidx (string or table). */
static void push_complex(lua_State *L, const vl_field *f, int sidx) {
    if (lua_type(L, sidx) == LUA_TTABLE) {
        sink S = { 0, 0 };
        copy_json(L, &S, f->name, sidx, 0);
        return;
    }
    size_t n;
    const char *s = lua_tolstring(L, sidx, &n);
    packed p;
    unpack(s, n, &p);
    lua_createtable(L, 0, 2);
    if (p.as == SUB_NULL) lua_pushlightuserdata(L, NULL);
    else if (p.as == SUB_STRING) lua_pushlstring(L, p.a, p.an);
    if (p.as) lua_setfield(L, -2, sub_a(f));
    if (p.bs == SUB_NULL) lua_pushlightuserdata(L, NULL);
    else if (p.bs == SUB_STRING) lua_pushlstring(L, p.b, p.bn);
    if (p.bs) lua_setfield(L, -2, sub_b(f));
}

/* ------------------------------------------------------------------ field conversion */

/* Validates the value at vidx (absolute index) for field f. Returns 2 when that value is to
 * be stored as it is (nothing pushed), 1 after pushing the form to store, or reports
 * (raising, or appending to the sink and returning 0 with nothing pushed). */
static int convert(lua_State *L, sink *S, int mode, const vl_field *f, int vidx) {
    int t = lua_type(L, vidx);
    const char *fname = f->name;
    if (t == LUA_TLIGHTUSERDATA && lua_touserdata(L, vidx) == NULL) {
        if (mode == MODE_STRICT && !(f->flags & VF_NULLABLE))
            return report(L, S, fname, "non-null value expected (field is not nullable)", vidx, 1);
        return 2;
    }
    switch (f->type) {
    case VT_STRING:
    case VT_ANNOT:
    case VT_DTO:
    case VT_DURATION:
    case VT_ENUM: {
        if (t != LUA_TSTRING) return report_rule(L, S, fname, f, vidx);
        size_t n;
        const char *s = lua_tolstring(L, vidx, &n);
        if (!vl_utf8_valid(s, n)) return report(L, S, fname, "valid UTF-8 string expected", vidx, 1);
        if (mode == MODE_STRICT) {
            if (memchr(s, '\0', n)) return report(L, S, fname, "string without NUL bytes expected", vidx, 1);
            int ok = 1;
            if (f->type == VT_DTO) {
                int why = vl_dto_check(s, n);
                if (dt_problem(why)) return report(L, S, fname, dt_problem(why), vidx, 1);
                ok = why == VL_DT_OK;
            } else if (f->type == VT_DURATION) ok = vl_valid_duration(s, n);
            else if (f->type == VT_ENUM) ok = vl_enum_index(f->enums, s, n) >= 0;
            else if ((f->flags & VF_REQUIRED) && n == 0)
                return report(L, S, fname, "non-empty string expected", vidx, 1);
            if (!ok) return report_rule(L, S, fname, f, vidx);
        }
        return 2;
    }
    case VT_INT32: {
        lua_Integer i;
        if (t != LUA_TNUMBER) return report_rule(L, S, fname, f, vidx);
        int isint = lua_isinteger(L, vidx);
        if (isint) {
            i = lua_tointeger(L, vidx);
        } else {
            lua_Number d = lua_tonumber(L, vidx);
            if (!(d >= -2147483648.0 && d <= 2147483647.0) || !lua_numbertointeger(d, &i) || (lua_Number)i != d)
                return report_rule(L, S, fname, f, vidx);
        }
        if (i < -2147483647L - 1 || i > 2147483647L ||
            (mode == MODE_STRICT && (i < f->min || i > f->max)))
            return report_rule(L, S, fname, f, vidx);
        if (isint) return 2;
        lua_pushinteger(L, i);
        return 1;
    }
    case VT_BOOL:
        if (t != LUA_TBOOLEAN) return report_rule(L, S, fname, f, vidx);
        return 2;
    case VT_DTTZ:
    case VT_BODY:
        return convert_complex(L, S, mode, f, fname, vidx);
    case VT_STRLIST: {
        if (t != LUA_TTABLE) return report_rule(L, S, fname, f, vidx);
        lua_Integer n = (lua_Integer)lua_rawlen(L, vidx), count = 0;
        lua_pushnil(L);
        while (lua_next(L, vidx)) {
            lua_pop(L, 1);
            count++;
            if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > n) {
                lua_pop(L, 1);
                return report_rule(L, S, fname, f, vidx);
            }
        }
        if (count != n) return report_rule(L, S, fname, f, vidx);
        int before = S->n, nul = 0;
        char small[512];
        size_t used = 0;                             /* packed into small while it fits */
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, vidx, i);
            size_t sn;
            const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &sn) : NULL;
            const char *problem = !s ? "string expected"
                : !vl_utf8_valid(s, sn) ? "valid UTF-8 string expected"
                : (mode == MODE_STRICT && memchr(s, '\0', sn)) ? "string without NUL bytes expected" : NULL;
            if (problem) {
                char path[160];
                snprintf(path, sizeof path, "%s[%lld]", fname, (long long)i);
                report(L, S, path, problem, -1, 1);
            } else if (memchr(s, '\0', sn)) {
                nul = 1;
            } else if (used + sn + 1 <= sizeof small) {
                small[used++] = i == 1 ? '\1' : '\0';
                memcpy(small + used, s, sn);
                used += sn;
            } else {
                used = sizeof small + 1;             /* does not fit: luaL_Buffer below */
            }
            lua_pop(L, 1);
        }
        if (S->n != before) return 0;
        if (!nul && used <= sizeof small) {
            lua_pushlstring(L, small, used);
            return 1;
        }
        if (nul) {                                   /* server data with NUL bytes: a table */
            if (mode == MODE_ADOPT) return 2;
            lua_createtable(L, (int)n, 0);
            for (lua_Integer i = 1; i <= n; i++) {
                lua_rawgeti(L, vidx, i);
                lua_rawseti(L, -2, i);
            }
            return 1;
        }
        /* packed: "" for [], else "\1" a "\0" b "\0" c (short ones are interned and shared) */
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (lua_Integer i = 1; i <= n; i++) {
            luaL_addchar(&b, i == 1 ? '\1' : '\0');
            lua_rawgeti(L, vidx, i);
            luaL_addvalue(&b);
        }
        luaL_pushresult(&b);
        return 1;
    }
    default:
        break;
    }
    return report_rule(L, S, fname, f, vidx);
}

/* convert, always pushing the value to store on success */
static int convert_push(lua_State *L, sink *S, int mode, const vl_field *f, int vidx) {
    vidx = lua_absindex(L, vidx);
    int r = convert(L, S, mode, f, vidx);
    if (r == 2) lua_pushvalue(L, vidx);
    return r != 0;
}

/* Pushes the Lua value of field fi of the model at ud (fresh tables for complex types). */
/* Pushes a new array from a packed string list at sidx. */
static void push_strlist(lua_State *L, int sidx) {
    size_t n;
    const char *s = lua_tolstring(L, sidx, &n);
    lua_newtable(L);
    if (n == 0) return;
    const char *p = s + 1, *e = s + n;
    lua_Integer i = 0;
    for (;;) {
        const char *q = memchr(p, '\0', (size_t)(e - p));
        lua_pushlstring(L, p, (size_t)((q ? q : e) - p));
        lua_rawseti(L, -2, ++i);
        if (!q) break;
        p = q + 1;
    }
}

static void push_field(lua_State *L, int ud, const vl_field *f, int fi) {
    int t = lua_getiuservalue(L, ud, UV_FIELD(fi));
    if (t == LUA_TNIL || t == LUA_TLIGHTUSERDATA) return;
    if (f->type == VT_STRLIST && t == LUA_TSTRING) {
        push_strlist(L, lua_gettop(L));
        lua_remove(L, -2);
    } else if (f->type == VT_DTTZ || f->type == VT_BODY) {
        push_complex(L, f, lua_gettop(L));
        lua_remove(L, -2);
    } else if (t == LUA_TTABLE) {
        sink S = { 0, 0 };
        copy_json(L, &S, f->name, -1, 0);
        lua_remove(L, -2);
    }
}

/* ------------------------------------------------------------------ construction */

static void push_names(lua_State *L, int kind) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &vl_names_keys[kind]);
}

static vl_model *push_new(lua_State *L, int kind) {
    const vl_kind *k = &vl_kinds[kind];
    vl_model *m = (vl_model *)lua_newuserdatauv(L, sizeof(vl_model), k->nfields + 1);
    memset(m, 0, sizeof *m);
    m->kind = (unsigned int)kind;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &vl_mt_keys[kind]);
    lua_setmetatable(L, -2);
    return m;
}

static void set_extra(lua_State *L, int ud) {   /* [key, value] on top -> extras */
    if (lua_getiuservalue(L, ud, UV_EXTRAS) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_createtable(L, 0, 1);
        lua_pushvalue(L, -1);
        lua_setiuservalue(L, ud, UV_EXTRAS);
    }
    lua_insert(L, -3);
    lua_rawset(L, -3);
    lua_pop(L, 1);
}

/* Fills the model at ud from the table at tidx. names: the kind's lookup table index. */
static void fill(lua_State *L, int ud, int names, int tidx, int mode, sink *S) {
    vl_model *m = (vl_model *)lua_touserdata(L, ud);
    const vl_kind *k = &vl_kinds[m->kind];
    luaL_checkstack(L, 10, "model");
    int vidx = lua_gettop(L) + 2;                 /* the value of each key during the walk */
    int longs[8], nlongs = 0;                     /* slots holding long strings (> 40 bytes) */
    lua_rawgetp(L, names, &vl_ptrmap_key);
    const vl_ptrmap *pm = (const vl_ptrmap *)lua_touserdata(L, -1);   /* kept alive by names */
    lua_pop(L, 1);
    lua_pushnil(L);
    while (lua_next(L, tidx)) {
        int fi = -2;
        const char *ks = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        if (!pm || !ks || !ptrmap_get(pm, ks, &fi)) {
            lua_pushvalue(L, -2);
            if (lua_rawget(L, names) == LUA_TNUMBER) fi = (int)lua_tointeger(L, -1);
            lua_pop(L, 1);
        }
        if (fi >= 0) {                            /* a schema field: the hot path */
            int r = convert(L, S, mode, &k->fields[fi], vidx);
            if (r == 2) {
                if (k->fields[fi].type == VT_STRING && lua_type(L, vidx) == LUA_TSTRING &&
                    lua_rawlen(L, vidx) > 40) {
                    /* equal long strings (e.g. the same logo URL for several themes) are
                     * separate objects in cjson's output: keep one */
                    for (int j = 0; j < nlongs; j++) {
                        lua_getiuservalue(L, ud, longs[j]);
                        if (lua_rawequal(L, -1, vidx)) {
                            lua_replace(L, vidx);
                            break;
                        }
                        lua_pop(L, 1);
                    }
                    if (nlongs < 8) longs[nlongs++] = UV_FIELD(fi);
                }
                lua_setiuservalue(L, ud, UV_FIELD(fi));       /* pops the value itself */
                continue;
            }
            if (r) lua_setiuservalue(L, ud, UV_FIELD(fi));
            lua_pop(L, 1);
            continue;
        }
        if (lua_type(L, -2) != LUA_TSTRING) {
            report(L, S, "?", "field names must be strings", -2, 1);
            lua_pop(L, 1);
            continue;
        }
        size_t kn;
        const char *key = lua_tolstring(L, -2, &kn);
        if (fi == -1) {                           /* @odata.type */
            size_t n = 0;
            const char *v = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
            const char *want = k->odata_type;
            if (!want && (mode == MODE_STRICT || !v)) want = k->full_type;
            if (want && (!v || strcmp(v, want) != 0)) {
                char prob[160];
                snprintf(prob, sizeof prob, "\"%s\" expected", want);
                report(L, S, "@odata.type", prob, -1, 1);
                lua_pop(L, 1);
                continue;
            }
            if (k->odata_type) {              /* implied by the kind */
                lua_pop(L, 1);
                continue;
            }
            /* base activity / provider / content: keep it as given (round trip) */
        } else if (mode == MODE_STRICT && key[0] != '@') {
            const char *best = suggest(k, key);
            const vl_kind *sub = NULL;
            char prob[240];
            if (m->kind == VL_K_ACTIVITY)            /* a subtype's field: the type is not given */
                sub = find_field(&vl_kinds[VL_K_ASSIGNMENT], key, kn) >= 0 ? &vl_kinds[VL_K_ASSIGNMENT]
                    : find_field(&vl_kinds[VL_K_SELF], key, kn) >= 0 ? &vl_kinds[VL_K_SELF] : NULL;
            if (sub) snprintf(prob, sizeof prob, "unknown field of %s (a field of %s: give @odata.type = \"%s\")",
                              k->type_name, sub->type_name, sub->odata_type);
            else if (best) snprintf(prob, sizeof prob, "unknown field of %s (did you mean %s?)", k->type_name, best);
            else snprintf(prob, sizeof prob, "unknown field of %s", k->type_name);
            report(L, S, key, prob, -1, 1);
            lua_pop(L, 1);
            continue;
        }
        if (!vl_utf8_valid(key, kn)) {
            report(L, S, "?", "field names in valid UTF-8 expected", -2, 1);
            lua_pop(L, 1);
            continue;
        }
        if (take_json(L, S, mode, key, -1, 1)) {
            lua_pushvalue(L, -3);
            lua_insert(L, -2);
            set_extra(L, ud);
        }
        lua_pop(L, 1);
    }
}

/* Strict constructor: viva.assignment{...} etc. Upvalue 1: kind index. */
static int m_construct(lua_State *L) {
    int kind = (int)lua_tointeger(L, lua_upvalueindex(1));
    if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    push_names(L, kind);                 /* 2 */
    push_new(L, kind);                   /* 3 */
    if (!lua_isnil(L, 1)) {
        sink S = { 0, 0 };
        fill(L, 3, 2, 1, MODE_STRICT, &S);
    }
    return 1;
}

/* ------------------------------------------------------------------ family / kind picking */

static int kind_of_odata(const char *t) {
    static const char prefix[] = "#microsoft.graph.learning";
    if (!t || strncmp(t, prefix, sizeof prefix - 1) != 0) return -1;
    for (int i = 0; i < VL_NKINDS; i++)
        if (strcmp(t + sizeof prefix - 1, vl_kinds[i].full_type + sizeof prefix - 1) == 0) return i;
    return -1;
}

static int has_key(lua_State *L, int tidx, const char *key) {
    int t = lua_getfield(L, tidx, key);
    lua_pop(L, 1);
    return t != LUA_TNIL;
}

/* Properties that tell the family of a table without @odata.type. */
static const char *const guess_props[][2] = {
    { "learnerUserId", "activity" }, { "learningContentId", "activity" },
    { "completionPercentage", "activity" }, { "externalcourseActivityId", "activity" },
    { "externalCourseActivityId", "activity" }, { "status", "activity" },
    { "completedDateTime", "activity" }, { "learningProviderId", "activity" },
    { "displayName", "provider" }, { "squareLogoWebUrlForDarkTheme", "provider" },
    { "longLogoWebUrlForDarkTheme", "provider" }, { "squareLogoWebUrlForLightTheme", "provider" },
    { "longLogoWebUrlForLightTheme", "provider" }, { "isCourseActivitySyncEnabled", "provider" },
    { "loginWebUrl", "provider" },
    { "externalId", "content" }, { "contentWebUrl", "content" }, { "languageTag", "content" },
    { "title", "content" }, { "skillTags", "content" }, { "duration", "content" },
};

static const char *family_of_context(const char *ctx);

/* Family of a table without @odata.type: from @odata.context, else from its properties
 * (one walk over its keys); NULL if none fits. */
static const char *guess_family(lua_State *L, int tidx) {
    const char *found = NULL;
    lua_getfield(L, tidx, "@odata.context");
    found = family_of_context(lua_tostring(L, -1));
    lua_pop(L, 1);
    if (found) return found;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &vl_guess_key);
    int g = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, tidx)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        if (lua_rawget(L, g) == LUA_TLIGHTUSERDATA) {
            found = (const char *)lua_touserdata(L, -1);   /* a constant string */
            lua_pop(L, 2);
            break;
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return found;
}

static const char *family_of_context(const char *ctx) {
    if (!ctx) return NULL;
    if (strstr(ctx, "learningCourseActivities")) return "activity";
    if (strstr(ctx, "learningContents")) return "content";
    if (strstr(ctx, "learningProviders")) return "provider";
    return NULL;
}

/* Lenient model from the table at tidx (raises on invalid data; run protected). */
static void from_table(lua_State *L, int tidx, const char *family, int mode) {
    tidx = lua_absindex(L, tidx);
    if (lua_type(L, tidx) != LUA_TTABLE) {
        lua_pushfstring(L, "JSON object expected for a model, got %s", luaL_typename(L, tidx));
        lua_error(L);
    }
    lua_getfield(L, tidx, "@odata.type");
    const char *ot = lua_tostring(L, -1);
    int kind = kind_of_odata(ot);
    if (kind < 0) {
        if (!family) family = guess_family(L, tidx);
        if (!family && ot && strncmp(ot, "#microsoft.graph.learning", 25) == 0) family = "activity";
        if (!family) luaL_error(L, "cannot tell the model type: no known @odata.type and no telling property");
        if (strcmp(family, "activity") == 0) kind = VL_K_ACTIVITY;
        else if (strcmp(family, "provider") == 0) kind = VL_K_PROVIDER;
        else if (strcmp(family, "content") == 0) kind = VL_K_CONTENT;
        else luaL_error(L, "unknown model family '%s'", family);
    } else if (family && strcmp(family, vl_kinds[kind].family) != 0) {
        luaL_error(L, "@odata.type: %s given where a %s was expected", ot, family);
    }
    lua_pop(L, 1);
    push_names(L, kind);
    int names = lua_gettop(L);
    push_new(L, kind);
    sink S = { 0, 0 };
    fill(L, names + 1, names, tidx, mode, &S);
    lua_remove(L, names);
}

static int from_table_protected(lua_State *L) {
    from_table(L, 1, lua_tostring(L, 2), lua_toboolean(L, 3) ? MODE_ADOPT : MODE_LENIENT);
    return 1;
}

int vl_model_from_table(lua_State *L, int tidx, const char *family) {
    int st;
    tidx = lua_absindex(L, tidx);
    lua_pushcfunction(L, from_table_protected);
    lua_pushvalue(L, tidx);
    if (family) lua_pushstring(L, family);
    else lua_pushnil(L);
    if ((st = lua_pcall(L, 2, 1, 0)) != LUA_OK) {
        if (st == LUA_ERRMEM) lua_error(L);   /* a memory error goes on up, never passes for bad input */
        lua_pushnil(L);
        lua_insert(L, -2);
        return 0;
    }
    return 1;
}

/* viva.decode(json_or_table [, family]) protected body: arg 1 is a table. */
static int decode_protected(lua_State *L) {
    const char *family = lua_tostring(L, 2);
    int adopt = lua_toboolean(L, 3);
    lua_settop(L, 2);
    if (lua_type(L, 1) != LUA_TTABLE) luaL_error(L, "JSON object expected, got %s", luaL_typename(L, 1));
    if (lua_getfield(L, 1, "value") == LUA_TTABLE && !has_key(L, 1, "id")) {
        /* a collection: models in value, other keys kept */
        if (!family) {
            lua_getfield(L, 1, "@odata.context");
            family = family_of_context(lua_tostring(L, -1));
            lua_pop(L, 1);
        }
        lua_newtable(L);                                  /* 4: result */
        lua_pushnil(L);
        while (lua_next(L, 1)) {
            if (lua_type(L, -2) == LUA_TSTRING && strcmp(lua_tostring(L, -2), "value") == 0) {
                lua_pop(L, 1);
                continue;
            }
            sink S = { 0, 0 };
            size_t kn = 0;
            const char *key = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &kn) : NULL;
            if (!key || !vl_utf8_valid(key, kn)) luaL_error(L, "property names in valid UTF-8 expected");
            take_json(L, &S, adopt ? MODE_ADOPT : MODE_LENIENT, key, -1, 1);
            lua_pushvalue(L, -3);
            lua_insert(L, -2);
            lua_rawset(L, 4);
            lua_pop(L, 1);
        }
        lua_Integer n = (lua_Integer)lua_rawlen(L, 3);
        lua_createtable(L, (int)n, 0);                    /* 5: models */
        for (lua_Integer i = 1; i <= n; i++) {
            lua_pushcfunction(L, from_table_protected);
            lua_rawgeti(L, 3, i);
            if (family) lua_pushstring(L, family);
            else lua_pushnil(L);
            lua_pushboolean(L, adopt);
            if (lua_pcall(L, 3, 1, 0) != LUA_OK) {
                lua_pushfstring(L, "value[%I]: %s", (LUAI_UACINT)i, lua_tostring(L, -1));
                lua_error(L);
            }
            lua_rawseti(L, 5, i);
        }
        lua_setfield(L, 4, "value");
        return 1;
    }
    lua_pop(L, 1);
    from_table(L, 1, family, adopt ? MODE_ADOPT : MODE_LENIENT);
    return 1;
}

static int m_decode(lua_State *L) {
    int t = lua_type(L, 1);
    const char *family = luaL_optstring(L, 2, NULL);
    if (family && strcmp(family, "activity") && strcmp(family, "provider") && strcmp(family, "content"))
        return luaL_argerror(L, 2, "'activity', 'provider' or 'content' expected");
    if (t != LUA_TSTRING && t != LUA_TTABLE) return luaL_typeerror(L, 1, "JSON string or table");
    lua_settop(L, 2);
    lua_pushcfunction(L, decode_protected);
    if (t == LUA_TSTRING) {
        vl_json_push_decoder(L);                    /* the cjson.safe instance catches errors */
        lua_pushvalue(L, 1);
        lua_call(L, 1, 2);
        if (lua_isnil(L, -2)) return 2;
        lua_pop(L, 1);
    } else {
        lua_pushvalue(L, 1);
    }
    lua_pushvalue(L, 2);
    lua_pushboolean(L, t == LUA_TSTRING);          /* a fresh table from cjson: adopt it */
    if (lua_pcall(L, 3, 1, 0) != LUA_OK) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    return 1;
}

/* viva.check(kind, tbl) -> true | false, { {field=, problem=, value=}, ... } */
static int m_check(lua_State *L) {
    static const char *const kinds[] = { "assignment", "self_initiated", "activity", "provider", "content", NULL };
    int kind = luaL_checkoption(L, 1, NULL, kinds);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    lua_newtable(L);                                    /* 3: problems */
    sink S = { 3, 0 };
    if (kind == VL_K_ACTIVITY) {
        lua_getfield(L, 2, "@odata.type");
        int k = kind_of_odata(lua_tostring(L, -1));
        if (k != VL_K_ASSIGNMENT && k != VL_K_SELF) {
            report(L, &S, "@odata.type", "\"#microsoft.graph.learningAssignment\" or "
                   "\"#microsoft.graph.learningSelfInitiatedCourse\" expected", -1, 1);
        } else {
            kind = k;
        }
        lua_pop(L, 1);
    }
    if (kind != VL_K_ACTIVITY) {
        const vl_kind *k = &vl_kinds[kind];
        push_names(L, kind);                            /* 4 */
        push_new(L, kind);                              /* 5 */
        fill(L, 5, 4, 2, MODE_STRICT, &S);
        for (int i = 0; i < k->nfields; i++) {
            const vl_field *f = &k->fields[i];
            if (!(f->flags & VF_REQUIRED)) continue;
            int t = lua_getiuservalue(L, 5, UV_FIELD(i));
            lua_pop(L, 1);
            if (t != LUA_TNIL) continue;
            /* absent (not reported yet as invalid) */
            int given = has_key(L, 2, f->name) || (f->alias && has_key(L, 2, f->alias));
            if (!given) report(L, &S, f->name, "required field missing", 0, 0);
        }
    }
    if (S.n == 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushboolean(L, 0);
    lua_pushvalue(L, 3);
    return 2;
}

/* ------------------------------------------------------------------ changes tables */

/* The PATCH body of an update by id from a plain changes table (arg 1; arg 2: family),
 * validated as assignments to a model's fields are: the family's type, or for activities
 * the type @odata.type names (the base type, with the fields every activity has, when it
 * names none). Raises at the first problem; run protected. */
static int changes_protected(lua_State *L) {
    const char *family = lua_tostring(L, 2);
    int kind;
    lua_settop(L, 2);
    if (strcmp(family, "provider") == 0) {
        kind = VL_K_PROVIDER;
    } else if (strcmp(family, "content") == 0) {
        kind = VL_K_CONTENT;
    } else {
        lua_pushliteral(L, "@odata.type");
        int t = lua_rawget(L, 1);                 /* raw, as fill reads the table */
        kind = t == LUA_TNIL ? VL_K_ACTIVITY : t == LUA_TSTRING ? kind_of_odata(lua_tostring(L, -1)) : -1;
        if (kind < 0 || strcmp(vl_kinds[kind].family, "activity") != 0) {
            sink S = { 0, 0 };                        /* raises */
            return report(L, &S, "@odata.type", "\"#microsoft.graph.learningAssignment\" or "
                          "\"#microsoft.graph.learningSelfInitiatedCourse\" expected", -1, 1);
        }
        lua_pop(L, 1);
    }
    push_names(L, kind);                          /* 3 */
    vl_model *m = push_new(L, kind);              /* 4 */
    sink S = { 0, 0 };
    fill(L, 4, 3, 1, MODE_STRICT, &S);
    const vl_kind *k = &vl_kinds[kind];
    for (int i = 0; i < k->nfields; i++) {        /* every field given is a change */
        if (lua_getiuservalue(L, 4, UV_FIELD(i)) != LUA_TNIL) m->dirty |= BIT(i);
        lua_pop(L, 1);
    }
    if (!m->dirty) {
        lua_pushnil(L);
        return 1;
    }
    vl_buf b;
    vl_buf_init(L, &b);
    vl_model_put_json(&b, 4, 1);
    vl_buf_finish(&b);
    return 1;
}

int vl_model_push_changes_of_table(lua_State *L, int tidx, const char *family) {
    tidx = lua_absindex(L, tidx);
    lua_pushcfunction(L, changes_protected);
    lua_pushvalue(L, tidx);
    lua_pushstring(L, family);
    if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------ encoding */

static void put_name(vl_buf *b, const char *name) {
    vl_buf_addc(b, '"');
    vl_buf_addn(b, name, strlen(name));
    vl_buf_addlit(b, "\":");
}

static void put_complex(vl_buf *b, const vl_field *f, int sidx) {
    lua_State *L = b->L;
    if (lua_type(L, sidx) == LUA_TTABLE) {
        /* table form: the two known keys first, then the others */
        int first = 1;
        vl_buf_addc(b, '{');
        for (int w = 0; w < 2; w++) {
            const char *key = w ? sub_b(f) : sub_a(f);
            if (lua_getfield(L, sidx, key) != LUA_TNIL) {
                if (!first) vl_buf_addc(b, ',');
                first = 0;
                put_name(b, key);
                vl_json_put_value(b, -1, 2);
            }
            lua_pop(L, 1);
        }
        lua_pushnil(L);
        while (lua_next(L, sidx)) {
            const char *key = lua_tostring(L, -2);
            if (strcmp(key, sub_a(f)) && strcmp(key, sub_b(f))) {
                if (!first) vl_buf_addc(b, ',');
                first = 0;
                size_t kn;
                key = lua_tolstring(L, -2, &kn);
                vl_json_put_string(b, key, kn, 0);
                vl_buf_addc(b, ':');
                vl_json_put_value(b, -1, 2);
            }
            lua_pop(L, 1);
        }
        vl_buf_addc(b, '}');
        return;
    }
    size_t n;
    const char *s = lua_tolstring(L, sidx, &n);
    packed p;
    unpack(s, n, &p);
    vl_buf_addc(b, '{');
    if (p.as) {
        put_name(b, sub_a(f));
        if (p.as == SUB_NULL) vl_buf_addlit(b, "null");
        else vl_json_put_string(b, p.a, p.an, 0);
    }
    if (p.bs) {
        if (p.as) vl_buf_addc(b, ',');
        put_name(b, sub_b(f));
        if (p.bs == SUB_NULL) vl_buf_addlit(b, "null");
        else vl_json_put_string(b, p.b, p.bn, 0);
    }
    vl_buf_addc(b, '}');
}

void vl_model_put_json(vl_buf *b, int idx, int changes_only) {
    lua_State *L = b->L;
    idx = lua_absindex(L, idx);
    vl_model *m = (vl_model *)lua_touserdata(L, idx);
    const vl_kind *k = &vl_kinds[m->kind];
    int first = 1;
    luaL_checkstack(L, 6, "model JSON");
    vl_buf_addc(b, '{');
    if (k->odata_type) {
        vl_buf_addlit(b, "\"@odata.type\":");
        vl_json_put_string(b, k->odata_type, strlen(k->odata_type), 0);
        first = 0;
    }
    for (int i = 0; i < k->nfields; i++) {
        if (changes_only && !(m->dirty & (BIT(i)))) continue;
        int t = lua_getiuservalue(L, idx, UV_FIELD(i));
        if (t == LUA_TNIL) {
            if (changes_only) {          /* unset after a change: nothing to send */
            }
            lua_pop(L, 1);
            continue;
        }
        const vl_field *f = &k->fields[i];
        if (!first) vl_buf_addc(b, ',');
        first = 0;
        put_name(b, f->wire ? f->wire : f->name);
        if (t == LUA_TLIGHTUSERDATA) {
            vl_buf_addlit(b, "null");
        } else {
            switch (f->type) {
            case VT_INT32: vl_json_put_integer(b, lua_tointeger(L, -1)); break;
            case VT_BOOL:
                if (lua_toboolean(L, -1)) vl_buf_addlit(b, "true");
                else vl_buf_addlit(b, "false");
                break;
            case VT_DTTZ:
            case VT_BODY: put_complex(b, f, lua_gettop(L)); break;
            case VT_STRLIST: {
                vl_buf_addc(b, '[');
                if (t == LUA_TSTRING) {
                    size_t sn;
                    const char *s = lua_tolstring(L, -1, &sn);
                    if (sn) {
                        const char *p = s + 1, *e = s + sn;
                        for (;;) {
                            const char *q = memchr(p, '\0', (size_t)(e - p));
                            vl_json_put_string(b, p, (size_t)((q ? q : e) - p), 0);
                            if (!q) break;
                            vl_buf_addc(b, ',');
                            p = q + 1;
                        }
                    }
                } else {
                    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
                    for (lua_Integer j = 1; j <= n; j++) {
                        size_t sn;
                        if (j > 1) vl_buf_addc(b, ',');
                        lua_rawgeti(L, -1, j);
                        const char *s = lua_tolstring(L, -1, &sn);
                        vl_json_put_string(b, s, sn, 0);
                        lua_pop(L, 1);
                    }
                }
                vl_buf_addc(b, ']');
                break;
            }
            default: {
                size_t sn;
                const char *s = lua_tolstring(L, -1, &sn);
                vl_json_put_string(b, s, sn, 0);
            }
            }
        }
        lua_pop(L, 1);
    }
    if (!changes_only && lua_getiuservalue(L, idx, UV_EXTRAS) == LUA_TTABLE) {
        int ex = lua_gettop(L);
        lua_pushnil(L);
        while (lua_next(L, ex)) {
            size_t kn;
            if (!first) vl_buf_addc(b, ',');
            first = 0;
            const char *key = lua_tolstring(L, -2, &kn);   /* string keys only (validated) */
            vl_json_put_string(b, key, kn, 0);
            vl_buf_addc(b, ':');
            vl_json_put_value(b, -1, 1);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    } else if (!changes_only) {
        lua_pop(L, 1);
    }
    vl_buf_addc(b, '}');
}

static int push_json_protected(lua_State *L) {
    vl_buf b;
    int changes = lua_toboolean(L, 2);
    lua_settop(L, 1);
    vl_buf_init(L, &b);
    vl_model_put_json(&b, 1, changes);
    vl_buf_finish(&b);
    return 1;
}

void vl_model_push_json(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    checkmodel(L, idx);
    lua_pushcfunction(L, push_json_protected);
    lua_pushvalue(L, idx);
    lua_call(L, 1, 1);
}

void vl_model_push_changes_json(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    vl_model *m = checkmodel(L, idx);
    if (!m->dirty) {
        lua_pushnil(L);
        return;
    }
    lua_pushcfunction(L, push_json_protected);
    lua_pushvalue(L, idx);
    lua_pushboolean(L, 1);
    lua_call(L, 2, 1);
}

void vl_model_push_field(lua_State *L, int idx, const char *field) {
    idx = lua_absindex(L, idx);
    vl_model *m = tomodel(L, idx);
    if (!m) {
        lua_pushnil(L);
        return;
    }
    const vl_kind *k = &vl_kinds[m->kind];
    int fi = find_field(k, field, strlen(field));
    if (fi >= 0) {
        push_field(L, idx, &k->fields[fi], fi);
        return;
    }
    if (strcmp(field, "@odata.type") == 0 && k->odata_type) {
        lua_pushstring(L, k->odata_type);
        return;
    }
    if (lua_getiuservalue(L, idx, UV_EXTRAS) == LUA_TTABLE) {
        lua_getfield(L, -1, field);
        lua_remove(L, -2);
        return;
    }
    lua_pop(L, 1);
    lua_pushnil(L);
}

void vl_model_clean(lua_State *L, int idx) {
    vl_model *m = tomodel(L, idx);
    if (m) m->dirty = 0;
}

int vl_model_set_id(lua_State *L, int idx, const char *id) {
    idx = lua_absindex(L, idx);
    vl_model *m = tomodel(L, idx);
    if (!m || !id || !vl_utf8_valid(id, strlen(id))) return 0;
    lua_pushstring(L, id);
    lua_setiuservalue(L, idx, UV_FIELD(0));
    m->dirty &= ~1U;
    return 1;
}

/* ------------------------------------------------------------------ metamethods */

/* The receiver of __index / __newindex: a model of the kind whose metatable is upvalue 2
 * (the field indexes in upvalue 1 are per kind; upvalue 3 is the kind index). */
static vl_model *check_receiver(lua_State *L) {
    int ok = lua_type(L, 1) == LUA_TUSERDATA && lua_getmetatable(L, 1);
    if (ok) {
        ok = lua_rawequal(L, -1, lua_upvalueindex(2));
        lua_pop(L, 1);
    }
    if (!ok) {
        const vl_kind *k = &vl_kinds[lua_tointeger(L, lua_upvalueindex(3))];
        lua_pushfstring(L, "vivalearning %s model", k->type_name);
        luaL_typeerror(L, 1, lua_tostring(L, -1));
    }
    return (vl_model *)lua_touserdata(L, 1);
}

/* __index: upvalues as check_receiver's; names maps field name -> index, method name ->
 * function. */
static int m_index(lua_State *L) {
    vl_model *m = check_receiver(L);
    lua_settop(L, 2);
    lua_pushvalue(L, 2);
    int t = lua_rawget(L, lua_upvalueindex(1));
    if (t == LUA_TNUMBER && lua_tointeger(L, -1) >= 0) {
        int fi = (int)lua_tointeger(L, -1);
        push_field(L, 1, &vl_kinds[m->kind].fields[fi], fi);
        return 1;
    }
    if (t == LUA_TFUNCTION) return 1;
    lua_pop(L, 1);
    const vl_kind *k = &vl_kinds[m->kind];
    if (lua_type(L, 2) != LUA_TSTRING) return luaL_error(L, "%s: field name (string) expected, got %s",
                                                         k->type_name, luaL_typename(L, 2));
    const char *key = lua_tostring(L, 2);
    if (strcmp(key, "@odata.type") == 0 && k->odata_type) {
        lua_pushstring(L, k->odata_type);
        return 1;
    }
    if (lua_getiuservalue(L, 1, UV_EXTRAS) == LUA_TTABLE) {
        lua_pushvalue(L, 2);
        if (lua_rawget(L, -2) != LUA_TNIL) {
            if (lua_type(L, -1) == LUA_TTABLE) {
                sink S = { 0, 0 };
                copy_json(L, &S, key, -1, 0);
            }
            return 1;
        }
    }
    if (key[0] == '@') {                 /* annotations: absent reads nil */
        lua_pushnil(L);
        return 1;
    }
    const char *best = suggest(k, key);
    if (best) return luaL_error(L, "%s: unknown field of %s (did you mean %s?)", key, k->type_name, best);
    return luaL_error(L, "%s: unknown field of %s", key, k->type_name);
}

static int m_newindex(lua_State *L) {
    vl_model *m = check_receiver(L);
    const vl_kind *k = &vl_kinds[m->kind];
    lua_settop(L, 3);
    lua_pushvalue(L, 2);
    int t = lua_rawget(L, lua_upvalueindex(1));
    if (t == LUA_TNUMBER && lua_tointeger(L, -1) < 0) {
        push_repr(L, 3);
        return luaL_error(L, "@odata.type: is given by the model type (%s), not assignable, got %s",
                          k->type_name, lua_tostring(L, -1));
    }
    if (t == LUA_TNUMBER) {
        int fi = (int)lua_tointeger(L, -1);
        const vl_field *f = &k->fields[fi];
        lua_pop(L, 1);
        if (lua_isnil(L, 3)) {                              /* unset: nothing to send */
            lua_pushnil(L);
            lua_setiuservalue(L, 1, UV_FIELD(fi));
            m->dirty &= ~(BIT(fi));
            return 0;
        }
        sink S = { 0, 0 };
        convert_push(L, &S, MODE_STRICT, f, 3);            /* raises on error */
        lua_getiuservalue(L, 1, UV_FIELD(fi));             /* 5: old */
        if (!deep_equal(L, 4, 5, 0)) m->dirty |= BIT(fi);
        lua_pop(L, 1);
        lua_setiuservalue(L, 1, UV_FIELD(fi));
        return 0;
    }
    if (lua_type(L, 2) != LUA_TSTRING) return luaL_error(L, "%s: field name (string) expected, got %s",
                                                         k->type_name, luaL_typename(L, 2));
    const char *key = lua_tostring(L, 2);
    push_repr(L, 3);                                        /* 5: the value, for messages */
    const char *got = lua_tostring(L, -1);
    if (t == LUA_TFUNCTION) return luaL_error(L, "%s: is a method of %s, not a field, got %s", key, k->type_name, got);
    const char *best = suggest(k, key);
    if (best) return luaL_error(L, "%s: unknown field of %s (did you mean %s?), got %s", key, k->type_name, best, got);
    return luaL_error(L, "%s: unknown field of %s, got %s", key, k->type_name, got);
}

/* __pairs iterator: upvalue 1 = next field index (nfields: extras from the start,
 * nfields+1: extras continuing from the key given). */
static int m_next(lua_State *L) {
    vl_model *m = checkmodel(L, 1);
    const vl_kind *k = &vl_kinds[m->kind];
    int pos = (int)lua_tointeger(L, lua_upvalueindex(1));
    lua_settop(L, 2);
    while (pos < k->nfields) {
        int i = pos++;
        push_field(L, 1, &k->fields[i], i);
        if (!lua_isnil(L, -1)) {
            lua_pushinteger(L, pos);
            lua_replace(L, lua_upvalueindex(1));
            lua_pushstring(L, k->fields[i].name);
            lua_insert(L, -2);
            return 2;
        }
        lua_pop(L, 1);
    }
    if (lua_getiuservalue(L, 1, UV_EXTRAS) != LUA_TTABLE) return 0;
    if (pos == k->nfields) {
        lua_pushnil(L);
        lua_pushinteger(L, pos + 1);
        lua_replace(L, lua_upvalueindex(1));
    } else {
        lua_pushvalue(L, 2);
    }
    if (!lua_next(L, -2)) return 0;
    if (lua_type(L, -1) == LUA_TTABLE) {
        sink S = { 0, 0 };
        copy_json(L, &S, "?", -1, 0);
        lua_remove(L, -2);
    }
    return 2;
}

static int m_pairs(lua_State *L) {
    checkmodel(L, 1);
    lua_pushinteger(L, 0);
    lua_pushcclosure(L, m_next, 1);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

static int m_tostring(lua_State *L) {
    vl_model *m = checkmodel(L, 1);
    const vl_kind *k = &vl_kinds[m->kind];
    size_t n = 0;
    if (lua_getiuservalue(L, 1, UV_FIELD(0)) == LUA_TSTRING) {
        const char *id = lua_tolstring(L, -1, &n);
        if (n > 80) n = 80;
        lua_pushfstring(L, "%s(%s)", k->type_name, id);
        if (n == 80) {
            lua_pushlstring(L, id, 80);
            lua_pushfstring(L, "%s(%s...)", k->type_name, lua_tostring(L, -1));
        }
    } else {
        lua_pushfstring(L, "%s(new)", k->type_name);
    }
    return 1;
}

static int m_eq(lua_State *L) {
    vl_model *a = tomodel(L, 1), *b = tomodel(L, 2);
    if (!a || !b || a->kind != b->kind) {
        lua_pushboolean(L, 0);
        return 1;
    }
    int n = vl_kinds[a->kind].nfields + 1, eq = 1;
    for (int i = 1; i <= n && eq; i++) {
        lua_getiuservalue(L, 1, i);
        lua_getiuservalue(L, 2, i);
        eq = deep_equal(L, -1, -2, 0);
        lua_pop(L, 2);
    }
    lua_pushboolean(L, eq);
    return 1;
}

/* ------------------------------------------------------------------ methods */

static int m_totable(lua_State *L) {
    vl_model *m = checkmodel(L, 1);
    const vl_kind *k = &vl_kinds[m->kind];
    lua_settop(L, 1);
    lua_createtable(L, 0, k->nfields + 1);
    if (k->odata_type) {
        lua_pushstring(L, k->odata_type);
        lua_setfield(L, 2, "@odata.type");
    }
    for (int i = 0; i < k->nfields; i++) {
        push_field(L, 1, &k->fields[i], i);
        lua_setfield(L, 2, k->fields[i].name);
    }
    if (lua_getiuservalue(L, 1, UV_EXTRAS) == LUA_TTABLE) {
        sink S = { 0, 0 };
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            copy_json(L, &S, "?", -1, 0);
            lua_pushvalue(L, -3);
            lua_insert(L, -2);
            lua_rawset(L, 2);
            lua_pop(L, 1);
        }
    }
    lua_settop(L, 2);
    return 1;
}

static int m_tojson(lua_State *L) {
    checkmodel(L, 1);
    lua_settop(L, 1);
    vl_buf b;
    vl_buf_init(L, &b);
    vl_model_put_json(&b, 1, 0);
    vl_buf_finish(&b);
    return 1;
}

static int m_changes(lua_State *L) {
    vl_model *m = checkmodel(L, 1);
    const vl_kind *k = &vl_kinds[m->kind];
    lua_settop(L, 1);
    if (!m->dirty) {
        lua_pushnil(L);
        return 1;
    }
    lua_newtable(L);
    if (k->odata_type) {
        lua_pushstring(L, k->odata_type);
        lua_setfield(L, 2, "@odata.type");
    }
    for (int i = 0; i < k->nfields; i++) {
        if (!(m->dirty & (BIT(i)))) continue;
        push_field(L, 1, &k->fields[i], i);
        lua_setfield(L, 2, k->fields[i].name);
    }
    return 1;
}

static int m_clean(lua_State *L) {
    vl_model *m = checkmodel(L, 1);
    m->dirty = 0;
    lua_settop(L, 1);
    return 1;
}

static int m_kind(lua_State *L) {
    vl_model *m = checkmodel(L, 1);
    lua_pushstring(L, vl_kinds[m->kind].kind);
    return 1;
}

static int m_json_encode(lua_State *L) {
    luaL_checkany(L, 1);
    if (!vl_json_encode(L, 1)) return 2;
    return 1;
}

static int m_json_decode(lua_State *L) {
    luaL_checktype(L, 1, LUA_TSTRING);
    if (!vl_json_decode_at(L, 1)) return 2;
    return 1;
}

static const luaL_Reg methods[] = {
    { "totable", m_totable },
    { "tojson", m_tojson },
    { "changes", m_changes },
    { "clean", m_clean },
    { "kind", m_kind },
    { NULL, NULL },
};

void vl_model_open(lua_State *L) {
    int mod = lua_gettop(L);
    luaL_checkstack(L, 10, "vl_model_open");
    vl_json_open(L);
    for (int kind = 0; kind < VL_NKINDS; kind++) {
        const vl_kind *k = &vl_kinds[kind];
        char tname[96];
        snprintf(tname, sizeof tname, "vivalearning.%s", k->type_name);
        luaL_newmetatable(L, tname);                  /* reused when it exists */
        int mt = lua_gettop(L);
        lua_pushinteger(L, kind);
        lua_rawsetp(L, mt, &vl_model_tag);
        /* names: every accepted spelling -> field index; methods */
        lua_createtable(L, 0, 2 * k->nfields + 5);
        int names = lua_gettop(L);
        for (const luaL_Reg *r = methods; r->name; r++) {
            lua_pushcfunction(L, r->func);
            lua_setfield(L, names, r->name);
        }
        for (int i = 0; i < k->nfields; i++) {
            const vl_field *f = &k->fields[i];
            lua_pushinteger(L, i);
            lua_setfield(L, names, f->name);
            if (f->wire) { lua_pushinteger(L, i); lua_setfield(L, names, f->wire); }
            if (f->alias) { lua_pushinteger(L, i); lua_setfield(L, names, f->alias); }
        }
        lua_pushinteger(L, -1);
        lua_setfield(L, names, "@odata.type");
        /* the pointer map of every string key of names that maps to an integer */
        vl_ptrmap *pm = (vl_ptrmap *)lua_newuserdatauv(L, sizeof(vl_ptrmap), 0);
        memset(pm, 0, sizeof *pm);
        lua_pushnil(L);
        while (lua_next(L, names)) {
            if (lua_type(L, -2) == LUA_TSTRING && lua_isinteger(L, -1))
                ptrmap_put(pm, lua_tostring(L, -2), (int)lua_tointeger(L, -1));
            lua_pop(L, 1);
        }
        lua_rawsetp(L, names, &vl_ptrmap_key);
        lua_pushvalue(L, names);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &vl_names_keys[kind]);
        lua_pushvalue(L, names);
        lua_pushvalue(L, mt);
        lua_pushinteger(L, kind);
        lua_pushcclosure(L, m_index, 3);
        lua_setfield(L, mt, "__index");
        lua_pushvalue(L, names);
        lua_pushvalue(L, mt);
        lua_pushinteger(L, kind);
        lua_pushcclosure(L, m_newindex, 3);
        lua_setfield(L, mt, "__newindex");
        lua_pushcfunction(L, m_pairs);
        lua_setfield(L, mt, "__pairs");
        lua_pushcfunction(L, m_tostring);
        lua_setfield(L, mt, "__tostring");
        lua_pushcfunction(L, m_eq);
        lua_setfield(L, mt, "__eq");
        lua_pop(L, 1);                                /* names */
        lua_rawsetp(L, LUA_REGISTRYINDEX, &vl_mt_keys[kind]);   /* pops mt */
    }
    lua_createtable(L, 0, (int)(sizeof guess_props / sizeof guess_props[0]));
    for (size_t i = 0; i < sizeof guess_props / sizeof guess_props[0]; i++) {
        lua_pushlightuserdata(L, (void *)guess_props[i][1]);
        lua_setfield(L, -2, guess_props[i][0]);
    }
    lua_rawsetp(L, LUA_REGISTRYINDEX, &vl_guess_key);
    static const int ctor_kinds[] = { VL_K_ASSIGNMENT, VL_K_SELF, VL_K_PROVIDER, VL_K_CONTENT };
    for (int i = 0; i < 4; i++) {
        lua_pushinteger(L, ctor_kinds[i]);
        lua_pushcclosure(L, m_construct, 1);
        lua_setfield(L, mod, vl_kinds[ctor_kinds[i]].kind);
    }
    lua_pushcfunction(L, m_decode);
    lua_setfield(L, mod, "decode");
    lua_pushcfunction(L, m_check);
    lua_setfield(L, mod, "check");
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, mod, "null");
    lua_pushcfunction(L, m_json_encode);
    lua_setfield(L, mod, "json_encode");
    lua_pushcfunction(L, m_json_decode);
    lua_setfield(L, mod, "json_decode");
    lua_settop(L, mod);
}
