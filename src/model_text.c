/* Models decoded straight from JSON text. See model_text.h. */
#include <string.h>

#include "luacompat.h"

#include "json.h"
#include "json_scan.h"
#include "model_store.h"
#include "model_text.h"
#include "model_value.h"

/* A model straight from its JSON text: one scan, no intermediate table, the values of known
 * fields converted from the text, the unknown members kept as the text they came in. Only
 * the common shapes are taken here; anything else (a value of a rare form, a duplicate key,
 * a collection, escapes in unknown keys, errors) returns 0 and goes the cjson way, which
 * builds the same model or gives the message naming the field. */

#define MAX_MEMBERS 64

typedef struct member {
    size_t k, kn;      /* key body (between the quotes) */
    size_t v, ve;      /* value */
    int kesc;          /* the key holds escapes */
} member;

/* The members of the top-level object; 0 when the text is not one we take. */
static int scan_object(const char *s, size_t n, member *m, int *count) {
    size_t i = vl_jscan_ws(s, n, 0);
    int c = 0;
    if (i >= n || s[i] != '{') return 0;
    i = vl_jscan_ws(s, n, i + 1);
    if (i < n && s[i] == '}') {
        *count = 0;
        return vl_jscan_ws(s, n, i + 1) == n;
    }
    for (;;) {
        size_t e;
        if (c == MAX_MEMBERS || i >= n || s[i] != '"' || !(e = vl_jscan_string(s, n, i, &m[c].kesc))) return 0;
        m[c].k = i + 1;
        m[c].kn = e - i - 2;
        i = vl_jscan_ws(s, n, e);
        if (i >= n || s[i] != ':') return 0;
        i = vl_jscan_ws(s, n, i + 1);
        m[c].v = i;
        if (!(e = vl_jscan_value(s, n, i, 1))) return 0;
        m[c].ve = e;
        c++;
        i = vl_jscan_ws(s, n, e);
        if (i < n && s[i] == ',') {
            i = vl_jscan_ws(s, n, i + 1);
            continue;
        }
        if (i < n && s[i] == '}' && vl_jscan_ws(s, n, i + 1) == n) break;
        return 0;
    }
    *count = c;
    return 1;
}

static int key_is(const char *s, const member *m, const char *key) {
    size_t n = strlen(key);
    return m->kn == n && !m->kesc && memcmp(s + m->k, key, n) == 0;
}

/* The string value of a member as a C string in buf (no escapes, shorter than sz). */
static const char *plain_string(const char *s, const member *m, char *buf, size_t sz) {
    size_t n = m->ve - m->v;
    if (s[m->v] != '"' || n - 2 >= sz || memchr(s + m->v, '\\', n)) return NULL;
    memcpy(buf, s + m->v + 1, n - 2);
    buf[n - 2] = '\0';
    return buf;
}

/* The kind the cjson way would pick, or -1 to leave the text to it. */
static int pick_kind(const char *s, const member *m, int count, const char *family) {
    char ot_buf[128], ctx_buf[1024];
    const char *ot = NULL, *ctx = NULL;
    int ot_seen = 0, ctx_seen = 0;
    for (int j = 0; j < count; j++) {
        if (key_is(s, &m[j], "@odata.type")) {
            if (ot_seen++ || !(ot = plain_string(s, &m[j], ot_buf, sizeof ot_buf))) return -1;
        } else if (key_is(s, &m[j], "@odata.context")) {
            if (ctx_seen++ || !(ctx = plain_string(s, &m[j], ctx_buf, sizeof ctx_buf))) return -1;
        } else if (key_is(s, &m[j], "value") && (s[m[j].v] == '[' || s[m[j].v] == '{')) {
            return -1;                            /* a collection, maybe */
        }
    }
    int kind = vl_kind_of_odata(ot);
    if (kind >= 0) return family && strcmp(family, vl_kinds[kind].family) ? -1 : kind;
    if (!family) family = vl_family_of_context(ctx);
    if (!family) {                                /* the properties must agree */
        for (int j = 0; j < count; j++) {
            const char *f = m[j].kesc ? NULL : vl_guess_prop(s + m[j].k, m[j].kn);
            if (f && family && strcmp(f, family)) return -1;
            if (f) family = f;
        }
    }
    if (!family && ot && strncmp(ot, "#microsoft.graph.learning", 25) == 0) family = "activity";
    if (!family) return -1;
    if (strcmp(family, "activity") == 0) return VL_K_ACTIVITY;
    if (strcmp(family, "provider") == 0) return VL_K_PROVIDER;
    if (strcmp(family, "content") == 0) return VL_K_CONTENT;
    return -1;
}

