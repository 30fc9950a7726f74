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
-- error object, viva.is_error(v) tests for one. The credential module reads certificate and
-- federated token files and the AZURE_* environment, and runs the credential chain when no
-- credential is given (docs/signin.md). io = "ngx" (inside nginx): the core as io = "external"
-- behind the cosocket driver (vivalearning.ngx, loaded only then).
M.credential = require "vivalearning.credential"
local function new_client(opts)
  opts = M.credential.resolve(opts)
  if type(opts) == "table" and opts.io == "ngx" then return require("vivalearning.ngx").client(core, opts) end
  return core.client(opts)
end
function M.client(opts)
  local ok, c = pcall(new_client, opts)
  if ok then return c end
  -- raised where the caller called viva.client, as when it was the C function itself
  if type(c) == "string" then error((c:gsub("^[^\n]-vivalearning/init%.lua:%d+: ", "")), 2) end
  error(c, 0)
end
M.error = core.error
M.is_error = core.is_error

-- Lua layer: paging methods on every client (c:activities, c:activity_pages, c:providers,
-- c:provider_pages, c:contents, c:content_pages) and bulk import/export (M.bulk).
M.pager = require "vivalearning.pager"
M.bulk = require "vivalearning.bulk"
M.bulk._bind(M)
M.pager.install(core.client_methods)
-- c:warmup(): token, DNS, TLS and CA loading ahead of a frame loop (docs/embedding.md).
require("vivalearning.warmup").install(core.client_methods)

return M
