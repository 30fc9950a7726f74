-- The model userdata: metamethods, methods, change tracking, garbage collection, re-opening.
local viva = require "vivalearning"
local cjson = require "cjson"

local function raises(fn, text)
  local ok, err = pcall(fn)
  assert.is_false(ok)
  assert.is_truthy(tostring(err):find(text, 1, true), tostring(err))
end

local function sample()
  return viva.assignment {
    id = "8ba2228a-e020-11ec-9d64-0242ac120003",
    learnerUserId = "7ba2228a-e020-11ec-9d64-0242ac120002",
    learningContentId = "57baf9dc-e020-11ec-9d64-0242ac120002",
    assignmentType = "required", status = "notStarted", completionPercentage = 20,
    completedDateTime = viva.null, externalCourseActivityId = "lms-42",
    dueDateTime = { dateTime = "2022-09-22T16:05:00.0000000", timeZone = "UTC" },
    notes = { contentType = "text", content = "required assignment added for user" },
  }
end

describe("model userdata", function()
  it("is a userdata with a named metatable per type", function()
    assert.are.equal("userdata", type(sample()))
    assert.are.equal("vivalearning.learningAssignment", getmetatable(sample()).__name)
    assert.are.equal("vivalearning.learningSelfInitiatedCourse", getmetatable(viva.self_initiated {}).__name)
    assert.are.equal("vivalearning.learningProvider", getmetatable(viva.provider {}).__name)
    assert.are.equal("vivalearning.learningContent", getmetatable(viva.content {}).__name)
    assert.are.equal("vivalearning.learningCourseActivity",
                     getmetatable(viva.decode('{"learnerUserId":"u"}')).__name)
  end)

  it("reads nil for unset fields and viva.null for explicit nulls", function()
    local a = sample()
    assert.is_nil(a.assignedDateTime)
    assert.are.equal(viva.null, a.completedDateTime)
    assert.are.equal(cjson.null, viva.null)
    assert.are.equal(20, a.completionPercentage)
    assert.are.equal("#microsoft.graph.learningAssignment", a["@odata.type"])
  end)

  it("gives copies of complex values: changing the copy does not change the model", function()
    local a = sample()
    local due = a.dueDateTime
    due.timeZone = "Pacific Standard Time"
    assert.are.equal("UTC", a.dueDateTime.timeZone)
    assert.is_nil(a:changes())
    a.dueDateTime = due
    assert.are.equal("Pacific Standard Time", a.dueDateTime.timeZone)
    local c = viva.content { skillTags = { "a" } }
    local tags = c.skillTags
    tags[2] = "b"
    assert.are.same({ "a" }, c.skillTags)
  end)

  it("__tostring is short: type and id", function()
    assert.are.equal("learningAssignment(8ba2228a-e020-11ec-9d64-0242ac120003)", tostring(sample()))
    assert.are.equal("learningAssignment(new)", tostring(viva.assignment {}))
    assert.are.equal("learningProvider(p)", tostring(viva.provider { id = "p" }))
    local long = tostring(viva.content { id = string.rep("x", 500) })
    assert.is_true(#long < 120)
    assert.is_truthy(long:find("...)", 1, true))
  end)

  it("__eq compares by value, per type", function()
    assert.is_true(sample() == sample())
    local b = sample()
    b.completionPercentage = 21
    assert.is_false(sample() == b)
    b.completionPercentage = 20
    assert.is_true(sample() == b)              -- change tracking does not take part
    assert.is_false(viva.self_initiated { id = "x" } == viva.assignment { id = "x" })
    assert.is_false(viva.provider {} == viva.content {})
    assert.is_true(viva.content { skillTags = { "a", "b" } } == viva.content { skillTags = { "a", "b" } })
    assert.is_false(viva.content { skillTags = { "a", "b" } } == viva.content { skillTags = { "b", "a" } })
    local x = viva.decode('{"title":"t","extra":{"k":[1,2]}}')
    local y = viva.decode('{"title":"t","extra":{"k":[1,2]}}')
    local z = viva.decode('{"title":"t","extra":{"k":[1,3]}}')
    assert.is_true(x == y)
    assert.is_false(x == z)
    assert.is_false(sample() == {})
  end)

  -- pairs() calls __pairs on 5.2+ only; m:pairs() is the same walk on every Lua.
  local HAS_PAIRS_MM = false
  for _ in pairs(setmetatable({}, { __pairs = function() HAS_PAIRS_MM = true; return function() end end })) do end

  local function walk(m, it)
    local keys, values = {}, {}
    for k, v in it(m) do
      keys[#keys + 1] = k
      values[k] = v
    end
    return keys, values
  end

  for _, how in ipairs { "__pairs", "m:pairs()" } do
    local iter = how == "__pairs" and pairs or function(m) return m:pairs() end
    local name = how .. " walks the set fields in schema order, then unknown properties"
    if how == "__pairs" and not HAS_PAIRS_MM then
      pending(name .. ": this Lua (" .. _VERSION .. (jit and ", LuaJIT" or "") .. ") has no __pairs; m:pairs() is the way")
    else
      it(name, function()
        local keys, values = walk(sample(), iter)
        assert.are.same({ "id", "completedDateTime", "completionPercentage", "externalCourseActivityId",
                          "learnerUserId", "learningContentId", "status", "assignmentType", "dueDateTime", "notes" },
                        keys)
        assert.are.equal(viva.null, values.completedDateTime)
        assert.are.same({ dateTime = "2022-09-22T16:05:00.0000000", timeZone = "UTC" }, values.dueDateTime)
        assert.are.same({}, (walk(viva.provider {}, iter)))
      end)
    end
  end

  it("m:pairs() is a method of every kind, and only of models", function()
    for _, kind in ipairs { "assignment", "self_initiated", "provider", "content" } do
      assert.is_function(viva[kind]({}).pairs)
    end
    local m = sample()
    assert.has_error(function() m.pairs({}) end)
  end)

  it(":totable() gives a plain table with Graph names (a copy)", function()
    local t = sample():totable()
    assert.is_nil(getmetatable(t))
    assert.are.equal("#microsoft.graph.learningAssignment", t["@odata.type"])
    assert.are.equal("lms-42", t.externalCourseActivityId)
    assert.are.equal(cjson.null, t.completedDateTime)
    assert.are.same({ contentType = "text", content = "required assignment added for user" }, t.notes)
    -- a plain table that constructs the same model
    t["@odata.type"] = nil
    assert.is_true(viva.assignment(t) == sample())
    assert.is_true(viva.decode(sample():totable()) == sample())
    assert.is_nil(viva.provider { displayName = "d" }:totable()["@odata.type"])
  end)

  it(":kind() names the type", function()
    assert.are.equal("assignment", sample():kind())
    assert.are.equal("self_initiated", viva.self_initiated {}:kind())
    assert.are.equal("provider", viva.provider {}:kind())
    assert.are.equal("content", viva.content {}:kind())
  end)

  it("methods check their receiver", function()
    local a = sample()
    raises(function() a.tojson({}) end, "vivalearning model expected")
    raises(function() a.changes(42) end, "vivalearning model expected")
  end)
end)

describe("model change tracking", function()
  it("starts clean after construction and after decode", function()
    assert.is_nil(sample():changes())
    assert.is_nil(viva.decode(sample():tojson()):changes())
  end)

  it("records assigned fields: the PATCH body, with @odata.type on derived types", function()
    local a = sample()
    a.status = "inProgress"
    a.completionPercentage = 50
    assert.are.same({ ["@odata.type"] = "#microsoft.graph.learningAssignment", status = "inProgress",
                      completionPercentage = 50 }, a:changes())
    a.dueDateTime = { dateTime = "2022-10-01T00:00:00", timeZone = "UTC" }
    assert.are.same({ dateTime = "2022-10-01T00:00:00", timeZone = "UTC" }, a:changes().dueDateTime)
    a.completedDateTime = "2022-09-30T10:00:00Z"
    a.notes = viva.null
    local c = a:changes()
    assert.are.equal("2022-09-30T10:00:00Z", c.completedDateTime)
    assert.are.equal(viva.null, c.notes)
  end)

  it("ignores assignments of the value already there", function()
    local a = sample()
    a.status = "notStarted"
    a.dueDateTime = { dateTime = "2022-09-22T16:05:00.0000000", timeZone = "UTC" }
    a.externalcourseActivityId = "lms-42"
    assert.is_nil(a:changes())
    local c = viva.content { skillTags = { "a" } }
    c.skillTags = { "a" }
    assert.is_nil(c:changes())
    c.skillTags = { "a", "b" }
    assert.are.same({ skillTags = { "a", "b" } }, c:changes())
  end)

  it(":clean() forgets changes and returns the model", function()
    local a = sample()
    a.status = "completed"
    assert.are.equal(a, a:clean())
    assert.is_nil(a:changes())
    a.completionPercentage = 100
    assert.are.same({ ["@odata.type"] = "#microsoft.graph.learningAssignment", completionPercentage = 100 },
                    a:changes())
  end)

  it("setting nil forgets the field and its change", function()
    local a = sample()
    a.status = "completed"
    a.status = nil
    assert.is_nil(a.status)
    assert.is_nil(a:changes())
  end)

  it("a rejected assignment records nothing", function()
    local p = viva.provider { displayName = "Contoso" }
    pcall(function() p.isCourseActivitySyncEnabled = "yes" end)
    assert.is_nil(p:changes())
    p.isCourseActivitySyncEnabled = true
    assert.are.same({ isCourseActivitySyncEnabled = true }, p:changes())
  end)
end)

describe("model memory and lifetime", function()
  it("models are garbage collected (weak-table probe)", function()
    local probe = setmetatable({}, { __mode = "v" })
    do
      for i = 1, 100 do
        local m = viva.decode(string.format(
          '{"@odata.type":"#microsoft.graph.learningAssignment","id":"%d","x":{"deep":[1,2,3]}}', i))
        probe[i] = m
        probe[100 + i] = viva.content { id = tostring(i), skillTags = { "a" } }
      end
      probe[201] = viva.decode('{"value":[{"id":"1","title":"t"}]}').value[1]
    end
    collectgarbage("collect")
    collectgarbage("collect")
    assert.is_nil(next(probe))
  end)

  it("a model kept alive keeps its values", function()
    local keep = {}
    for i = 1, 50 do keep[i] = viva.content { id = "c" .. i, skillTags = { "t" .. i } } end
    for _ = 1, 3 do collectgarbage("collect") end
    for i = 1, 50 do
      assert.are.equal("c" .. i, keep[i].id)
      assert.are.same({ "t" .. i }, keep[i].skillTags)
    end
  end)

  it("the module can be opened again: old and new models share their metatables", function()
    local old = sample()
    local core1 = package.loaded["vivalearning.core"]
    package.loaded["vivalearning.core"] = nil
    local core2 = require "vivalearning.core"
    assert.are_not.equal(core1, core2)
    local new = core2.assignment(old:totable())
    assert.are.equal(getmetatable(old), getmetatable(new))
    assert.is_true(old == new)
    assert.are.equal(old:tojson(), new:tojson())
    assert.are.equal(core1.null, core2.null)
    package.loaded["vivalearning.core"] = core1
  end)
end)
