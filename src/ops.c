/* The operations: request builders (one parser per op), pages, and the ops table. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "altkey.h"
#include "json.h"
#include "model.h"
#include "ops.h"
#include "options.h"
#include "transport.h"
#include "url_enc.h"
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

/* ---- the generic builder: an operation's declaration (ops table) into a request ---- */

/* The name a value has in errors: provider → "provider id", user → "user id", external_id →
 * "external id"; a template placeholder may say otherwise ({id:content id}). */
static const char *default_label(const char *name) {
    if (strcmp(name, "provider") == 0) return "provider id";
    if (strcmp(name, "user") == 0) return "user id";
    if (strcmp(name, "external_id") == 0) return "external id";
    return name;
}

/* copies the NUL-terminated src into dst (size n), cut short if need be */
static void copy(char *dst, size_t n, const char *src) {
    size_t k = strlen(src);
    if (k >= n) k = n - 1;
    memcpy(dst, src, k);
    dst[k] = 0;
}

/* one placeholder of a path template: {name}, {name=Key}, {name|alt=Key}, each with :label
 * (empty: the default label of name, looked up only for an error) */
typedef struct ph {
    char name[32], alt[32], key[40], label[32];
} ph;

/* Parses the placeholder at t (just after '{'); returns the char after '}'. */
static const char *parse_ph(const char *t, ph *p) {
    char *dst;
    size_t cap = sizeof p->name, n = 0;
    p->name[0] = p->alt[0] = p->key[0] = p->label[0] = 0;
    dst = p->name;
    for (; *t && *t != '}'; t++) {
        if (*t == '|') { dst[n] = 0; dst = p->alt; cap = sizeof p->alt; n = 0; continue; }
        if (*t == '=') { dst[n] = 0; dst = p->key; cap = sizeof p->key; n = 0; continue; }
        if (*t == ':') { dst[n] = 0; dst = p->label; cap = sizeof p->label; n = 0; continue; }
        if (n + 1 < cap) dst[n++] = *t;
    }
    dst[n] = 0;
    return *t ? t + 1 : t;
}

/* external_id → externalId: the model field a value comes from when it is not an argument */
static void camel(const char *name, char *out, size_t n) {
    size_t j = 0;
    int up = 0;
    for (; *name && j + 1 < n; name++) {
        if (*name == '_') { up = 1; continue; }
        out[j++] = up ? (char)toupper((unsigned char)*name) : *name;
        up = 0;
    }
    out[j] = 0;
}

#define MAXV 8
/* the named values of one call: its arguments, and the model whose fields fill the rest */
typedef struct binding {
    char name[MAXV][32];
    int idx[MAXV];
    int n;
    int model;
} binding;

static void bind(binding *b, const char *name, int idx) {
    if (b->n < MAXV) { copy(b->name[b->n], sizeof b->name[0], name); b->idx[b->n] = idx; b->n++; }
}

/* Pushes the string value `name` (an argument, else the model's field) and returns 1, or
 * returns 0 after pushing nothing when there is none. */
static int push_value(lua_State *L, const binding *b, const char *name) {
    int i;
    for (i = 0; i < b->n; i++)
        if (strcmp(b->name[i], name) == 0) { lua_pushvalue(L, b->idx[i]); return 1; }
    if (b->model) {
        char f[40];
        camel(name, f, sizeof f);
        vl_model_push_field(L, b->model, f);
        if (lua_type(L, -1) == LUA_TSTRING) return 1;
        lua_pop(L, 1);
    }
    return 0;
}

/* The label of argument `name` in errors: the label of the placeholder that uses it. */
static void arg_label(const opdef *od, const char *name, char *out, size_t n) {
    const char *t = od->path;
    copy(out, n, default_label(name));
    while ((t = strchr(t, '{')) != NULL) {
        ph p;
        t = parse_ph(t + 1, &p);
        if (strcmp(p.name, name) == 0) { if (p.label[0]) copy(out, n, p.label); return; }
    }
}

