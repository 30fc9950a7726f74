rockspec_format = "3.0"
package = "vivalearning"
version = "0.2.0-1"
source = {
  url = "git+file://.",
}
description = {
  summary = "Microsoft Graph Viva Learning course-activity client: Lua 5.1-5.4 and LuaJIT, with a C core",
  detailed = [[
Create, update, read, list and delete Viva Learning course activities
(learningAssignment, learningSelfInitiatedCourse) through Microsoft Graph, with
models as userdata, libcurl transport, retries, paging iterators and resumable
bulk imports. Ships a local Graph emulator (nginx + ngx_lua) for offline work.
]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.1",   -- 5.1, 5.2, 5.3, 5.4 and LuaJIT 2.1 (5.1-5.2 and LuaJIT with lua-compat53)
  "lua-cjson",
}
-- Found by its library: Debian keeps curl/curl.h in the multiarch include directory, where
-- luarocks does not look for headers (the compiler finds it there by itself).
external_dependencies = {
  CURL = { library = "curl" },
  SQLITE = { library = "sqlite3" },   -- the sync state store (vivalearning/sqlite.so)
  CRYPTO = { library = "crypto" },    -- libcrypto signs the certificate credential's assertion
}
build = {
  type = "make",
  build_variables = {
    LUA = "$(LUA)",     -- the interpreter: picks the headers and the build directories
    CFLAGS = "$(CFLAGS)",
    LIBFLAG = "$(LIBFLAG)",
    LUA_CFLAGS = "-I$(LUA_INCDIR)",
    CURL_CFLAGS = "-I$(CURL_INCDIR)",
    CURL_LIBS = "-L$(CURL_LIBDIR) -lcurl",
    CRYPTO_LIBS = "-L$(CRYPTO_LIBDIR) -lcrypto",
  },
  install_variables = {
    LUA = "$(LUA)",
    LUA_LIBDIR = "$(LIBDIR)",
    LUA_DIR = "$(LUADIR)",
    BINDIR = "$(BINDIR)",
    PREFIX = "$(PREFIX)",
  },
  build_target = "build",
  install_target = "install",
}
test = { type = "busted" }
