-- One version number: viva._VERSION (from the C core), the rockspec's (file name and field) and
-- the top entry of CHANGELOG.md agree.
local viva = require "vivalearning"

local function read(path)
  local f = assert(io.open(path, "r"), path .. ": cannot open")
  local s = f:read("*a")
  f:close()
  return s
end

describe("the version", function()
  it("viva._VERSION, the rockspec and CHANGELOG.md's top entry agree", function()
    assert.matches("^%d+%.%d+%.%d+$", viva._VERSION)
    local p = assert(io.popen("ls rockspec/*.rockspec"))
    local files = {}
    for l in p:lines() do files[#files + 1] = l end
    p:close()
    assert.equal(1, #files, "one rockspec expected in rockspec/, found: " .. table.concat(files, " "))
    local spec = read(files[1])
    local version = spec:match('\nversion%s*=%s*"([^"]+)"')
    assert.equal(viva._VERSION .. "-1", version, files[1] .. ": version")
    assert.equal("rockspec/vivalearning-" .. version .. ".rockspec", files[1])
    local top = read("CHANGELOG.md"):match("\n## %[?(%d+%.%d+%.%d+)%]?")
    assert.equal(viva._VERSION, top, "CHANGELOG.md: top entry")
  end)

  it("is in the client's User-Agent", function()
    local c = require("support.client").new("importer")
    assert(c:get("00000000-0000-4000-8000-000000000000") == nil)
    local ua = require("support.emulator").log()
    local found
    for _, entry in ipairs(ua) do
      local h = entry.headers or {}
      local v = h["user-agent"] or h["User-Agent"]
      if v then found = v end
    end
    assert.matches("^lua%-vivalearning/" .. viva._VERSION:gsub("%.", "%%.") .. " ", found)
  end)
end)
