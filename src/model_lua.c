/* The Lua face of the models: constructors, viva.decode, viva.check, metamethods, methods,
 * and the C interface the client uses (model_lua.h). The top model stage: it depends on
 * model_text.h, model_json.h, model_store.h and model_value.h; only the binding depends
 * on it. */
#include <stdio.h>
#include <string.h>

#include "luacompat.h"

#include "json.h"
#include "model_json.h"
#include "model_lua.h"
#include "model_store.h"
#include "model_text.h"
#include "model_value.h"

static int m_construct(lua_State *L) {
    int kind = (int)lua_tointeger(L, lua_upvalueindex(1));
    if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    vl_push_names(L, kind);                 /* 2 */
    vl_model_new(L, kind);                   /* 3 */
    if (!lua_isnil(L, 1)) {
        vl_sink S = { 0, 0 };
        vl_model_fill(L, 3, 2, 1, VL_MODE_STRICT, &S);
    }
    return 1;
}

static void from_table(lua_State *L, int tidx, const char *family, int mode) {
    tidx = lua_absindex(L, tidx);
    if (lua_type(L, tidx) != LUA_TTABLE) {
        lua_pushfstring(L, "JSON object expected for a model, got %s", luaL_typename(L, tidx));
        lua_error(L);
    }
    lua_getfield(L, tidx, "@odata.type");
    const char *ot = lua_tostring(L, -1);
    int kind = vl_kind_of_odata(ot);
    if (kind < 0) {
        if (!family) family = vl_guess_family(L, tidx);
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
    vl_push_names(L, kind);
    int names = lua_gettop(L);
    vl_model_new(L, kind);
    vl_sink S = { 0, 0 };
    vl_model_fill(L, names + 1, names, tidx, mode, &S);
    lua_remove(L, names);
}

static int from_table_protected(lua_State *L) {
    from_table(L, 1, lua_tostring(L, 2), lua_toboolean(L, 3) ? VL_MODE_ADOPT : VL_MODE_LENIENT);
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
    if (lua_getfield(L, 1, "value") == LUA_TTABLE && !vl_has_key(L, 1, "id")) {
        /* a collection: models in value, other keys kept */
        if (!family) {
            lua_getfield(L, 1, "@odata.context");
            family = vl_family_of_context(lua_tostring(L, -1));
            lua_pop(L, 1);
        }
        lua_newtable(L);                                  /* 4: result */
        lua_pushnil(L);
        while (lua_next(L, 1)) {
            if (lua_type(L, -2) == LUA_TSTRING && strcmp(lua_tostring(L, -2), "value") == 0) {
                lua_pop(L, 1);
                continue;
            }
            vl_sink S = { 0, 0 };
            size_t kn = 0;
            const char *key = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &kn) : NULL;
            if (!key || !vl_utf8_valid(key, kn)) luaL_error(L, "property names in valid UTF-8 expected");
            vl_take_json(L, &S, adopt ? VL_MODE_ADOPT : VL_MODE_LENIENT, key, -1, 1);
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
                lua_pushfstring(L, "value[" VL_FMTI "]: %s", VL_ARGI(i), lua_tostring(L, -1));
                lua_error(L);
            }
            lua_rawseti(L, 5, i);
        }
        lua_setfield(L, 4, "value");
        return 1;
    }
    lua_pop(L, 1);
    from_table(L, 1, family, adopt ? VL_MODE_ADOPT : VL_MODE_LENIENT);
    return 1;
}

