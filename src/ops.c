/* The operations: request builders (one parser per op), pages, and the ops table. */
#include <stdio.h>
#include <string.h>

#include "altkey.h"
#include "json.h"
#include "model.h"
#include "ops.h"
#include "options.h"
#include "result.h"

/* ------------------------------------------------------------------ building requests */

static const char *arg_string(lua_State *L, int idx, const char *what, size_t *n) {
    if (lua_type(L, idx) != LUA_TSTRING)
        luaL_error(L, "vivalearning: %s must be a string, got %s", what, luaL_typename(L, idx));
    return lua_tolstring(L, idx, n);
}

/* Pushes nil and the validation error "what: problem, got <id>" (the buffer is done). */
static void bad_id(lua_State *L, const char *s, size_t n, const char *what, const char *problem) {
    char msg[300];
    lua_pushlstring(L, s, n);
    vl_push_repr(L, -1);
    snprintf(msg, sizeof msg, "%s: %s, got %s", what, problem, lua_tostring(L, -1));
    lua_pop(L, 2);
    vl_error_validation(L, "%s", msg);
}

/* Appends a segment; on a bad id pushes nil, validation error and returns 0. */
static int add_seg(lua_State *L, luaL_Buffer *b, const char *s, size_t n, const char *what) {
    const char *e = vl_url_add_segment(b, s, n);
    if (e) {
        luaL_pushresult(b);
        lua_pop(L, 1);
        bad_id(L, s, n, what, e);
        return 0;
    }
    return 1;
}

/* the model at idx (a model, or a table turned into one by the strict constructors).
 * Returns the stack index of the model or 0 after pushing nil, err. */
static int check_model(lua_State *L, int idx, int family) {
    const char *kind = vl_model_kind(L, idx);
    idx = lua_absindex(L, idx);
    if (kind) {
        int ok = family == VL_FAM_ACTIVITY ? (strcmp(kind, "assignment") == 0 || strcmp(kind, "self_initiated") == 0 ||
                                              strcmp(kind, "activity") == 0)
                                           : strcmp(kind, vl_famname[family]) == 0;
        if (!ok) luaL_error(L, "vivalearning: %s model expected, got %s", vl_famname[family], kind);
        return idx;
    }
    if (lua_type(L, idx) != LUA_TTABLE)
        luaL_error(L, "vivalearning: %s model or table expected, got %s", vl_famname[family], luaL_typename(L, idx));
    {
        /* a plain table: validated by the model constructors (upvalue 1 = module table) */
        const char *ctor = vl_famname[family];
        int st;
        if (family == VL_FAM_ACTIVITY) {
            const char *t = NULL;
            lua_getfield(L, idx, "@odata.type");
            t = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
            if (t && strstr(t, "learningSelfInitiatedCourse")) ctor = "self_initiated";
            else if (t && strstr(t, "learningAssignment")) ctor = "assignment";
            else {
                char msg[300];
                vl_push_repr(L, -1);
                snprintf(msg, sizeof msg, "@odata.type must name learningAssignment or learningSelfInitiatedCourse, got %s",
                         lua_tostring(L, -1));
                lua_pop(L, 2);
                vl_error_validation(L, "%s", msg);
                return 0;
            }
            lua_pop(L, 1);     /* the value was kept until here: an __index may have made it */
        }
        lua_getfield(L, lua_upvalueindex(1), ctor);
        if (!lua_isfunction(L, -1)) luaL_error(L, "vivalearning: model constructor %s missing", ctor);
        lua_pushvalue(L, idx);
        if ((st = lua_pcall(L, 1, 1, 0)) == LUA_ERRMEM) lua_error(L);   /* never passes for bad input */
        if (st != LUA_OK || !vl_model_kind(L, -1)) {
            const char *m = lua_tostring(L, -1);
            char msg[400];
            snprintf(msg, sizeof msg, "%s", m ? m : "invalid model");
            lua_pop(L, 1);
            vl_error_validation(L, "%s", msg);
            return 0;
        }
        return lua_gettop(L);
    }
}

static int model_string_field(lua_State *L, int m, const char *f, int *ok) {
    vl_model_push_field(L, m, f);
    *ok = lua_type(L, -1) == LUA_TSTRING;
    return lua_gettop(L);
}

