/* Model JSON: a model's body (all fields, or the changed ones) written in C, and plain
 * values with models inside. See model_json.h. */
#include <string.h>

#include "luacompat.h"

#include "json.h"
#include "model_json.h"
#include "model_store.h"

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
            const char *key = w ? vl_sub_b(f) : vl_sub_a(f);
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
            if (strcmp(key, vl_sub_a(f)) && strcmp(key, vl_sub_b(f))) {
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
    vl_packed p;
    vl_unpack(s, n, &p);
    vl_buf_addc(b, '{');
    if (p.as) {
        put_name(b, vl_sub_a(f));
        if (p.as == VL_SUB_NULL) vl_buf_addlit(b, "null");
        else vl_json_put_string(b, p.a, p.an, 0);
    }
    if (p.bs) {
        if (p.as) vl_buf_addc(b, ',');
        put_name(b, vl_sub_b(f));
        if (p.bs == VL_SUB_NULL) vl_buf_addlit(b, "null");
        else vl_json_put_string(b, p.b, p.bn, 0);
    }
    vl_buf_addc(b, '}');
}

static void put_udata(vl_buf *b, int idx) {
    if (!vl_model_kind(b->L, idx)) luaL_error(b->L, "cannot encode a value of type %s", luaL_typename(b->L, idx));
    vl_model_put_json(b, idx, 0);
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
        if (changes_only && !(m->dirty & (VL_BIT(i)))) continue;
        int t = lua_getiuservalue(L, idx, VL_UV_FIELD(i));
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
    int xt = changes_only ? LUA_TNIL : lua_getiuservalue(L, idx, VL_UV_EXTRAS);
    if (xt == LUA_TSTRING) {              /* the members' text as it came: verbatim */
        size_t xn;
        const char *x = lua_tolstring(L, -1, &xn);
        if (!first) vl_buf_addc(b, ',');
        vl_buf_addn(b, x, xn);
        lua_pop(L, 1);
    } else if (xt == LUA_TTABLE) {
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
    b.put_udata = put_udata;
    vl_model_put_json(&b, 1, changes);
    vl_buf_finish(&b);
    return 1;
}

void vl_model_push_json(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    vl_checkmodel(L, idx);
    lua_pushcfunction(L, push_json_protected);
    lua_pushvalue(L, idx);
    lua_call(L, 1, 1);
}

void vl_model_push_changes_json(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    vl_model *m = vl_checkmodel(L, idx);
    if (!m->dirty) {
        lua_pushnil(L);
        return;
    }
    lua_pushcfunction(L, push_json_protected);
    lua_pushvalue(L, idx);
    lua_pushboolean(L, 1);
    lua_call(L, 2, 1);
}

int vl_json_encode(lua_State *L, int idx) {
    return vl_json_encode_with(L, idx, put_udata);
}
