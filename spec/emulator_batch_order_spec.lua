-- Emulator: $batch step order.  Independent steps run and come back in a seeded random order
-- (settings.batch_seed makes it repeatable), dependsOn chains keep theirs, batch_order = "request"
-- keeps the request order.
local emu = require("support.emulator")
local http = require("support.http")

local P = emu.PROVIDER
local COLL = "/employeeExperience/learningProviders/" .. P .. "/learningCourseActivities"
local JSON = { ["Content-Type"] = "application/json" }

local function batch(requests)
  return emu.graph("POST", "/$batch", { json = { requests = requests } })
end

local function gets(n)
  local reqs = {}
  for i = 1, n do reqs[i] = { id = tostring(i), method = "GET", url = COLL .. "?$top=1" } end
  return reqs
end

-- ids of the answers, in answer order; ids of the steps in the log, in execution (seq) order
local function answer_ids(res)
  local t = {}
  for i, r in ipairs(res.json.responses) do t[i] = r.id end
  return t
end
local function executed_ids(since)
  local t = {}
  for _, e in ipairs(emu.log(since)) do
    if e.batch then t[#t + 1] = e.batch_item end
  end
  return t
end
local function position(list)
  local p = {}
  for i, v in ipairs(list) do p[v] = i end
  return p
end

describe("emulator $batch order", function()
  before_each(function() emu.reset() end)

  it("independent steps come back shuffled, in the order they ran; the same seed repeats the same orders", function()
    emu.settings{ batch_seed = 7 }
    local since = emu.last_seq()
    local r1 = batch(gets(20))
    local mid = emu.last_seq()
    local r2 = batch(gets(20))
    local o1, o2 = answer_ids(r1), answer_ids(r2)
    assert.equal(20, #o1)
    assert.are_not.same(answer_ids({ json = { responses = gets(20) } }), o1)   -- not the request order
    assert.are_not.same(o1, o2)                                                -- the stream moves on
    local ran = executed_ids(since)
    assert.equal(40, #ran)
    assert.same(o1, { (table.unpack or unpack)(ran, 1, 20) })                              -- answered in the order they ran
    local seen = {}
    for _, r in ipairs(r1.json.responses) do
      assert.equal(200, r.status)
      seen[r.id] = true
    end
    for i = 1, 20 do assert.is_true(seen[tostring(i)]) end
    assert.same(o2, executed_ids(mid))
    -- setting the seed again restarts the stream: the same two orders
    emu.settings{ batch_seed = 7 }
    assert.same(o1, answer_ids(batch(gets(20))))
    assert.same(o2, answer_ids(batch(gets(20))))
    -- a different seed gives other orders
    emu.settings{ batch_seed = 8 }
    assert.are_not.same(o1, answer_ids(batch(gets(20))))
  end)

  it("dependsOn chains keep their order, in execution and in the answers, whatever the seed", function()
    for seed = 1, 6 do
      emu.reset()
      emu.settings{ batch_seed = seed }
      local ext = "chain-" .. seed
      local key = COLL .. "(externalcourseActivityId='" .. ext .. "')"
      local reqs = gets(14)
      reqs[#reqs + 1] = { id = "c3", method = "GET", url = key, dependsOn = { "c2" } }
      reqs[#reqs + 1] = { id = "c1", method = "POST", url = COLL, headers = JSON, body = emu.assignment{ externalcourseActivityId = ext } }
      reqs[#reqs + 1] = { id = "c2", method = "PATCH", url = key, headers = JSON, body = { status = "completed" }, dependsOn = { "c1" } }
      reqs[#reqs + 1] = { id = "d2", method = "DELETE", url = key, dependsOn = { "c3", "d1" } }
      reqs[#reqs + 1] = { id = "d1", method = "GET", url = COLL .. "/$count" }
      local since = emu.last_seq()
      local res = batch(reqs)
      assert.equal(200, res.status, res.body)
      local ans, ran = position(answer_ids(res)), position(executed_ids(since))
      for _, p in ipairs({ ans, ran }) do
        assert.is_true(p.c1 < p.c2 and p.c2 < p.c3 and p.c3 < p.d2, "seed " .. seed)
        assert.is_true(p.d1 < p.d2, "seed " .. seed)
      end
      local by = {}
      for _, r in ipairs(res.json.responses) do by[r.id] = r end
      assert.equal(201, by.c1.status)
      assert.equal(204, by.c2.status)
      assert.equal("completed", by.c3.body.status)
      assert.equal(204, by.d2.status)
    end
  end)

  it("a step asleep on a delay fault does not hold its independent siblings", function()
    emu.fault{ path = "/%$count$", delay = 0.5, count = 1 }
    local since = emu.last_seq()
    local reqs = { { id = "slow", method = "GET", url = COLL .. "/$count" } }
    for i = 1, 5 do reqs[#reqs + 1] = { id = tostring(i), method = "GET", url = COLL .. "?$top=1" } end
    local res = emu.graph("POST", "/$batch", { json = { requests = reqs } })
    assert.equal(200, res.status)
    local slow, others = nil, {}
    for _, e in ipairs(emu.log(since)) do
      if e.batch_item == "slow" then slow = e elseif e.batch then others[#others + 1] = e end
    end
    assert.is_number(slow.fault)
    assert.equal(5, #others)
    for _, e in ipairs(others) do
      assert.is_true(e.time < slow.time + slow.duration, "step " .. e.batch_item .. " waited for the delayed one")
    end
  end)

  it("batch_order = request: one after another, dependencies first, answered in request order", function()
    emu.settings{ batch_order = "request", batch_seed = 7 }
    local since = emu.last_seq()
    local reqs = gets(10)
    reqs[11] = { id = "b", method = "GET", url = COLL .. "(externalcourseActivityId='ro-1')", dependsOn = { "a" } }
    reqs[12] = { id = "a", method = "POST", url = COLL, headers = JSON, body = emu.assignment{ externalcourseActivityId = "ro-1" } }
    local res = batch(reqs)
    local expected = answer_ids({ json = { responses = reqs } })
    assert.same(expected, answer_ids(res))
    local ran = executed_ids(since)
    assert.same({ "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "a", "b" }, ran)
    assert.equal(200, res.json.responses[11].status)
  end)

  it("rejects a bad batch_order or batch_seed, naming the setting", function()
    for _, bad in ipairs({ { batch_order = "random" }, { batch_order = 1 }, { batch_seed = 1.5 }, { batch_seed = "7" } }) do
      local r = http.post(emu.http .. "/_emulator/settings", { json = bad })
      assert.equal(400, r.status, r.body)
      assert.matches("batch_", r.json.error.message)
    end
  end)
end)
