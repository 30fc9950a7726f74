-- Emulator: JSON batching (POST /v1.0/$batch).
local emu = require("support.emulator")

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

describe("emulator $batch", function()
  before_each(function() emu.reset() end)

  it("runs creates, gets and deletes; per-item id/status/headers/body", function()
    local a = emu.graph("POST", COLL, { json = emu.assignment{ externalcourseActivityId = "b-0" } }).json
    local res = batch({
      { id = "1", method = "POST", url = COLL, headers = JSON, body = emu.assignment{ externalcourseActivityId = "b-1" } },
      { id = "2", method = "GET", url = "/employeeExperience/learningCourseActivities/" .. a.id },
      { id = "3", method = "PATCH", url = COLL .. "/" .. a.id, headers = JSON, body = { status = "completed" } },
      { id = "4", method = "GET", url = "employeeExperience/learningCourseActivities/nope" },
      { id = "5", method = "DELETE", url = COLL .. "(externalcourseActivityId='b-0')", dependsOn = { "2", "3" } },
    })
    assert.equal(200, res.status, res.body)
    local r = by_id(res)
    assert.equal(201, r["1"].status)
    assert.equal("b-1", r["1"].body.externalcourseActivityId)
    assert.matches("application/json", r["1"].headers["Content-Type"])
    assert.truthy(r["1"].headers["request-id"])
    assert.equal(200, r["2"].status)
    assert.equal(a.id, r["2"].body.id)
    assert.equal(204, r["3"].status)
    assert.is_nil(r["3"].body)
    assert.equal(404, r["4"].status)
    assert.equal("notFound", r["4"].body.error.code)
    assert.equal(204, r["5"].status)
    assert.equal(1, emu.creates(P, "b-1"))
  end)

  it("answers 424 for a request whose dependency failed (and transitively)", function()
    local res = batch({
      { id = "a", method = "POST", url = COLL, headers = JSON, body = emu.assignment{ learnerUserId = emu.UNLICENSED } },
      { id = "b", method = "POST", url = COLL, headers = JSON, body = emu.assignment(), dependsOn = { "a" } },
      { id = "c", method = "GET", url = COLL, dependsOn = { "b" } },
    })
    assert.equal(200, res.status)
    local r = by_id(res)
    assert.equal(403, r.a.status)
    assert.equal(424, r.b.status)
    assert.equal(424, r.c.status)
    assert.equal(0, emu.creates(P, "(none)"))
  end)

  it("runs dependencies first even when listed later", function()
    emu.settings{ batch_order = "request" }   -- the default answers in a shuffled order (emulator_batch_order_spec)
    local res = batch({
      { id = "2", method = "GET", url = COLL .. "(externalcourseActivityId='dep-1')", dependsOn = { "1" } },
      { id = "1", method = "POST", url = COLL, headers = JSON, body = emu.assignment{ externalcourseActivityId = "dep-1" } },
    })
    local r = by_id(res)
    assert.equal(201, r["1"].status)
    assert.equal(200, r["2"].status)
    assert.equal("2", res.json.responses[1].id)  -- response order follows the request order
  end)

  it("each item is authorized on its own", function()
    local res = batch({
      { id = "1", method = "POST", url = COLL, headers = JSON, body = emu.self_initiated() },
      { id = "2", method = "POST", url = COLL, headers = JSON, body = emu.assignment() },
    }, { app = "assigned" })
    local r = by_id(res)
    assert.equal(403, r["1"].status)
    assert.equal(201, r["2"].status)
    local nores = batch({ { id = "1", method = "GET", url = COLL } }, { token = false })
    assert.equal(200, nores.status)
    assert.equal(401, by_id(nores)["1"].status)
  end)

  it("accepts a base64 body", function()
    local json = require("cjson").encode(emu.assignment{ externalcourseActivityId = "b64-1" })
    local _, b64 = require("support.http").run("printf '%s' '" .. json .. "' | base64 -w0")
    local res = batch({ { id = "1", method = "POST", url = COLL, headers = JSON, body = b64 } })
    assert.equal(201, by_id(res)["1"].status)
    assert.equal(1, emu.creates(P, "b64-1"))
  end)

  it("an item with a body but no Content-Type fails alone (400)", function()
    local res = batch({ { id = "1", method = "POST", url = COLL, body = emu.assignment() } })
    assert.equal(400, by_id(res)["1"].status)
  end)

  describe("malformed envelopes answer 400", function()
    local function is_400(res) assert.equal(400, res.status, res.body); assert.equal("BadRequest", res.json.error.code) end
    it("more than 20 requests", function()
      local reqs = {}
      for i = 1, 21 do reqs[i] = { id = tostring(i), method = "GET", url = COLL } end
      is_400(batch(reqs))
      reqs[21] = nil
      assert.equal(200, batch(reqs).status)
    end)
    it("duplicate ids (case-insensitive)", function()
      is_400(batch({ { id = "x", method = "GET", url = COLL }, { id = "X", method = "GET", url = COLL } }))
    end)
    it("missing id, method or url; unknown method; unknown dependsOn; a cycle; no requests", function()
      is_400(batch({ { method = "GET", url = COLL } }))
      is_400(batch({ { id = "1", url = COLL } }))
      is_400(batch({ { id = "1", method = "GET" } }))
      is_400(batch({ { id = "1", method = "BREW", url = COLL } }))
      is_400(batch({ { id = "1", method = "GET", url = COLL, dependsOn = { "9" } } }))
      is_400(batch({ { id = "1", method = "GET", url = COLL, dependsOn = { "2" } }, { id = "2", method = "GET", url = COLL, dependsOn = { "1" } } }))
      is_400(emu.graph("POST", "/$batch", { json = { requests = {} } }))
      is_400(emu.graph("POST", "/$batch", { json = { foo = 1 } }))
      is_400(emu.graph("POST", "/$batch", { body = "{not json", headers = JSON }))
    end)
    it("an absolute url fails the whole batch", function()
      is_400(batch({ { id = "1", method = "GET", url = "https://graph.microsoft.com/v1.0" .. COLL } }))
    end)
    it("GET on $batch is 405", function()
      assert.equal(405, emu.graph("GET", "/$batch").status)
    end)
  end)

  it("items pass through faults and the rate limit: a throttled item is 429 with retry-after, envelope 200", function()
    emu.fault{ method = "POST", path = "/learningCourseActivities$", status = 429, retry_after = "3", count = 1 }
    local res = batch({
      { id = "1", method = "POST", url = COLL, headers = JSON, body = emu.assignment{ externalcourseActivityId = "t-1" } },
      { id = "2", method = "POST", url = COLL, headers = JSON, body = emu.assignment{ externalcourseActivityId = "t-2" } },
    })
    assert.equal(200, res.status)
    local r = by_id(res)
    -- the steps run in any order: the first one to run meets the fault
    local throttled, created = "1", "2"
    if r["2"].status == 429 then throttled, created = "2", "1" end
    assert.equal(429, r[throttled].status)
    assert.equal("3", r[throttled].headers["Retry-After"])
    assert.equal(201, r[created].status)
    assert.equal(0, emu.creates(P, "t-" .. throttled))
    assert.equal(1, emu.creates(P, "t-" .. created))
    -- settings can make the envelope 424 instead (graph-api.md §6 #22)
    emu.settings{ batch_throttled_status = 424 }
    emu.fault{ path = "/learningCourseActivities$", status = 429, retry_after = "1", count = 1 }
    assert.equal(424, batch({ { id = "1", method = "GET", url = COLL } }).status)
  end)

  it("the rate limit counts items one by one", function()
    emu.rate_limit{ per_second = 0.001, burst = 2 }
    local reqs = {}
    for i = 1, 4 do reqs[i] = { id = tostring(i), method = "GET", url = COLL } end
    local n = {}
    for _, r in ipairs(batch(reqs).json.responses) do
      n[r.status] = (n[r.status] or 0) + 1
      if r.status == 429 then assert.truthy(tonumber(r.headers["Retry-After"]) >= 1) end
    end
    assert.equal(2, n[200])
    assert.equal(2, n[429])
  end)

  it("items are logged with the envelope's seq", function()
    local since = emu.last_seq()
    batch({ { id = "1", method = "GET", url = COLL }, { id = "2", method = "GET", url = COLL } })
    local log = emu.log(since)
    assert.equal(3, #log)
    assert.equal("/v1.0/$batch", log[1].path)
    local items = {}
    for i = 2, 3 do
      assert.equal(log[1].seq, log[i].batch)
      assert.equal("/v1.0" .. COLL, log[i].path)
      items[log[i].batch_item] = true
    end
    assert.same({ ["1"] = true, ["2"] = true }, items)
  end)
end)
