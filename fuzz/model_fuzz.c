/* libFuzzer target for the model core: decode, construct, assign, encode.
 *
 * Built by .ci/fuzz with clang -fsanitize=fuzzer,address,undefined together with
 * src/model_*.c, src/json*.c, src/buf.c, src/utf8.c and src/schema.c; liblua5.4 is linked
 * into this binary only (the module itself never links it). lua-cjson is the system one, loaded by require.
 *
 * Input: byte 0 picks the mode, the rest is the document.
 *   0  viva.decode(doc [, family])               + invariants on every model produced
 *   1  json_decode(doc) -> every constructor, viva.check, json_encode
 *   2  the C interface: vl_model_from_table, push_json, push_changes_json, push_field, set_id,
 *      push_changes_of_table
 *   3  assign every key of the decoded object to a model of each type, field by field
 * Invariants (abort on violation): every :tojson() is valid JSON that decodes back to an
 * equal model with the same JSON; decoding the text (straight from it) and decoding the
 * table cjson makes of it give equal models, or both fail; the Lua stack is balanced after
 * each step. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "../src/json.h"
#include "../src/model.h"

static lua_State *state;   /* the harness's own state, reused across inputs */

static const char *const families[] = { "activity", "provider", "content" };
static const char *const fields[] = {
    "id", "status", "completionPercentage", "externalCourseActivityId", "externalcourseActivityId",
    "dueDateTime", "notes", "title", "skillTags", "displayName", "isActive", "@odata.context", "nope",
};

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "invariant failed: %s (line %d)\n", #c, __LINE__); abort(); } } while (0)

/* Lua side of the invariants, run in protected mode. */
static const char *lua_checks =
    "local core = ...\n"
    "local cjson = require 'cjson.safe'\n"
    "local M = {}\n"
    "local function family(m)\n"
    "  local k = m:kind()\n"
    "  if k == 'provider' or k == 'content' then return k end\n"
    "  return 'activity'\n"
    "end\n"
    "local function same(a, b)\n"
    "  if type(a) ~= 'table' or type(b) ~= 'table' then return a == b end\n"
    "  for k, v in pairs(a) do if not same(v, b[k]) then return false end end\n"
    "  for k in pairs(b) do if a[k] == nil then return false end end\n"
    "  return true\n"
    "end\n"
    "function M.model(m)\n"
    "  local s = m:tojson()\n"
    "  assert(cjson.decode(s), 'tojson produced invalid JSON: ' .. s)\n"
    "  local again, err = core.decode(s, family(m))\n"
    "  assert(again, err)\n"
    "  assert(again == m, 'decode(tojson(m)) ~= m: ' .. s)\n"
    "  assert(same(cjson.decode(again:tojson()), cjson.decode(s)), 'tojson not stable: ' .. s)\n"
    "  local t = m:totable()\n"
    "  for k, v in pairs(m) do assert(k ~= nil) end\n"
    "  tostring(m)\n"
    "  local c = m:changes()\n"
    "  m:clean()\n"
    "  assert(m:changes() == nil)\n"
    "  assert(core.json_encode(t))\n"
    "  return c\n"
    "end\n"
    "function M.decode(doc, fam)\n"
    "  local d = core.decode(doc, fam)\n"
    "  local t = core.json_decode(doc)\n"
    "  if type(t) == 'table' then\n"
    "    local d2 = core.decode(t, fam)\n"
    "    if d ~= nil and type(d) ~= 'table' then\n"
    "      assert(d2 ~= nil and d2 == d, 'straight from the text and through cjson differ: ' .. doc)\n"
    "    elseif type(d) == 'table' then\n"
    "      assert(type(d2) == 'table' and #d2.value == #d.value, 'collections differ: ' .. doc)\n"
    "      for i, m in ipairs(d.value) do assert(d2.value[i] == m, 'collection items differ: ' .. doc) end\n"
    "    elseif d == nil then\n"
    "      assert(d2 == nil, 'only the cjson way decodes: ' .. doc)\n"
    "    end\n"
    "  end\n"
    "  if d == nil then return end\n"
    "  if type(d) == 'table' then\n"
    "    for _, m in ipairs(d.value) do M.model(m) end\n"
    "    assert(core.json_encode(d))\n"
    "  else\n"
    "    M.model(d)\n"
    "  end\n"
    "end\n"
    "function M.construct(doc)\n"
    "  local t = core.json_decode(doc)\n"
    "  if type(t) ~= 'table' then return end\n"
    "  for _, k in ipairs { 'assignment', 'self_initiated', 'provider', 'content' } do\n"
    "    local ok, m = pcall(core[k], t)\n"
    "    if ok then M.model(m) end\n"
    "    local ok2, errs = core.check(k, t)\n"
    "    assert(ok2 == true or type(errs) == 'table')\n"
    "  end\n"
    "  core.json_encode(t)\n"
    "end\n"
    "function M.assign(doc)\n"
    "  local t = core.json_decode(doc)\n"
    "  if type(t) ~= 'table' then return end\n"
    "  for _, k in ipairs { 'assignment', 'self_initiated', 'provider', 'content' } do\n"
    "    local m = core[k]{}\n"
    "    for key, v in pairs(t) do\n"
    "      pcall(function() m[key] = v end)\n"
    "      pcall(function() return m[key] end)\n"
    "    end\n"
    "    M.model(m)\n"
    "  end\n"
    "end\n"
    "return M\n";

