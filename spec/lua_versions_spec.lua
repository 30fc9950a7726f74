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

-- In this Lua (the suite runs on each): the Lua layer's numbers.
describe("on this Lua (" .. _VERSION .. (jit and ", " .. jit.version or "") .. ")", function()
  local viva = require "vivalearning"
  local hash = require "vivalearning.hash"
  local compat = require "vivalearning.compat"

  it("vivalearning.hash is FNV-1a 32 exactly (the journal's checksums, the shards)", function()
    -- the FNV reference vectors, and one whose products pass 2^53 at every byte
    assert.equal(2166136261, hash.fnv1a32(""))
    assert.equal(3826002220, hash.fnv1a32("a"))
    assert.equal(3214735720, hash.fnv1a32("foobar"))
    assert.equal(hash.fnv1a32(string.rep("\255", 64)), hash.fnv1a32(string.rep("\255", 64)))
    assert.equal("string", type(("%d"):format(hash.fnv1a32(string.rep("\255", 64)))))
    local h = hash.fnv1a32(string.rep("\255", 64))
    assert.is_true(h >= 0 and h < 2 ^ 32 and h == math.floor(h))
  end)

  it("compat: math.type, math.tointeger and floor division as 5.3 has them", function()
    assert.equal("integer", compat.type(3))
    assert.equal("float", compat.type(3.5))
    assert.equal("float", compat.type(1 / 0))
    assert.equal("float", compat.type(0 / 0))
    assert.is_nil(compat.type("3"))
    assert.equal(3, compat.tointeger(3))
    assert.is_nil(compat.tointeger(3.5))
    assert.is_nil(compat.tointeger(1 / 0))
    assert.equal(3, compat.idiv(7, 2))
    assert.equal(-4, compat.idiv(-7, 2))
    assert.equal("integer", compat.type(compat.idiv(7, 2)))
  end)

  -- Integers beyond 2^53 do not exist on 5.1, 5.2 (numbers) and LuaJIT: the models' integer
  -- fields are completionPercentage (0..100) and numberOfPages (0..2^31-1), far from it.
  it("integer fields: the edges hold and what is past them is refused", function()
    assert.equal(2147483647, viva.content({ numberOfPages = 2147483647 }).numberOfPages)
    assert.equal(0, viva.content({ numberOfPages = 0 }).numberOfPages)
    assert.equal(100, viva.assignment({ completionPercentage = 100.0 }).completionPercentage)
    for _, bad in ipairs { 2147483648, 2 ^ 53, 2 ^ 53 + 1, 2 ^ 63, -1, 0.5 } do
      assert.has_error(function() viva.content { numberOfPages = bad } end)
    end
    local ok, err = pcall(viva.decode, '{"@odata.type":"#microsoft.graph.learningContent","numberOfPages":9007199254740993}')
    assert.is_false(ok and err ~= nil and err.numberOfPages ~= nil)
    -- an unknown property keeps its number as written, whatever this Lua's numbers are
    local m = viva.decode('{"@odata.type":"#microsoft.graph.learningContent","title":"t","big":9007199254740993}')
    assert.truthy(m:tojson():find('"big":9007199254740993', 1, true))
  end)
end)
