-- .ci/include-graph: the check `make check` runs over src/ fails on a dependency cycle among
-- the files of a directory (unit = file name without extension, edge = #include "x.h").
local shell = require "support.shell"
local function tmpdir()
  local p = assert(io.popen("mktemp -d"))
  local d = p:read("*l")
  p:close()
  return d
end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local function run(dir, known, luafree)
  local p = assert(io.popen("lua5.4 .ci/include-graph " .. (known and ("--known '" .. known .. "' ") or "") ..
                            (luafree and ("--lua-free '" .. luafree .. "' ") or "") ..
                            "'" .. dir .. "' 2>&1; echo \"rc=$?\""))
  local out = p:read("*a")
  p:close()
  return out:match("rc=(%d+)") == "0", out
end

describe(".ci/include-graph", function()
  local dir
  before_each(function() dir = tmpdir() end)
  after_each(function() shell.execute("rm -rf '" .. dir .. "'") end)

  it("passes layers that only include the ones below", function()
    write(dir .. "/util.h", "#include <stddef.h>\n")
    write(dir .. "/util.c", '#include "util.h"\n')
    write(dir .. "/engine.h", '#include "util.h"\n')
    write(dir .. "/engine.c", '#include "engine.h"\n#include "util.h"\n')
    local ok, out = run(dir)
    assert.is_true(ok, out)
    assert.matches("2 units", out)
  end)

  it("fails on a cycle through a .c file and names it", function()
    write(dir .. "/json.h", "")
    write(dir .. "/json.c", '#include "json.h"\n#include "model.h"\n')
    write(dir .. "/model.h", "")
    write(dir .. "/model.c", '#  include "model.h"\n#include "json.h"\n')
    local ok, out = run(dir)
    assert.is_false(ok)
    assert.matches("dependency cycle in .*: json %-> model %-> json", out)
  end)

  it("leaves out the edges of a known cycle, and only those", function()
    write(dir .. "/json.c", '#include "model.h"\n')
    write(dir .. "/model.c", '#include "json.h"\n#include "auth.h"\n')
    write(dir .. "/auth.c", '#include "model.h"\n')
    write(dir .. "/known", "# being removed\njson model\n")
    local ok, out = run(dir, dir .. "/known")
    assert.is_false(ok)
    assert.matches("auth %-> model %-> auth", out)
    write(dir .. "/auth.c", "")
    ok, out = run(dir, dir .. "/known")
    assert.is_true(ok, out)
    assert.matches("leaving out 2 known edges", out)
  end)

  it("passes the tree of this repository, with its Lua-free layers", function()
    local ok, out = run("src", ".ci/include-graph.known", ".ci/include-graph.lua-free")
    assert.is_true(ok, out)
    assert.matches("Lua%-free units", out)
    -- the layers the architecture issue names stay in the list
    local f = assert(io.open(".ci/include-graph.lua-free"))
    local listed = {}
    for line in f:lines() do listed[line:gsub("#.*", ""):match("^%s*(%S+)") or ""] = true end
    f:close()
    for _, u in ipairs { "engine", "policy", "transport", "token", "io", "state" } do
      assert.is_true(listed[u] == true, u .. " is not in .ci/include-graph.lua-free")
    end
  end)

  it("fails when a Lua-free unit includes a Lua header, and names the file", function()
    write(dir .. "/state.h", "#include <stddef.h>\n")
    write(dir .. "/engine.h", '#include "state.h"\n')
    write(dir .. "/engine.c", '#include "engine.h"\n')
    write(dir .. "/luafree", "# below the binding\nengine\nstate\n")
    local ok, out = run(dir, nil, dir .. "/luafree")
    assert.is_true(ok, out)
    assert.matches("2 Lua%-free units", out)
    write(dir .. "/engine.c", '#include <lauxlib.h>\n#include "engine.h"\n')
    ok, out = run(dir, nil, dir .. "/luafree")
    assert.is_false(ok)
    assert.matches("layer rule: engine must not depend on Lua: engine %(engine%.c includes lauxlib%.h%)", out)
  end)

  it("fails when a Lua-free unit includes a binding-level header, with the chain", function()
    write(dir .. "/result.h", "#include <lua.h>\n")
    write(dir .. "/result.c", '#include "result.h"\n')
    write(dir .. "/util.h", '#include "result.h"\n')
    write(dir .. "/engine.c", '#include "util.h"\n')
    write(dir .. "/luafree", "engine\n")
    local ok, out = run(dir, nil, dir .. "/luafree")
    assert.is_false(ok)
    assert.matches("engine %-> util %-> result %(result%.h includes lua%.h%)", out)
    -- the binding may include both
    write(dir .. "/engine.c", "")
    write(dir .. "/client.c", '#include "result.h"\n#include "engine.h"\n')
    ok, out = run(dir, nil, dir .. "/luafree")
    assert.is_true(ok, out)
  end)

  it("fails when a listed Lua-free unit has no file", function()
    write(dir .. "/engine.c", "")
    write(dir .. "/luafree", "engine\nengnie\n")
    local ok, out = run(dir, nil, dir .. "/luafree")
    assert.is_false(ok)
    assert.matches("Lua%-free unit engnie has no file", out)
  end)

  it("fails on a longer cycle through headers", function()
    write(dir .. "/a.h", '#include "b.h"\n')
    write(dir .. "/b.h", '#include "c.h"\n')
    write(dir .. "/c.c", '#include "a.h"\n')
    local ok, out = run(dir)
    assert.is_false(ok)
    assert.matches("a %-> b %-> c %-> a", out)
  end)
end)
