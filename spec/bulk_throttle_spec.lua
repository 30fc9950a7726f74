-- Bulk import under the emulator's rate limit and fault rules: every row ends created exactly
-- once (emulator counters), nothing lost, one outcome per row in the results file.
local viva = require "vivalearning"
local sample = require "vivalearning.sample"
local results = require "vivalearning.results"
local emu = require "support.emulator"

local PROVIDER = emu.PROVIDER
local ITEM_PATH = "/v1.0/employeeExperience/learningProviders/.*/learningCourseActivities$"

local client = require("support.lualayer").client
local json_null = require("cjson").null

-- every row of the file created exactly once, one outcome line per row, all "created"
local function check_exactly_once(n, prefix, res, s)
  assert.equal(n, s.read)
  assert.equal(n, s.created)
  assert.equal(0, s.failed)
  local creates = emu.counters().creates[PROVIDER] or {}
  for i = 1, n do
    local ext = ("%s%06d"):format(prefix, i)
    assert.equal(1, creates[ext] or 0, ext .. " created " .. tostring(creates[ext] or 0) .. " times")
  end
  local seen, lines = {}, 0
  for r in results.read(res) do
    lines = lines + 1
    assert.is_nil(seen[r.row])
    seen[r.row] = true
    assert.equal("created", r.outcome)
    assert.truthy(r.id)
  end
  assert.equal(n, lines)
end

