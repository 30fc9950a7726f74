-- Every Lua the module supports (5.1, 5.2, 5.3, 5.4, LuaJIT): the spec helpers read exit
-- statuses the same way on each (os.execute and popen's close return a number on 5.1/LuaJIT),
-- spec/helper.lua reuses a live emulator there instead of starting (and leaking) one, and the
-- Lua layer's checksums are the same exact 32-bit values on each.
local http = require "support.http"
local q = http.shell_quote

local LUAS = { "lua5.1", "lua5.2", "lua5.3", "lua5.4", "luajit" }
local function installed(lua) return http.ok("command -v " .. lua) end

-- Runs chunk in a child `lua` with spec/ and lua/ on its path: exit code, output.
local function child(lua, chunk, env)
  local f = os.tmpname()
  local fh = assert(io.open(f, "w"))
  fh:write('package.path = "./spec/?.lua;./lua/?.lua;./lua/?/init.lua;" .. package.path\n', chunk)
  fh:close()
  local code, out = http.run((env or "") .. " " .. lua .. " " .. q(f))
  os.remove(f)
  return code, out
end

for _, lua in ipairs(LUAS) do
  describe("on " .. lua, function()
    if not installed(lua) then
      pending(lua .. " is not installed (make deps installs it)")
      return
    end

    it("the spec shell helpers read exit statuses as on 5.2+", function()
      local code, out = child(lua, [[
        local shell = require "support.shell"
        local a = { shell.execute("true") }
        local b = { shell.execute("exit 3") }
        local c = { shell.execute("kill -TERM $$") }
        local rc, text = shell.run("printf 'x\\ny'; exit 4")
        print(table.concat({ tostring(a[1]), a[2], a[3], tostring(b[1]), b[2], b[3],
                             tostring(c[1]), c[2], c[3], rc, text }, ","))
        print(shell.ok("true"), shell.ok("false"))
      ]])
      assert.equal(0, code, out)
      assert.equal("true,exit,0,nil,exit,3,nil,signal,15,4,x\ny\ntrue\tfalse\n", out)
    end)

    it("spec/helper.lua uses the live emulator named by VIVA_EMU_DIR (and starts none)", function()
      local dir = assert(rawget(_G, "VIVA_EMU_ACTIVE_DIR"))
      local code, out = child(lua, [[
        dofile("spec/helper.lua")
        io.write(VIVA_EMU_ACTIVE_DIR)
      ]], "VIVA_EMU_DIR=" .. q(dir))
      assert.equal(0, code, out)
      assert.equal(dir, out)
    end)
  end)
end
