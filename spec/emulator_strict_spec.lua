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
