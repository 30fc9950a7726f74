-- vivalearning: Lua face of the Microsoft Graph Viva Learning course-activity client.
-- The C core (vivalearning.core) owns models, HTTP, auth and retries; this file re-exports
-- it and adds the pure-Lua parts (paging, bulk import).
local core = require "vivalearning.core"

local M = {
  _VERSION = core.version,
  core = core,
}

-- Models: constructors, decode, check, null.
for _, name in ipairs { "assignment", "self_initiated", "provider", "content", "decode", "check", "null" } do
  M[name] = core[name]
end

-- Client: viva.client{...} (see README "Client"); viva.error{kind=, message=, ...} makes an
-- error object, viva.is_error(v) tests for one.
-- io = "ngx" (inside nginx): the core as io = "external" behind the cosocket driver
-- (vivalearning.ngx, loaded only then).
function M.client(opts)
  if type(opts) == "table" and opts.io == "ngx" then return require("vivalearning.ngx").client(core, opts) end
  return core.client(opts)
end
M.error = core.error
M.is_error = core.is_error

-- Lua layer: paging methods on every client (c:activities, c:activity_pages, c:providers,
-- c:provider_pages, c:contents, c:content_pages) and bulk import/export (M.bulk).
M.pager = require "vivalearning.pager"
M.bulk = require "vivalearning.bulk"
M.bulk._bind(M)
M.pager.install(core.client_methods)

return M
