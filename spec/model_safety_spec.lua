-- Memory safety of the C core against hostile Lua values: metamethods and methods called with
-- the wrong receiver, and argument tables whose __index hands out fresh strings while the
-- garbage collector runs (a string popped off the stack is only kept alive by the stack).
local gc = require "support.gc"
local viva = require "vivalearning"
local emu = require "support.emulator"
local clients = require "support.client"

local function raises(fn, text)
  local ok, err = pcall(fn)
  assert.is_false(ok, "expected an error containing: " .. text)
  err = tostring(err)
  assert.is_truthy(err:find(text, 1, true), "error '" .. err .. "' does not contain '" .. text .. "'")
  return err
end

local function models()
  return {
    assignment = viva.assignment { id = "a1", completionPercentage = 5 },
    self_initiated = viva.self_initiated { id = "s1" },
    activity = viva.decode('{"id":"b1","learnerUserId":"u"}'),
    provider = viva.provider { id = "p1", isCourseActivitySyncEnabled = true },
    content = viva.content { id = "c1", isSearchable = true, skillTags = { "x" } },
  }
end

-- a full userdata of another type, and a plain table that looks like a model
local function strangers()
  return { "x", 42, true, {}, { id = "x" }, io.stdout, viva.null }
end

-- a string no one else holds: long strings are never interned, so this one is a new object
local function fresh(s) return table.concat { s:sub(1, 1), s:sub(2) } end

-- a table whose fields are read through an __index that collects garbage first and answers a
-- fresh copy of each string
local function hostile(t)
  return setmetatable({}, { __index = function(_, k)
    collectgarbage()
    local v = t[k]
    if type(v) == "string" then return fresh(v) end
    return v
  end })
end