/* Pushes the string whose opening quote is s[v] (ending before ve), unescaped. *nul: a NUL
 * byte among them. */
static void push_text_string(lua_State *L, const char *s, size_t v, size_t ve, int *nul) {
    const char *body = s + v + 1;
    size_t n = ve - v - 2;
    *nul = 0;
    if (!memchr(body, '\\', n)) {
        lua_pushlstring(L, body, n);
        return;
    }
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, n);
    luaL_pushresultsize(&b, vl_jscan_unescape(body, n, p, nul));
}

/* Writes the unescaped body of the string at s[v..ve) to p; returns its length, or
 * (size_t)-1 when it holds a NUL byte. */
static size_t put_text_string(char *p, const char *s, size_t v, size_t ve) {
    int nul;
    size_t n = vl_jscan_unescape(s + v + 1, ve - v - 2, p, &nul);
    return nul ? (size_t)-1 : n;
}

/* dateTimeTimeZone / itemBody from an object with nothing but its two keys, strings or
 * nulls without NUL bytes; pushes the packed form (model_value.h) or returns 0. */
static int push_text_complex(lua_State *L, const vl_field *f, const char *s, size_t v, size_t ve) {
    size_t i = vl_jscan_ws(s, ve, v + 1), sv[2] = { 0, 0 }, se[2] = { 0, 0 };
    int st[2] = { VL_SUB_ABSENT, VL_SUB_ABSENT };
    while (i < ve && s[i] == '"') {
        int esc, w;
        size_t e = vl_jscan_string(s, ve, i, &esc);
        const char *key = s + i + 1;
        size_t kn = e - i - 2;
        if (!esc && kn == strlen(vl_sub_a(f)) && memcmp(key, vl_sub_a(f), kn) == 0) w = 0;
        else if (!esc && kn == strlen(vl_sub_b(f)) && memcmp(key, vl_sub_b(f), kn) == 0) w = 1;
        else return 0;                            /* other keys: the table form */
        if (st[w] != VL_SUB_ABSENT) return 0;
        i = vl_jscan_ws(s, ve, vl_jscan_ws(s, ve, e) + 1);
        if (s[i] == 'n') st[w] = VL_SUB_NULL;
        else if (s[i] == '"') st[w] = VL_SUB_STRING;
        else return 0;
        sv[w] = i;
        se[w] = vl_jscan_value(s, ve, i, 2);
        i = vl_jscan_ws(s, ve, se[w]);
        if (s[i] == ',') i = vl_jscan_ws(s, ve, i + 1);
    }
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, (se[0] - sv[0]) + (se[1] - sv[1]) + 2);
    size_t o = 0, len;
    p[o++] = (char)(st[0] | (st[1] << 2));
    for (int w = 0; w < 2; w++) {
        if (st[w] == VL_SUB_STRING) {
            if ((len = put_text_string(p + o, s, sv[w], se[w])) == (size_t)-1) {
                luaL_pushresultsize(&b, 0);
                lua_pop(L, 1);
                return 0;
            }
            o += len;
        }
        if (w == 0) p[o++] = '\0';
    }
    luaL_pushresultsize(&b, o);
    return 1;
}

/* Collection(Edm.String) from an array of strings without NUL bytes: pushes the packed form
 * or returns 0. */