/* offset + 1 of the alternate key's name in the path at idx (after its '(': every segment
 * before it is percent-encoded, so the first '(' is the key's), 0 when there is none */
static size_t key_in_path(lua_State *L, int idx) {
    size_t n;
    const char *p = lua_tolstring(L, idx, &n), *k = memchr(p, '(', n);
    if (!k || vl_altkey_at(k + 1, n - (size_t)(k + 1 - p)) < 0) return 0;
    return (size_t)(k + 1 - p) + 1;
}

#define PATH_ACT "/employeeExperience/learningCourseActivities"
#define PATH_PROV "/employeeExperience/learningProviders"

/* Each parser reads the call's arguments from index a on, pushes path/body/etc. and fills s.
 * On a runtime validation failure it pushes nil, err and sets s->immediate = 2. */

static void p_create(lua_State *L, int a, spec *s) {
    luaL_Buffer b;
    size_t pn, en;
    const char *p = arg_string(L, a, "provider id", &pn);
    int m, ok, ext;
    s->method = VL_POST; s->res = VL_RES_CREATED; s->family = VL_FAM_ACTIVITY;
    if (!(m = check_model(L, a + 1, VL_FAM_ACTIVITY))) { s->immediate = 2; return; }
    s->model = m;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, PATH_PROV);
    if (!add_seg(L, &b, p, pn, "provider id")) { s->immediate = 2; return; }
    luaL_addstring(&b, "/learningCourseActivities");
    luaL_pushresult(&b);
    s->path = lua_gettop(L);
    vl_model_push_json_as(L, m, s->spelling, &s->key_body);
    s->body = lua_gettop(L);
    ext = model_string_field(L, m, "externalCourseActivityId", &ok);
    if (ok) {
        const char *e = lua_tolstring(L, ext, &en);
        const char *err;
        luaL_buffinit(L, &b);
        luaL_addstring(&b, PATH_PROV);
        vl_url_add_segment(&b, p, pn);
        luaL_addstring(&b, "/learningCourseActivities");
        err = vl_url_add_key(&b, vl_altkey_name(s->spelling), e, en);
        luaL_pushresult(&b);
        if (err) { lua_pop(L, 1); bad_id(L, e, en, "externalCourseActivityId", err); s->immediate = 2; return; }
        s->alt = lua_gettop(L);
        s->key_alt = key_in_path(L, s->alt);
    }
}

static void p_get(lua_State *L, int a, spec *s) {
    luaL_Buffer b;
    size_t n;
    const char *id = arg_string(L, a, "id", &n);
    s->method = VL_GET; s->res = VL_RES_MODEL; s->family = VL_FAM_ACTIVITY;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, PATH_ACT);
    if (!add_seg(L, &b, id, n, "id")) { s->immediate = 2; return; }
    luaL_pushresult(&b);
    s->path = lua_gettop(L);
}

static void p_get_by_external_id(lua_State *L, int a, spec *s) {
    luaL_Buffer b;
    size_t pn, en;
    const char *p = arg_string(L, a, "provider id", &pn);
    const char *e = arg_string(L, a + 1, "external id", &en), *err;
    s->method = VL_GET; s->res = VL_RES_MODEL; s->family = VL_FAM_ACTIVITY;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, PATH_PROV);
    if (!add_seg(L, &b, p, pn, "provider id")) { s->immediate = 2; return; }
    luaL_addstring(&b, "/learningCourseActivities");
    err = vl_url_add_key(&b, vl_altkey_name(s->spelling), e, en);
    luaL_pushresult(&b);
    if (err) { lua_pop(L, 1); bad_id(L, e, en, "external id", err); s->immediate = 2; return; }
    s->path = lua_gettop(L);
    s->key_path = key_in_path(L, s->path);
}

static void p_get_for_user(lua_State *L, int a, spec *s) {
    luaL_Buffer b;
    size_t un, n;
    const char *u = arg_string(L, a, "user id", &un);
    const char *id = arg_string(L, a + 1, "id", &n);
    s->method = VL_GET; s->res = VL_RES_MODEL; s->family = VL_FAM_ACTIVITY;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "/users");
    if (!add_seg(L, &b, u, un, "user id")) { s->immediate = 2; return; }
    luaL_addstring(&b, PATH_ACT);
    if (!add_seg(L, &b, id, n, "id")) { s->immediate = 2; return; }
    luaL_pushresult(&b);
    s->path = lua_gettop(L);
}

