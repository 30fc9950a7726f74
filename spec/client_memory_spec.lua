-- Memory errors: a call on which any one allocation fails raises "not enough memory" and leaves
-- the client whole: every request it holds still finishes (none lost, none stuck), the token
-- fetch is not stuck, a memory error never passes for a bad response, and a sync call that
-- raised does not go on in the background. spec/support/memory_errors.lua runs each scenario in
-- a Lua host that can fail the k-th allocation (.ci/lua_host.c, vl_host_fail_alloc), for every
-- k up to the number of allocations the call makes: this Lua host when it is one (make check),
-- else one built here with cc.
local emu = require "support.emulator"
local http = require "support.http"
local q = http.shell_quote

local function self_pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("*l"):match("^(%d+)")
  f:close()
  return pid
end

-- The host for a scenario: this Lua when it is a .ci/lua_host.c with the hook the scenario
-- needs, else a plain build made here (nil when that cannot load this core: a sanitizer build).
local built
local function the_host(malloc)
  if rawget(_G, malloc and "vl_host_fail_malloc" or "vl_host_fail_alloc") then
    return "/proc/" .. self_pid() .. "/exe"
  end
  if os.getenv("VIVA_SANITIZED") then return nil end
  if not built then
    built = emu.dir .. "/lua_fail_host"
    local code, out = http.run("cc -O1 $(pkg-config --cflags lua5.4) .ci/lua_host.c -o " .. q(built) ..
                               " $(pkg-config --libs lua5.4) -ldl")
    assert(code == 0, out)
  end
  return built
end

local function run(host, scenario)
  local code, out = http.run("VIVA_CHILD_CPATH=" .. q(package.cpath) .. " timeout 600 " .. q(host) ..
                             " spec/support/memory_errors.lua " .. q(emu.dir) .. " " .. scenario)
  local n = out:match("ok " .. scenario .. " (%d+)")
  assert(code == 0 and n, out)
  assert.is_true(tonumber(n) > 5, out)        -- the call did raise, again and again
end

describe("client memory errors", function()
  before_each(function() emu.reset() end)

  for _, scenario in ipairs { "sync", "poll", "token", "provider" } do
    it("leave the client whole: " .. scenario, function() run(the_host(false), scenario) end)
  end

  -- viva.client{...} when one of its C allocations (malloc) fails: it raises or it works
  local host = the_host(true)
  if host then
    it("leave no half-built client: new", function() run(host, "new") end)
  else
    pending("leave no half-built client: new (C allocations fail in a plain build only)")
  end
end)
