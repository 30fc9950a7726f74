-- Emulator: fault rules, rate limit, request log, counters, reset/settings (the admin API).
local emu = require("support.emulator")
local http = require("support.http")

local P = emu.PROVIDER
local COLL = "/employeeExperience/learningProviders/" .. P .. "/learningCourseActivities"

local function get() return emu.graph("GET", COLL) end

describe("emulator admin API", function()
  before_each(function() emu.reset() end)

  it("health", function()
    local r = emu.health()
    assert.equal(200, r.status)
    assert.is_true(r.json.ok)
  end)

  describe("faults", function()
    it("status 429 with Retry-After in seconds, once (count)", function()
      local id = emu.fault{ path = "/learningCourseActivities$", status = 429, retry_after = "3", count = 1 }
      assert.is_number(id)
      local r = get()
      assert.equal(429, r.status)
      assert.equal("3", r.headers["retry-after"])
      assert.equal("TooManyRequests", r.json.error.code)
      assert.truthy(r.json.error.innerError["request-id"])
      assert.equal(200, get().status)
    end)

    it("fractional seconds, an HTTP-date (verbatim or computed), retry-after-ms and extra headers", function()
      emu.fault{ path = "learningCourseActivities", status = 429, retry_after = 2.5, count = 1 }
      assert.equal("2.5", get().headers["retry-after"])
      emu.fault{ path = "learningCourseActivities", status = 503, retry_after = "Wed, 21 Oct 2037 07:28:00 GMT", count = 1 }
      local r = get()
      assert.equal(503, r.status)
      assert.equal("Wed, 21 Oct 2037 07:28:00 GMT", r.headers["retry-after"])
      assert.equal("serviceUnavailable", r.json.error.code)
      emu.fault{ path = "learningCourseActivities", status = 429, retry_after_date = 5, count = 1 }
      assert.matches("^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$", get().headers["retry-after"])
      emu.fault{ path = "learningCourseActivities", status = 429, retry_after_ms = 1500,
        headers = { ["x-ms-retry-after-ms"] = "1500" }, count = 1 }
      local r2 = get()
      assert.equal("1500", r2.headers["retry-after-ms"])
      assert.equal("1500", r2.headers["x-ms-retry-after-ms"])
      assert.is_nil(r2.headers["retry-after"])
      emu.fault{ path = "learningCourseActivities", status = 429, retry_after = "abc", count = 1 }
      assert.equal("abc", get().headers["retry-after"])
    end)

    it("Graph's 'Retry after N minutes' body without a header", function()
      emu.fault{ path = "learningCourseActivities", status = 429, body_minutes = 2, count = 1 }
      local r = get()
      assert.equal(429, r.status)
      assert.is_nil(r.headers["retry-after"])
      assert.equal("tooManyRequests", r.json.error.code)
      assert.equal("Retry after 2 minutes", r.json.error.message)
      emu.fault{ path = "learningCourseActivities", status = 503, body_minutes = 1, count = 1 }
      assert.equal("Retry after 1 minutes", get().json.error.message)
    end)

    it("500 and 504", function()
      emu.fault{ path = "learningCourseActivities", status = 500, count = 1 }
      emu.fault{ path = "learningCourseActivities", status = 504, count = 1 }
      local a, b = get(), get()
      assert.equal(500, a.status)
      assert.equal("internalServerError", a.json.error.code)
      assert.equal(504, b.status)
    end)

    it("matches the method and counts K matches; share 0 never fires, share 1 always", function()
      emu.fault{ method = "POST", path = "learningCourseActivities", status = 503, count = 2 }
      assert.equal(200, get().status)
      local body = emu.assignment()
      assert.equal(503, emu.graph("POST", COLL, { json = body }).status)
      assert.equal(503, emu.graph("POST", COLL, { json = body }).status)
      assert.equal(201, emu.graph("POST", COLL, { json = body }).status)
      emu.clear_faults()
      emu.fault{ path = "learningCourseActivities", status = 500, share = 0 }
      for _ = 1, 5 do assert.equal(200, get().status) end
      emu.clear_faults()
      emu.fault{ path = "learningCourseActivities", status = 500, share = 1 }
      for _ = 1, 3 do assert.equal(500, get().status) end
      local list = emu.faults()
      assert.equal(1, #list)
      assert.equal(3, list[1].hits)
    end)

    it("drops the connection (no response)", function()
      emu.fault{ path = "learningCourseActivities", drop = true, count = 1 }
      local since = emu.last_seq()
      local r = get()
      assert.equal(0, r.status)
      assert.equal(52, r.curl_exit)  -- empty reply from server
      local log = emu.log(since)
      assert.is_true(log[1].dropped)
      assert.equal(200, get().status)
    end)

    it("after = true: the create is committed, then the connection drops (ambiguous)", function()
      emu.fault{ method = "POST", path = "learningCourseActivities$", drop = true, after = true, count = 1 }
      local r = emu.graph("POST", COLL, { json = emu.assignment{ externalcourseActivityId = "amb-1" } })
      assert.equal(0, r.status)
      assert.are_not.equal(0, r.curl_exit)
      assert.equal(1, emu.creates(P, "amb-1"))
      assert.equal(200, emu.graph("GET", COLL .. "(externalcourseActivityId='amb-1')").status)
      -- a retried POST is now a visible duplicate
      assert.equal(409, emu.graph("POST", COLL, { json = emu.assignment{ externalcourseActivityId = "amb-1" } }).status)
      assert.equal(2, emu.creates(P, "amb-1"))
    end)

    it("after = true with a status: committed, yet the client sees 503", function()
      emu.fault{ method = "POST", path = "learningCourseActivities$", status = 503, after = true, count = 1 }
      local since = emu.last_seq()
      local r = emu.graph("POST", COLL, { json = emu.assignment{ externalcourseActivityId = "amb-2" } })
      assert.equal(503, r.status)
      assert.equal(200, emu.graph("GET", COLL .. "(externalcourseActivityId='amb-2')").status)
      assert.equal(201, emu.log(since)[1].committed_status)
    end)

    it("delays a response (the request still succeeds)", function()
      emu.fault{ path = "learningCourseActivities", delay = 3, count = 1 }
      local r = http.get(emu.graph_url_http .. COLL, { timeout = 1, headers = { Authorization = "Bearer " .. emu.token() } })
      assert.equal(28, r.curl_exit)  -- curl gave up long before the 3 s delay ended
      emu.fault{ path = "learningCourseActivities", delay = 0.2, count = 1 }
      local since = emu.last_seq()
      assert.equal(200, get().status)
      assert.is_number(emu.log(since)[1].fault)
    end)

    it("a delayed request still asleep when the emulator is reset never reaches the new state", function()
      emu.fault{ method = "POST", path = "learningCourseActivities$", delay = 2, count = 1 }
      local body = emu.assignment{ externalcourseActivityId = "straggler-1" }
      local r = http.post(emu.graph_url_http .. COLL, { timeout = 0.5, json = body,
        headers = { Authorization = "Bearer " .. emu.token() } })
      assert.equal(28, r.curl_exit)  -- the client gave up; the request sleeps on in the emulator
      emu.reset()
      -- A later request delayed longer than what is left of the straggler's sleep answers only
      -- after the straggler woke (one event loop, timers in order).
      emu.fault{ path = "learningContents", delay = 2.5, count = 1 }
      assert.equal(200, emu.graph("GET", "/employeeExperience/learningProviders/" .. P .. "/learningContents").status)
      assert.equal(0, emu.creates(P, "straggler-1"))
      assert.equal(404, emu.graph("GET", "/employeeExperience/learningProviders/" .. P ..
        "/learningCourseActivities(externalcourseActivityId='straggler-1')").status)
    end)

    it("truncates a response body", function()
      emu.fault{ path = "learningCourseActivities", truncate = true, count = 1 }
      local r = get()
      assert.equal(18, r.curl_exit)  -- partial file
    end)

    it("answers a 2xx with the raw body given (an empty 200), and needs that body", function()
      emu.fault{ method = "GET", path = "learningCourseActivities", status = 200, body = "", count = 1 }
      local r = get()
      assert.equal(200, r.status)
      assert.equal("", r.body)
      assert.equal(200, get().status)
      assert.is_truthy(#get().body > 0)   -- count = 1: the next one is served again
      local bad = http.post(emu.http .. "/_emulator/faults", { json = { path = "x", status = 204 } })
      assert.equal(400, bad.status)
      assert.is_truthy(bad.body:find("needs a body", 1, true), bad.body)
      bad = http.post(emu.http .. "/_emulator/faults", { json = { path = "x", status = 302, body = "" } })
      assert.equal(400, bad.status)
    end)

    it("stalls after the headers and half a body (stall), then closes", function()
      emu.fault{ path = "learningCourseActivities", stall = 3, count = 1 }
      local r = http.get(emu.graph_url_http .. COLL, { timeout = 1, headers = { Authorization = "Bearer " .. emu.token() } })
      assert.equal(200, r.status)
      assert.equal(28, r.curl_exit)  -- curl's own timeout: the body never completes
      assert.equal('{"value":[', r.body)
    end)

    it("faults on the token endpoint answer Entra-shaped bodies", function()
      emu.fault{ path = "/oauth2/v2.0/token$", status = 503, retry_after = "1", count = 1 }
      local r = http.post(emu.http .. "/" .. emu.TENANT .. "/oauth2/v2.0/token", { form = {
        client_id = emu.APPS.importer.client_id, client_secret = emu.APPS.importer.client_secret,
        grant_type = "client_credentials", scope = emu.GRAPH_SCOPE } })
      assert.equal(503, r.status)
      assert.equal("temporarily_unavailable", r.json.error)
      assert.equal("1", r.headers["retry-after"])
    end)

    it("rejects bad rules and can delete one or all", function()
      for _, bad in ipairs({ { status = 503 }, { path = "x" }, { path = "x", status = 200 }, { path = "[", status = 500 },
                             { path = "x", status = 500, share = 2 }, { path = "x", status = 500, count = 0 }, { path = "x", status = 500, colour = 1 } }) do
        local r = http.post(emu.http .. "/_emulator/faults", { json = bad })
        assert.equal(400, r.status, r.body)
      end
      local id = emu.fault{ path = "x", status = 500 }
      emu.fault{ path = "y", status = 500 }
      assert.equal(204, http.request{ method = "DELETE", url = emu.http .. "/_emulator/faults/" .. id }.status)
      assert.equal(1, #emu.faults())
      emu.clear_faults()
      assert.equal(0, #emu.faults())
    end)
  end)

  describe("rate limit", function()
    it("answers 429 + Retry-After past the burst, per app", function()
      emu.rate_limit{ per_second = 0.001, burst = 2, app = emu.APPS.importer.client_id }
      assert.equal(200, get().status)
      assert.equal(200, get().status)
      local r = get()
      assert.equal(429, r.status)
      assert.truthy(tonumber(r.headers["retry-after"]) >= 1)
      assert.equal("TooManyRequests", r.json.error.code)
      assert.equal(200, emu.graph("GET", COLL, { app = "reader" }).status)
      emu.clear_rate_limit()
      assert.equal(200, get().status)
    end)

    it("without app applies to every app, each with its own bucket", function()
      emu.rate_limit{ per_second = 0.001, burst = 1 }
      assert.equal(200, get().status)
      assert.equal(429, get().status)
      assert.equal(200, emu.graph("GET", COLL, { app = "reader" }).status)
      assert.equal(429, emu.graph("GET", COLL, { app = "reader" }).status)
    end)

    it("rejects a bad rule", function()
      assert.equal(400, http.post(emu.http .. "/_emulator/rate_limit", { json = { per_second = 0 } }).status)
    end)
  end)

  describe("request log", function()
    it("records method, path, query, status, app, headers (secrets redacted), body size, client-request-id", function()
      local tokres = http.post(emu.http .. "/" .. emu.TENANT .. "/oauth2/v2.0/token", { form = {
        client_id = emu.APPS.importer.client_id, client_secret = emu.APPS.importer.client_secret,
        grant_type = "client_credentials", scope = emu.GRAPH_SCOPE } })
      local token = tokres.json.access_token
      local body = emu.assignment()
      http.post(emu.graph_url_http .. COLL .. "?x=1", { json = body, headers = {
        Authorization = "Bearer " .. token, ["client-request-id"] = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee", Cookie = "s=1" } })
      local raw = http.get(emu.http .. "/_emulator/log").body
      assert.is_nil(raw:find(token, 1, true))
      assert.is_nil(raw:find(emu.APPS.importer.client_secret, 1, true))
      local log = emu.log()
      assert.equal(2, #log)
      local t, c = log[1], log[2]
      assert.equal("POST", t.method)
      assert.equal("/" .. emu.TENANT .. "/oauth2/v2.0/token", t.path)
      assert.equal(emu.APPS.importer.client_id, t.app)
      assert.equal(200, t.status)
      assert.equal("POST", c.method)
      assert.equal("/v1.0" .. COLL, c.path)
      assert.equal("x=1", c.query)
      assert.equal(201, c.status)
      assert.equal(emu.APPS.importer.client_id, c.app)
      assert.equal("Bearer <redacted>", c.headers.authorization)
      assert.equal("<redacted>", c.headers.cookie)
      assert.equal("application/json", c.headers["content-type"])
      assert.equal("aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee", c.client_request_id)
      assert.is_true(c.body_bytes > 100)
      assert.is_true(c.seq > t.seq)
      assert.equal(1, #emu.log(t.seq))
      assert.equal(0, #emu.log(c.seq))
    end)

    it("echoes client-request-id in headers and innerError", function()
      local r = emu.graph("GET", "/employeeExperience/learningCourseActivities/nope",
        { headers = { ["client-request-id"] = "12345678-1234-4234-8234-123456789012" } })
      assert.equal("12345678-1234-4234-8234-123456789012", r.headers["client-request-id"])
      assert.equal("12345678-1234-4234-8234-123456789012", r.json.error.innerError["client-request-id"])
      assert.equal(r.headers["request-id"], r.json.error.innerError["request-id"])
    end)

    it("redacts secret-bearing query parameters", function()
      http.get(emu.http .. "/" .. emu.TENANT .. "/oauth2/v2.0/token?client_secret=s3cr3t&password=pw&keep=1")
      local raw = http.get(emu.http .. "/_emulator/log").body
      assert.is_nil(raw:find("s3cr3t", 1, true))
      assert.is_nil(raw:find("=pw", 1, true))
      assert.equal("client_secret=<redacted>&password=<redacted>&keep=1", emu.log()[1].query)
    end)

    it("DELETE clears it", function()
      get()
      http.request{ method = "DELETE", url = emu.http .. "/_emulator/log" }
      assert.equal(0, #emu.log())
    end)
  end)

  describe("counters", function()
    it("count creates per provider and external id, requests and tokens", function()
      local before = emu.counters()
      emu.graph("POST", COLL, { json = emu.assignment{ externalcourseActivityId = "cnt-1" } })
      emu.graph("POST", COLL, { json = emu.assignment{ externalcourseActivityId = "cnt-1" } })
      emu.graph("POST", COLL, { json = emu.assignment{ externalcourseActivityId = "cnt-2", completionPercentage = 900 } })
      local c = emu.counters()
      assert.equal(2, c.creates[P]["cnt-1"])
      assert.is_nil(c.creates[P]["cnt-2"])  -- rejected by validation: not applied
      assert.equal(before.requests + 3, c.requests)
      assert.equal(1, c.conflicts)
    end)
  end)

  describe("reset and settings", function()
    it("reset with a seed body replaces the state; reset without one restores the default", function()
      local seed = {
        tenants = { { id = emu.TENANT, domain = emu.TENANT_DOMAIN } },
        apps = { { client_id = emu.APPS.importer.client_id, client_secret = "importer-secret-1",
                   roles = { "LearningAssignedCourse.ReadWrite.All", "LearningContent.ReadWrite.All" } } },
        users = { { id = emu.LEARNER, licensed = true } },
        providers = { { id = P, displayName = "Only", isCourseActivitySyncEnabled = true,
          squareLogoWebUrlForDarkTheme = "x", longLogoWebUrlForDarkTheme = "x", squareLogoWebUrlForLightTheme = "x", longLogoWebUrlForLightTheme = "x" } },
        contents = { { provider = P, id = emu.CONTENT, externalId = "ONLY-1", title = "t", contentWebUrl = "u", languageTag = "en" } },
        activities = { { id = "act-1", ["@odata.type"] = "#microsoft.graph.learningSelfInitiatedCourse",
          learningProviderId = P, learnerUserId = emu.LEARNER, learningContentId = emu.CONTENT,
          externalcourseActivityId = "seeded-1", status = "completed", completionPercentage = 100 } },
        settings = { page_size = 1 },
      }
      emu.reset(seed)
      local act = emu.graph("GET", COLL .. "(externalcourseActivityId='seeded-1')")
      assert.equal(200, act.status, act.body)
      assert.equal("act-1", act.json.id)
      assert.equal("#microsoft.graph.learningSelfInitiatedCourse", act.json["@odata.type"])
      local r = emu.graph("GET", "/employeeExperience/learningProviders/" .. P .. "/learningContents")
      assert.equal(1, #r.json.value)
      assert.equal(1, emu.get_settings().page_size)
      assert.equal(201, emu.graph("POST", COLL, { json = emu.assignment() }).status)
      emu.reset()
      assert.equal(20, #emu.graph("GET", "/employeeExperience/learningProviders/" .. P .. "/learningContents").json.value)
      assert.equal(400, http.post(emu.http .. "/_emulator/reset", { json = { apps = { { name = "no id" } } } }).status)
      assert.equal(400, http.post(emu.http .. "/_emulator/reset", { json = { activities = { { id = "x", learningProviderId = "nope" } } } }).status)
      assert.equal(200, emu.graph("GET", "/employeeExperience/learningProviders/" .. P .. "/learningContents").status)  -- still the old state
    end)

    it("settings reject unknown names and wrong types; reset clears overrides", function()
      assert.equal(400, http.post(emu.http .. "/_emulator/settings", { json = { pagesize = 3 } }).status)
      assert.equal(400, http.post(emu.http .. "/_emulator/settings", { json = { page_size = "3" } }).status)
      emu.settings{ page_size = 3, token_lifetime = 10 }
      assert.equal(3, emu.get_settings().page_size)
      emu.reset()
      assert.equal(50, emu.get_settings().page_size)
      assert.equal(3599, emu.get_settings().token_lifetime)
    end)

    it("unknown admin endpoints are 404", function()
      assert.equal(404, http.get(emu.http .. "/_emulator/nope").status)
      assert.equal(405, http.get(emu.http .. "/_emulator/reset").status)
    end)
  end)
end)