/* update/update_provider share this: (prefix..., model) or (prefix..., id, changes) */
static void p_update_common(lua_State *L, int a, spec *s, int family, const char *prefix, int has_provider) {
    luaL_Buffer b;
    size_t pn = 0, idn;
    const char *p = has_provider ? arg_string(L, a, "provider id", &pn) : NULL;
    int ai = a + (has_provider ? 1 : 0);
    const char *id;
    int idx;
    s->method = VL_PATCH; s->family = family;
    if (lua_type(L, ai) == LUA_TSTRING) {
        id = lua_tolstring(L, ai, &idn);
        s->res = VL_RES_TRUE;
        if (vl_model_kind(L, ai + 1)) {
            check_model(L, ai + 1, family);          /* a model of the family (raises) */
            vl_model_push_changes_json_as(L, ai + 1, s->spelling, &s->key_body);
        } else {
            luaL_checktype(L, ai + 1, LUA_TTABLE);
            /* validated as a model's assigned fields are: nothing invalid is sent */
            if (!vl_model_push_changes_of_table_as(L, ai + 1, vl_famname[family], s->spelling, &s->key_body)) {
                const char *m = lua_tostring(L, -1);
                char msg[400];
                snprintf(msg, sizeof msg, "%s", m ? m : "invalid changes");
                lua_pop(L, 2);
                vl_error_validation(L, "%s", msg);
                s->immediate = 2;
                return;
            }
        }
        if (lua_isnil(L, -1)) { lua_pop(L, 1); lua_pushboolean(L, 1); s->immediate = 1; return; }
        s->body = lua_gettop(L);
    } else {
        int m, ok;
        if (!vl_model_kind(L, ai))
            luaL_error(L, "vivalearning: update takes a model (its changes are sent), or an id and a changes table");
        m = check_model(L, ai, family);
        if (!m) { s->immediate = 2; return; }
        s->model = m;
        s->res = VL_RES_UPDATED;
        idx = model_string_field(L, m, "id", &ok);
        if (!ok) { lua_pop(L, 1); vl_error_validation(L, "the model has no id (create it first)"); s->immediate = 2; return; }
        id = lua_tolstring(L, idx, &idn);
        vl_model_push_changes_json_as(L, m, s->spelling, &s->key_body);
        if (lua_isnil(L, -1)) {            /* nothing changed: nothing is sent */
            lua_pop(L, 1);
            lua_pushboolean(L, 1);
            s->immediate = 1;
            return;
        }
        s->body = lua_gettop(L);
    }
    luaL_buffinit(L, &b);
    luaL_addstring(&b, prefix);
    if (has_provider) {
        if (!add_seg(L, &b, p, pn, "provider id")) { s->immediate = 2; return; }
        luaL_addstring(&b, "/learningCourseActivities");
    }
    if (!add_seg(L, &b, id, idn, "id")) { s->immediate = 2; return; }
    luaL_pushresult(&b);
    s->path = lua_gettop(L);
}

static void p_update(lua_State *L, int a, spec *s) { p_update_common(L, a, s, VL_FAM_ACTIVITY, PATH_PROV, 1); }
static void p_update_provider(lua_State *L, int a, spec *s) { p_update_common(L, a, s, VL_FAM_PROVIDER, PATH_PROV, 0); }

static void p_delete(lua_State *L, int a, spec *s) {
    luaL_Buffer b;
    size_t pn, n;
    const char *p = arg_string(L, a, "provider id", &pn);
    const char *id = arg_string(L, a + 1, "id", &n);
    s->method = VL_DELETE; s->res = VL_RES_TRUE; s->family = VL_FAM_ACTIVITY; s->flags |= VL_F_DEL404OK;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, PATH_PROV);
    if (!add_seg(L, &b, p, pn, "provider id")) { s->immediate = 2; return; }
    luaL_addstring(&b, "/learningCourseActivities");
    if (!add_seg(L, &b, id, n, "id")) { s->immediate = 2; return; }
    luaL_pushresult(&b);
    s->path = lua_gettop(L);
}

static void p_create_provider(lua_State *L, int a, spec *s) {
    int m;
    s->method = VL_POST; s->res = VL_RES_CREATED; s->family = VL_FAM_PROVIDER;
    if (!(m = check_model(L, a, VL_FAM_PROVIDER))) { s->immediate = 2; return; }
    s->model = m;
    lua_pushliteral(L, PATH_PROV);
    s->path = lua_gettop(L);
    vl_model_push_json(L, m);
    s->body = lua_gettop(L);
}