static int m_decode(lua_State *L) {
    int t = lua_type(L, 1);
    const char *family = luaL_optstring(L, 2, NULL);
    if (family && strcmp(family, "activity") && strcmp(family, "provider") && strcmp(family, "content"))
        return luaL_argerror(L, 2, "'activity', 'provider' or 'content' expected");
    if (t != LUA_TSTRING && t != LUA_TTABLE) return luaL_typeerror(L, 1, "JSON string or table");
    lua_settop(L, 2);
    if (t == LUA_TSTRING) {                         /* straight from the text, when it can */
        size_t n;
        const char *text = lua_tolstring(L, 1, &n);
        if (vl_model_decode_text(L, text, n, family)) return 1;
    }
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
    vl_sink S = { 3, 0 };
    if (kind == VL_K_ACTIVITY) {
        lua_getfield(L, 2, "@odata.type");
        int k = vl_kind_of_odata(lua_tostring(L, -1));
        if (k != VL_K_ASSIGNMENT && k != VL_K_SELF) {
            vl_report(L, &S, "@odata.type", "\"#microsoft.graph.learningAssignment\" or "
                   "\"#microsoft.graph.learningSelfInitiatedCourse\" expected", -1, 1);
        } else {
            kind = k;
        }
        lua_pop(L, 1);
    }
    if (kind != VL_K_ACTIVITY) {
        const vl_kind *k = &vl_kinds[kind];
        vl_push_names(L, kind);                            /* 4 */
        vl_model_new(L, kind);                              /* 5 */
        vl_model_fill(L, 5, 4, 2, VL_MODE_STRICT, &S);
        for (int i = 0; i < k->nfields; i++) {
            const vl_field *f = &k->fields[i];
            if (!(f->flags & VF_REQUIRED)) continue;
            int t = lua_getiuservalue(L, 5, VL_UV_FIELD(i));
            lua_pop(L, 1);
            if (t != LUA_TNIL) continue;
            /* absent (not reported yet as invalid) */
            int given = vl_has_key(L, 2, f->name) || (f->alias && vl_has_key(L, 2, f->alias));
            if (!given) vl_report(L, &S, f->name, "required field missing", 0, 0);
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
        kind = t == LUA_TNIL ? VL_K_ACTIVITY : t == LUA_TSTRING ? vl_kind_of_odata(lua_tostring(L, -1)) : -1;
        if (kind < 0 || strcmp(vl_kinds[kind].family, "activity") != 0) {
            vl_sink S = { 0, 0 };                        /* raises */
            return vl_report(L, &S, "@odata.type", "\"#microsoft.graph.learningAssignment\" or "
                          "\"#microsoft.graph.learningSelfInitiatedCourse\" expected", -1, 1);
        }
        lua_pop(L, 1);
    }
    vl_push_names(L, kind);                          /* 3 */
    vl_model *m = vl_model_new(L, kind);              /* 4 */
    vl_sink S = { 0, 0 };
    vl_model_fill(L, 4, 3, 1, VL_MODE_STRICT, &S);
    const vl_kind *k = &vl_kinds[kind];
    for (int i = 0; i < k->nfields; i++) {        /* every field given is a change */
        if (lua_getiuservalue(L, 4, VL_UV_FIELD(i)) != LUA_TNIL) m->dirty |= VL_BIT(i);
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

void vl_model_push_field(lua_State *L, int idx, const char *field) {
    idx = lua_absindex(L, idx);
    vl_model *m = vl_tomodel(L, idx);
    if (!m) {
        lua_pushnil(L);
        return;
    }
    const vl_kind *k = &vl_kinds[m->kind];
    int fi = vl_find_field(k, field, strlen(field));
    if (fi >= 0) {
        vl_push_field(L, idx, &k->fields[fi], fi);
        return;
    }
    if (strcmp(field, "@odata.type") == 0 && k->odata_type) {
        lua_pushstring(L, k->odata_type);
        return;
    }
    if (!vl_extras_get(L, idx, field, strlen(field))) lua_pushnil(L);
}

void vl_model_clean(lua_State *L, int idx) {
    vl_model *m = vl_tomodel(L, idx);
    if (m) m->dirty = 0;
}

int vl_model_set_id(lua_State *L, int idx, const char *id) {
    idx = lua_absindex(L, idx);
    vl_model *m = vl_tomodel(L, idx);
    if (!m || !id || !vl_utf8_valid(id, strlen(id))) return 0;
    lua_pushstring(L, id);
    lua_setiuservalue(L, idx, VL_UV_FIELD(0));
    m->dirty &= ~1U;
    return 1;
}

/* ------------------------------------------------------------------ metamethods */

/* The receiver of __index / __newindex: a model of the kind whose metatable is upvalue 2
 * (upvalue 1: the kind's field-name table; 3: the kind index; 4: the methods). */
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

/* __index: upvalues as check_receiver's. Fields first, then methods, then unknown
 * properties. */
static int m_index(lua_State *L) {
    vl_model *m = check_receiver(L);
    lua_settop(L, 2);
    lua_pushvalue(L, 2);
    int t = lua_rawget(L, lua_upvalueindex(1));
    if (t == LUA_TNUMBER && lua_tointeger(L, -1) >= 0) {
        int fi = (int)lua_tointeger(L, -1);
        vl_push_field(L, 1, &vl_kinds[m->kind].fields[fi], fi);
        return 1;
    }
    lua_pop(L, 1);
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(4)) == LUA_TFUNCTION) return 1;
    lua_pop(L, 1);
    const vl_kind *k = &vl_kinds[m->kind];
    if (lua_type(L, 2) != LUA_TSTRING) return luaL_error(L, "%s: field name (string) expected, got %s",
                                                         k->type_name, luaL_typename(L, 2));
    size_t kn;
    const char *key = lua_tolstring(L, 2, &kn);
    if (strcmp(key, "@odata.type") == 0 && k->odata_type) {
        lua_pushstring(L, k->odata_type);
        return 1;
    }
    if (vl_extras_get(L, 1, key, kn)) return 1;
    if (key[0] == '@') {                 /* annotations: absent reads nil */
        lua_pushnil(L);
        return 1;
    }
    const char *best = vl_suggest(k, key);
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
        vl_push_repr(L, 3);
        return luaL_error(L, "@odata.type: is given by the model type (%s), not assignable, got %s",
                          k->type_name, lua_tostring(L, -1));
    }
    if (t == LUA_TNUMBER) {
        int fi = (int)lua_tointeger(L, -1);
        const vl_field *f = &k->fields[fi];
        lua_pop(L, 1);
        if (lua_isnil(L, 3)) {                              /* unset: nothing to send */
            lua_pushnil(L);
            lua_setiuservalue(L, 1, VL_UV_FIELD(fi));
            m->dirty &= ~(VL_BIT(fi));
            return 0;
        }
        vl_sink S = { 0, 0 };
        vl_convert_push(L, &S, VL_MODE_STRICT, f, 3);            /* raises on error */
        lua_getiuservalue(L, 1, VL_UV_FIELD(fi));             /* 5: old */
        if (!vl_deep_equal(L, 4, 5, 0)) m->dirty |= VL_BIT(fi);
        lua_pop(L, 1);
        lua_setiuservalue(L, 1, VL_UV_FIELD(fi));
        return 0;
    }
    if (lua_type(L, 2) != LUA_TSTRING) return luaL_error(L, "%s: field name (string) expected, got %s",
                                                         k->type_name, luaL_typename(L, 2));
    const char *key = lua_tostring(L, 2);
    vl_push_repr(L, 3);                                        /* 5: the value, for messages */
    const char *got = lua_tostring(L, -1);
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(4)) == LUA_TFUNCTION)
        return luaL_error(L, "%s: is a method of %s, not a field, got %s", key, k->type_name, got);
    lua_pop(L, 1);
    const char *best = vl_suggest(k, key);
    if (best) return luaL_error(L, "%s: unknown field of %s (did you mean %s?), got %s", key, k->type_name, best, got);
    return luaL_error(L, "%s: unknown field of %s, got %s", key, k->type_name, got);
}

