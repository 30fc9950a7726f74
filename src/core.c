/* luaopen_vivalearning_core: the entry point that assembles the C core. */
#include "core.h"
#include "ops.h"
#include "policy_lua.h"
#include "transport.h"

static int core_curl_version(lua_State *L) {
    int http2 = 0;
    const char *ssl = "";
    lua_pushstring(L, vl_transport_version(&http2, &ssl));
    lua_pushboolean(L, http2);
    lua_pushstring(L, ssl);
    return 3;
}

int luaopen_vivalearning_core(lua_State *L);

int luaopen_vivalearning_core(lua_State *L) {
    if (vl_transport_global_init() != 0) return luaL_error(L, "vivalearning.core: curl_global_init failed");

    luaL_checkversion(L);
    lua_newtable(L);
    lua_pushliteral(L, VL_VERSION);
    lua_setfield(L, -2, "version");
    lua_pushcfunction(L, core_curl_version);
    lua_setfield(L, -2, "curl_version");
    vl_model_open(L);
    vl_client_open(L);
    vl_policy_open(L);
    lua_pushcfunction(L, vl_ops_list);      /* the operation declarations, read-only copies */
    lua_setfield(L, -2, "_ops");
    return 1;
}
