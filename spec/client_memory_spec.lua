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
  local pid = f:read("l"):match("^(%d+)")
  f:close()
  return pid
end

local host
local function the_host()
  if host then return host end
  if rawget(_G, "vl_host_fail_alloc") then
    host = "/proc/" .. self_pid() .. "/exe"
  else
    host = emu.dir .. "/lua_fail_host"
    local code, out = http.run("cc -O1 $(pkg-config --cflags lua5.4) .ci/lua_host.c -o " .. q(host) ..
                               " $(pkg-config --libs lua5.4) -ldl")
    assert(code == 0, out)
  end
  return host
end

describe("client memory errors", function()
  before_each(function() emu.reset() end)

  for _, scenario in ipairs { "sync", "poll", "token", "provider" } do
    it("leave the client whole: " .. scenario, function()
      local code, out = http.run("VIVA_CHILD_CPATH=" .. q(package.cpath) .. " timeout 600 " .. q(the_host()) ..
                                 " spec/support/memory_errors.lua " .. q(emu.dir) .. " " .. scenario)
      local n = out:match("ok " .. scenario .. " (%d+)")
      assert(code == 0 and n, out)
      assert.is_true(tonumber(n) > 5, out)        -- the call did raise, again and again
    end)
  end
end)
