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

local function run(dir, known)
  local p = assert(io.popen("lua5.4 .ci/include-graph " .. (known and ("--known '" .. known .. "' ") or "") ..
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

  it("passes the tree of this repository", function()
    local ok, out = run("src", ".ci/include-graph.known")
    assert.is_true(ok, out)
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
