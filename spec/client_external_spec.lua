-- The sans-I/O face of the client (io = "external"): take, deliver, next_wakeup, tick, and sync
-- calls through a driver; and the retry policy, auth and create recovery driven by a fake driver
-- written on that face. Deterministic: the client's clock is the spec's, nothing sleeps, no
-- emulator and no network.
local compat = require "vivalearning.compat"
local viva = require "vivalearning"
local fake_driver = require "support.fake_driver"

local GRAPH = "https://graph.test/v1.0"
local ID = "00000000-0000-4000-8000-0000000000aa"
local PROVIDER = "c0000000-0000-4000-8000-000000000001"
local LEARNER = "b0000000-0000-4000-8000-000000000002"
local CONTENT = "d0000000-0000-4000-8000-000001000001"

local function activity_json(id, ext)
  return string.format('{"@odata.type":"#microsoft.graph.learningAssignment","id":"%s","learningContentId":"%s",' ..
    '"learnerUserId":"%s","assignmentType":"required","status":"notStarted"%s}', id, CONTENT, LEARNER,
    ext and string.format(',"externalcourseActivityId":"%s"', ext) or "")
end

local function assignment(ext)
  return viva.assignment { learningContentId = CONTENT, learnerUserId = LEARNER, assignmentType = "required",
                           status = "notStarted", externalCourseActivityId = ext }
end

-- A fake Graph behind a fake driver (spec/support/fake_driver.lua): requests logged, answered
-- by the script's steps; the clock jumps to the client's next wakeup when nothing is in flight.
local function world(opts, script)
  local w = { now = 1000, log = {}, script = script or {} }
  local o = { graph_url = GRAPH, token = "tok", io = "external", clock = function() return w.now end }
  for k, v in pairs(opts or {}) do if v == false then o[k] = nil else o[k] = v end end
  o.driver = fake_driver.driver(w)
  w.c = viva.client(o)
  return w
end

local function methods(w)
  local m = {}
  for i, r in ipairs(w.log) do m[i] = r.method end
  return m
end

local function gap(w, i) return w.log[i].at - w.log[i - 1].at end