static int push_text_strlist(lua_State *L, const char *s, size_t v, size_t ve) {
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, ve - v);
    size_t o = 0, i = vl_jscan_ws(s, ve, v + 1);
    int first = 1, ok = 1;
    while (ok && i < ve && s[i] != ']') {
        int esc;
        size_t e, len;
        if (s[i] != '"') { ok = 0; break; }
        e = vl_jscan_string(s, ve, i, &esc);
        p[o++] = first ? '\1' : '\0';
        first = 0;
        if ((len = put_text_string(p + o, s, i, e)) == (size_t)-1) { ok = 0; break; }
        o += len;
        i = vl_jscan_ws(s, ve, e);
        if (s[i] == ',') i = vl_jscan_ws(s, ve, i + 1);
    }
    luaL_pushresultsize(&b, ok ? o : 0);
    if (!ok) lua_pop(L, 1);
    return ok;
}

/* Pushes the stored form of field f from the member's value, or returns 0 (nothing
 * pushed) when the cjson way must decide. */
static int push_text_field(lua_State *L, const vl_field *f, const char *s, const member *m) {
    char c = s[m->v];
    int nul;
    if (c == 'n') {                               /* null: kept for any field (lenient) */
        lua_pushlightuserdata(L, NULL);
        return 1;
    }
    switch (f->type) {
    case VT_STRING:
    case VT_ANNOT:
    case VT_DTO:
    case VT_DURATION:
    case VT_ENUM:
        if (c != '"') return 0;
        push_text_string(L, s, m->v, m->ve, &nul);
        return 1;
    case VT_INT32: {
        long i;
        if (!vl_jscan_int(s + m->v, m->ve - m->v, -2147483647L - 1, 2147483647L, &i)) return 0;
        lua_pushinteger(L, (lua_Integer)i);
        return 1;
    }
    case VT_BOOL:
        if (c != 't' && c != 'f') return 0;
        lua_pushboolean(L, c == 't');
        return 1;
    case VT_DTTZ:
    case VT_BODY:
        return c == '{' && push_text_complex(L, f, s, m->v, m->ve);
    case VT_STRLIST:
        return c == '[' && push_text_strlist(L, s, m->v, m->ve);
    default:
        return 0;
    }
}

static int decode_text(lua_State *L, const char *s, size_t n, const char *family, int collections);

/* A collection ({"value":[...], "@odata.nextLink": ...} without an id): pushes the table
 * of the other members' values with value = the models, or returns 0 with nothing pushed. */
static int decode_collection(lua_State *L, const char *s, const member *m, int count, int vi,
                             const char *family) {
    char ctx_buf[1024];
    int top = lua_gettop(L);
    if (s[m[vi].v] != '[') return 0;
    for (int j = 0; j < count && !family; j++)
        if (key_is(s, &m[j], "@odata.context")) {
            const char *ctx = plain_string(s, &m[j], ctx_buf, sizeof ctx_buf);
            if (!ctx) return 0;
            family = vl_family_of_context(ctx);
        }
    luaL_checkstack(L, 6, "collection");
    lua_newtable(L);
    for (int j = 0; j < count; j++) {             /* the other keys, as plain values */
        if (j == vi) continue;
        if (m[j].kesc || !vl_utf8_valid(s + m[j].k, m[j].kn)) goto leave;
        for (int i = 0; i < j; i++)
            if (m[i].kn == m[j].kn && memcmp(s + m[i].k, s + m[j].k, m[j].kn) == 0) goto leave;
        lua_pushlstring(L, s + m[j].k, m[j].kn);
        vl_push_json_text(L, s + m[j].v, m[j].ve - m[j].v);
        lua_rawset(L, top + 1);
    }
    lua_newtable(L);
    size_t ve = m[vi].ve, i = vl_jscan_ws(s, ve, m[vi].v + 1);
    lua_Integer item = 0;
    while (i < ve && s[i] != ']') {
        size_t e = vl_jscan_value(s, ve, i, 1);
        if (s[i] != '{' || !decode_text(L, s + i, e - i, family, 0)) goto leave;
        lua_rawseti(L, top + 2, ++item);
        i = vl_jscan_ws(s, ve, e);
        if (s[i] == ',') i = vl_jscan_ws(s, ve, i + 1);
    }
    lua_setfield(L, top + 1, "value");
    return 1;
leave:
    lua_settop(L, top);
    return 0;
}

