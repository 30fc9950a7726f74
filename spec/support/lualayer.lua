-- Shared by the Lua layer's specs (spec/bulk_*, spec/pager_*, spec/cli_*): clients for the
-- seed's apps, shell quoting, and how to start a child Lua process that tests the same build
-- as the spec itself.

local M = {}

local http = require "support.http"
M.q = http.shell_quote
M.slurp = http.read_file

--- A client of one of the seed's apps (default the importer), over HTTPS/h2 with the CA.
M.client = require("support.client").new

-- Children run with this process's interpreter (lua5.4, or make check's sanitizer host) and
-- its module paths, so they test the same build as the spec itself. Under valgrind the
-- interpreter is valgrind's tool, so children fall back to $LUA or lua5.4.
local function this_lua()
  local f = io.open("/proc/self/stat")
  local pid = f and f:read("*n")
  if f then f:close() end
  if pid then
    local p = io.popen("readlink /proc/" .. math.tointeger(pid) .. "/exe 2>/dev/null")
    local exe = p:read("*l")
    p:close()
    if exe and exe ~= "" and not exe:find("valgrind", 1, true) and not exe:find("memcheck", 1, true) then
      return exe
    end
  end
  return os.getenv("LUA") or "lua5.4"
end
M.LUA = this_lua()
M.LUA_ENV = "LUA_PATH=" .. M.q(package.path) .. " LUA_CPATH=" .. M.q(package.cpath)

return M