describe("io = 'external'", function()
  it("hands out requests as tables and takes their outcomes back", function()
    local now = 50
    local c = viva.client { graph_url = GRAPH, token = "tok", io = "external", clock = function() return now end }
    local h = c:submit("get", ID)
    assert.equals(50, c:next_wakeup())
    local reqs = c:take()
    assert.equals(1, #reqs)
    local r = reqs[1]
    assert.equals("integer", compat.type(r.id))
    assert.equals("GET", r.method)
    assert.equals(GRAPH .. "/employeeExperience/learningCourseActivities/" .. ID, r.url)
    assert.equals("Bearer tok", r.headers.authorization)
    assert.equals("application/json", r.headers.accept)
    assert.matches("^%x+%-%x+%-4%x+%-%x+%-%x+$", r.headers["client-request-id"])
    assert.is_nil(r.body)
    assert.equals(60, r.timeout)
    assert.same({}, c:take())              -- handed out once
    assert.is_false(h:done())
    c:deliver(r.id, { status = 200, headers = { ["Content-Type"] = "application/json" }, body = activity_json(ID) })
    assert.is_true(h:done())
    local got = assert(h:result())
    assert.equals(ID, got.id)
    assert.is_nil(c:next_wakeup())          -- nothing waits
    assert.same({ h }, c:poll())
    c:close()
  end)

  it("sends a body with a write and the attempt number on a retry", function()
    local w = world({}, { { status = 429, headers = { ["retry-after"] = "1" } },
                          { status = 201, body = activity_json(ID, "ext-1") } })
    local a = assignment("ext-1")
    local got = assert(w.c:create(PROVIDER, a))
    assert.equals(ID, got.id)
    assert.equals(ID, a.id)
    assert.same({ "POST", "POST" }, methods(w))
    assert.equals("application/json", w.log[1].headers["content-type"])
    assert.matches('"externalcourseActivityId":"ext%-1"', w.log[1].body)
    assert.is_nil(w.log[1].headers["retry-attempt"])
    assert.equals("1", w.log[2].headers["retry-attempt"])
    assert.equals(w.log[1].headers["client-request-id"], w.log[2].headers["client-request-id"])
  end)

  -- 5.1 and LuaJIT have no continuations: a C call cannot be resumed after a yield.
  local CAN_RESUME_C = _VERSION ~= "Lua 5.1"
  local function yielding_client(counter)
    return viva.client { graph_url = GRAPH, token = "tok", io = "external",
      driver = function(c)
        -- as an ngx light thread would: wait for the socket, then answer
        counter.yields = counter.yields + 1
        coroutine.yield("waiting")
        for _, req in ipairs(c:take()) do c:deliver(req.id, { status = 200, body = activity_json(ID) }) end
      end }
  end

  if CAN_RESUME_C then
    it("runs sync calls through the driver, which may yield", function()
      local n = { yields = 0 }
      local c = yielding_client(n)
      local co = coroutine.wrap(function() return c:get(ID) end)
      assert.equals("waiting", co())
      local got = co()
      assert.equals(ID, got.id)
      assert.equals(1, n.yields)
      c:close()
    end)
  else
    it("says clearly that a driver may not yield in a sync call on this Lua, and the client goes on", function()
      local n = { yields = 0 }
      local c = yielding_client(n)
      local co = coroutine.wrap(function() return c:get(ID) end)
      local ok, err = pcall(co)
      assert.is_false(ok)
      assert.matches('the io = "external" driver yielded during a synchronous call', tostring(err), 1, true)
      assert.matches("c:submit, c:take, c:deliver and c:tick", tostring(err), 1, true)
      -- the call was cancelled, the client is whole: the same request through submit works
      local h = c:submit("get", ID)
      for _, req in ipairs(c:take()) do c:deliver(req.id, { status = 200, body = activity_json(ID) }) end
      assert.equals(ID, assert(h:result()).id)
      c:close()
    end)
  end

  it("refuses what does not fit, naming it", function()
    assert.has_error(function() viva.client { token = "t", io = "sockets" } end,
      'viva.client: io must be "curl", "external" or "ngx"')
    assert.has_error(function() viva.client { token = "t", io = "ngx" } end,
      'viva.client: io = "ngx" runs inside nginx (ngx_lua); outside it use io = "curl"')
    assert.has_error(function() viva.client { token = "t", clock = os.time } end,
      'viva.client: clock needs io = "external"')
    assert.has_error(function() viva.client { token = "t", io = "external", driver = 1 } end,
      "viva.client: driver must be a function")
    local curl = viva.client { token = "t" }
    assert.has_error(function() curl:take() end, 'vivalearning: take needs a client made with io = "external"')
    curl:close()
    local c = viva.client { graph_url = GRAPH, token = "tok", io = "external" }
    assert.has_error(function() c:get(ID) end,
      'vivalearning: a synchronous call on an io = "external" client needs a driver ' ..
      '(viva.client{ io = "external", driver = function(c) ... end }); or use submit')
    c:submit("get", ID)
    local id = c:take()[1].id
    assert.has_error(function() c:deliver(id + 1, { status = 200 }) end,
      "vivalearning: deliver: no request in flight with id " .. (id + 1))
    assert.has_error(function() c:deliver(id, { status = 42 }) end,
      "vivalearning: deliver: response status must be an HTTP status (an integer from 100 to 599)")
    assert.has_error(function() c:deliver(id, { status = 200, body = {} }) end,
      "vivalearning: deliver: response body must be a string")
    assert.has_error(function() c:deliver(id, { status = 200, headers = { x = 1 } }) end,
      "vivalearning: deliver: response headers must be a table of strings")
    assert.has_error(function() c:deliver(id, nil, "lost") end,
      "vivalearning: deliver: outcome must be one of not_sent, maybe_sent, timeout, reset, fatal, too_large, got 'lost'")
    -- still in flight after the refusals
    c:deliver(id, { status = 204 })
    c:close()
    assert.has_error(function()
      viva.client { graph_url = GRAPH, token = "tok", io = "external", clock = function() return "soon" end }
    end, "vivalearning: clock must return a finite number of seconds, got string")
    local reads = 0
    local bad = viva.client { graph_url = GRAPH, token = "tok", io = "external",
                              clock = function() reads = reads + 1; return reads > 1 and 0 / 0 or 0 end }
    assert.has_error(function() bad:submit("get", ID) end,
      "vivalearning: clock must return a finite number of seconds, got number")
    bad:close()
  end)

  it("cancels a sync call whose driver raised, raising the driver's error", function()
    local c = viva.client { graph_url = GRAPH, token = "tok", io = "external", driver = function() error("driver broke") end }
    local ok, err = pcall(c.get, c, ID)
    assert.is_false(ok)
    assert.matches("driver broke", tostring(err), 1, true)
    assert.equals(0, c:pending())
    c:close()
  end)
end)

describe("policy over a fake driver: Retry-After", function()
  local function after(headers, body)
    local w = world({}, { { status = 429, headers = headers, body = body }, { status = 200, body = activity_json(ID) } })
    assert(w.c:get(ID))
    assert.equals(2, #w.log)
    return gap(w, 2)
  end

  it("honours seconds, fractional seconds and an HTTP-date (never earlier, at most a quarter later)", function()
    local g = after { ["Retry-After"] = "2" }
    assert.is_true(g >= 2 and g <= 2.5, g)
    g = after { ["Retry-After"] = "0.6" }
    assert.is_true(g >= 0.6 and g <= 0.75, g)
    g = after { ["Retry-After"] = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 30) }
    assert.is_true(g >= 28 and g <= 40, g)
  end)

  it("honours retry-after-ms and x-ms-retry-after-ms over Retry-After", function()
    local g = after { ["retry-after-ms"] = "700", ["Retry-After"] = "9" }
    assert.is_true(g >= 0.7 and g <= 0.875, g)
    g = after { ["x-ms-retry-after-ms"] = "800" }
    assert.is_true(g >= 0.8 and g <= 1, g)
  end)

  it("honours 'Retry after N minutes' in the body", function()
    local g = after({ ["content-type"] = "application/json" },
      '{"error":{"code":"TooManyRequests","message":"Rate limit hit. Retry after 3 minutes."}}')
    assert.is_true(g >= 180 and g <= 182, g)
  end)

  it("gives up at once when the wait would pass the deadline", function()
    local w = world({ timeouts = { deadline = 30 } }, { { status = 429, headers = { ["Retry-After"] = "60" } } })
    local got, err = w.c:get(ID)
    assert.is_nil(got)
    assert.equals("throttled", err.kind)
    assert.equals(60, err.retry_after)
    assert.matches("deadline", err.note)
    assert.equals(1, #w.log)
  end)

  it("stops at max_retries", function()
    local w = world({ max_retries = 2 }, { { status = 503 }, { status = 503 }, { status = 503 }, { status = 200 } })
    local got, err = w.c:get(ID)
    assert.is_nil(got)
    assert.equals("throttled", err.kind)
    assert.equals(3, err.attempts)
    assert.equals(3, #w.log)
  end)
end)

describe("policy over a fake driver: transport outcomes", function()
  it("re-sends a create that was not sent", function()
    local w = world({}, { { outcome = "not_sent" }, { status = 201, body = activity_json(ID) } })
    assert(w.c:create(PROVIDER, assignment(nil)))
    assert.same({ "POST", "POST" }, methods(w))
  end)

  it("never re-sends an ambiguous create without an external id", function()
    for _, outcome in ipairs { "maybe_sent", "timeout", "reset" } do
      local w = world({}, { { outcome = outcome } })
      local got, err = w.c:create(PROVIDER, assignment(nil))
      assert.is_nil(got)
      assert.equals("transport", err.kind)
      assert.equals("driver", err.code)
      assert.matches("not re%-sent", err.message)
      assert.equals("the driver reported: " .. outcome, err.cause)
      assert.equals(1, err.attempts)
      assert.equals(1, #w.log)
    end
  end)

  it("looks an ambiguous create up by external id: found means done, not there means send again", function()
    local w = world({}, { { outcome = "maybe_sent" }, { status = 200, body = activity_json(ID, "ext-2") } })
    local got = assert(w.c:create(PROVIDER, assignment("ext-2")))
    assert.equals(ID, got.id)
    assert.same({ "POST", "GET" }, methods(w))
    assert.matches("learningCourseActivities%(externalcourseActivityId='ext%-2'%)$", w.log[2].url)
    assert.equals(w.log[1].headers["client-request-id"], w.log[2].headers["client-request-id"])

    w = world({}, { { outcome = "reset" }, { status = 404 }, { status = 201, body = activity_json(ID, "ext-3") } })
    assert(w.c:create(PROVIDER, assignment("ext-3")))
    assert.same({ "POST", "GET", "POST" }, methods(w))
  end)

  it("treats 503/504 on a create with an external id as ambiguous, and as final without one", function()
    local w = world({}, { { status = 503 }, { status = 404 }, { status = 201, body = activity_json(ID, "ext-4") } })
    assert(w.c:create(PROVIDER, assignment("ext-4")))
    assert.same({ "POST", "GET", "POST" }, methods(w))
    for _, st in ipairs { 503, 504 } do
      w = world({}, { { status = st, headers = { ["Retry-After"] = "0.1" } } })
      local got, err = w.c:create(PROVIDER, assignment(nil))
      assert.is_nil(got)
      assert.equals(st, err.status)
      assert.matches("not re%-sent", err.note)
      assert.equals(1, #w.log)
    end
  end)

  it("repeats an ambiguous PATCH and DELETE; a DELETE that then finds nothing counts as done", function()
    local w = world({}, { { outcome = "reset" }, { status = 204 } })
    assert.is_true(w.c:update(PROVIDER, ID, { status = "completed" }))
    assert.same({ "PATCH", "PATCH" }, methods(w))
    w = world({}, { { outcome = "timeout" }, { status = 404 } })
    assert.is_true(w.c:delete(PROVIDER, ID))
    assert.same({ "DELETE", "DELETE" }, methods(w))
  end)

  it("never re-sends an ambiguous $batch", function()
    local w = world({}, { { outcome = "maybe_sent" } })
    local got, err = w.c:batch { { op = "get", id = ID } }
    assert.is_nil(got)
    assert.equals("transport", err.kind)
    assert.equals(1, #w.log)
    assert.equals(GRAPH .. "/$batch", w.log[1].url)
  end)

  it("puts the driver's detail into the cause", function()
    local c = viva.client { graph_url = GRAPH, token = "tok", io = "external", max_retries = 0 }
    local h = c:submit("get", ID)
    local id = c:take()[1].id
    c:deliver(id, nil, "reset", "closed mid-body (12 of 40 bytes)")
    local got, err = h:result()
    assert.is_nil(got)
    assert.equals("the driver reported: reset (closed mid-body (12 of 40 bytes))", err.cause)
    h = c:submit("get", ID)
    id = c:take()[1].id
    assert.has_error(function() c:deliver(id, nil, "reset", {}) end)
    c:close()
  end)

  it("fails what cannot get better at once", function()
    local w = world({}, { { outcome = "fatal" } })
    local got, err = w.c:get(ID)
    assert.is_nil(got)
    assert.equals("transport", err.kind)
    assert.equals(1, #w.log)
  end)
end)

describe("auth over a fake driver", function()
  it("refreshes the token and replays once after a 401", function()
    local calls = {}
    local w = world({ token = false, token_provider = function(o)
      calls[#calls + 1] = o.force
      return "tok" .. #calls, 3600
    end }, { { status = 401 }, { status = 200, body = activity_json(ID) } })
    assert(w.c:get(ID))
    assert.same({ false, true }, calls)
    assert.equals("Bearer tok1", w.log[1].headers.authorization)
    assert.equals("Bearer tok2", w.log[2].headers.authorization)
    -- a second 401 in a row is the caller's
    w.script = { { status = 401 }, { status = 401 } }
    local got, err = w.c:get(ID)
    assert.is_nil(got)
    assert.equals("auth", err.kind)
  end)

  it("fetches a client-credentials token as an ordinary request, and retries it by the policy", function()
    local w = world({ token = false, tenant = "contoso.test", client_id = "app", client_secret = "s3cret",
                      authority_url = "https://login.test" },
      { { status = 503, headers = { ["Retry-After"] = "3" } },
        { status = 200, body = '{"access_token":"fresh","expires_in":3600,"token_type":"Bearer"}' },
        { status = 200, body = activity_json(ID) } })
    assert(w.c:get(ID))
    assert.same({ "POST", "POST", "GET" }, methods(w))
    assert.equals("https://login.test/contoso.test/oauth2/v2.0/token", w.log[1].url)
    assert.equals("application/x-www-form-urlencoded", w.log[1].headers["content-type"])
    assert.matches("grant_type=client_credentials", w.log[1].body)
    assert.is_nil(w.log[1].headers.authorization)
    assert.is_true(gap(w, 2) >= 3)
    assert.equals("Bearer fresh", w.log[3].headers.authorization)
  end)
end)

describe("viva.bulk.import over a fake driver", function()
  it("imports rows through submit and poll on an external client", function()
    local w = world()
    local n = 0
    w.default = function(req)
      n = n + 1
      local ext = req.body:match('"externalcourseActivityId":"([^"]+)"')
      return { status = 201, body = activity_json(string.format("00000000-0000-4000-8000-%012d", n), ext) }
    end
    local rows = {
      { externalCourseActivityId = "bulk-1", learnerUserId = LEARNER, learningContentId = CONTENT,
        status = "notStarted", assignmentType = "required" },
      { externalCourseActivityId = "bulk-2", learnerUserId = LEARNER, learningContentId = CONTENT,
        status = "notStarted", assignmentType = "required" },
    }
    local s = assert(viva.bulk.import(w.c, rows, { provider = PROVIDER, type = "assignment", batch = 1 }))
    assert.equals(2, s.created)
    assert.same({ "POST", "POST" }, methods(w))
  end)
end)

describe("operations as data: $batch", function()
  it("takes an item of every operation the table declares batchable, providers too", function()
    local w = world()
    local body
    w.default = function(req)
      body = req.body
      local responses = {}
      for id in body:gmatch('"id":"(%d+)"') do
        responses[#responses + 1] = string.format('{"id":"%s","status":204}', id)
      end
      return { status = 200, body = '{"responses":[' .. table.concat(responses, ",") .. ']}' }
    end
    local res = assert(w.c:batch {
      { op = "delete_provider", id = PROVIDER },
      { op = "update_provider", id = PROVIDER, changes = { displayName = "Renamed" } },
      { op = "delete_content", provider = PROVIDER, external_id = "CA-01" },
      { op = "delete", provider = PROVIDER, id = ID },
    })
    assert.equals(4, #res)
    for i = 1, 4 do assert.is_true(res[i].ok, i) end
    assert.truthy(body:find('"method":"DELETE","url":"/employeeExperience/learningProviders/' .. PROVIDER .. '"', 1, true))
    assert.truthy(body:find('"method":"PATCH","url":"/employeeExperience/learningProviders/' .. PROVIDER .. '"', 1, true))
    assert.matches("learningContents%(externalId='CA%-01'%)", body)
  end)

  it("refuses an op the table does not declare batchable", function()
    local w = world()
    assert.has_error(function() w.c:batch { { op = "activities_page" } } end,
      "vivalearning: batch item 1: unknown op activities_page")
    assert.has_error(function() w.c:batch { { op = "batch" } } end, "vivalearning: batch item 1: unknown op batch")
  end)
end)

describe("$batch items over a fake driver", function()
  it("send a throttled item again after its retry-after-ms (and x-ms-retry-after-ms), not the backoff", function()
    for _, h in ipairs { "retry-after-ms", "x-ms-retry-after-ms" } do
      local w = world({ backoff = { base = 0.01, cap = 0.01 } })
      local calls = 0
      w.default = function(req)
        calls = calls + 1
        if calls == 1 then
          return { status = 200, body = '{"responses":[{"id":"1","status":429,"headers":{"' .. h .. '":"700"}}]}' }
        end
        return { status = 200, body = '{"responses":[{"id":"1","status":200,"body":' .. activity_json(ID) .. '}]}' }
      end
      local res = assert(w.c:batch({ { op = "get", id = ID } }, { retry = true }))
      assert.is_true(res[1].ok)
      assert.equals(2, #w.log)
      local g = gap(w, 2)
      assert.is_true(g >= 0.7 and g <= 0.875, h .. ": " .. g)
    end
  end)
end)

describe("io = 'external' body cap", function()
  it("holds a delivered body to max_body_bytes, as the write callback does for libcurl", function()
    local w = world({ max_body_bytes = 1024 }, { { status = 200, body = string.rep("x", 2000) } })
    local got, err = w.c:get(ID)
    assert.is_nil(got)
    assert.equals("protocol", err.kind)
    assert.equals("body_too_large", err.code)
    assert.equals(1, #w.log)
  end)
end)