/* Expands the template t (literal text, placeholders) into the path from the values; pushes it
 * and returns 1. A key named by either spelling of the alternate key is written in `spelling`
 * (altkey.h). A value missing: returns 0 after pushing nil and the validation error, or -1
 * after pushing nothing when `optional` (the alternate key of a model without one). A bad id:
 * 0 after pushing nil and its error. The values are all looked up (on the stack) before the
 * buffer starts. */
static int expand(lua_State *L, const opdef *od, const binding *b, const char *t, int optional, int check_only,
                  int spelling) {
    ph ps[MAXV];
    int vidx[MAXV], usekey[MAXV], np = 0, base = lua_gettop(L), i;
    const char *q;
    luaL_Buffer buf;
    for (q = t; (q = strchr(q, '{')) != NULL && np < MAXV; np++) {
        ph *p = &ps[np];
        q = parse_ph(q + 1, p);
        usekey[np] = p->key[0] && !p->alt[0];
        if (push_value(L, b, p->name)) {
            vidx[np] = lua_gettop(L);
            continue;
        }
        if (p->alt[0] && push_value(L, b, p->alt)) {
            vidx[np] = lua_gettop(L);
            usekey[np] = 1;
            continue;
        }
        lua_settop(L, base);
        if (optional) return -1;
        if (p->alt[0]) {
            char a1[40], a2[40];
            camel(p->name, a1, sizeof a1);
            camel(p->alt, a2, sizeof a2);
            vl_error_validation(L, "%s needs an %s or an %s", vl_famname[od->family], a1, a2);
        } else {
            char a1[40];
            camel(p->name, a1, sizeof a1);
            vl_error_validation(L, "the model has no %s (create it first)", a1);
        }
        return 0;
    }
    if (check_only) { lua_settop(L, base); return 1; }
    luaL_buffinit(L, &buf);
    for (i = 0, q = t; *q; ) {
        const char *o = strchr(q, '{');
        size_t vn;
        const char *v, *err;
        if (!o) { luaL_addstring(&buf, q); break; }
        /* the '/' before a placeholder: the segment encoder writes its own, a key has none */
        luaL_addlstring(&buf, q, (size_t)(o - q) - (o > q && o[-1] == '/'));
        q = strchr(o, '}');
        q = q ? q + 1 : o + strlen(o);
        v = lua_tolstring(L, vidx[i], &vn);
        if (usekey[i]) {
            const char *key = ps[i].key;
            if (strlen(key) == VL_ALTKEY_LEN && vl_altkey_at(key, VL_ALTKEY_LEN) >= 0) key = vl_altkey_name(spelling);
            err = vl_url_add_key(&buf, key, v, vn);
        }
        else err = vl_url_add_segment(&buf, v, vn);
        if (err) {
            /* in an {id|external_id=Key} alternation the key's name is its label */
            const char *label = usekey[i] && ps[i].alt[0] ? ps[i].key
                              : ps[i].label[0] ? ps[i].label : default_label(ps[i].name);
            luaL_pushresult(&buf);
            lua_pop(L, 1);
            bad_id(L, v, vn, label, err);       /* nil, err on top: they go where the values were */
            lua_copy(L, -2, base + 1);
            lua_copy(L, -1, base + 2);
            lua_settop(L, base + 2);
            return 0;
        }
        i++;
    }
    luaL_pushresult(&buf);
    if (np > 0) lua_replace(L, base + 1);      /* the path where the values were */
    lua_settop(L, base + 1);
    return 1;
}

/* offset + 1 of the alternate key's name in the path at idx, 0 when it has none: after a '('
 * (every id in a path is percent-encoded, '(' too, so a raw '(' opens a key) */
static size_t key_in_path(lua_State *L, int idx) {
    size_t n;
    const char *p = lua_tolstring(L, idx, &n), *k = p;
    while ((k = memchr(k, '(', n - (size_t)(k - p))) != NULL) {
        k++;
        if (vl_altkey_at(k, n - (size_t)(k - p)) >= 0 && k[VL_ALTKEY_LEN] == '=') return (size_t)(k - p) + 1;
    }
    return 0;
}

