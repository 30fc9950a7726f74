-- `make rock`: the luarocks path, for real. luarocks is installed by apt when it is missing
-- (`make deps-rock`; `make test` runs it first), and the rockspec is built with
-- --deps-mode=none, so that Debian's lua-cjson (installed by apt, unknown to luarocks)
-- satisfies the dependency. The build runs in a copy of the tracked files, installing into a
-- temporary tree: building in this checkout would rewrite the core.so the specs have loaded.
local shell = require "support.shell"
local http = require "support.http"
local q = http.shell_quote

describe("make rock", function()
  local dir
  before_each(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(shell.execute("mkdir -p " .. q(dir .. "/src") .. " " .. q(dir .. "/tree")))
    -- the tracked files only: no build products of this checkout
    local code, out = http.run("git ls-files -z | xargs -0 cp --parents -t " .. q(dir .. "/src"))
    assert.equal(0, code, out)
  end)
  after_each(function()
    shell.execute("rm -rf " .. q(dir))
  end)

  it("builds and installs the rockspec with --deps-mode=none; the installed module and command load", function()
    local code, out = http.run("cd " .. q(dir .. "/src") .. " && make -s rock ROCK_FLAGS=" ..
      q("--tree " .. dir .. "/tree"))
    assert.equal(0, code, out)
    local tree = dir .. "/tree"
    -- the installed files, found through the tree's paths first, then the system's (;; = cjson)
    local env = "LUA_PATH=" .. q(tree .. "/share/lua/5.4/?.lua;" .. tree .. "/share/lua/5.4/?/init.lua;;") ..
      " LUA_CPATH=" .. q(tree .. "/lib/lua/5.4/?.so;;")
    local vcode, version = http.run(env .. " lua5.4 -e " ..
      q('local v = require "vivalearning"; local core = package.searchpath("vivalearning.core", package.cpath); ' ..
        'io.write(v._VERSION, " ", core)'))
    assert.equal(0, vcode, version)
    local want = require("vivalearning")._VERSION
    assert.equal(want .. " " .. tree .. "/lib/lua/5.4/vivalearning/core.so", version)
    local ccode, cli = http.run(env .. " " .. q(tree .. "/bin/vivalearning") .. " --version")
    assert.equal(0, ccode, cli)
    assert.equal(want, (cli:gsub("%s+$", "")))
  end)
end)
