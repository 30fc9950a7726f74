-- Emulator: the throttling profile (per-app and per-tenant token buckets, each $batch step one
-- request, 429 + Retry-After in whole seconds for the request or the step).
local emu = require("support.emulator")
local http = require("support.http")
local cjson = require("cjson")

local P = emu.PROVIDER
local COLL = "/employeeExperience/learningProviders/" .. P .. "/learningCourseActivities"

local function get(app) return emu.graph("GET", COLL .. "?$top=1", { app = app }) end

local function batch(n, app)
  local reqs = {}
  for i = 1, n do reqs[i] = { id = tostring(i), method = "GET", url = COLL .. "?$top=1" } end
  return emu.graph("POST", "/$batch", { json = { requests = reqs }, app = app })
end

-- statuses of a batch's steps: { [200] = n, [429] = m }, and the Retry-After values of the 429s
local function tally(res)
  local n, ra = {}, {}
  for _, r in ipairs(res.json.responses) do
    n[r.status] = (n[r.status] or 0) + 1
    if r.status == 429 then ra[#ra + 1] = r.headers["Retry-After"] end
  end
  return n, ra
end

-- The default seed plus a second tenant with its own importer app.
local T2 = "72f988bf-0000-4000-8000-000000000002"
local APP2 = { client_id = "a0000000-0000-4000-8000-000000000092", client_secret = "t2-secret" }
local function two_tenant_seed()
  local seed = cjson.decode(http.read_file("emulator/seed.json"))
  seed.tenants[#seed.tenants + 1] = { id = T2, domain = "fabrikam.onmicrosoft.com" }
  seed.apps[#seed.apps + 1] = { client_id = APP2.client_id, client_secret = APP2.client_secret, tenant = T2,
    name = "t2-importer", roles = { "LearningAssignedCourse.ReadWrite.All" } }
  return seed
end

describe("emulator throttling profile", function()
  before_each(function()
    emu.reset()
    get(); get("reader")   -- token caches filled before any bucket is set
  end)

  it("per app: each $batch step takes one token from the app's bucket, the envelope none", function()
    emu.settings{ throttle = { app = { per_second = 0.0001, burst = 5 } } }
    local res = batch(3)
    assert.equal(200, res.status)
    assert.same({ [200] = 3 }, (tally(res)))   -- 3 steps, 3 tokens: the envelope took none
    local n, ra = tally(batch(4))
    assert.equal(2, n[200])
    assert.equal(2, n[429])
    for _, v in ipairs(ra) do
      assert.matches("^%d+$", v)               -- whole seconds, as Graph sends them
      assert.is_true(tonumber(v) > 9000 and tonumber(v) <= 10000, v)
    end
    -- the bucket is drained: a plain request is throttled too, with Retry-After and Graph's body
    local r = get()
    assert.equal(429, r.status)
    assert.matches("^%d+$", r.headers["retry-after"])
    assert.equal("TooManyRequests", r.json.error.code)
    -- another app has its own bucket
    assert.equal(200, get("reader").status)
  end)

  it("per tenant: every app of the tenant shares one bucket; another tenant has its own", function()
    emu.reset(two_tenant_seed())
    local t2_token = http.post(emu.http .. "/" .. T2 .. "/oauth2/v2.0/token", { form = {
      client_id = APP2.client_id, client_secret = APP2.client_secret, grant_type = "client_credentials",
      scope = emu.GRAPH_SCOPE } }).json.access_token
    assert.truthy(t2_token)
    get(); get("reader")
    emu.settings{ throttle = { tenant = { per_second = 0.0001, burst = 4 }, app = { per_second = 100, burst = 100 } } }
    assert.equal(200, get().status)
    assert.equal(200, get("reader").status)
    local n = tally(batch(3, "reader"))
    assert.equal(2, n[200])
    assert.equal(1, n[429])
    local r = get()
    assert.equal(429, r.status)                       -- the importer's app bucket is full, the tenant's is empty
    assert.matches("^%d+$", r.headers["retry-after"])
    local other = emu.graph("GET", COLL, { token = t2_token })
    assert.are_not.equal(429, other.status)           -- tenant 2 is not throttled (whatever it may read)
    -- the rules are listed with their scope
    local rules = emu.admin("GET", "rate_limit").json.value
    local scopes = {}
    for _, rule in ipairs(rules) do scopes[rule.scope] = rule end
    assert.equal(4, scopes.tenant.burst)
    assert.equal(100, scopes.app.per_second)
  end)

  it("the older forms keep working: POST /_emulator/rate_limit with scope, and the rate_limit setting", function()
    emu.rate_limit{ scope = "tenant", per_second = 0.0001, burst = 1 }
    assert.equal(200, get().status)
    assert.equal(429, get("reader").status)
    emu.clear_rate_limit()
    emu.settings{ rate_limit = { per_second = 0.0001, burst = 1 } }
    assert.equal(200, get().status)
    assert.equal(429, get().status)
    assert.equal(200, get("reader").status)
    emu.settings{ throttle = cjson.null }
    assert.equal(200, get().status)
  end)

  it("a throttled step inside a batch of writes is not applied; its sibling is", function()
    emu.settings{ throttle = { app = { per_second = 0.0001, burst = 1 } } }
    local JSON = { ["Content-Type"] = "application/json" }
    local res = emu.graph("POST", "/$batch", { json = { requests = {
      { id = "1", method = "POST", url = COLL, headers = JSON, body = emu.assignment{ externalcourseActivityId = "thr-1" } },
      { id = "2", method = "POST", url = COLL, headers = JSON, body = emu.assignment{ externalcourseActivityId = "thr-2" } },
    } } })
    local n = tally(res)
    assert.equal(1, n[201])
    assert.equal(1, n[429])
    assert.equal(1, emu.creates(P, "thr-1") + emu.creates(P, "thr-2"))
  end)

  it("rejects bad profiles and rules, naming the field", function()
    local cases = {
      { "settings", { throttle = { app = { per_second = 0 } } }, "per_second" },
      { "settings", { throttle = { planet = { per_second = 1 } } }, "planet" },
      { "settings", { throttle = { app = { per_second = 1, burst = 0.5 } } }, "burst" },
      { "settings", { throttle = { app = 3 } }, "throttle.app" },
      { "rate_limit", { scope = "galaxy", per_second = 1 }, "scope" },
      { "rate_limit", { per_second = 1, colour = "red" }, "colour" },
      { "rate_limit", { scope = "app", tenant = emu.TENANT, per_second = 1 }, "tenant" },
    }
    for _, c in ipairs(cases) do
      local r = http.post(emu.http .. "/_emulator/" .. c[1], { json = c[2] })
      assert.equal(400, r.status, r.body)
      assert.matches(c[3], r.json.error.message, 1, true)
    end
  end)
end)

describe("emulator throttling from a seed", function()
  it("a seed's throttle and rate_limit settings are live from the start, not only after a reset", function()
    local dir = os.tmpname()
    os.remove(dir)
    local seed = cjson.decode(http.read_file("emulator/seed.json"))
    seed.settings = seed.settings or {}
    seed.settings.throttle = { tenant = { per_second = 2, burst = 3 } }
    seed.settings.rate_limit = { app = emu.APPS.reader.client_id, per_second = 1, burst = 1 }
    local path = dir .. "-seed.json"
    local f = assert(io.open(path, "w"))
    f:write(cjson.encode(seed))
    f:close()
    local code, out = http.run("./emulator/run --quiet --dir " .. http.shell_quote(dir) .. " --seed " .. http.shell_quote(path))
    os.remove(path)
    finally(function()
      http.run("./emulator/stop --quiet --dir " .. http.shell_quote(dir))
      http.ok("rm -rf " .. http.shell_quote(dir))
    end)
    assert.equal(0, code, out)
    local base = emu.read_env(dir).VIVA_EMU_HTTP
    local rules = http.get(base .. "/_emulator/rate_limit").json.value
    local by_scope = {}
    for _, r in ipairs(rules) do by_scope[r.scope] = r end
    assert.equal(3, by_scope.tenant.burst)
    assert.equal(emu.APPS.reader.client_id, by_scope.app.app)
    -- and a reset applies them again
    assert.equal(204, http.post(base .. "/_emulator/reset").status)
    assert.equal(2, #http.get(base .. "/_emulator/rate_limit").json.value)
  end)
end)