/* the Lua type an argument of form word w takes (for choosing between two forms) */
static int word_fits(lua_State *L, int idx, const char *w, size_t n) {
    if (w[0] == '{' || (n == 7 && strncmp(w, "changes", 7) == 0)) return lua_type(L, idx) == LUA_TTABLE;
    if (n == 5 && strncmp(w, "model", 5) == 0) {
        int t = lua_type(L, idx);
        return t == LUA_TTABLE || (t == LUA_TUSERDATA && vl_model_kind(L, idx) != NULL);
    }
    return lua_type(L, idx) == LUA_TSTRING;
}

/* A sync call's arguments take the second form when, where the forms first differ, the
 * argument fits it and not the first (update(provider, id, changes); a content by
 * { external_id = }). */
static int second_form(lua_State *L, const opdef *od, int a) {
    const char *f0 = od->args[0], *f1 = od->args[1];
    int i = 0;
    if (!f1) return 0;
    while (*f0 && *f1) {
        size_t n0 = strcspn(f0, " "), n1 = strcspn(f1, " ");
        if (n0 != n1 || strncmp(f0, f1, n0) != 0)
            return word_fits(L, a + i, f1, n1) && !word_fits(L, a + i, f0, n0);
        f0 += n0; f1 += n1;
        while (*f0 == ' ') f0++;
        while (*f1 == ' ') f1++;
        i++;
    }
    return 0;
}

void vl_op_build(lua_State *L, const opdef *od, int a, spec *s) {
    const char *w;
    int two = od->args[1] != NULL, second, i, changes = 0, r;
    binding b;
    memset(&b, 0, sizeof b);
    s->method = od->method; s->res = od->res; s->family = od->family;
    if (od->flags & VL_OPF_DEL404OK) s->flags |= VL_F_DEL404OK;
    if (od->flags & VL_OPF_SIGNIN) s->flags |= VL_F_SIGNIN;
    second = second_form(L, od, a);
    /* the arguments, in order, each checked as its name says */
    for (w = od->args[second], i = 0; *w; i++) {
        char name[32];
        size_t n = strcspn(w, " ");
        int idx = a + i;
        if (n >= sizeof name) n = sizeof name - 1;
        memcpy(name, w, n);
        name[n] = 0;
        if (strcmp(name, "model") == 0) {
            int m;
            /* with an id-and-changes form, the model form takes a model (its changes are sent) */
            if (two && od->body == VL_BODY_CHANGES && !vl_model_kind(L, idx))
                luaL_error(L, "vivalearning: update takes a model (its changes are sent), or an id and a changes table");
            if (!(m = check_model(L, idx, od->family))) { s->immediate = 2; return; }
            b.model = s->model = m;
        } else if (strcmp(name, "changes") == 0) {
            changes = idx;
        } else if (name[0] == '{') {
            const char *keys[2];
            char where[64], key[32];
            size_t kn = n > 2 ? n - 2 : 0;
            memcpy(key, name + 1, kn);
            key[kn] = 0;
            keys[0] = key;
            keys[1] = NULL;
            snprintf(where, sizeof where, "vivalearning: %s key", vl_famname[od->family]);
            vl_check_keys(L, idx, where, keys);
            lua_getfield(L, idx, key);
            if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "vivalearning: {%s = string} expected", key);
            bind(&b, key, lua_gettop(L));      /* the string stays on the stack */
        } else {
            if (lua_type(L, idx) != LUA_TSTRING) {      /* the label is only looked up to raise */
                char label[32];
                arg_label(od, name, label, sizeof label);
                arg_string(L, idx, label, NULL);
            }
            bind(&b, name, idx);
        }
        w += n;
        while (*w == ' ') w++;
    }
    /* "updated" cleans the caller's model: without one it is plain true */
    if (s->res == VL_RES_UPDATED && !b.model) s->res = VL_RES_TRUE;
    s->path = 0;
    /* the body: the model's JSON, or the changes (of the model, or the table given) */
    if (od->body == VL_BODY_CHANGES) {
        /* a model without the id its path needs is an error before its changes are looked at */
        if (b.model && !expand(L, od, &b, od->path, 0, 1, s->spelling)) { s->immediate = 2; return; }
        if (changes) {
            if (vl_model_kind(L, changes)) {
                check_model(L, changes, od->family);          /* a model of the family (raises) */
                vl_model_push_changes_json_as(L, changes, s->spelling, &s->key_body);
            } else {
                luaL_checktype(L, changes, LUA_TTABLE);
                /* validated as a model's assigned fields are: nothing invalid is sent */
                if (!vl_model_push_changes_of_table_as(L, changes, vl_famname[od->family], s->spelling, &s->key_body)) {
                    const char *m = lua_tostring(L, -1);
                    char msg[400];
                    snprintf(msg, sizeof msg, "%s", m ? m : "invalid changes");
                    lua_pop(L, 2);
                    vl_error_validation(L, "%s", msg);
                    s->immediate = 2;
                    return;
                }
            }
        } else {
            vl_model_push_changes_json_as(L, b.model, s->spelling, &s->key_body);
        }
        if (lua_isnil(L, -1)) { lua_pop(L, 1); lua_pushboolean(L, 1); s->immediate = 1; return; }   /* nothing changed */
        s->body = lua_gettop(L);
    }
    r = expand(L, od, &b, od->path, 0, 0, s->spelling);
    if (r == 0) { s->immediate = 2; return; }
    s->path = lua_gettop(L);
    s->key_path = key_in_path(L, s->path);
    if (od->body == VL_BODY_MODEL) {
        vl_model_push_json_as(L, b.model, s->spelling, &s->key_body);
        s->body = lua_gettop(L);
    }
    if (od->alt) {
        r = expand(L, od, &b, od->alt, 1, 0, s->spelling);
        if (r == 0) { s->immediate = 2; return; }
        if (r > 0) { s->alt = lua_gettop(L); s->key_alt = key_in_path(L, s->alt); }
    }
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
    s->absolute = 1;          /* the path is the whole URL */
    return 1;
}

