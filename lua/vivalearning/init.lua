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

-- Client (issue 4) and the pure-Lua layer (issue 5) are added below as they land.

return M