describe("model metatables with the wrong receiver", function()
  it("__index and __newindex of every model type check argument 1", function()
    for kind, m in pairs(models()) do
      local mt = getmetatable(m)
      for _, x in ipairs(strangers()) do
        raises(function() return mt.__index(x, "id") end, "model expected")
        raises(function() mt.__newindex(x, "id", "y") end, "model expected")
      end
      -- a model of another type: field indexes differ between types
      for other, o in pairs(models()) do
        if other ~= kind then
          raises(function() return mt.__index(o, "isSearchable") end, "model expected")
          raises(function() return mt.__index(o, "id") end, "model expected")
          raises(function() mt.__newindex(o, "id", "y") end, "model expected")
        end
      end
      assert.are.equal(m.id, mt.__index(m, "id"))
    end
  end)

  it("the other metamethods and every method check argument 1", function()
    for _, m in pairs(models()) do
      local mt = getmetatable(m)
      for _, x in ipairs(strangers()) do
        raises(function() mt.__pairs(x) end, "model expected")
        raises(function() mt.__tostring(x) end, "model expected")
        assert.is_false(mt.__eq(x, m))
        assert.is_false(mt.__eq(m, x))
        for _, name in ipairs { "totable", "tojson", "changes", "clean", "kind" } do
          raises(function() m[name](x) end, "model expected")
        end
      end
    end
  end)

  it("the pairs iterator of one model checks the model it is given", function()
    local f = viva.content({ id = "c", title = "t" }):pairs()
    for _, x in ipairs(strangers()) do raises(function() f(x, nil) end, "model expected") end
  end)

  it("a copied type tag does not make another userdata a model", function()
    local mt = getmetatable(viva.assignment {})
    local tag
    for k in pairs(mt) do if type(k) == "userdata" then tag = k end end
    assert.is_not_nil(tag)
    local c = clients.new("importer")
    local cmt = getmetatable(c)
    rawset(cmt, tag, mt[tag])
    local ok, err = pcall(function()
      raises(function() viva.assignment {}.kind(c) end, "model expected")
      raises(function() viva.assignment {}.tojson(c) end, "model expected")
      raises(function() return mt.__index(c, "id") end, "model expected")
      local j, jerr = require("vivalearning.core").json_encode { c }
      assert.is_nil(j)
      assert.is_string(jerr)
    end)
    rawset(cmt, tag, nil)
    c:close()
    assert(ok, err)
  end)

  it("a tampered type tag makes models unrecognised, never out of range", function()
    local a = viva.assignment { id = "a" }
    local mt = getmetatable(a)
    local tag
    for k in pairs(mt) do if type(k) == "userdata" then tag = k end end
    local saved = mt[tag]
    local results = {}
    for _, v in ipairs { 99, -1, 3, 2.5, "0" } do
      rawset(mt, tag, v)
      results[#results + 1] = { pcall(function() return a:kind() end) }
      results[#results + 1] = { pcall(function() return a:tojson() end) }
    end
    rawset(mt, tag, saved)
    for _, r in ipairs(results) do assert.is_false(r[1]) end
    assert.are.equal("assignment", a:kind())
  end)

  it("the error object and request handle metatables check argument 1", function()
    local err = viva.error { kind = "validation", message = "m" }
    local emt = getmetatable(err)
    for _, x in ipairs { "x", 42, io.stdout, viva.assignment {} } do
      assert.has_error(function() emt.__tostring(x) end)
    end
    local c = clients.new("importer")
    local h = c:submit("get", "00000000-0000-0000-0000-000000000000")
    local hmt = getmetatable(h)
    local cmt = getmetatable(c)
    for _, x in ipairs { "x", {}, io.stdout, viva.assignment {}, c } do
      assert.has_error(function() hmt.__tostring(x) end)
      assert.has_error(function() hmt.__gc(x) end)
      for _, name in ipairs { "result", "done", "op", "info" } do
        assert.has_error(function() hmt.__index[name](x) end)
      end
    end
    for _, x in ipairs { "x", {}, io.stdout, viva.assignment {}, h } do
      assert.has_error(function() cmt.__tostring(x) end)
      assert.has_error(function() cmt.__index.stats(x) end)
      assert.has_error(function() cmt.__index.get(x, "id") end)
    end
    c:close()
  end)
end)

describe("fresh strings from __index while the collector runs", function()
  local c
  before_each(function()
    emu.reset()
    c = clients.new("importer")
  end)
  after_each(function()
    c:close()
    gc.incremental(200, 100)
  end)

  it("the error object's __tostring keeps each field alive while it writes the line", function()
    local fields = {
      kind = "validation" .. string.rep("k", 40), code = "someCode" .. string.rep("c", 60),
      message = "a message " .. string.rep("m", 300), cause = "the cause " .. string.rep("z", 100),
      method = "GET", url = "https://example.invalid/" .. string.rep("u", 100),
      request_id = "rid-" .. string.rep("r", 60), client_request_id = "crid-" .. string.rep("q", 60),
    }
    local copy = {}
    for k, v in pairs(fields) do copy[k] = v end
    local plain = viva.error(copy)
    local want = tostring(plain)
    local tostr = getmetatable(plain).__tostring
    for _ = 1, 3 do assert.are.equal(want, tostr(hostile(fields))) end
  end)

  it("a page of a user: the user id is kept while the path grows", function()
    local user = "user-" .. string.rep("0123456789", 300)
    local seq = emu.last_seq()
    gc.incremental(1, 1000)
    local page, err = c:activities_page(hostile { user = user, top = 5 })
    gc.incremental(200, 100)
    assert.is_nil(page)
    assert.is_not_nil(err)
    local seen
    for _, e in ipairs(emu.log(seq)) do
      if e.path:find("/users/", 1, true) then seen = e.path end
    end
    assert.are.equal("/v1.0/users/" .. user .. "/employeeExperience/learningCourseActivities", seen)
  end)

  it("a page of contents: the provider id is kept while the path grows", function()
    local provider = "prov-" .. string.rep("0123456789", 300)
    local seq = emu.last_seq()
    gc.incremental(1, 1000)
    local page, err = c:contents_page(hostile { provider = provider })
    gc.incremental(200, 100)
    assert.is_nil(page)
    assert.is_not_nil(err)
    local seen
    for _, e in ipairs(emu.log(seq)) do
      if e.path:find("/learningContents", 1, true) then seen = e.path end
    end
    assert.are.equal("/v1.0/employeeExperience/learningProviders/" .. provider .. "/learningContents", seen)
  end)

  it("a $batch item: the op name is kept while the item is read", function()
    local seq = emu.last_seq()
    local item = hostile { op = "get", id = "00000000-0000-0000-0000-000000000000" }
    local res = assert(c:batch { item })
    assert.are.equal(1, #res)
    assert.is_false(res[1].ok)
    assert.are.equal(404, res[1].status)
    assert.is_truthy(#emu.log(seq) >= 1)
  end)
end)