/* __pairs iterator: upvalue 1 = next field index (nfields: extras from the start; then
 * nfields+1: a table of extras, continuing from the key given; nfields+1+o: raw text of
 * extras, continuing at byte o). */
static int m_next(lua_State *L) {
    vl_model *m = vl_checkmodel(L, 1);
    const vl_kind *k = &vl_kinds[m->kind];
    lua_Integer pos = lua_tointeger(L, lua_upvalueindex(1));
    lua_settop(L, 2);
    while (pos < k->nfields) {
        int i = (int)pos++;
        vl_push_field(L, 1, &k->fields[i], i);
        if (!lua_isnil(L, -1)) {
            lua_pushinteger(L, pos);
            lua_replace(L, lua_upvalueindex(1));
            lua_pushstring(L, k->fields[i].name);
            lua_insert(L, -2);
            return 2;
        }
        lua_pop(L, 1);
    }
    int t = lua_getiuservalue(L, 1, VL_UV_EXTRAS);
    if (t == LUA_TSTRING) {
        size_t o = pos == k->nfields ? 0 : (size_t)(pos - k->nfields - 1);
        if (!vl_extras_raw_next(L, 1, &o)) return 0;
        lua_pushinteger(L, (lua_Integer)o + k->nfields + 1);
        lua_replace(L, lua_upvalueindex(1));
        return 2;
    }
    if (t != LUA_TTABLE) return 0;
    if (pos == k->nfields) {
        lua_pushnil(L);
        lua_pushinteger(L, pos + 1);
        lua_replace(L, lua_upvalueindex(1));
    } else {
        lua_pushvalue(L, 2);
    }
    if (!lua_next(L, -2)) return 0;
    if (lua_type(L, -1) == LUA_TTABLE) {
        vl_sink S = { 0, 0 };
        vl_copy_json(L, &S, "?", -1, 0);
        lua_remove(L, -2);
    }
    return 2;
}