/* A model (or, with collections, a collection) from the object text s[0..n). */
static int decode_text(lua_State *L, const char *s, size_t n, const char *family, int collections) {
    member m[MAX_MEMBERS];
    int count, unknown[MAX_MEMBERS], nu = 0;
    int longs[8], nlongs = 0;                     /* members of long strings stored */
    unsigned seen = 0;
    if (!scan_object(s, n, m, &count)) return 0;
    if (collections) {                            /* a "value" table and no id: a collection */
        int vi = -1, id = 0;
        for (int j = 0; j < count; j++) {
            if (key_is(s, &m[j], "value") && (s[m[j].v] == '[' || s[m[j].v] == '{')) vi = j;
            if (key_is(s, &m[j], "id")) id = 1;
        }
        if (vi >= 0 && !id) return decode_collection(L, s, m, count, vi, family);
    }
    int kind = pick_kind(s, m, count, family);
    if (kind < 0) return 0;
    const vl_kind *k = &vl_kinds[kind];
    const vl_keymap *km = vl_keymap_of(L, kind);
    int top = lua_gettop(L);
    luaL_checkstack(L, 6, "model");
    vl_model_new(L, kind);
    int ud = top + 1;
    for (int j = 0; j < count; j++) {
        const member *mj = &m[j];
        int fi = mj->kesc ? -3 : vl_keymap_get(km, s + mj->k, mj->kn);
        if (fi == -3) goto leave;                 /* escapes in a key */
        if (fi >= 0) {
            const vl_field *f = &k->fields[fi];
            if (seen & VL_BIT(fi)) goto leave;     /* twice, or in both spellings */
            seen |= VL_BIT(fi);
            if (f->type == VT_STRING && s[mj->v] == '"' && mj->ve - mj->v > 42) {
                /* equal long strings (e.g. one logo URL for several themes): keep one */
                int same = -1;
                for (int l = 0; l < nlongs && same < 0; l++)
                    if (m[longs[l]].ve - m[longs[l]].v == mj->ve - mj->v &&
                        memcmp(s + m[longs[l]].v, s + mj->v, mj->ve - mj->v) == 0)
                        same = longs[l];
                if (nlongs < 8) longs[nlongs++] = j;
                if (same >= 0) {
                    lua_getiuservalue(L, ud, VL_UV_FIELD(vl_keymap_get(km, s + m[same].k, m[same].kn)));
                    lua_setiuservalue(L, ud, VL_UV_FIELD(fi));
                    continue;
                }
            }
            if (!push_text_field(L, f, s, mj)) goto leave;
            lua_setiuservalue(L, ud, VL_UV_FIELD(fi));
            continue;
        }
        if (fi == -1 && k->odata_type) continue;  /* implied by the kind */
        /* unknown (or the given @odata.type of a base type): kept as text */
        if (!vl_utf8_valid(s + mj->k, mj->kn)) goto leave;
        for (int u = 0; u < nu; u++)
            if (m[unknown[u]].kn == mj->kn && memcmp(s + m[unknown[u]].k, s + mj->k, mj->kn) == 0) goto leave;
        unknown[nu++] = j;
    }
    if (nu) {
        size_t total = (size_t)(nu - 1), o = 0;
        for (int u = 0; u < nu; u++) total += m[unknown[u]].ve - (m[unknown[u]].k - 1);
        luaL_Buffer b;
        char *p = luaL_buffinitsize(L, &b, total);
        for (int u = 0; u < nu; u++) {
            const member *mu = &m[unknown[u]];
            if (u) p[o++] = ',';
            memcpy(p + o, s + mu->k - 1, mu->ve - (mu->k - 1));
            o += mu->ve - (mu->k - 1);
        }
        luaL_pushresultsize(&b, o);
        lua_setiuservalue(L, ud, VL_UV_EXTRAS);
    }
    return 1;
leave:
    lua_settop(L, top);
    return 0;
}

int vl_model_decode_text(lua_State *L, const char *s, size_t n, const char *family) {
    return decode_text(L, s, n, family, 1);
}