static void p_get_provider(lua_State *L, int a, spec *s) {
    luaL_Buffer b;
    size_t n;
    const char *id = arg_string(L, a, "provider id", &n);
    s->method = VL_GET; s->res = VL_RES_MODEL; s->family = VL_FAM_PROVIDER;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, PATH_PROV);
    if (!add_seg(L, &b, id, n, "provider id")) { s->immediate = 2; return; }
    luaL_pushresult(&b);
    s->path = lua_gettop(L);
}

static void p_delete_provider(lua_State *L, int a, spec *s) {
    p_get_provider(L, a, s);
    s->method = VL_DELETE; s->res = VL_RES_TRUE; s->flags |= VL_F_DEL404OK;
}

/* provider, id | {external_id=} → .../learningContents/{id} or (externalId='x') */
static int content_path(lua_State *L, int a, spec *s, int model) {
    luaL_Buffer b;
    size_t pn, n;
    const char *p = arg_string(L, a, "provider id", &pn), *id, *err;
    int by_ext = 0;
    if (model) {
        int ok, f = model_string_field(L, model, "id", &ok);
        if (!ok) {
            lua_pop(L, 1);
            f = model_string_field(L, model, "externalId", &ok);
            if (!ok) { lua_pop(L, 1); vl_error_validation(L, "content needs an id or an externalId"); s->immediate = 2; return 0; }
            by_ext = 1;
        }
        id = lua_tolstring(L, f, &n);
    } else if (lua_type(L, a + 1) == LUA_TTABLE) {
        static const char *const keys[] = { "external_id", NULL };
        vl_check_keys(L, a + 1, "vivalearning: content key", keys);
        lua_getfield(L, a + 1, "external_id");
        if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "vivalearning: {external_id = string} expected");
        id = lua_tolstring(L, -1, &n);
        by_ext = 1;
    } else {
        id = arg_string(L, a + 1, "content id", &n);
    }
    luaL_buffinit(L, &b);
    luaL_addstring(&b, PATH_PROV);
    if (!add_seg(L, &b, p, pn, "provider id")) { s->immediate = 2; return 0; }
    luaL_addstring(&b, "/learningContents");
    if (by_ext) {
        err = vl_url_add_key(&b, "externalId", id, n);
        if (err) { luaL_pushresult(&b); lua_pop(L, 1); bad_id(L, id, n, "externalId", err); s->immediate = 2; return 0; }
    } else if (!add_seg(L, &b, id, n, "content id")) { s->immediate = 2; return 0; }
    luaL_pushresult(&b);
    s->path = lua_gettop(L);
    return 1;
}

static void p_upsert_content(lua_State *L, int a, spec *s) {
    int m;
    s->method = VL_PATCH; s->res = VL_RES_MODEL; s->family = VL_FAM_CONTENT;
    arg_string(L, a, "provider id", NULL);
    if (!(m = check_model(L, a + 1, VL_FAM_CONTENT))) { s->immediate = 2; return; }
    s->model = m;
    if (!content_path(L, a, s, m)) return;
    vl_model_push_json(L, m);
    s->body = lua_gettop(L);
}

static void p_get_content(lua_State *L, int a, spec *s) {
    s->method = VL_GET; s->res = VL_RES_MODEL; s->family = VL_FAM_CONTENT;
    content_path(L, a, s, 0);
}

static void p_delete_content(lua_State *L, int a, spec *s) {
    s->method = VL_DELETE; s->res = VL_RES_TRUE; s->family = VL_FAM_CONTENT; s->flags |= VL_F_DEL404OK;
    content_path(L, a, s, 0);
}

/* ---- pages ---- */

