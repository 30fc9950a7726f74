-- Emulator: strict paths as Graph answers them (unknown segments, $batch step URLs) and activity ids
-- shaped like Graph's documented ones ({guid}:{guid}).
local emu = require("support.emulator")
local http = require("support.http")

local P = emu.PROVIDER
local COLL = "/employeeExperience/learningProviders/" .. P .. "/learningCourseActivities"
local JSON = { ["Content-Type"] = "application/json" }

local function batch(requests, o)
  o = o or {}
  o.json = { requests = requests }
  return emu.graph("POST", "/$batch", o)
end

local function by_id(res)
  local t = {}
  for _, r in ipairs(res.json.responses) do t[r.id] = r end
  return t
end

local function segment_400(r, seg, what)
  assert.equal(400, r.status, what)
  assert.equal("BadRequest", r.json.error.code, what)
  assert.equal("Resource not found for the segment '" .. seg .. "'.", r.json.error.message, what)
end

describe("emulator strict paths", function()
  before_each(function() emu.reset() end)

  it("an unknown path segment is 400 BadRequest naming the segment, in Graph's shape", function()
    local cases = {
      { "/nope", "nope" },
      { "/employeeExperience/nope", "nope" },
      { "/employeeExperience", "employeeExperience" },
      { "/me/nope", "nope" },
      { "/employeeExperience/learningProviders/" .. P .. "/y", "y" },
      { COLL .. "/some-id/extra", "extra" },
    }
    for _, c in ipairs(cases) do
      local r = emu.graph("GET", c[1])
      segment_400(r, c[2], c[1])
      assert.truthy(r.headers["request-id"], c[1])
      assert.truthy(r.json.error.innerError["request-id"], c[1])
    end
    segment_400(http.get(emu.http .. "/v2.0/whatever"), "v2.0", "/v2.0")
    -- an unknown entity id is still 404 notFound (the segment is known, the entity is not)
    local nf = emu.graph("GET", "/employeeExperience/learningCourseActivities/nope")
    assert.equal(404, nf.status)
    assert.equal("notFound", nf.json.error.code)
  end)

  it("a $batch step URL that keeps /v1.0 or /beta fails that step with the same 400", function()
    local res = batch({
      { id = "1", method = "GET", url = "/v1.0" .. COLL },
      { id = "2", method = "GET", url = "/beta" .. COLL },
      { id = "3", method = "GET", url = COLL },
    })
    assert.equal(200, res.status, res.body)
    local r = by_id(res)
    assert.equal(400, r["1"].status)
    assert.equal("BadRequest", r["1"].body.error.code)
    assert.equal("Resource not found for the segment 'v1.0'.", r["1"].body.error.message)
    assert.equal(400, r["2"].status)
    assert.equal("Resource not found for the segment 'beta'.", r["2"].body.error.message)
    assert.equal(200, r["3"].status)
  end)

  it("a $batch with an absolute step URL is a 400 for the whole batch, and no step runs", function()
    emu.graph("GET", COLL)   -- the spec helper's token is cached: the log below holds the batch only
    local since = emu.last_seq()
    local res = batch({
      { id = "1", method = "POST", url = COLL, headers = JSON, body = emu.assignment{ externalcourseActivityId = "abs-1" } },
      { id = "2", method = "GET", url = "https://graph.microsoft.com/v1.0" .. COLL },
    })
    assert.equal(400, res.status, res.body)
    assert.equal("BadRequest", res.json.error.code)
    assert.equal("Invalid batch payload format.", res.json.error.message)
    assert.equal(0, emu.creates(P, "abs-1"))
    assert.equal(1, #emu.log(since))   -- the envelope only
    local res2 = batch({ { id = "1", method = "GET", url = "http://localhost/v1.0" .. COLL } })
    assert.equal(400, res2.status)
    assert.equal("Invalid batch payload format.", res2.json.error.message)
  end)
end)

describe("emulator activity ids shaped like Graph's ({guid}:{guid})", function()
  before_each(function() emu.reset() end)

  local G = "%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x"

  it("a created activity's id is {learnerUserId}:{guid}; Location and @odata.context carry it", function()
    local r = emu.graph("POST", COLL, { json = emu.assignment{ externalcourseActivityId = "colon-1" } })
    assert.equal(201, r.status, r.body)
    local id = r.json.id
    assert.matches("^" .. G .. ":" .. G .. "$", id)
    assert.equal(emu.LEARNER, id:match("^([^:]+):"))
    assert.equal(emu.graph_url_http .. COLL .. "/" .. id, r.headers["location"])
    local again = emu.graph("POST", COLL, { json = emu.assignment{ externalcourseActivityId = "colon-2" } })
    assert.are_not.equal(id, again.json.id)
  end)

  it("every path that carries an activity id works with the ':' raw, percent-encoded and as a key literal", function()
    local body = emu.self_initiated{ externalcourseActivityId = "colon-3", learnerUserId = emu.ADELE.id }
    local id = emu.graph("POST", COLL, { json = body }).json.id
    local enc = id:gsub(":", "%%3A")
    for _, form in ipairs({ id, enc, "('" .. id .. "')", "(" .. id .. ")" }) do
      local sep = form:sub(1, 1) == "(" and "" or "/"
      local paths = {
        "/employeeExperience/learningCourseActivities" .. sep .. form,
        COLL .. sep .. form,
        "/users/" .. emu.ADELE.id .. "/employeeExperience/learningCourseActivities" .. sep .. form,
      }
      for _, p in ipairs(paths) do
        local g = emu.graph("GET", p)
        assert.equal(200, g.status, p .. " " .. g.body)
        assert.equal(id, g.json.id, p)
      end
      local me = emu.graph("GET", "/me/employeeExperience/learningCourseActivities" .. sep .. form, { app = "user" })
      assert.equal(200, me.status, me.body)
      assert.equal(id, me.json.id)
      assert.equal(204, emu.graph("PATCH", COLL .. sep .. form, { json = { completionPercentage = 10 } }).status, form)
    end
    -- $batch steps carry it too
    local res = batch({
      { id = "1", method = "GET", url = "/employeeExperience/learningCourseActivities/" .. id },
      { id = "2", method = "PATCH", url = COLL .. "/" .. enc, headers = JSON, body = { completionPercentage = 20 }, dependsOn = { "1" } },
      { id = "3", method = "DELETE", url = COLL .. "/" .. id, dependsOn = { "2" } },
    })
    local r = by_id(res)
    assert.equal(200, r["1"].status)
    assert.equal(id, r["1"].body.id)
    assert.equal(204, r["2"].status)
    assert.equal(204, r["3"].status)
    assert.equal(404, emu.graph("GET", COLL .. "/" .. id).status)
  end)

  it("activity_id_format = guid gives plain GUIDs; unknown formats are refused", function()
    emu.settings{ activity_id_format = "guid" }
    local id = emu.graph("POST", COLL, { json = emu.assignment() }).json.id
    assert.matches("^" .. G .. "$", id)
    local bad = http.post(emu.http .. "/_emulator/settings", { json = { activity_id_format = "colon" } })
    assert.equal(400, bad.status)
    assert.matches("activity_id_format", bad.json.error.message)
  end)
end)