static const char *const PAGE_KEYS[][8] = {
    { "user", "me", "top", "skip", "count", "select", "next_link", NULL },    /* activities */
    { "top", "skip", "count", "select", "next_link", NULL },                  /* providers */
    { "provider", "top", "skip", "count", "select", "next_link", NULL },      /* contents */
};

void vl_p_page(lua_State *L, const opdef *od, int a, spec *s, vl_client *c) {
    const char *id = NULL;
    int i, family = od->family;
    char where[64];
    static const char *const flags[] = { "me", "count" };
    luaL_checktype(L, a, LUA_TTABLE);
    /* an unknown option is a typo: raised, never ignored */
    snprintf(where, sizeof where, "vivalearning: %s", od->name);
    vl_check_keys(L, a, where, PAGE_KEYS[family == VL_FAM_ACTIVITY ? 0 : family == VL_FAM_PROVIDER ? 1 : 2]);
    for (i = 0; i < 2; i++) {
        lua_getfield(L, a, flags[i]);
        if (!lua_isnil(L, -1) && !lua_isboolean(L, -1)) luaL_error(L, "vivalearning: %s must be a boolean", flags[i]);
        lua_pop(L, 1);
    }
    s->method = od->method; s->res = od->res; s->family = family;
    if (page_next(L, a, s, c)) return;
    /* the id is read first and stays on the stack until the path is built: an __index may
     * answer a fresh string that only the stack holds */
    if (family == VL_FAM_ACTIVITY) {
        lua_getfield(L, a, "user");
        if (lua_type(L, -1) == LUA_TSTRING) {
            id = "user";
        } else {
            lua_getfield(L, a, "me");
            if (!lua_toboolean(L, -1)) luaL_error(L, "vivalearning: activities_page needs user = id or me = true");
            lua_pop(L, 1);
        }
    } else if (family == VL_FAM_CONTENT) {
        lua_getfield(L, a, "provider");
        if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "vivalearning: contents_page needs provider = id");
        id = "provider";
    } else {
        lua_pushnil(L);
    }
    if (family == VL_FAM_ACTIVITY && !id) {
        /* me = true: /me in place of /users/{user} */
        const char *rest = strchr(od->path, '}');
        lua_pushfstring(L, "/me%s", rest ? rest + 1 : "");
    } else {
        binding bd;
        memset(&bd, 0, sizeof bd);
        if (id) bind(&bd, id, lua_gettop(L));
        if (!expand(L, od, &bd, od->path, 0, 0, s->spelling)) { s->immediate = 2; return; }
    }
    page_query(L, a);
    lua_concat(L, 2);
    lua_remove(L, -2);     /* the id */
    s->path = lua_gettop(L);
}