static int m_pairs(lua_State *L) {
    vl_checkmodel(L, 1);
    lua_pushinteger(L, 0);
    lua_pushcclosure(L, m_next, 1);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

static int m_tostring(lua_State *L) {
    vl_model *m = vl_checkmodel(L, 1);
    const vl_kind *k = &vl_kinds[m->kind];
    size_t n = 0;
    if (lua_getiuservalue(L, 1, VL_UV_FIELD(0)) == LUA_TSTRING) {
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
    vl_model *a = vl_tomodel(L, 1), *b = vl_tomodel(L, 2);
    if (!a || !b || a->kind != b->kind) {
        lua_pushboolean(L, 0);
        return 1;
    }
    int n = vl_kinds[a->kind].nfields, eq = 1;
    for (int i = 0; i < n && eq; i++) {
        lua_getiuservalue(L, 1, VL_UV_FIELD(i));
        lua_getiuservalue(L, 2, VL_UV_FIELD(i));
        eq = vl_deep_equal(L, -1, -2, 0);
        lua_pop(L, 2);
    }
    if (eq) {                            /* unknown properties by value, whatever their form */
        lua_settop(L, 2);
        vl_extras_push_all(L, 1);
        vl_extras_push_all(L, 2);
        eq = vl_deep_equal(L, 3, 4, 0);
    }
    lua_pushboolean(L, eq);
    return 1;
}

/* ------------------------------------------------------------------ methods */

static int m_totable(lua_State *L) {
    vl_model *m = vl_checkmodel(L, 1);
    const vl_kind *k = &vl_kinds[m->kind];
    lua_settop(L, 1);
    lua_createtable(L, 0, k->nfields + 1);
    if (k->odata_type) {
        lua_pushstring(L, k->odata_type);
        lua_setfield(L, 2, "@odata.type");
    }
    for (int i = 0; i < k->nfields; i++) {
        vl_push_field(L, 1, &k->fields[i], i);
        lua_setfield(L, 2, k->fields[i].name);
    }
    vl_extras_push_all(L, 1);           /* 3: a fresh table (or nil): move its entries */
    if (lua_istable(L, 3)) {
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, 2);
        }
    }
    lua_settop(L, 2);
    return 1;
}

static int m_tojson(lua_State *L) {
    vl_checkmodel(L, 1);
    lua_settop(L, 1);
    vl_buf b;
    vl_buf_init(L, &b);
    vl_model_put_json(&b, 1, 0);
    vl_buf_finish(&b);
    return 1;
}

static int m_changes(lua_State *L) {
    vl_model *m = vl_checkmodel(L, 1);
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
        if (!(m->dirty & (VL_BIT(i)))) continue;
        vl_push_field(L, 1, &k->fields[i], i);
        lua_setfield(L, 2, k->fields[i].name);
    }
    return 1;
}

static int m_clean(lua_State *L) {
    vl_model *m = vl_checkmodel(L, 1);
    m->dirty = 0;
    lua_settop(L, 1);
    return 1;
}

static int m_kind(lua_State *L) {
    vl_model *m = vl_checkmodel(L, 1);
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
    { "pairs", m_pairs }, /* m:pairs(): __pairs on every Lua (5.1 and LuaJIT never call it) */
    { NULL, NULL },
};

void vl_model_open(lua_State *L) {
    int mod = lua_gettop(L);
    luaL_checkstack(L, 10, "vl_model_open");
    vl_json_open(L);
    vl_model_store_open(L);
    /* methods: a table of their own, shared by every kind (not the field-name table) */
    luaL_newlib(L, methods);
    int meths = lua_gettop(L);
    for (int kind = 0; kind < VL_NKINDS; kind++) {
        const vl_kind *k = &vl_kinds[kind];
        char tname[96];
        snprintf(tname, sizeof tname, "vivalearning.%s", k->type_name);
        luaL_newmetatable(L, tname);                  /* reused when it exists */
        int mt = lua_gettop(L);
        lua_pushinteger(L, kind);
        lua_rawsetp(L, mt, vl_model_tag_key());
        for (int w = 0; w < 2; w++) {                 /* __index, __newindex */
            vl_push_names(L, kind);
            lua_pushvalue(L, mt);
            lua_pushinteger(L, kind);
            lua_pushvalue(L, meths);
            lua_pushcclosure(L, w ? m_newindex : m_index, 4);
            lua_setfield(L, mt, w ? "__newindex" : "__index");
        }
        lua_pushcfunction(L, m_pairs);
        lua_setfield(L, mt, "__pairs");
        lua_pushcfunction(L, m_tostring);
        lua_setfield(L, mt, "__tostring");
        lua_pushcfunction(L, m_eq);
        lua_setfield(L, mt, "__eq");
        lua_rawsetp(L, LUA_REGISTRYINDEX, vl_model_mt_key(kind));   /* pops mt */
    }
    lua_pop(L, 1);                                    /* methods */
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
