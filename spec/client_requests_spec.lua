-- Request bodies and response bodies at the edges: an update by id validates its changes table as
-- a model validates assigned fields (nothing invalid is ever sent), and a success answer without
-- the entity it should carry is a protocol error (graph-api.md §1.0: only 204s are empty).
local viva = require "vivalearning"
local emu = require "support.emulator"
local clients = require "support.client"

local assignment = clients.assignments("req")

local function requests(since, method, pattern)
  local out = {}
  for _, e in ipairs(emu.log(since)) do
    if e.method == method and (not pattern or e.path:find(pattern)) then out[#out + 1] = e end
  end
  return out
end

local T = "#microsoft.graph.learningAssignment"

describe("update by id with a changes table", function()
  local c, a
  before_each(function()
    emu.reset()
    c = clients.new("importer", { backoff = { base = 0.01, cap = 0.05 } })
    a = assignment()
    assert(c:create(emu.PROVIDER, a))
  end)
  after_each(function() c:close() end)

  local function rejected(changes, ...)
    local seq = emu.last_seq()
    local ok, err = c:update(emu.PROVIDER, a.id, changes)
    assert.is_nil(ok)
    assert.equals("validation", err.kind)
    for i = 1, select("#", ...) do
      local text = select(i, ...)
      assert.is_truthy(err.message:find(text, 1, true), err.message .. " lacks " .. text)
    end
    assert.equals(0, #requests(seq, "PATCH"))
    return err
  end

  it("rejects an enum value that is not a member, naming field and value; nothing is sent", function()
    rejected({ status = "bogus" }, "status", '"bogus"', "notStarted")
    rejected({ ["@odata.type"] = T, assignmentType = "mandatory" }, "assignmentType", '"mandatory"')
  end)

  it("rejects unknown fields", function()
    rejected({ foo = 1 }, "foo", "unknown field")
    rejected({ ["@odata.type"] = T, statsu = "completed" }, "statsu", "did you mean status?")
  end)

  it("rejects values out of range and of the wrong type", function()
    rejected({ completionPercentage = 101 }, "completionPercentage", "0..100", "101")
    rejected({ completionPercentage = "50" }, "completionPercentage", '"50"')
    rejected({ ["@odata.type"] = T, dueDateTime = { timeZone = "UTC" } }, "dueDateTime.dateTime")
    rejected({ completedDateTime = "2026-02-30T17:00:00Z" }, "completedDateTime")
  end)

  it("needs @odata.type for the fields of a derived type, and it must name an activity type", function()
    rejected({ assignmentType = "recommended" }, "assignmentType", "@odata.type")
    rejected({ ["@odata.type"] = "#microsoft.graph.learningContent", status = "completed" }, "@odata.type")
    rejected({ ["@odata.type"] = "#microsoft.graph.learningSelfInitiatedCourse", assignmentType = "required" },
             "assignmentType")
  end)

  it("sends nothing for an empty changes table, as for a model without changes", function()
    local seq = emu.last_seq()
    assert.is_true(c:update(emu.PROVIDER, a.id, {}))
    assert.is_true(c:update(emu.PROVIDER, a.id, { ["@odata.type"] = T }))
    assert.equals(0, #requests(seq, "PATCH"))
  end)

  it("sends the valid changes as a JSON object: with or without @odata.type, and viva.null", function()
    local seq = emu.last_seq()
    assert.is_true(c:update(emu.PROVIDER, a.id, { status = "inProgress", completionPercentage = 40 }))
    local g = assert(c:get(a.id))
    assert.equals("inProgress", g.status)
    assert.equals(40, g.completionPercentage)
    assert.is_true(c:update(emu.PROVIDER, a.id, {
      ["@odata.type"] = T, assignmentType = "required", externalcourseActivityId = a.externalCourseActivityId,
      notes = "remember", dueDateTime = viva.null, completedDateTime = "2026-03-01T10:00:00Z" }))
    g = assert(c:get(a.id))
    assert.equals("remember", g.notes.content)
    assert.equals(viva.null, g.dueDateTime)
    assert.equals("2026-03-01T10:00:00Z", g.completedDateTime)
    assert.equals(2, #requests(seq, "PATCH"))
  end)

  it("takes a model of the family as changes, and refuses one of another family", function()
    local m = viva.decode(a:tojson())
    m.status = "completed"
    assert.is_true(c:update(emu.PROVIDER, a.id, m))
    assert.equals("completed", assert(c:get(a.id)).status)
    assert.has_error(function() c:update(emu.PROVIDER, a.id, viva.content { title = "t" }) end)
  end)

  it("validates the changes of a $batch update item too", function()
    local seq = emu.last_seq()
    local res = assert(c:batch {
      { op = "update", provider = emu.PROVIDER, id = a.id, changes = { status = "bogus" } },
      { op = "update", provider = emu.PROVIDER, id = a.id, changes = { status = "completed" } },
    })
    assert.is_false(res[1].ok)
    assert.equals("validation", res[1].err.kind)
    assert.is_truthy(res[1].err.message:find("bogus", 1, true))
    assert.is_true(res[2].ok)
    local items = 0
    for _, e in ipairs(emu.log(seq)) do if e.method == "PATCH" then items = items + 1 end end
    assert.equals(1, items)
  end)

  it("update_provider validates its changes table the same way", function()
    local u = clients.user()
    local seq = emu.last_seq()
    local ok, err = u:update_provider(emu.PROVIDER, { isCourseActivitySyncEnabled = "yes" })
    assert.is_nil(ok)
    assert.equals("validation", err.kind)
    assert.is_truthy(err.message:find("isCourseActivitySyncEnabled", 1, true))
    ok, err = u:update_provider(emu.PROVIDER, { displayName = "" })
    assert.is_nil(ok)
    assert.equals("validation", err.kind)
    ok, err = u:update_provider(emu.PROVIDER, { colour = "red" })
    assert.is_nil(ok)
    assert.equals("validation", err.kind)
    assert.equals(0, #requests(seq, "PATCH"))
    u:close()
  end)
end)

describe("success answers without their entity", function()
  local c
  before_each(function()
    emu.reset()
    c = clients.new("importer", { backoff = { base = 0.01, cap = 0.05 } })
  end)
  after_each(function() c:close() end)

  local function protocol(err)
    assert.is_not_nil(err)
    assert.equals("protocol", err.kind)
    assert.equals(200, err.status)
  end

  it("get, get_by_external_id, get_for_user: an empty 200 is a protocol error", function()
    local a = assignment()
    assert(c:create(emu.PROVIDER, a))
    emu.fault { method = "GET", path = "learningCourseActivities", status = 200, body = "" }
    local g, err = c:get(a.id)
    assert.is_nil(g)
    protocol(err)
    g, err = c:get_by_external_id(emu.PROVIDER, a.externalCourseActivityId)
    assert.is_nil(g)
    protocol(err)
    g, err = c:get_for_user(emu.LEARNER, a.id)
    assert.is_nil(g)
    protocol(err)
  end)

  it("get_content and get_provider: an empty 200 is a protocol error", function()
    emu.fault { method = "GET", path = "learning[CP]", status = 200, body = "" }
    local g, err = c:get_content(emu.PROVIDER, emu.CONTENT)
    assert.is_nil(g)
    protocol(err)
    local u = clients.user()
    g, err = u:get_provider(emu.PROVIDER)
    u:close()
    assert.is_nil(g)
    protocol(err)
  end)

  it("create: an empty 201 is a protocol error and the caller's model gets no id", function()
    local a = assignment()
    emu.fault { method = "POST", path = "learningCourseActivities$", status = 201, body = "", count = 1 }
    local act, err = c:create(emu.PROVIDER, a)
    assert.is_nil(act)
    assert.equals("protocol", err.kind)
    assert.equals(201, err.status)
    assert.is_nil(a.id)
  end)

  it("upsert_content: an empty 202 is a protocol error, a 204 gives back the model sent", function()
    local m = viva.content {
      externalId = "CA-01", title = "t", contentWebUrl = "https://example.com/c", languageTag = "en-us" }
    emu.fault { method = "PATCH", path = "learningContents", status = 202, body = "", count = 1 }
    local r, err = c:upsert_content(emu.PROVIDER, m)
    assert.is_nil(r)
    assert.equals("protocol", err.kind)
    emu.fault { method = "PATCH", path = "learningContents", status = 204, body = "", count = 1 }
    r, err = c:upsert_content(emu.PROVIDER, m)
    assert.is_nil(err)
    assert.equals(m, r)
  end)

  it("update and delete: an empty 200 or 204 is success, as documented", function()
    local a = assignment()
    assert(c:create(emu.PROVIDER, a))
    emu.fault { method = "PATCH", path = "learningCourseActivities", status = 200, body = "", count = 1 }
    a.status = "inProgress"
    assert.is_true(c:update(emu.PROVIDER, a))
    assert.is_true(c:delete(emu.PROVIDER, a.id))
  end)

  it("a $batch item answered 200 without a body is a protocol error", function()
    local a = assignment()
    assert(c:create(emu.PROVIDER, a))
    emu.fault { method = "GET", path = "learningCourseActivities/", status = 200, body = "", count = 1 }
    local res = assert(c:batch { { op = "get", id = a.id }, { op = "get", id = a.id } })
    -- independent steps run in any order: the fault hits whichever ran first
    local bad, good = res[1], res[2]
    if bad.ok then bad, good = good, bad end
    assert.is_false(bad.ok)
    assert.equals("protocol", bad.err.kind)
    assert.is_true(good.ok)
    assert.equals(a.id, good.value.id)
    local m = viva.content {
      externalId = "CA-02", title = "t", contentWebUrl = "https://example.com/c", languageTag = "en-us" }
    emu.fault { method = "PATCH", path = "learningContents", status = 204, body = "", count = 1 }
    emu.fault { method = "PATCH", path = "learningContents", status = 202, body = "", count = 1 }
    res = assert(c:batch { { op = "upsert_content", provider = emu.PROVIDER, model = m },
                           { op = "upsert_content", provider = emu.PROVIDER, model = m } })
    -- the 204 goes to whichever step ran first, the empty 202 to the other
    good, bad = res[1], res[2]
    if not good.ok then good, bad = bad, good end
    assert.is_true(good.ok)
    assert.equals(m, good.value)
    assert.is_false(bad.ok)
    assert.equals("protocol", bad.err.kind)
  end)
end)