/* core._ops(): the declarations, for specs and tools (a copy: the table itself is C data) */
int vl_ops_list(lua_State *L) {
    static const char *const bodies[] = { "none", "model", "changes", "batch" };
    static const char *const results[] = { "model", "created", "true", "updated", "page", "batch" };
    const opdef *o;
    int i = 0;
    lua_newtable(L);
    for (o = vl_ops; o->name; o++) {
        int k;
        lua_createtable(L, 0, 10);
        lua_pushstring(L, o->name); lua_setfield(L, -2, "name");
        lua_pushstring(L, vl_method_name(o->method)); lua_setfield(L, -2, "method");
        lua_pushstring(L, o->path); lua_setfield(L, -2, "path");
        if (o->alt) { lua_pushstring(L, o->alt); lua_setfield(L, -2, "alt"); }
        for (k = 0; k < 2; k++) {
            const char *w = o->args[k];
            int j = 0;
            if (!w) continue;
            lua_newtable(L);
            while (*w) {
                size_t n = strcspn(w, " ");
                lua_pushlstring(L, w, n);
                lua_rawseti(L, -2, ++j);
                w += n;
                while (*w == ' ') w++;
            }
            lua_setfield(L, -2, k == 0 ? "args" : "other_args");
        }
        lua_pushstring(L, bodies[o->body]); lua_setfield(L, -2, "body");
        lua_pushstring(L, results[o->res]); lua_setfield(L, -2, "result");
        lua_pushstring(L, vl_famname[o->family]); lua_setfield(L, -2, "family");
        lua_pushboolean(L, (o->flags & VL_OPF_DEL404OK) != 0); lua_setfield(L, -2, "deleted_after_retry");
        lua_pushboolean(L, (o->flags & VL_OPF_204_MODEL) != 0); lua_setfield(L, -2, "upsert_204_model");
        lua_pushboolean(L, vl_op_batchable(o)); lua_setfield(L, -2, "batchable");
        lua_rawseti(L, -2, ++i);
    }
    return 1;
}

/* ------------------------------------------------------------------ ops table */

/* One entry per operation: all the sync method, submit and a $batch item know of it. Path
 * templates: /{arg} is a path segment from an argument (or, when it is not one, from the
 * model's field of that name in camelCase); {arg=Key} the OData key (Key='value') on the
 * segment before it (a '/' before it is dropped);
 * {id|external_id=Key} the segment of id, else the key of external_id; ":label" names the
 * value in errors (default: provider → "provider id", user → "user id"). The alternate key
 * (alt) is the lookup after an ambiguous create, when the model has its value. */
