/* The model object: one userdata per model, a small C header (kind, change bits) and one Lua
 * user value per schema field (user value i+2 = field i; user value 1 = the unknown
 * properties, or nil). Field values are in the stored forms of model_value.h (strings are
 * shared with Lua's string table, so identical ids cost nothing); explicit JSON null is the
 * lightuserdata NULL (= viva.null = cjson.null). Nothing is malloc'd: every byte belongs
 * to Lua, so errors (longjmp) leak nothing and no __gc is needed. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "luacompat.h"

#include "json.h"
#include "json_scan.h"
#include "model_store.h"

VL_STATIC_ASSERT(sizeof(unsigned int) * CHAR_BIT >= VL_MAX_FIELDS, change_mask_has_a_bit_per_field);

/* Registry / metatable keys: addresses of these constants (never written). */
static const char vl_model_tag = 't';                 /* metatable[&tag] = kind index */
static const char vl_mt_keys[VL_NKINDS] = { 0 };      /* registry[&vl_mt_keys[k]] = metatable */
static const char vl_names_keys[VL_NKINDS] = { 0 };   /* registry[&vl_names_keys[k]] = names */
static const char vl_guess_key = 'g';                 /* registry[&guess] = property -> family */
static const char vl_ptrmap_key = 'p';                /* names[&ptrmap] = pointer map userdata */
static const char vl_keymap_key = 'k';                /* names[&keymap] = key map userdata */

const void *vl_model_tag_key(void) { return &vl_model_tag; }
const void *vl_model_mt_key(int kind) { return &vl_mt_keys[kind]; }

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

/* The model at idx, or NULL. The tag names the kind, and the metatable must then be that
 * kind's own: the metatable is reachable from Lua, so a tag copied onto another userdata's
 * metatable (or changed) proves nothing. */
vl_model *vl_tomodel(lua_State *L, int idx) {
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

vl_model *vl_checkmodel(lua_State *L, int idx) {
    vl_model *m = vl_tomodel(L, idx);
    if (!m) luaL_typeerror(L, idx, "vivalearning model");
    return m;
}

const char *vl_model_kind(lua_State *L, int idx) {
    vl_model *m = vl_tomodel(L, idx);
    return m ? vl_kinds[m->kind].kind : NULL;
}

void vl_push_field(lua_State *L, int ud, const vl_field *f, int fi) {
    int t = lua_getiuservalue(L, ud, VL_UV_FIELD(fi));
    if (t == LUA_TNIL || t == LUA_TLIGHTUSERDATA) return;
    if (f->type == VT_STRLIST && t == LUA_TSTRING) {
        vl_push_strlist(L, lua_gettop(L));
        lua_remove(L, -2);
    } else if (f->type == VT_DTTZ || f->type == VT_BODY) {
        vl_push_complex(L, f, lua_gettop(L));
        lua_remove(L, -2);
    } else if (t == LUA_TTABLE) {
        vl_sink S = { 0, 0 };
        vl_copy_json(L, &S, f->name, -1, 0);
        lua_remove(L, -2);
    }
}

/* ------------------------------------------------------------------ construction */

void vl_push_names(lua_State *L, int kind) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &vl_names_keys[kind]);
}

vl_model *vl_model_new(lua_State *L, int kind) {
    const vl_kind *k = &vl_kinds[kind];
    vl_model *m = (vl_model *)lua_newuserdatauv(L, sizeof(vl_model), k->nfields + 1);
    memset(m, 0, sizeof *m);
    m->kind = (unsigned int)kind;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &vl_mt_keys[kind]);
    lua_setmetatable(L, -2);
    return m;
}

static void set_extra(lua_State *L, int ud) {   /* [key, value] on top -> extras */
    if (lua_getiuservalue(L, ud, VL_UV_EXTRAS) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_createtable(L, 0, 1);
        lua_pushvalue(L, -1);
        lua_setiuservalue(L, ud, VL_UV_EXTRAS);
    }
    lua_insert(L, -3);
    lua_rawset(L, -3);
    lua_pop(L, 1);
}

