-- vivalearning: Lua face of the Microsoft Graph Viva Learning course-activity client.
-- The C core (vivalearning.core) owns models, HTTP, auth and retries; this file re-exports
-- it and adds the pure-Lua parts (paging, bulk import).
local core = require "vivalearning.core"

local M = {
  _VERSION = core.version,
  core = core,
}

-- Models (issue 3): constructors, decode, check, null.
for _, name in ipairs { "assignment", "self_initiated", "provider", "content", "decode", "check", "null" } do
  M[name] = core[name]
end

-- Client (issue 4; owned by the client helper): viva.client{...} (see README "Client"),
-- viva.error{kind=, message=, ...} makes an error object, viva.is_error(v) tests for one.
M.client = core.client
M.error = core.error
M.is_error = core.is_error
-- end client

-- ===========================================================================================
-- Lua layer (issue 5; owned by the lua-layer helper): paging methods on the client
-- (c:activities, c:activity_pages, c:providers, c:provider_pages, c:contents,
-- c:content_pages) and bulk import/export (M.bulk). Pure Lua over the client's API.
-- ===========================================================================================
M.pager = require "vivalearning.pager"
M.bulk = require "vivalearning.bulk"
M.bulk._bind(M)
do
  -- the client's method table: exposed by the core, or found through its metatable
  local methods = core.client_methods
  if type(methods) ~= "table" then
    local mt = debug.getregistry()["vivalearning.client"]
    methods = type(mt) == "table" and type(mt.__index) == "table" and mt.__index or nil
  end
  if methods then M.pager.install(methods) end
end
-- =========================================================================== end Lua layer

return M
