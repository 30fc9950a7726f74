/* Model values, the lowest model stage: validation of a field's value against the schema
 * and its packed stored form, messages, and plain JSON-like values (unknown properties).
 * No userdata here: see model_store.h for the model object itself. */
#include <stdio.h>
#include <string.h>

#include "luacompat.h"

#include "model_value.h"
#include "json.h"

#define VL_STR_(x) #x
#define VL_STR(x) VL_STR_(x)

int vl_find_field(const vl_kind *k, const char *s, size_t n) {
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

const char *vl_suggest(const vl_kind *k, const char *name) {
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
void vl_push_repr(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TNONE:
    case LUA_TNIL: lua_pushliteral(L, "nil"); return;
    case LUA_TBOOLEAN: lua_pushstring(L, lua_toboolean(L, idx) ? "true" : "false"); return;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) lua_pushfstring(L, VL_FMTI, VL_ARGI(lua_tointeger(L, idx)));
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

int vl_report(lua_State *L, vl_sink *S, const char *field, const char *problem, int vidx, int with_value) {
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
        vl_push_repr(L, vidx);
        return luaL_error(L, "%s: %s, got %s", field, problem, lua_tostring(L, -1));
    }
    return luaL_error(L, "%s: %s", field, problem);
}

int vl_report_rule(lua_State *L, vl_sink *S, const char *field, const vl_field *f, int vidx) {
    char rule[260];
    rule_text(f, rule, sizeof rule);
    if (f->type == VT_ENUM && lua_type(L, vidx) == LUA_TSTRING) {
        /* a member in the wrong case: name the right spelling */
        size_t n, o = strlen(rule);
        const char *s = lua_tolstring(L, vidx, &n);
        int i = vl_enum_index_nocase(f->enums, s, n);
        if (i >= 0) snprintf(rule + o, sizeof rule - o, " (did you mean '%s'?)", f->enums[i]);
    }
    return vl_report(L, S, field, rule, vidx, 1);
}

/* A date-time whose form is right but whose values are not: says which part. */
static const char *dt_problem(int why) {
    return why == VL_DT_DATE ? "not a calendar date" : why == VL_DT_TIME ? "not a time of day (00:00:00 to 23:59:59)" : NULL;
}

/* ------------------------------------------------------------------ JSON-ish values */

/* Pushes a validated deep copy of an arbitrary JSON value (unknown properties): strings
 * must be UTF-8, numbers finite (integral floats become integers), tables nest at most
 * VL_JSON_MAX_DEPTH deep. Reports (returns 0, pushes nothing) on failure. */
int vl_copy_json(lua_State *L, vl_sink *S, const char *field, int idx, int depth) {
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN:
        lua_pushvalue(L, idx);
        return 1;
    case LUA_TNUMBER: {
        if (lua_isinteger(L, idx)) { lua_pushvalue(L, idx); return 1; }
        lua_Number d = lua_tonumber(L, idx);
        lua_Integer i;
        if (d != d || d - d != 0) return vl_report(L, S, field, "finite number expected", idx, 1);
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
        if (!vl_utf8_valid(s, n)) return vl_report(L, S, field, "valid UTF-8 string expected", idx, 1);
        lua_pushvalue(L, idx);
        return 1;
    }
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) { lua_pushvalue(L, idx); return 1; }
        break;
    case LUA_TTABLE: {
        if (depth >= VL_JSON_MAX_DEPTH)
            return vl_report(L, S, field, "JSON value nested at most " VL_STR(VL_JSON_MAX_DEPTH) " levels deep expected", idx, 1);
        luaL_checkstack(L, 6, "copy");
        lua_newtable(L);
        int out = lua_gettop(L);
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            int kt = lua_type(L, -2);
            if (kt != LUA_TSTRING && kt != LUA_TNUMBER) {
                lua_pop(L, 3);
                return vl_report(L, S, field, "table with string or number keys expected", idx, 1);
            }
            if (kt == LUA_TSTRING) {
                size_t n;
                const char *s = lua_tolstring(L, -2, &n);
                if (!vl_utf8_valid(s, n)) {
                    lua_pop(L, 3);
                    return vl_report(L, S, field, "keys in valid UTF-8 expected", idx, 1);
                }
            }
            if (!vl_copy_json(L, S, field, -1, depth + 1)) {
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
    return vl_report(L, S, field, "JSON value expected", idx, 1);
}

void vl_push_json_text(lua_State *L, const char *s, size_t n) {
    vl_sink S = { 0, 0 };
    if (!vl_json_decode(L, s, n)) {               /* checked text: cannot happen */
        lua_pop(L, 2);
        lua_pushnil(L);
        return;
    }
    vl_copy_json(L, &S, "?", -1, 0);
    lua_remove(L, -2);
}

/* Validates like copy_json without copying (for tables nobody else holds). Returns 1, or
 * reports and returns 0. */
static int check_json(lua_State *L, vl_sink *S, const char *field, int idx, int depth) {
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) != LUA_TTABLE) {
        if (!vl_copy_json(L, S, field, idx, depth)) return 0;
        lua_pop(L, 1);
        return 1;
    }
    if (depth >= VL_JSON_MAX_DEPTH)
        return vl_report(L, S, field, "JSON value nested at most " VL_STR(VL_JSON_MAX_DEPTH) " levels deep expected", idx, 1);
    luaL_checkstack(L, 4, "check");
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int kt = lua_type(L, -2);
        size_t n;
        const char *s = kt == LUA_TSTRING ? lua_tolstring(L, -2, &n) : NULL;
        if ((kt != LUA_TSTRING && kt != LUA_TNUMBER) || (s && !vl_utf8_valid(s, n))) {
            lua_pop(L, 2);
            return vl_report(L, S, field, "table with string (UTF-8) or number keys expected", idx, 1);
        }
        if (!check_json(L, S, field, -1, depth + 1)) {
            lua_pop(L, 2);
            return 0;
        }
        lua_pop(L, 1);
    }
    return 1;
}