/* Pushes the query string ("" or "?$top=..&..") of a page call; options table at o. */
static void page_query(lua_State *L, int o) {
    lua_Integer top = -1, skip = -1;
    int count, first = 1;
    const char *sel = NULL;
    size_t seln = 0, k;
    luaL_Buffer b;
    char nb[64];
    lua_getfield(L, o, "top");
    if (!lua_isnil(L, -1) && (!lua_isinteger(L, -1) || (top = lua_tointeger(L, -1)) < 0))
        luaL_error(L, "vivalearning: top must be a non-negative integer");
    lua_pop(L, 1);
    lua_getfield(L, o, "skip");
    if (!lua_isnil(L, -1) && (!lua_isinteger(L, -1) || (skip = lua_tointeger(L, -1)) < 0))
        luaL_error(L, "vivalearning: skip must be a non-negative integer");
    lua_pop(L, 1);
    lua_getfield(L, o, "count");
    count = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, o, "select");
    if (lua_type(L, -1) == LUA_TTABLE) {
        int t = lua_gettop(L);
        lua_Integer i, cnt = luaL_len(L, t);
        for (i = 1; i <= cnt; i++) {
            lua_rawgeti(L, t, i);
            if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "vivalearning: select must list field names");
            lua_pop(L, 1);
        }
        lua_getglobal(L, "table");
        lua_getfield(L, -1, "concat");
        lua_remove(L, -2);
        lua_pushvalue(L, t);
        lua_pushliteral(L, ",");
        lua_call(L, 2, 1);
        lua_remove(L, t);
    } else if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING) {
        luaL_error(L, "vivalearning: select must be a string or a list of field names");
    }
    /* the select string (or nil) stays on the stack until the query is built */
    if (lua_type(L, -1) == LUA_TSTRING) {
        sel = lua_tolstring(L, -1, &seln);
        for (k = 0; k < seln; k++) {
            char ch = sel[k];
            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                  ch == ',' || ch == '_' || ch == '@' || ch == '.' || ch == '#'))
                luaL_error(L, "vivalearning: select: invalid field name list");
        }
        if (seln == 0) sel = NULL;
    }
    luaL_buffinit(L, &b);
    if (top >= 0) {
        snprintf(nb, sizeof nb, "%c$top=%lld", first ? '?' : '&', (long long)top);
        luaL_addstring(&b, nb);
        first = 0;
    }
    if (skip >= 0) {
        snprintf(nb, sizeof nb, "%c$skip=%lld", first ? '?' : '&', (long long)skip);
        luaL_addstring(&b, nb);
        first = 0;
    }
    if (count) {
        luaL_addstring(&b, first ? "?$count=true" : "&$count=true");
        first = 0;
    }
    if (sel) {
        luaL_addstring(&b, first ? "?$select=" : "&$select=");
        vl_url_add_query(&b, sel, seln);
    }
    luaL_pushresult(&b);
    lua_remove(L, -2);     /* the select value */
}

/* returns 1 when a next_link was given (pushes the checked link as "absolute" path marker) */
static int page_next(lua_State *L, int o, spec *s, vl_client *c) {
    size_t n;
    const char *link;
    char err[200];
    lua_getfield(L, o, "next_link");
    if (lua_isnil(L, -1)) { lua_pop(L, 1); return 0; }
    link = arg_string(L, -1, "next_link", &n);
    if (!vl_url_same_origin(&c->graph, link, n, err, sizeof err)) {
        vl_errinfo e;
        memset(&e, 0, sizeof e);
        e.kind = "validation";
        e.code = "untrusted_next_link";
        e.message = err;
        e.retry_after = -1;
        lua_pop(L, 1);
        lua_pushnil(L);
        vl_error_push(L, &e);
        s->immediate = 2;
        return 1;
    }
    s->path = lua_gettop(L);
    s->flags |= 0x100;        /* path is an absolute URL */
    return 1;
}

static const char *const PAGE_KEYS[][8] = {
    { "user", "me", "top", "skip", "count", "select", "next_link", NULL },    /* activities */
    { "top", "skip", "count", "select", "next_link", NULL },                  /* providers */
    { "provider", "top", "skip", "count", "select", "next_link", NULL },      /* contents */
};

