-- `make rock`: the luarocks path. luarocks is installed by apt when it is missing (nothing else
-- installs it), and the rockspec is built with --deps-mode=none, so that Debian's lua-cjson
-- (installed by apt, unknown to luarocks) satisfies the dependency.
-- The spec never installs anything: apt-get, dpkg-query and luarocks are replaced, on PATH, by
-- scripts that record their arguments (dpkg-query reports luarocks missing, the rest installed).
local http = require "support.http"
local q = http.shell_quote

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  assert(os.execute("chmod +x " .. q(path)))
end

describe("make rock", function()
  local dir
  before_each(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. q(dir .. "/bin")))
    write(dir .. "/bin/dpkg-query", '#!/bin/sh\nfor a; do p=$a; done\n' ..
      '[ "$p" = luarocks ] && exit 1\nprintf "install ok installed"\n')
    write(dir .. "/bin/apt-get", '#!/bin/sh\necho "apt-get $*" >> ' .. q(dir .. "/log") .. "\n")
    write(dir .. "/bin/luarocks", '#!/bin/sh\necho "luarocks $*" >> ' .. q(dir .. "/log") .. "\n")
  end)
  after_each(function()
    os.execute("rm -rf " .. q(dir))
  end)

  it("installs luarocks when it is missing, then builds the rockspec with --deps-mode=none", function()
    local code, out = http.run("PATH=" .. q(dir .. "/bin") .. ":\"$PATH\" make -s rock")
    assert.equal(0, code, out)
    local log = http.read_file(dir .. "/log")
    assert.matches("apt%-get install %-y %-qq luarocks\n", log)
    local rockspec = io.popen("ls rockspec/*.rockspec"):read("l")
    assert.truthy(log:find("luarocks --lua-version 5.4 make --deps-mode=none " .. rockspec .. "\n", 1, true), log)
    assert.truthy(log:find("apt-get install", 1, true) < log:find("luarocks --lua-version", 1, true), log)
  end)
end)
