-- Emulator: the latency setting (base ± jitter per Graph request, once per $batch round trip,
-- independent steps concurrent).  Durations are read from the request log, never from the spec's clock.
local emu = require("support.emulator")
local http = require("support.http")

local P = emu.PROVIDER
local COLL = "/employeeExperience/learningProviders/" .. P .. "/learningCourseActivities"
local JSON = { ["Content-Type"] = "application/json" }
local EPS = 1e-6

local function batch(requests, o)
  o = o or {}
  o.json = { requests = requests }
  return emu.graph("POST", "/$batch", o)
end

-- The log entries of one $batch: envelope, and its steps by item id.
local function batch_log(since)
  local env, steps = nil, {}
  for _, e in ipairs(emu.log(since)) do
    if e.path == "/v1.0/$batch" then env = e elseif e.batch then steps[e.batch_item] = e end
  end
  return env, steps
end

describe("emulator latency", function()
  before_each(function()
    emu.reset()
    emu.graph("GET", COLL)   -- fills the spec helper's token cache before any latency is set
  end)

  it("every Graph request answers after base (jitter 0), whatever its status; the token endpoint does not wait", function()
    emu.settings{ latency = { base = 0.3, jitter = 0 } }
    local since = emu.last_seq()
    assert.equal(200, emu.graph("GET", COLL).status)
    assert.equal(404, emu.graph("GET", COLL .. "/nope").status)
    assert.equal(401, emu.graph("GET", COLL, { token = false }).status)
    http.post(emu.http .. "/" .. emu.TENANT .. "/oauth2/v2.0/token", { form = {
      client_id = emu.APPS.importer.client_id, client_secret = emu.APPS.importer.client_secret,
      grant_type = "client_credentials", scope = emu.GRAPH_SCOPE } })
    local log = emu.log(since)
    assert.equal(4, #log)
    for i = 1, 3 do
      assert.equal(0.3, log[i].latency)
      assert.is_true(log[i].duration >= 0.3 - EPS, log[i].path .. " " .. log[i].duration)
    end
    assert.is_nil(log[4].latency)
    assert.matches("/oauth2/v2.0/token$", log[4].path)
    assert.is_true(log[4].duration < 0.3, "token endpoint " .. log[4].duration)
  end)

  it("jitter spreads durations over base ± jitter", function()
    emu.settings{ latency = { base = 0.1, jitter = 0.05 } }
    local since = emu.last_seq()
    for _ = 1, 8 do emu.graph("GET", COLL) end
    local seen = {}
    for _, e in ipairs(emu.log(since)) do
      assert.is_true(e.duration >= 0.05 - EPS, tostring(e.duration))
      seen[string.format("%.3f", e.duration)] = true
    end
    local distinct = 0
    for _ in pairs(seen) do distinct = distinct + 1 end
    assert.is_true(distinct > 1, "all 8 durations were equal")
  end)

  it("a $batch costs one round trip: its independent steps each wait base, concurrently", function()
    emu.settings{ latency = { base = 0.3, jitter = 0 } }
    local reqs = {}
    for i = 1, 10 do reqs[i] = { id = tostring(i), method = "GET", url = COLL } end
    local since = emu.last_seq()
    local res = batch(reqs)
    assert.equal(200, res.status, res.body)
    local env, steps = batch_log(since)
    local last_start, first_end = -math.huge, math.huge
    for i = 1, 10 do
      local s = steps[tostring(i)]
      assert.equal(200, s.status)
      assert.is_true(s.duration >= 0.3 - EPS)
      last_start = math.max(last_start, s.time)
      first_end = math.min(first_end, s.time + s.duration)
    end
    assert.is_true(last_start <= first_end + EPS, "steps did not overlap")   -- all ran at once
    assert.is_nil(env.latency)               -- the envelope adds no wait of its own
    assert.is_true(env.duration >= 0.3 - EPS)
    assert.is_true(env.duration < 3 * 0.3, "envelope took " .. env.duration .. " s for 10 steps")  -- not 10 × base
  end)

  it("dependsOn steps wait for their dependency: a chain adds up, one base per link", function()
    emu.settings{ latency = { base = 0.2, jitter = 0 } }
    local since = emu.last_seq()
    local res = batch({
      { id = "c", method = "GET", url = COLL .. "(externalcourseActivityId='lat-1')", dependsOn = { "b" } },
      { id = "a", method = "POST", url = COLL, headers = JSON, body = emu.assignment{ externalcourseActivityId = "lat-1" } },
      { id = "b", method = "PATCH", url = COLL .. "(externalcourseActivityId='lat-1')", headers = JSON,
        body = { status = "completed" }, dependsOn = { "a" } },
      { id = "x", method = "GET", url = COLL },
    })
    assert.equal(200, res.status)
    local env, steps = batch_log(since)
    assert.is_true(steps.b.time >= steps.a.time + steps.a.duration - EPS)
    assert.is_true(steps.c.time >= steps.b.time + steps.b.duration - EPS)
    assert.is_true(steps.x.time < steps.a.time + steps.a.duration)   -- the independent one did not wait
    assert.is_true(env.duration >= 3 * 0.2 - EPS)
    for _, r in ipairs(res.json.responses) do
      if r.id == "c" then assert.equal("completed", r.body.status) end
    end
  end)

  it("a $batch refused before any step runs still waits one latency", function()
    emu.settings{ latency = { base = 0.2, jitter = 0 } }
    local since = emu.last_seq()
    local r = emu.graph("POST", "/$batch", { json = { requests = {} } })
    assert.equal(400, r.status)
    local e = emu.log(since)[1]
    assert.equal(0.2, e.latency)
    assert.is_true(e.duration >= 0.2 - EPS)
  end)

  it("rejects bad latency settings, naming the field; null turns it off", function()
    for _, bad in ipairs({ { latency = 0.1 }, { latency = { base = -1 } }, { latency = { base = 0.1, jitter = "x" } },
                           { latency = { base = 0.1, spread = 1 } }, { latency = { base = 100 } } }) do
      local r = http.post(emu.http .. "/_emulator/settings", { json = bad })
      assert.equal(400, r.status, r.body)
      assert.matches("latency", r.json.error.message)
    end
    emu.settings{ latency = { base = 0.5 } }
    assert.same({ base = 0.5, jitter = 0 }, emu.get_settings().latency)
    emu.settings{ latency = require("cjson").null }
    assert.is_nil(emu.get_settings().latency)
  end)
end)

describe("emulator latency from a seed", function()
  before_each(function() emu.reset() end)
  it("a seed's latency is checked like the setting: a bad one is a 400 naming it, the old state stays", function()
    local seed = require("cjson").decode(http.read_file("emulator/seed.json"))
    seed.settings = seed.settings or {}
    seed.settings.latency = { base = "slow" }
    local r = http.post(emu.http .. "/_emulator/reset", { json = seed })
    assert.equal(400, r.status, r.body)
    assert.matches("latency.base", r.json.error.message, 1, true)
    assert.equal(200, emu.graph("GET", COLL).status)
    seed.settings.latency = { base = 0.25 }
    assert.equal(204, http.post(emu.http .. "/_emulator/reset", { json = seed }).status)
    assert.same({ base = 0.25, jitter = 0 }, emu.get_settings().latency)
    local since = emu.last_seq()
    emu.graph("GET", COLL)
    assert.equal(0.25, emu.log(since)[1].latency)
  end)
end)
