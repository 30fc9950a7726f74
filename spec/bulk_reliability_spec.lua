-- Bulk import against the real emulator: an upsert whose create meets a 409 (the row exists
-- after all), Retry-After beyond max_wait, and the import's deadline.
local viva = require "vivalearning"
local sample = require "vivalearning.sample"
local results = require "vivalearning.results"
local emu = require "support.emulator"
local support = require "support.lualayer"

local PROVIDER = emu.PROVIDER
local ITEM_PATH = "/v1.0/employeeExperience/learningProviders/.*/learningCourseActivities$"

local function tmp(ext) local p = os.tmpname(); os.remove(p); return p .. ext end
local function creates(ext) return (emu.counters().creates[PROVIDER] or {})[ext] or 0 end

local function outcomes(path)
  local byrow, n = {}, 0
  for r in results.read(path) do
    n = n + 1
    assert.is_nil(byrow[r.row], "row " .. tostring(r.row) .. " has two outcomes")
    byrow[r.row] = r
  end
  return byrow, n
end

describe("bulk import reliability", function()
  local c
  setup(function() c = support.client() end)
  before_each(function() emu.reset() end)
  after_each(function() emu.clear_faults() end)

  -- issue 5
  for _, batch in ipairs { 20, 1 } do
    it("upsert: a 409 on create is reconciled by a lookup, then updated or unchanged (batch " .. batch .. ")", function()
      local v1, v2, res = tmp(".csv"), tmp(".csv"), tmp(".csv")
      sample.write(v1, 6, { prefix = "u409-" })
      assert.equal(6, assert(viva.bulk.import(c, v1, { provider = PROVIDER })).created)
      sample.write(v2, 6, { prefix = "u409-", changed = function(i) return i % 2 == 0 end })
      -- the lookups do not see the rows (as if created a moment later by someone else)
      emu.fault({ method = "GET", path = "u409%-00000[1-6]", status = 404, count = 6 })
      local s = assert(viva.bulk.import(c, v2, { provider = PROVIDER, mode = "upsert", results = res, batch = batch }))
      assert.equal(6, s.read)
      assert.equal(0, s.failed)
      assert.equal(3, s.updated)
      assert.equal(3, s.unchanged)
      assert.equal(6, emu.counters().conflicts, "the creates did meet a 409")
      -- two POSTs per row: the first import's, and the one refused with 409; nothing more
      for i = 1, 6 do assert.equal(2, creates(("u409-%06d"):format(i)), i) end
      local byrow = outcomes(res)
      for i = 1, 6 do
        assert.equal(i % 2 == 0 and "updated" or "unchanged", byrow[i].outcome, i)
        assert.truthy(byrow[i].id)
      end
      local a = assert(c:get_by_external_id(PROVIDER, "u409-000002"))
      assert.equal("completed", a.status)
      os.remove(v1); os.remove(v2); os.remove(res)
    end)
  end

  it("upsert: a 409 that the lookup still cannot explain fails with the 409", function()
    local v1, res = tmp(".csv"), tmp(".csv")
    sample.write(v1, 2, { prefix = "u409b-" })
    assert(viva.bulk.import(c, v1, { provider = PROVIDER }))
    emu.fault({ method = "GET", path = "u409b%-00000[12]", status = 404 })
    local s = assert(viva.bulk.import(c, v1, { provider = PROVIDER, mode = "upsert", results = res }))
    assert.equal(2, s.failed)
    for _, r in pairs(outcomes(res)) do assert.equal(409, r.status) end
    os.remove(v1); os.remove(res)
  end)

  -- issue 18
  for _, batch in ipairs { 20, 1 } do
    it("fails a row as throttled when its Retry-After exceeds max_wait (batch " .. batch .. ")", function()
      local src, res = tmp(".csv"), tmp(".csv")
      sample.write(src, 5, { prefix = "mw" .. batch .. "-" })
      emu.fault({ method = "POST", path = ITEM_PATH, status = 429, retry_after = 3600 })
      local s = assert(viva.bulk.import(c, src, { provider = PROVIDER, results = res, max_wait = 2, batch = batch }))
      assert.equal(5, s.read)
      assert.equal(5, s.failed)
      local byrow, n = outcomes(res)
      assert.equal(5, n)
      for i = 1, 5 do
        assert.equal("failed", byrow[i].outcome)
        assert.equal("throttled", byrow[i].code)
        assert.equal(429, byrow[i].status)
        assert.equal(3600, byrow[i].retry_after)
      end
      os.remove(src); os.remove(res)
    end)
  end

  it("rejects a bad max_wait or deadline, naming the option", function()
    assert.has_error(function() viva.bulk.import(c, {}, { provider = PROVIDER, max_wait = -1 }) end,
      "import: max_wait must be a number of seconds >= 0, got -1")
    assert.has_error(function() viva.bulk.import(c, {}, { provider = PROVIDER, deadline = "soon" }) end,
      "import: deadline must be a number of seconds > 0, got soon")
  end)

  it("stops at the deadline: rows not done are reported, and a re-run with the journal does them", function()
    local src, res, jr = tmp(".csv"), tmp(".csv"), tmp(".journal")
    sample.write(src, 30, { prefix = "dl-" })
    -- every create is throttled for an hour: the rows wait (max_wait allows it) until the deadline
    emu.fault({ method = "POST", path = ITEM_PATH, status = 429, retry_after = 3600 })
    local s = assert(viva.bulk.import(c, src, { provider = PROVIDER, results = res, journal = jr,
      max_wait = 7200, deadline = 1, batch = 5, concurrency = 1 }))
    assert.is_true(s.deadline_reached)
    assert.equal(30, s.read)
    assert.equal(30, s.not_attempted)
    local byrow, n = outcomes(res)
    assert.equal(30, n)
    for i = 1, 30 do
      assert.equal("failed", byrow[i].outcome)
      assert.equal("deadline", byrow[i].code)
    end
    emu.clear_faults()
    s = assert(viva.bulk.import(c, src, { provider = PROVIDER, results = res, journal = jr }))
    assert.equal(30, s.read)
    assert.equal(30, s.created)
    for i = 1, 30 do assert.equal(1, creates(("dl-%06d"):format(i)), i) end
    os.remove(src); os.remove(res); os.remove(jr)
  end)

  it("stops sending at the deadline: the request in flight completes, the rest are not sent", function()
    local src, res, jr = tmp(".csv"), tmp(".csv"), tmp(".journal")
    sample.write(src, 30, { prefix = "dl2-" })
    -- one request at a time, each answered after longer than the deadline: the first $batch
    -- is the only one sent
    emu.fault({ method = "POST", path = "/v1.0/%$batch", delay = 1.5 })
    local s = assert(viva.bulk.import(c, src, { provider = PROVIDER, results = res, journal = jr,
      deadline = 1, batch = 5, concurrency = 1 }))
    assert.is_true(s.deadline_reached)
    assert.equal(30, s.read)
    assert.equal(5, s.created)
    assert.equal(25, s.not_attempted)
    assert.equal(25, s.failed)
    local byrow, n = outcomes(res)
    assert.equal(30, n)
    for i = 6, 30 do assert.equal("deadline", byrow[i].code, i) end
    for i = 6, 30 do assert.equal(0, creates(("dl2-%06d"):format(i)), i) end
    emu.clear_faults()
    s = assert(viva.bulk.import(c, src, { provider = PROVIDER, results = res, journal = jr }))
    assert.equal(30, s.read)
    assert.equal(5, s.resumed)
    assert.equal(30, s.created)
    for i = 1, 30 do assert.equal(1, creates(("dl2-%06d"):format(i)), i) end
    os.remove(src); os.remove(res); os.remove(jr)
  end)
end)
