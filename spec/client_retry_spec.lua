-- Retries under each fault rule of the emulator. Attempts and waits are read from the emulator's
-- request log (its own clock), never from timing in the spec.
local viva = require "vivalearning"
local emu = require "support.emulator"

local clients = require "support.client"

local function client(over)
  return clients.new("importer", { max_retries = 3, backoff = { base = 0.02, cap = 0.1 } }, over)
end

local assignment = clients.assignments("retry")

-- Graph requests (not token, not admin) logged since seq whose path matches pattern
local function requests(seq, pattern)
  local out = {}
  for _, e in ipairs(emu.log(seq)) do
    if e.path:find(pattern or "/v1.0/", 1, not pattern) or (pattern and e.path:find(pattern)) then out[#out + 1] = e end
  end
  return out
end

local function gaps(list)
  local g = {}
  for i = 2, #list do g[#g + 1] = list[i].time - list[i - 1].time end
  return g
end

local ID = "00000000-0000-4000-8000-0000000000aa"

describe("client retries", function()
  local c, act
  before_each(function()
    emu.reset()
    c = client()
    act = assert(c:create(emu.PROVIDER, assignment()))
  end)
  after_each(function() c:close() end)

  it("honours Retry-After in seconds, with one client-request-id and Retry-Attempt headers", function()
    emu.fault { method = "GET", path = "/learningCourseActivities/", status = 429, retry_after = "1", count = 2 }
    local seq = emu.last_seq()
    local got, err = c:get(act.id)
    assert.is_nil(err)
    assert.equals(act.id, got.id)
    local reqs = requests(seq, "learningCourseActivities/")
    assert.equals(3, #reqs)
    assert.same({ 429, 429, 200 }, { reqs[1].status, reqs[2].status, reqs[3].status })
    for _, g in ipairs(gaps(reqs)) do assert.is_true(g >= 0.95, "waited " .. g) end
    assert.equals(reqs[1].client_request_id, reqs[3].client_request_id)
    assert.equals(reqs[1].client_request_id, reqs[2].client_request_id)
    assert.is_nil(reqs[1].headers["retry-attempt"])
    assert.equals("2", reqs[3].headers["retry-attempt"])
  end)

  it("honours fractional Retry-After", function()
    emu.fault { method = "GET", path = "/learningCourseActivities/", status = 429, retry_after = "0.6", count = 1 }
    local seq = emu.last_seq()
    assert(c:get(act.id))
    local reqs = requests(seq, "learningCourseActivities/")
    assert.equals(2, #reqs)
    local g = gaps(reqs)[1]
    assert.is_true(g >= 0.55 and g < 3, "waited " .. g)
  end)

  it("honours Retry-After as an HTTP-date", function()
    emu.fault { method = "GET", path = "/learningCourseActivities/", status = 503, retry_after_date = 2, count = 1 }
    local seq = emu.last_seq()
    assert(c:get(act.id))
    local reqs = requests(seq, "learningCourseActivities/")
    assert.equals(2, #reqs)
    local g = gaps(reqs)[1]
    assert.is_true(g >= 0.95 and g < 4, "waited " .. g)       -- HTTP-dates have 1 s resolution
  end)

  it("honours retry-after-ms and x-ms-retry-after-ms", function()
    emu.fault { method = "GET", path = "/learningCourseActivities/", status = 429, retry_after_ms = 700, count = 1 }
    local seq = emu.last_seq()
    assert(c:get(act.id))
    local reqs = requests(seq, "learningCourseActivities/")
    assert.equals(2, #reqs)
    assert.is_true(gaps(reqs)[1] >= 0.65)
    emu.fault { method = "GET", path = "/learningCourseActivities/", status = 429, count = 1,
                headers = { ["x-ms-retry-after-ms"] = "800" } }
    seq = emu.last_seq()
    assert(c:get(act.id))
    reqs = requests(seq, "learningCourseActivities/")
    assert.equals(2, #reqs)
    assert.is_true(gaps(reqs)[1] >= 0.75)
  end)

  it("backs off exponentially with jitter without Retry-After, up to max_retries", function()
    emu.fault { method = "GET", path = "/learningCourseActivities/", status = 503 }
    local seq = emu.last_seq()
    local got, err = c:get(act.id)
    assert.is_nil(got)
    assert.equals("throttled", err.kind)
    assert.equals(503, err.status)
    assert.equals(4, err.attempts)                          -- 1 + max_retries
    local reqs = requests(seq, "learningCourseActivities/")
    assert.equals(4, #reqs)
    for _, g in ipairs(gaps(reqs)) do assert.is_true(g < 1, "backoff capped at 0.1 s, waited " .. g) end
  end)

  it("retries 504 for reads", function()
    emu.fault { method = "GET", path = "/learningCourseActivities/", status = 504, count = 2 }
    local seq = emu.last_seq()
    assert(c:get(act.id))
    assert.equals(3, #requests(seq, "learningCourseActivities/"))
  end)

  it("gives up at once when Retry-After passes the deadline, and on 'Retry after N minutes'", function()
    local d = client { timeouts = { deadline = 5 } }
    emu.fault { method = "GET", path = "/learningCourseActivities/", status = 429, retry_after = "60", count = 1 }
    local seq = emu.last_seq()
    local got, err = d:get(act.id)
    assert.is_nil(got)
    assert.equals("throttled", err.kind)
    assert.equals(60, err.retry_after)
    assert.equals(1, err.attempts)
    assert.equals(1, #requests(seq, "learningCourseActivities/"))
    emu.fault { method = "GET", path = "/learningCourseActivities/", status = 503, body_minutes = 3, count = 1 }
    got, err = d:get(act.id)
    assert.is_nil(got)
    assert.equals(180, err.retry_after)
    assert.equals(1, err.attempts)
    d:close()
  end)

  it("retries a dropped connection for reads", function()
    emu.fault { method = "GET", path = "/learningCourseActivities/", drop = true, count = 1 }
    local seq = emu.last_seq()
    local got, err = c:get(act.id)
    assert.is_nil(err)
    assert.equals(act.id, got.id)
    assert.equals(2, #requests(seq, "learningCourseActivities/"))
  end)

  it("retries a truncated response for reads", function()
    emu.fault { method = "GET", path = "/learningCourseActivities/", truncate = true, count = 1 }
    local got, err = c:get(act.id)
    assert.is_nil(err)
    assert.equals(act.id, got.id)
  end)

  it("retries a throttled create (nothing was processed)", function()
    emu.fault { method = "POST", path = "/learningCourseActivities$", status = 429, retry_after = "0.1", count = 1 }
    local a = assignment()
    local got, err = c:create(emu.PROVIDER, a)
    assert.is_nil(err)
    assert.equals(a.id, got.id)
    assert.equals(1, emu.creates(emu.PROVIDER, a.externalCourseActivityId))
  end)

  it("after an ambiguous create that did happen, finds it by external id and does not POST again", function()
    emu.fault { method = "POST", path = "/learningCourseActivities$", drop = true, after = true, count = 1 }
    local a = assignment()
    local seq = emu.last_seq()
    local got, err = c:create(emu.PROVIDER, a)
    assert.is_nil(err)
    assert.equals(a.externalCourseActivityId, got.externalCourseActivityId)
    assert.equals(1, emu.creates(emu.PROVIDER, a.externalCourseActivityId))
    local reqs = requests(seq, "learningCourseActivities")
    assert.equals(2, #reqs)
    assert.equals("POST", reqs[1].method)
    assert.equals("GET", reqs[2].method)
    assert.matches("externalcourseActivityId=", reqs[2].path)
    assert.equals(reqs[1].client_request_id, reqs[2].client_request_id)
  end)

  it("after an ambiguous create that did not happen, looks up first and then sends it again", function()
    emu.fault { method = "POST", path = "/learningCourseActivities$", drop = true, count = 1 }
    local a = assignment()
    local seq = emu.last_seq()
    local got, err = c:create(emu.PROVIDER, a)
    assert.is_nil(err)
    assert.equals(a.id, got.id)
    assert.equals(1, emu.creates(emu.PROVIDER, a.externalCourseActivityId))
    local reqs = requests(seq, "learningCourseActivities")
    local methods = {}
    for i, r in ipairs(reqs) do methods[i] = r.method end
    assert.same({ "POST", "GET", "POST" }, methods)
    assert.equals(404, reqs[2].status)
  end)

  it("after a create that timed out once committed, reconciles by external id", function()
    local t = client { timeouts = { attempt = 0.5 } }
    emu.fault { method = "POST", path = "/learningCourseActivities$", delay = 1.5, after = true, count = 1 }
    local a = assignment()
    local got, err = t:create(emu.PROVIDER, a)
    assert.is_nil(err)
    assert.equals(a.externalCourseActivityId, got.externalCourseActivityId)
    assert.equals(1, emu.creates(emu.PROVIDER, a.externalCourseActivityId))
    t:close()
  end)

  it("never re-sends an ambiguous create without an external id", function()
    emu.fault { method = "POST", path = "/learningCourseActivities$", drop = true, after = true, count = 1 }
    local s = viva.self_initiated { learningContentId = emu.CONTENT, learnerUserId = emu.LEARNER, status = "inProgress" }
    local seq = emu.last_seq()
    local got, err = c:create(emu.PROVIDER, s)
    assert.is_nil(got)
    assert.equals("transport", err.kind)
    assert.matches("not re%-sent", err.message)
    assert.equals(1, err.attempts)
    assert.equals(1, #requests(seq, "learningCourseActivities"))
  end)

  it("treats a 503 on create with an external id as ambiguous: lookup before re-sending", function()
    emu.fault { method = "POST", path = "/learningCourseActivities$", status = 503, retry_after = "0.1", count = 1 }
    local a = assignment()
    local seq = emu.last_seq()
    assert(c:create(emu.PROVIDER, a))
    local methods = {}
    for i, r in ipairs(requests(seq, "learningCourseActivities")) do methods[i] = r.method end
    assert.same({ "POST", "GET", "POST" }, methods)
    assert.equals(1, emu.creates(emu.PROVIDER, a.externalCourseActivityId))
  end)

  it("does not count a DELETE that found the entity gone after a retry as a failure", function()
    emu.fault { method = "DELETE", path = "/learningCourseActivities/", drop = true, after = true, count = 1 }
    assert.is_true(c:delete(emu.PROVIDER, act.id))
  end)

  it("sends throttled $batch items again, alone, with { retry = true }", function()
    local a1, a2 = assignment(), assignment()
    -- one create inside the batch is throttled once (batch items are logged with their own path)
    emu.fault { method = "POST", path = "/learningCourseActivities$", status = 429, retry_after = "0.2", count = 1 }
    local seq = emu.last_seq()
    local res = assert(c:batch({
      { op = "get", id = act.id },
      { op = "create", provider = emu.PROVIDER, model = a1 },
      { op = "create", provider = emu.PROVIDER, model = a2 },
    }, { retry = true }))
    for i = 1, 3 do assert.is_true(res[i].ok, "item " .. i) end
    assert.equals(1, emu.creates(emu.PROVIDER, a1.externalCourseActivityId))
    assert.equals(1, emu.creates(emu.PROVIDER, a2.externalCourseActivityId))
    local outer, items = {}, 0
    for _, e in ipairs(emu.log(seq)) do
      if e.path == "/v1.0/$batch" then outer[#outer + 1] = e else items = items + 1 end
    end
    assert.equals(2, #outer)                                   -- the first batch, then one with the throttled item
    assert.equals(4, items)                                    -- 3 items, then 1
    assert.equals(outer[1].client_request_id, outer[2].client_request_id)
    assert.is_true(outer[2].time - outer[1].time >= 0.19)
    -- without the option the 429 comes back as the item's result
    emu.fault { method = "POST", path = "/learningCourseActivities$", status = 429, retry_after = "0.2", count = 1 }
    local a3 = assignment()
    res = assert(c:batch { { op = "create", provider = emu.PROVIDER, model = a3 } })
    assert.is_false(res[1].ok)
    assert.equals(429, res[1].status)
    assert.equals("throttled", res[1].err.kind)
    assert.is_true(res[1].err.retry_after >= 0.2)
  end)

  it("retries under a rate limit until the emulator lets requests through", function()
    emu.rate_limit { per_second = 5, burst = 1 }
    c:close()
    c = client { max_retries = 10 }
    local hs = {}
    for i = 1, 6 do hs[i] = c:submit("get", act.id) end
    local done = 0
    while done < #hs do done = done + #c:poll(1) end
    emu.clear_rate_limit()
    for _, h in ipairs(hs) do
      local got, err = h:result()
      assert.is_nil(err)
      assert.equals(act.id, got.id)
    end
  end)
end)