/* Fills the model at ud from the table at tidx. names: the kind's lookup table index. */
void vl_model_fill(lua_State *L, int ud, int names, int tidx, int mode, vl_sink *S) {
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
            int r = vl_convert(L, S, mode, &k->fields[fi], vidx);
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
                    if (nlongs < 8) longs[nlongs++] = VL_UV_FIELD(fi);
                }
                lua_setiuservalue(L, ud, VL_UV_FIELD(fi));       /* pops the value itself */
                continue;
            }
            if (r) lua_setiuservalue(L, ud, VL_UV_FIELD(fi));
            lua_pop(L, 1);
            continue;
        }
        if (lua_type(L, -2) != LUA_TSTRING) {
            vl_report(L, S, "?", "field names must be strings", -2, 1);
            lua_pop(L, 1);
            continue;
        }
        size_t kn;
        const char *key = lua_tolstring(L, -2, &kn);
        if (fi == -1) {                           /* @odata.type */
            size_t n = 0;
            const char *v = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
            const char *want = k->odata_type;
            if (!want && (mode == VL_MODE_STRICT || !v)) want = k->full_type;
            if (want && (!v || strcmp(v, want) != 0)) {
                char prob[160];
                snprintf(prob, sizeof prob, "\"%s\" expected", want);
                vl_report(L, S, "@odata.type", prob, -1, 1);
                lua_pop(L, 1);
                continue;
            }
            if (k->odata_type) {              /* implied by the kind */
                lua_pop(L, 1);
                continue;
            }
            /* base activity / provider / content: keep it as given (round trip) */
        } else if (mode == VL_MODE_STRICT && key[0] != '@') {
            const char *best = vl_suggest(k, key);
            const vl_kind *sub = NULL;
            char prob[240];
            if (m->kind == VL_K_ACTIVITY)            /* a subtype's field: the type is not given */
                sub = vl_find_field(&vl_kinds[VL_K_ASSIGNMENT], key, kn) >= 0 ? &vl_kinds[VL_K_ASSIGNMENT]
                    : vl_find_field(&vl_kinds[VL_K_SELF], key, kn) >= 0 ? &vl_kinds[VL_K_SELF] : NULL;
            if (sub) snprintf(prob, sizeof prob, "unknown field of %s (a field of %s: give @odata.type = \"%s\")",
                              k->type_name, sub->type_name, sub->odata_type);
            else if (best) snprintf(prob, sizeof prob, "unknown field of %s (did you mean %s?)", k->type_name, best);
            else snprintf(prob, sizeof prob, "unknown field of %s", k->type_name);
            vl_report(L, S, key, prob, -1, 1);
            lua_pop(L, 1);
            continue;
        }
        if (!vl_utf8_valid(key, kn)) {
            vl_report(L, S, "?", "field names in valid UTF-8 expected", -2, 1);
            lua_pop(L, 1);
            continue;
        }
        if (vl_take_json(L, S, mode, key, -1, 1)) {
            lua_pushvalue(L, -3);
            lua_insert(L, -2);
            set_extra(L, ud);
        }
        lua_pop(L, 1);
    }
}

/* Strict constructor: viva.assignment{...} etc. Upvalue 1: kind index. */
/* ------------------------------------------------------------------ family / kind picking */

int vl_kind_of_odata(const char *t) {
    static const char prefix[] = "#microsoft.graph.learning";
    if (!t || strncmp(t, prefix, sizeof prefix - 1) != 0) return -1;
    for (int i = 0; i < VL_NKINDS; i++)
        if (strcmp(t + sizeof prefix - 1, vl_kinds[i].full_type + sizeof prefix - 1) == 0) return i;
    return -1;
}