describe("bulk import under throttling and faults", function()
  local c
  setup(function() c = client() end)
  before_each(function() emu.reset() end)
  after_each(function() emu.clear_faults(); emu.clear_rate_limit() end)

  it("backs off under the rate limit and still creates every row exactly once", function()
    local src, res = os.tmpname() .. ".csv", os.tmpname() .. ".csv"
    sample.write(src, 400, { prefix = "rl-" })
    emu.rate_limit({ per_second = 300, burst = 40 })
    local s = assert(viva.bulk.import(c, src, { provider = PROVIDER, results = res, concurrency = 8 }))
    assert.is_true((s.throttled or 0) > 0, "the rate limit never bit")
    check_exactly_once(400, "rl-", res, s)
    -- the emulator really answered 429s
    local n429 = 0
    for _, e in ipairs(emu.log()) do if e.status == 429 then n429 = n429 + 1 end end
    assert.is_true(n429 > 0)
    os.remove(src); os.remove(res)
  end)

  it("paces a default import below the throttling profile: few 429s at a real round-trip time", function()
    -- 200 steps/s per app, burst 20, 50 ms per request: a fixed window of even one $batch of 20
    -- (400 steps/s) would see every other step refused
    local src, res = os.tmpname() .. ".csv", os.tmpname() .. ".csv"
    sample.write(src, 1200, { prefix = "pace-" })
    emu.settings({ latency = { base = 0.05, jitter = 0 }, throttle = { app = { per_second = 200, burst = 20 } } })
    local since = emu.last_seq()
    local s = assert(viva.bulk.import(c, src, { provider = PROVIDER, results = res }))
    emu.settings({ latency = json_null, throttle = json_null })
    check_exactly_once(1200, "pace-", res, s)
    local steps, n429 = 0, 0
    for _, e in ipairs(emu.log(since)) do
      if e.method == "POST" and e.path:match(ITEM_PATH) then
        steps = steps + 1
        if e.status == 429 then n429 = n429 + 1 end
      end
    end
    assert.is_true(n429 > 0, "the throttle never bit")
    -- about 7% here, most of it the first round trip (4 requests of 20 before any RTT is known,
    -- against a burst of 20); a fixed window refuses about 40%
    assert.is_true(n429 / steps <= 0.15, ("%d of %d steps answered 429"):format(n429, steps))
    os.remove(src); os.remove(res)
  end)

  it("a $batch item answered 429 goes out again inside a $batch, after its Retry-After", function()
    local src, res = os.tmpname() .. ".csv", os.tmpname() .. ".csv"
    sample.write(src, 200, { prefix = "rb-" })
    emu.fault({ method = "POST", path = ITEM_PATH, status = 429, retry_after = "0.3", count = 15 })
    local since = emu.last_seq()
    local s = assert(viva.bulk.import(c, src, { provider = PROVIDER, results = res }))
    check_exactly_once(200, "rb-", res, s)
    local direct, n429 = 0, 0
    for _, e in ipairs(emu.log(since)) do
      if e.method == "POST" and e.path:match(ITEM_PATH) then
        if not e.batch_item then direct = direct + 1 end
        if e.status == 429 then n429 = n429 + 1 end
      end
    end
    assert.equal(15, n429)
    -- a 429 was not processed: alone it would take a whole request of the window for one row
    assert.equal(0, direct)
    os.remove(src); os.remove(res)
  end)

  it("retries throttled $batch items after their Retry-After (503s alone: they may have been applied)", function()
    local src, res = os.tmpname() .. ".csv", os.tmpname() .. ".csv"
    sample.write(src, 200, { prefix = "th-" })
    emu.fault({ method = "POST", path = ITEM_PATH, status = 429, retry_after = "0.3", share = 0.25 })
    emu.fault({ method = "POST", path = ITEM_PATH, status = 503, retry_after = 0.2, share = 0.1 })
    local since = emu.last_seq()
    local s = assert(viva.bulk.import(c, src, { provider = PROVIDER, results = res }))
    check_exactly_once(200, "th-", res, s)
    -- retried items came alone (direct POSTs, not inside a $batch)
    local direct = 0
    for _, e in ipairs(emu.log(since)) do
      if e.method == "POST" and e.path:match(ITEM_PATH) and not e.batch_item then direct = direct + 1 end
    end
    assert.is_true(direct > 0)
    os.remove(src); os.remove(res)
  end)

  it("reconciles ambiguous failures (processed, then 500 or a dropped connection) without duplicates", function()
    local src, res = os.tmpname() .. ".csv", os.tmpname() .. ".csv"
    sample.write(src, 200, { prefix = "amb-" })
    emu.fault({ method = "POST", path = ITEM_PATH, status = 500, after = true, share = 0.15 })
    local s = assert(viva.bulk.import(c, src, { provider = PROVIDER, results = res }))
    check_exactly_once(200, "amb-", res, s)
    assert.equal(0, emu.counters().conflicts)
    -- single requests: the connection drops after the create was committed
    emu.reset()
    emu.fault({ method = "POST", path = ITEM_PATH, drop = true, after = true, share = 0.1 })
    local s2 = assert(viva.bulk.import(c, src, { provider = PROVIDER, results = res, batch = 1 }))
    check_exactly_once(200, "amb-", res, s2)
    os.remove(src); os.remove(res)
  end)

  it("handles Graph's other answer to a throttled item: a 424 envelope (F6)", function()
    local src, res = os.tmpname() .. ".csv", os.tmpname() .. ".csv"
    sample.write(src, 200, { prefix = "e424-" })
    emu.settings({ batch_throttled_status = 424 })
    emu.fault({ method = "POST", path = ITEM_PATH, status = 429, retry_after = "0.2", share = 0.2 })
    local s = assert(viva.bulk.import(c, src, { provider = PROVIDER, results = res }))
    check_exactly_once(200, "e424-", res, s)
    assert.equal(0, emu.counters().conflicts)
    os.remove(src); os.remove(res)
  end)

  it("upserts through ambiguous create failures: new rows end created, exactly once", function()
    local v1, v2, res = os.tmpname() .. ".csv", os.tmpname() .. ".csv", os.tmpname() .. ".csv"
    sample.write(v1, 100, { prefix = "uamb-" })
    assert.equal(100, assert(viva.bulk.import(c, v1, { provider = PROVIDER })).created)
    sample.write(v2, 200, { prefix = "uamb-" })
    emu.fault({ method = "POST", path = ITEM_PATH, status = 500, after = true, share = 0.3 })
    local s = assert(viva.bulk.import(c, v2, { provider = PROVIDER, mode = "upsert", results = res }))
    assert.equal(200, s.read)
    assert.equal(100, s.created)
    assert.equal(100, s.unchanged)
    local creates = emu.counters().creates[PROVIDER] or {}
    for i = 1, 200 do assert.equal(1, creates[("uamb-%06d"):format(i)], i) end
    for r in results.read(res) do
      assert.equal(r.row > 100 and "created" or "unchanged", r.outcome, "row " .. r.row)
    end
    os.remove(v1); os.remove(v2); os.remove(res)
  end)

  it("goes on when every token expires mid-import (the client refreshes it)", function()
    local src, res = os.tmpname() .. ".csv", os.tmpname() .. ".csv"
    sample.write(src, 300, { prefix = "tok-" })
    local expired, seen = false, 0
    local s = assert(viva.bulk.import(c, src, { provider = PROVIDER, results = res, batch = 10,
      on_outcome = function()
        seen = seen + 1
        if not expired and seen >= 100 then expired = true; emu.expire_tokens() end
      end }))
    assert.is_true(expired)
    check_exactly_once(300, "tok-", res, s)
    local n401 = 0
    for _, e in ipairs(emu.log()) do if e.status == 401 then n401 = n401 + 1 end end
    assert.is_true(n401 > 0, "no request met the expired token")
    os.remove(src); os.remove(res)
  end)

  it("retries a throttled or failed $batch envelope", function()
    local src, res = os.tmpname() .. ".csv", os.tmpname() .. ".csv"
    sample.write(src, 120, { prefix = "env-" })
    emu.fault({ method = "POST", path = "/v1.0/%$batch", status = 429, retry_after = "0.2", count = 3 })
    emu.fault({ method = "POST", path = "/v1.0/%$batch", status = 503, count = 2 })
    local s = assert(viva.bulk.import(c, src, { provider = PROVIDER, results = res }))
    check_exactly_once(120, "env-", res, s)
    os.remove(src); os.remove(res)
  end)

  it("fails rows (not the import) when the service keeps refusing them", function()
    local src, res = os.tmpname() .. ".csv", os.tmpname() .. ".csv"
    sample.write(src, 30, { prefix = "hard-" })
    emu.fault({ method = "POST", path = ITEM_PATH, status = 503, retry_after = 0 })
    local s = assert(viva.bulk.import(c, src, { provider = PROVIDER, results = res, max_attempts = 2 }))
    assert.equal(30, s.read)
    assert.equal(30, s.failed)
    local lines = 0
    for r in results.read(res) do
      lines = lines + 1
      assert.equal("failed", r.outcome)
      assert.equal(503, r.status)
    end
    assert.equal(30, lines)
    os.remove(src); os.remove(res)
  end)
end)