#define PROV "/employeeExperience/learningProviders"
#define ACTS "/employeeExperience/learningCourseActivities"
#define CONTENT PROV "/{provider}/learningContents/{id|external_id=externalId:content id}"
const opdef vl_ops[] = {
    /* name               method      path template                                  alternate key
     *                    arguments (the other form)                  body             result           family        flags */
    { "create",           VL_POST,    PROV "/{provider}/learningCourseActivities",
                                      PROV "/{provider}/learningCourseActivities{externalCourseActivityId=externalcourseActivityId}",
                          { "provider model", NULL },                 VL_BODY_MODEL,   VL_RES_CREATED,  VL_FAM_ACTIVITY, 0 },
    { "get",              VL_GET,     ACTS "/{id}", NULL,
                          { "id", NULL },                             VL_BODY_NONE,    VL_RES_MODEL,    VL_FAM_ACTIVITY, 0 },
    { "get_by_external_id", VL_GET,   PROV "/{provider}/learningCourseActivities{external_id=externalcourseActivityId}", NULL,
                          { "provider external_id", NULL },           VL_BODY_NONE,    VL_RES_MODEL,    VL_FAM_ACTIVITY, 0 },
    { "get_for_user",     VL_GET,     "/users/{user}" ACTS "/{id}", NULL,
                          { "user id", NULL },                        VL_BODY_NONE,    VL_RES_MODEL,    VL_FAM_ACTIVITY, 0 },
    { "update",           VL_PATCH,   PROV "/{provider}/learningCourseActivities/{id}", NULL,
                          { "provider model", "provider id changes" }, VL_BODY_CHANGES, VL_RES_UPDATED, VL_FAM_ACTIVITY, 0 },
    { "delete",           VL_DELETE,  PROV "/{provider}/learningCourseActivities/{id}", NULL,
                          { "provider id", NULL },                    VL_BODY_NONE,    VL_RES_TRUE,     VL_FAM_ACTIVITY, VL_OPF_DEL404OK },
    { "activities_page",  VL_GET,     "/users/{user}" ACTS, NULL,
                          { "options", NULL },                        VL_BODY_NONE,    VL_RES_PAGE,     VL_FAM_ACTIVITY, 0 },
    { "providers_page",   VL_GET,     PROV, NULL,
                          { "options", NULL },                        VL_BODY_NONE,    VL_RES_PAGE,     VL_FAM_PROVIDER, 0 },
    { "contents_page",    VL_GET,     PROV "/{provider}/learningContents", NULL,
                          { "options", NULL },                        VL_BODY_NONE,    VL_RES_PAGE,     VL_FAM_CONTENT, 0 },
    { "create_provider",  VL_POST,    PROV, NULL,
                          { "model", NULL },                          VL_BODY_MODEL,   VL_RES_CREATED,  VL_FAM_PROVIDER, 0 },
    { "get_provider",     VL_GET,     PROV "/{id:provider id}", NULL,
                          { "id", NULL },                             VL_BODY_NONE,    VL_RES_MODEL,    VL_FAM_PROVIDER, 0 },
    { "update_provider",  VL_PATCH,   PROV "/{id}", NULL,
                          { "model", "id changes" },                  VL_BODY_CHANGES, VL_RES_UPDATED,  VL_FAM_PROVIDER, 0 },
    { "delete_provider",  VL_DELETE,  PROV "/{id:provider id}", NULL,
                          { "id", NULL },                             VL_BODY_NONE,    VL_RES_TRUE,     VL_FAM_PROVIDER, VL_OPF_DEL404OK },
    { "upsert_content",   VL_PATCH,   CONTENT, NULL,
                          { "provider model", NULL },                 VL_BODY_MODEL,   VL_RES_MODEL,    VL_FAM_CONTENT, VL_OPF_204_MODEL },
    { "get_content",      VL_GET,     CONTENT, NULL,
                          { "provider id", "provider {external_id}" }, VL_BODY_NONE,   VL_RES_MODEL,    VL_FAM_CONTENT, 0 },
    { "delete_content",   VL_DELETE,  CONTENT, NULL,
                          { "provider id", "provider {external_id}" }, VL_BODY_NONE,   VL_RES_TRUE,     VL_FAM_CONTENT, VL_OPF_DEL404OK },
    /* no request of its own: done (true) once the client holds a usable token, i.e. after the
     * sign-in (a device code the user approves, a refresh or password grant) went through */
    { "sign_in",          VL_GET,     "", NULL,
                          { "", NULL },                               VL_BODY_NONE,    VL_RES_TRUE,     VL_FAM_ACTIVITY, VL_OPF_SIGNIN },
    /* built by batch.c from items of the others */
    { "batch",            VL_POST,    "/$batch", NULL,
                          { "requests options", NULL },               VL_BODY_BATCH,   VL_RES_BATCH,    VL_FAM_ACTIVITY, 0 },
    { NULL, 0, NULL, NULL, { NULL, NULL }, 0, 0, 0, 0 }
};

/* A $batch item can be any operation that is one request of its own (not a page, not a batch,
 * not the sign-in, which sends nothing). */
int vl_op_batchable(const opdef *od) {
    return od->res != VL_RES_PAGE && od->res != VL_RES_BATCH && !(od->flags & VL_OPF_SIGNIN);
}

const opdef *vl_find_op(const char *name) {
    const opdef *o;
    for (o = vl_ops; o->name; o++)
        if (strcmp(o->name, name) == 0) return o;
    return NULL;
}