int vl_has_key(lua_State *L, int tidx, const char *key) {
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

/* Family of a table without @odata.type: from @odata.context, else from its properties
 * (one walk over its keys); NULL if none fits. */
const char *vl_guess_family(lua_State *L, int tidx) {
    const char *found = NULL;
    lua_getfield(L, tidx, "@odata.context");
    found = vl_family_of_context(lua_tostring(L, -1));
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

const char *vl_family_of_context(const char *ctx) {
    if (!ctx) return NULL;
    if (strstr(ctx, "learningCourseActivities")) return "activity";
    if (strstr(ctx, "learningContents")) return "content";
    if (strstr(ctx, "learningProviders")) return "provider";
    return NULL;
}

/* Lenient model from the table at tidx (raises on invalid data; run protected). */
/* ------------------------------------------------------------------ unknown properties */

/* The member of raw unknown-property text at i: key body [*k, *k + *kn) (no escapes: the
 * decoder keeps only such keys), value [*v, *ve). Returns the index of the next member, or
 * 0 at the end. The text was checked when the model was made. */
static size_t raw_member(const char *s, size_t n, size_t i, size_t *k, size_t *kn, size_t *v, size_t *ve) {
    int esc;
    if (i >= n || s[i] != '"') return 0;
    size_t e = vl_jscan_string(s, n, i, &esc);
    if (!e) return 0;
    *k = i + 1;
    *kn = e - i - 2;
    i = vl_jscan_ws(s, n, e);
    i = vl_jscan_ws(s, n, i + 1);                 /* the colon */
    *v = i;
    *ve = vl_jscan_value(s, n, i, 1);
    if (!*ve) return 0;
    i = *ve;
    return i < n ? i + 1 : n;                     /* the comma */
}

int vl_extras_get(lua_State *L, int ud, const char *key, size_t kn) {
    int t = lua_getiuservalue(L, ud, VL_UV_EXTRAS);
    if (t == LUA_TTABLE) {
        lua_pushlstring(L, key, kn);
        if (lua_rawget(L, -2) != LUA_TNIL) {
            if (lua_type(L, -1) == LUA_TTABLE) {
                vl_sink S = { 0, 0 };
                vl_copy_json(L, &S, key, -1, 0);
                lua_remove(L, -2);
            }
            lua_remove(L, -2);
            return 1;
        }
        lua_pop(L, 2);
        return 0;
    }
    if (t == LUA_TSTRING) {
        size_t n, i = 0, k, kl, v, ve;
        const char *s = lua_tolstring(L, -1, &n);
        while ((i = raw_member(s, n, i, &k, &kl, &v, &ve)) != 0) {
            if (kl == kn && memcmp(s + k, key, kn) == 0) {
                vl_push_json_text(L, s + v, ve - v);
                lua_remove(L, -2);
                return 1;
            }
        }
    }
    lua_pop(L, 1);
    return 0;
}

int vl_extras_raw_next(lua_State *L, int ud, size_t *pos) {
    size_t n, k, kl, v, ve, next;
    if (lua_getiuservalue(L, ud, VL_UV_EXTRAS) != LUA_TSTRING) {
        lua_pop(L, 1);
        return 0;
    }
    const char *s = lua_tolstring(L, -1, &n);
    if (!(next = raw_member(s, n, *pos, &k, &kl, &v, &ve))) {
        lua_pop(L, 1);
        return 0;
    }
    *pos = next;
    lua_pushlstring(L, s + k, kl);
    vl_push_json_text(L, s + v, ve - v);
    lua_remove(L, -3);
    return 1;
}

void vl_extras_push_all(lua_State *L, int ud) {
    vl_sink S = { 0, 0 };
    int t = lua_getiuservalue(L, ud, VL_UV_EXTRAS);
    if (t == LUA_TTABLE) {
        vl_copy_json(L, &S, "?", -1, 0);
        lua_remove(L, -2);
        return;
    }
    if (t != LUA_TSTRING) return;                 /* nil */
    lua_pop(L, 1);
    lua_newtable(L);
    size_t pos = 0;
    while (vl_extras_raw_next(L, ud, &pos)) lua_rawset(L, -3);
}

/* Field lookup by the bytes of a key (decoding from text, where no Lua string exists yet):
 * open addressing over a hash of the bytes; slots hold the schema's own name strings. */
#define KEYMAP_SLOTS 128
VL_STATIC_ASSERT(KEYMAP_SLOTS > VL_MAX_NAMES, key_map_has_a_slot_per_name_and_one_free);
struct vl_keymap {
    const char *name[KEYMAP_SLOTS];
    unsigned char len[KEYMAP_SLOTS];
    signed char idx[KEYMAP_SLOTS];
};

static unsigned key_hash(const char *s, size_t n) {
    unsigned h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static void keymap_put(vl_keymap *km, const char *name, int idx) {
    size_t n = strlen(name);
    unsigned h = key_hash(name, n) % KEYMAP_SLOTS;
    while (km->name[h] && strcmp(km->name[h], name) != 0) h = (h + 1) % KEYMAP_SLOTS;
    km->name[h] = name;
    km->len[h] = (unsigned char)n;
    km->idx[h] = (signed char)idx;
}

const vl_keymap *vl_keymap_of(lua_State *L, int kind) {
    vl_push_names(L, kind);
    lua_rawgetp(L, -1, &vl_keymap_key);
    const vl_keymap *km = (const vl_keymap *)lua_touserdata(L, -1);   /* kept alive by names */
    lua_pop(L, 2);
    return km;
}

int vl_keymap_get(const vl_keymap *km, const char *s, size_t n) {
    unsigned h = key_hash(s, n) % KEYMAP_SLOTS;
    for (; km->name[h]; h = (h + 1) % KEYMAP_SLOTS)
        if (km->len[h] == n && memcmp(km->name[h], s, n) == 0) return km->idx[h];
    return -2;
}

const char *vl_guess_prop(const char *s, size_t n) {
    for (size_t i = 0; i < sizeof guess_props / sizeof guess_props[0]; i++)
        if (strlen(guess_props[i][0]) == n && memcmp(guess_props[i][0], s, n) == 0) return guess_props[i][1];
    return NULL;
}

void vl_model_store_open(lua_State *L) {
    luaL_checkstack(L, 8, "vl_model_store_open");
    for (int kind = 0; kind < VL_NKINDS; kind++) {
        const vl_kind *k = &vl_kinds[kind];
        /* names: every accepted spelling -> field index, @odata.type -> -1 (fields only) */
        lua_createtable(L, 0, 2 * k->nfields + 2);
        int names = lua_gettop(L);
        for (int i = 0; i < k->nfields; i++) {
            const vl_field *f = &k->fields[i];
            lua_pushinteger(L, i);
            lua_setfield(L, names, f->name);
            if (f->wire) { lua_pushinteger(L, i); lua_setfield(L, names, f->wire); }
            if (f->alias) { lua_pushinteger(L, i); lua_setfield(L, names, f->alias); }
        }
        lua_pushinteger(L, -1);
        lua_setfield(L, names, "@odata.type");
        /* the pointer map of every string key of names */
        vl_ptrmap *pm = (vl_ptrmap *)lua_newuserdatauv(L, sizeof(vl_ptrmap), 0);
        memset(pm, 0, sizeof *pm);
        lua_pushnil(L);
        while (lua_next(L, names)) {
            if (lua_type(L, -2) == LUA_TSTRING && lua_isinteger(L, -1))
                ptrmap_put(pm, lua_tostring(L, -2), (int)lua_tointeger(L, -1));
            lua_pop(L, 1);
        }
        lua_rawsetp(L, names, &vl_ptrmap_key);
        vl_keymap *km = (vl_keymap *)lua_newuserdatauv(L, sizeof(vl_keymap), 0);
        memset(km, 0, sizeof *km);
        for (int i = 0; i < k->nfields; i++) {
            const vl_field *f = &k->fields[i];
            keymap_put(km, f->name, i);
            if (f->wire) keymap_put(km, f->wire, i);
            if (f->alias) keymap_put(km, f->alias, i);
        }
        keymap_put(km, "@odata.type", -1);
        lua_rawsetp(L, names, &vl_keymap_key);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &vl_names_keys[kind]);   /* pops names */
    }
    lua_createtable(L, 0, (int)(sizeof guess_props / sizeof guess_props[0]));
    for (size_t i = 0; i < sizeof guess_props / sizeof guess_props[0]; i++) {
        lua_pushlightuserdata(L, (void *)guess_props[i][1]);
        lua_setfield(L, -2, guess_props[i][0]);
    }
    lua_rawsetp(L, LUA_REGISTRYINDEX, &vl_guess_key);
}