/* copy_json, or for VL_MODE_ADOPT tables check_json and push the table itself. */
int vl_take_json(lua_State *L, vl_sink *S, int mode, const char *field, int idx, int depth) {
    if (mode == VL_MODE_ADOPT && lua_type(L, idx) == LUA_TTABLE) {
        if (!check_json(L, S, field, idx, depth)) return 0;
        lua_pushvalue(L, idx);
        return 1;
    }
    return vl_copy_json(L, S, field, idx, depth);
}

/* Deep equality of plain values (tables compared by content). */
int vl_deep_equal(lua_State *L, int a, int b, int depth) {
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
        int eq = vl_deep_equal(L, -1, -2, depth + 1);
        lua_pop(L, 2);
        if (!eq) { lua_pop(L, 1); return 0; }
    }
    lua_pushnil(L);
    while (lua_next(L, b)) { nb++; lua_pop(L, 1); }
    return na == nb;
}

/* ------------------------------------------------------------------ complex types */

const char *vl_sub_a(const vl_field *f) { return f->type == VT_DTTZ ? "dateTime" : "contentType"; }
const char *vl_sub_b(const vl_field *f) { return f->type == VT_DTTZ ? "timeZone" : "content"; }

void vl_unpack(const char *s, size_t n, vl_packed *p) {
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
static void sub_report(lua_State *L, vl_sink *S, const vl_field *f, const char *fname, int which,
                       const char *problem, int vidx, int with_value) {
    char path[160];
    snprintf(path, sizeof path, "%s.%s", fname, which ? vl_sub_b(f) : vl_sub_a(f));
    vl_report(L, S, path, problem, vidx, with_value);
}

static int check_sub(lua_State *L, vl_sink *S, int mode, const vl_field *f, const char *fname, int which, int vidx,
                     int t, const char **sp, size_t *np) {
    int required = (f->type == VT_DTTZ && which == 0);
    if (t == LUA_TNIL) {
        if (mode == VL_MODE_STRICT && required) {
            sub_report(L, S, f, fname, which, "string expected (required)", vidx, 1);
            return -1;
        }
        return VL_SUB_ABSENT;
    }
    if (t == LUA_TLIGHTUSERDATA && lua_touserdata(L, vidx) == NULL) {
        if (mode == VL_MODE_STRICT && required) {
            sub_report(L, S, f, fname, which, "non-null string expected", vidx, 1);
            return -1;
        }
        return VL_SUB_NULL;
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
    if (mode == VL_MODE_STRICT) {
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
    return VL_SUB_STRING;
}

/* Converts a dateTimeTimeZone / itemBody value (table, or string shorthand for itemBody).
 * Pushes the stored form and returns 1, or reports and returns 0. */
static int convert_complex(lua_State *L, vl_sink *S, int mode, const vl_field *f, const char *fname, int vidx) {
    vidx = lua_absindex(L, vidx);
    if (f->type == VT_BODY && mode == VL_MODE_STRICT && lua_type(L, vidx) == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(L, vidx, &n);
        if (!vl_utf8_valid(s, n)) return vl_report(L, S, fname, "valid UTF-8 string expected", vidx, 1);
        if (memchr(s, '\0', n)) return vl_report(L, S, fname, "string without NUL bytes expected", vidx, 1);
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        luaL_addchar(&b, (char)(VL_SUB_STRING | (VL_SUB_STRING << 2)));
        luaL_addstring(&b, "text");
        luaL_addchar(&b, '\0');
        luaL_addlstring(&b, s, n);
        luaL_pushresult(&b);
        return 1;
    }
    if (lua_type(L, vidx) != LUA_TTABLE) return vl_report_rule(L, S, fname, f, vidx);
    luaL_checkstack(L, 8, "complex");
    int ta = lua_getfield(L, vidx, vl_sub_a(f));
    int tb = lua_getfield(L, vidx, vl_sub_b(f));
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
    if (count != (as != VL_SUB_ABSENT) + (bs != VL_SUB_ABSENT)) lua_pushnil(L);
    else count = -1;
    while (count >= 0 && lua_next(L, vidx)) {
        if (lua_type(L, -2) == LUA_TSTRING) {
            const char *key = lua_tostring(L, -2);
            if (strcmp(key, vl_sub_a(f)) == 0 || strcmp(key, vl_sub_b(f)) == 0) {
                lua_pop(L, 1);
                continue;
            }
            if (mode == VL_MODE_STRICT && key[0] != '@') {
                char path[200], prob[200];
                snprintf(path, sizeof path, "%s.%s", fname, key);
                snprintf(prob, sizeof prob, "unknown key (%s and %s expected)", vl_sub_a(f), vl_sub_b(f));
                vl_report(L, S, path, prob, -1, 1);
                lua_pop(L, 1);
                continue;
            }
        } else {
            vl_report(L, S, fname, "table with string keys expected", vidx, 1);
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
    return vl_take_json(L, S, mode, fname, vidx, 1);
}

/* Pushes the Lua table form of a stored complex value at sidx (string or table). */
void vl_push_complex(lua_State *L, const vl_field *f, int sidx) {
    if (lua_type(L, sidx) == LUA_TTABLE) {
        vl_sink S = { 0, 0 };
        vl_copy_json(L, &S, f->name, sidx, 0);
        return;
    }
    size_t n;
    const char *s = lua_tolstring(L, sidx, &n);
    vl_packed p;
    vl_unpack(s, n, &p);
    lua_createtable(L, 0, 2);
    if (p.as == VL_SUB_NULL) lua_pushlightuserdata(L, NULL);
    else if (p.as == VL_SUB_STRING) lua_pushlstring(L, p.a, p.an);
    if (p.as) lua_setfield(L, -2, vl_sub_a(f));
    if (p.bs == VL_SUB_NULL) lua_pushlightuserdata(L, NULL);
    else if (p.bs == VL_SUB_STRING) lua_pushlstring(L, p.b, p.bn);
    if (p.bs) lua_setfield(L, -2, vl_sub_b(f));
}

/* ------------------------------------------------------------------ field conversion */

/* Validates the value at vidx (absolute index) for field f. Returns 2 when that value is to
 * be stored as it is (nothing pushed), 1 after pushing the form to store, or reports
 * (raising, or appending to the sink and returning 0 with nothing pushed). */
int vl_convert(lua_State *L, vl_sink *S, int mode, const vl_field *f, int vidx) {
    int t = lua_type(L, vidx);
    const char *fname = f->name;
    if (t == LUA_TLIGHTUSERDATA && lua_touserdata(L, vidx) == NULL) {
        if (mode == VL_MODE_STRICT && !(f->flags & VF_NULLABLE))
            return vl_report(L, S, fname, "non-null value expected (field is not nullable)", vidx, 1);
        return 2;
    }
    switch (f->type) {
    case VT_STRING:
    case VT_ANNOT:
    case VT_DTO:
    case VT_DURATION:
    case VT_ENUM: {
        if (t != LUA_TSTRING) return vl_report_rule(L, S, fname, f, vidx);
        size_t n;
        const char *s = lua_tolstring(L, vidx, &n);
        if (!vl_utf8_valid(s, n)) return vl_report(L, S, fname, "valid UTF-8 string expected", vidx, 1);
        if (mode == VL_MODE_STRICT) {
            if (memchr(s, '\0', n)) return vl_report(L, S, fname, "string without NUL bytes expected", vidx, 1);
            int ok = 1;
            if (f->type == VT_DTO) {
                int why = vl_dto_check(s, n);
                if (dt_problem(why)) return vl_report(L, S, fname, dt_problem(why), vidx, 1);
                ok = why == VL_DT_OK;
            } else if (f->type == VT_DURATION) ok = vl_valid_duration(s, n);
            else if (f->type == VT_ENUM) ok = vl_enum_index(f->enums, s, n) >= 0;
            else if ((f->flags & VF_REQUIRED) && n == 0)
                return vl_report(L, S, fname, "non-empty string expected", vidx, 1);
            if (!ok) return vl_report_rule(L, S, fname, f, vidx);
        }
        return 2;
    }
    case VT_INT32: {
        lua_Integer i;
        if (t != LUA_TNUMBER) return vl_report_rule(L, S, fname, f, vidx);
        int isint = lua_isinteger(L, vidx);
        if (isint) {
            i = lua_tointeger(L, vidx);
        } else {
            lua_Number d = lua_tonumber(L, vidx);
            if (!(d >= -2147483648.0 && d <= 2147483647.0) || !lua_numbertointeger(d, &i) || (lua_Number)i != d)
                return vl_report_rule(L, S, fname, f, vidx);
        }
        if (i < -2147483647L - 1 || i > 2147483647L ||
            (mode == VL_MODE_STRICT && (i < f->min || i > f->max)))
            return vl_report_rule(L, S, fname, f, vidx);
        if (isint) return 2;
        lua_pushinteger(L, i);
        return 1;
    }
    case VT_BOOL:
        if (t != LUA_TBOOLEAN) return vl_report_rule(L, S, fname, f, vidx);
        return 2;
    case VT_DTTZ:
    case VT_BODY:
        return convert_complex(L, S, mode, f, fname, vidx);
    case VT_STRLIST: {
        if (t != LUA_TTABLE) return vl_report_rule(L, S, fname, f, vidx);
        lua_Integer n = (lua_Integer)lua_rawlen(L, vidx), count = 0;
        lua_pushnil(L);
        while (lua_next(L, vidx)) {
            lua_pop(L, 1);
            count++;
            if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > n) {
                lua_pop(L, 1);
                return vl_report_rule(L, S, fname, f, vidx);
            }
        }
        if (count != n) return vl_report_rule(L, S, fname, f, vidx);
        int before = S->n, nul = 0;
        char small[512];
        size_t used = 0;                             /* packed into small while it fits */
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, vidx, i);
            size_t sn;
            const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &sn) : NULL;
            const char *problem = !s ? "string expected"
                : !vl_utf8_valid(s, sn) ? "valid UTF-8 string expected"
                : (mode == VL_MODE_STRICT && memchr(s, '\0', sn)) ? "string without NUL bytes expected" : NULL;
            if (problem) {
                char path[160];
                snprintf(path, sizeof path, "%s[%lld]", fname, (long long)i);
                vl_report(L, S, path, problem, -1, 1);
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
            if (mode == VL_MODE_ADOPT) return 2;
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
    return vl_report_rule(L, S, fname, f, vidx);
}

/* convert, always pushing the value to store on success */
int vl_convert_push(lua_State *L, vl_sink *S, int mode, const vl_field *f, int vidx) {
    vidx = lua_absindex(L, vidx);
    int r = vl_convert(L, S, mode, f, vidx);
    if (r == 2) lua_pushvalue(L, vidx);
    return r != 0;
}

/* Pushes a new array from a packed string list at sidx. */
void vl_push_strlist(lua_State *L, int sidx) {
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

