/* luaopen_vivalearning_core: the entry point that assembles the C core. */
#include <curl/curl.h>

#include "core.h"
#include "policy_lua.h"

static int core_curl_version(lua_State *L) {
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    lua_pushstring(L, v->version);
    lua_pushboolean(L, (v->features & CURL_VERSION_HTTP2) != 0);
    lua_pushstring(L, v->ssl_version ? v->ssl_version : "");
    return 3;
}

int luaopen_vivalearning_core(lua_State *L);

int luaopen_vivalearning_core(lua_State *L) {
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    /* curl_global_init is reference counted and thread-safe only where libcurl says so;
     * without that guarantee the host must initialise libcurl itself before its threads. */
    if ((v->features & CURL_VERSION_THREADSAFE) && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return luaL_error(L, "vivalearning.core: curl_global_init failed");

    luaL_checkversion(L);
    lua_newtable(L);
    lua_pushliteral(L, VL_VERSION);
    lua_setfield(L, -2, "version");
    lua_pushcfunction(L, core_curl_version);
    lua_setfield(L, -2, "curl_version");
    vl_model_open(L);
    vl_client_open(L);
    vl_policy_open(L);
    return 1;
}