void vl_p_page_common(lua_State *L, int a, spec *s, vl_client *c, int family) {
    luaL_Buffer b;
    const char *id = NULL;
    size_t n = 0;
    int i;
    static const char *const flags[] = { "me", "count" };
    luaL_checktype(L, a, LUA_TTABLE);
    /* an unknown option is a typo: raised, never ignored */
    vl_check_keys(L, a, family == VL_FAM_ACTIVITY ? "vivalearning: activities_page"
                  : family == VL_FAM_PROVIDER ? "vivalearning: providers_page" : "vivalearning: contents_page",
                  PAGE_KEYS[family == VL_FAM_ACTIVITY ? 0 : family == VL_FAM_PROVIDER ? 1 : 2]);
    for (i = 0; i < 2; i++) {
        lua_getfield(L, a, flags[i]);
        if (!lua_isnil(L, -1) && !lua_isboolean(L, -1)) luaL_error(L, "vivalearning: %s must be a boolean", flags[i]);
        lua_pop(L, 1);
    }
    s->method = VL_GET; s->res = VL_RES_PAGE; s->family = family;
    if (page_next(L, a, s, c)) return;
    /* the id is read before the buffer starts and stays on the stack until the path is
     * built: an __index may answer a fresh string that only the stack holds */
    if (family == VL_FAM_ACTIVITY) {
        lua_getfield(L, a, "user");
        if (lua_type(L, -1) == LUA_TSTRING) {
            id = lua_tolstring(L, -1, &n);
        } else {
            lua_getfield(L, a, "me");
            if (!lua_toboolean(L, -1)) luaL_error(L, "vivalearning: activities_page needs user = id or me = true");
            lua_pop(L, 1);
        }
    } else if (family == VL_FAM_CONTENT) {
        lua_getfield(L, a, "provider");
        if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "vivalearning: contents_page needs provider = id");
        id = lua_tolstring(L, -1, &n);
    } else {
        lua_pushnil(L);
    }
    luaL_buffinit(L, &b);
    if (family == VL_FAM_ACTIVITY) {
        if (id) {
            luaL_addstring(&b, "/users");
            if (!add_seg(L, &b, id, n, "user id")) { s->immediate = 2; return; }
        } else {
            luaL_addstring(&b, "/me");
        }
        luaL_addstring(&b, PATH_ACT);
    } else if (family == VL_FAM_PROVIDER) {
        luaL_addstring(&b, PATH_PROV);
    } else {
        luaL_addstring(&b, PATH_PROV);
        if (!add_seg(L, &b, id, n, "provider id")) { s->immediate = 2; return; }
        luaL_addstring(&b, "/learningContents");
    }
    page_query(L, a);
    luaL_addvalue(&b);
    luaL_pushresult(&b);
    lua_remove(L, -2);     /* the id */
    s->path = lua_gettop(L);
}

/* ------------------------------------------------------------------ ops table */

/* pages are built by p_page_common (they need the client for the nextLink check) */
static void p_page(lua_State *L, int a, spec *s) { (void)L; (void)a; (void)s; }

const opdef vl_ops[] = {
    { "create", p_create, -1, { "provider model", NULL }, 0 },
    { "get", p_get, -1, { "id", NULL }, 0 },
    { "get_by_external_id", p_get_by_external_id, -1, { "provider external_id", NULL }, 0 },
    { "get_for_user", p_get_for_user, -1, { "user id", NULL }, 0 },
    { "update", p_update, -1, { "provider model", "provider id changes" }, 0 },
    { "delete", p_delete, -1, { "provider id", NULL }, 0 },
    { "activities_page", p_page, VL_FAM_ACTIVITY, { NULL, NULL }, 0 },
    { "providers_page", p_page, VL_FAM_PROVIDER, { NULL, NULL }, 0 },
    { "contents_page", p_page, VL_FAM_CONTENT, { NULL, NULL }, 0 },
    { "create_provider", p_create_provider, -1, { "model", NULL }, 0 },
    { "get_provider", p_get_provider, -1, { "id", NULL }, 0 },
    { "update_provider", p_update_provider, -1, { "model", "id changes" }, 0 },
    { "delete_provider", p_delete_provider, -1, { "id", NULL }, 0 },
    { "upsert_content", p_upsert_content, -1, { "provider model", NULL }, VL_OPF_204_MODEL },
    { "get_content", p_get_content, -1, { "provider id", "provider {external_id}" }, 0 },
    { "delete_content", p_delete_content, -1, { "provider id", "provider {external_id}" }, 0 },
    { "batch", NULL, -1, { NULL, NULL }, 0 },        /* built by batch.c over the others */
    { NULL, NULL, -1, { NULL, NULL }, 0 }
};

const opdef *vl_find_op(const char *name) {
    const opdef *o;
    for (o = vl_ops; o->name; o++)
        if (strcmp(o->name, name) == 0) return o;
    return NULL;
}