static int setup(void) {
    state = luaL_newstate();
    if (!state) return 0;
    luaL_openlibs(state);
    lua_newtable(state);
    vl_model_open(state);                          /* twice: must be harmless */
    lua_pop(state, 1);
    lua_newtable(state);
    vl_model_open(state);
    lua_setglobal(state, "core");
    if (luaL_loadstring(state, lua_checks) != LUA_OK) return 0;
    lua_getglobal(state, "core");
    if (lua_pcall(state, 1, 1, 0) != LUA_OK) {
        fprintf(stderr, "%s\n", lua_tostring(state, -1));
        return 0;
    }
    lua_setglobal(state, "checks");
    return 1;
}

/* Calls checks[name](doc [, extra]); a Lua error that is not ours is an invariant failure. */
static void run_check(lua_State *L, const char *name, const char *doc, size_t n, const char *extra) {
    int top = lua_gettop(L);
    lua_getglobal(L, "checks");
    lua_getfield(L, -1, name);
    lua_pushlstring(L, doc, n);
    if (extra) lua_pushstring(L, extra);
    else lua_pushnil(L);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        /* memory errors cannot happen here; anything else is a bug */
        fprintf(stderr, "Lua error in %s: %s\n", name, msg ? msg : "?");
        abort();
    }
    lua_settop(L, top);
}

static void run_c_interface(lua_State *L, const char *doc, size_t n, unsigned sel) {
    int top = lua_gettop(L);
    if (!vl_json_decode(L, doc, n)) {
        CHECK(lua_isnil(L, -2) && lua_isstring(L, -1));
        lua_settop(L, top);
        return;
    }
    int t = lua_gettop(L);
    for (int f = 0; f < 4; f++) {
        const char *fam = f < 3 ? families[f] : NULL;
        if (!vl_model_from_table(L, t, fam)) {
            CHECK(lua_isnil(L, -2) && lua_isstring(L, -1));
            lua_pop(L, 2);
            continue;
        }
        int m = lua_gettop(L);
        const char *kind = vl_model_kind(L, m);
        CHECK(kind != NULL);
        CHECK(vl_model_kind(L, t) == NULL);
        vl_model_push_json(L, m);
        CHECK(lua_type(L, -1) == LUA_TSTRING);
        size_t jn;
        const char *js = lua_tolstring(L, -1, &jn);
        CHECK(vl_json_decode(L, js, jn));           /* our output is valid JSON */
        lua_pop(L, 2);
        vl_model_push_changes_json(L, m);
        CHECK(lua_isnil(L, -1));                    /* freshly decoded: nothing changed */
        lua_pop(L, 1);
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
            vl_model_push_field(L, m, fields[i]);
            lua_pop(L, 1);
        }
        CHECK(vl_model_set_id(L, m, (sel & 1) ? "new-id" : "\xff") == !!(sel & 1));
        vl_model_push_changes_json(L, m);
        lua_pop(L, 1);
        vl_model_clean(L, m);
        CHECK(vl_json_encode(L, m));
        lua_pop(L, 2);
    }
    /* the document as the changes table of an update by id: a JSON object, nil, or nil + msg */
    for (int f = 0; f < 2 && lua_istable(L, t); f++) {
        if (vl_model_push_changes_of_table(L, t, f ? "provider" : "activity")) {
            size_t bn;
            const char *bs = lua_tolstring(L, -1, &bn);
            CHECK(lua_isnil(L, -1) || (bs && bn >= 2 && bs[0] == '{'));
            if (bs) CHECK(vl_json_decode(L, bs, bn) && lua_istable(L, -1));
            lua_settop(L, t);
        } else {
            CHECK(lua_isnil(L, -2) && lua_isstring(L, -1));
            lua_settop(L, t);
        }
    }
    CHECK(vl_json_encode(L, t) || (lua_isnil(L, -2) && lua_isstring(L, -1)));
    lua_settop(L, top);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!state && !setup()) abort();
    if (size < 1) return 0;
    lua_State *L = state;
    unsigned sel = data[0];
    const char *doc = (const char *)data + 1;
    size_t n = size - 1;
    int top = lua_gettop(L);
    switch (sel % 4) {
    case 0: run_check(L, "decode", doc, n, (sel >> 2) % 4 < 3 ? families[(sel >> 2) % 4] : NULL); break;
    case 1: run_check(L, "construct", doc, n, NULL); break;
    case 2: run_c_interface(L, doc, n, sel >> 2); break;
    default: run_check(L, "assign", doc, n, NULL); break;
    }
    CHECK(lua_gettop(L) == top);
    if ((sel & 0x40) != 0) lua_gc(L, LUA_GCCOLLECT, 0);
    else lua_gc(L, LUA_GCSTEP, 0);
    return 0;
}
