-- Frame loops (docs/embedding.md): poll(0, { budget = s }) leaves what is over the budget for
-- the next call and still makes progress at budget 0; c:warmup() does the token, DNS, TLS and
-- CA loading ahead. No timing is asserted: a budget of 0 allows exactly one unit of work.
local viva = require "vivalearning"
local emu = require "support.emulator"
local clients = require "support.client"

local function client(over)
  return clients.new("importer", { backoff = { base = 0.01, cap = 0.05 }, max_concurrency = 32 }, over)
end

-- polls with the budget until every handle of hs is done; returns the polls' sizes
local function drain(c, hs, opts)
  local sizes, polls = {}, 0
  local function all_done()
    for _, h in ipairs(hs) do if not h:done() then return false end end
    return true
  end
  while not all_done() do
    local got = c:poll(0, opts)
    if #got > 0 then sizes[#sizes + 1] = #got end
    polls = polls + 1
    assert.is_true(polls < 5000000, "poll loop does not end")
  end
  return sizes
end

describe("poll budget", function()
  before_each(function() emu.reset() end)

  it("leaves ready completions over the budget for later polls, each handle with its own result", function()
    local c = client()
    assert.is_userdata((c:get_content(emu.PROVIDER, emu.content(1, 1))))  -- token and connection
    emu.fault { path = "/learningContents/", delay = 0.2 }
    local hs = {}
    for i = 1, 20 do hs[i] = c:submit("get_content", emu.PROVIDER, emu.content(1, i)) end
    assert.same({}, c:poll(0))          -- admitted and sent on the open connection
    os.execute("sleep 0.6")             -- the delayed responses all arrive meanwhile
    local first = c:poll(0, { budget = 0 })
    assert.is_true(#first <= 1, "one unit of work at budget 0, got " .. #first)
    assert.is_true(c:pending() >= 19, "left for later: " .. c:pending())
    local sizes = drain(c, hs, { budget = 0 })
    for _, n in ipairs(sizes) do assert.equals(1, n) end
    for i, h in ipairs(hs) do
      local content, err = h:result()
      assert.is_nil(err)
      assert.equals(emu.content(1, i), content.id)
    end
    assert.equals(0, c:pending())
    emu.clear_faults()
    c:close()
  end)

  it("makes progress at budget 0 from a cold client (token fetch, first connection, admission)", function()
    local c = client()
    local hs = {}
    for i = 1, 10 do hs[i] = c:submit("get_content", emu.PROVIDER, emu.content(1, i)) end
    local sizes = drain(c, hs, { budget = 0 })
    local n = 0
    for _, k in ipairs(sizes) do
      assert.equals(1, k)
      n = n + k
    end
    assert.equals(10, n)
    for i, h in ipairs(hs) do assert.equals(emu.content(1, i), (h:result()).id) end
    c:close()
  end)

  it("with a 1 ms budget finishes 64 creates, every one created once", function()
    local c = client()
    local hs, models = {}, {}
    for i = 1, 64 do
      models[i] = viva.assignment { learningContentId = emu.CONTENT, learnerUserId = emu.user(i % 50 + 1),
        assignmentType = "recommended", status = "notStarted", externalCourseActivityId = "frame-" .. i }
      hs[i] = c:submit("create", emu.PROVIDER, models[i])
    end
    drain(c, hs, { budget = 0.001 })
    for i, h in ipairs(hs) do
      local act, err = h:result()
      assert.is_nil(err)
      assert.equals("frame-" .. i, act.externalCourseActivityId)
      assert.equals(1, emu.creates(emu.PROVIDER, "frame-" .. i))
    end
    c:close()
  end)

  it("a budget over a timeout bounds the wait too; no budget keeps poll as it was", function()
    local c = client()
    assert.same({}, c:poll(0, { budget = 0.5 }))       -- nothing to do: returns at once
    assert.same({}, c:poll(0, {}))
    local h = c:submit("get_content", emu.PROVIDER, emu.CONTENT)
    local got = {}
    while #got == 0 do got = c:poll(5, { budget = 1 }) end
    assert.equals(h, got[1])
    c:close()
  end)

  it("names the argument and the option of a bad budget", function()
    local c = client()
    local function err_of(...)
      local args, n = { ... }, select("#", ...)
      -- not a tail call: LuaJIT names neither the method nor its arguments' numbers in one
      local ok, e = pcall(function() local r = c:poll((table.unpack or unpack)(args, 1, n)); return r end)
      assert.is_false(ok)
      return tostring(e)
    end
    assert.matches("bad argument #2 to 'poll' %(table expected, got number%)", err_of(0, 0.001))
    assert.matches("bad argument #2 to 'poll' %(budget must be a number of seconds, got string%)",
      err_of(0, { budget = "1ms" }))
    assert.matches("budget must be a finite number of seconds >= 0, got %-0?%.?0*1", err_of(0, { budget = -1 }))
    assert.matches("budget must be a finite number of seconds >= 0", err_of(0, { budget = 0 / 0 }))
    assert.matches("budget must be a finite number of seconds >= 0, got inf", err_of(0, { budget = math.huge }))
    assert.matches("unknown option 'budgte' %(poll takes { budget = seconds }%)", err_of(0, { budgte = 0.001 }))
    c:close()
  end)

  it("an io = \"external\" client takes the budget too", function()
    local c = viva.client { io = "external", graph_url = emu.graph_url, token = "t" }
    local h = c:submit("get_content", emu.PROVIDER, emu.CONTENT)
    assert.same({}, c:poll(0, { budget = 0 }))
    local reqs = c:take()
    assert.equals(1, #reqs)
    c:deliver(reqs[1].id, { status = 404, headers = {}, body = "" })
    local got = c:poll(0, { budget = 0 })
    assert.equals(h, got[1])
    assert.has_error(function() c:poll(0, { budget = -0.5 }) end)
    c:close()
  end)
end)

describe("warmup", function()
  before_each(function() emu.reset() end)

  it("fetches the token and opens the connection before the first request", function()
    local c = client()
    assert.equals(0, emu.counters().token_requests)
    assert.is_true(c:warmup())
    assert.equals(1, emu.counters().token_requests)
    local connects = c:stats().connects
    assert.is_true(connects >= 1)
    local content, err = c:get_content(emu.PROVIDER, emu.CONTENT)
    assert.is_nil(err)
    assert.equals(emu.CONTENT, content.id)
    assert.equals(1, emu.counters().token_requests)      -- the cached token
    assert.equals(connects, c:stats().connects)          -- the open connection
    c:close()
  end)

  it("fails with the auth error of bad credentials", function()
    local c = client { client_secret = "wrong" }
    local ok, err = c:warmup()
    assert.is_nil(ok)
    assert.equals("auth", err.kind)
    c:close()
  end)

  it("fails with the transport error of an untrusted server", function()
    local c = client { ca_file = "/etc/ssl/certs/ca-certificates.crt", max_retries = 0 }
    local ok, err = c:warmup()
    assert.is_nil(ok)
    assert.is_true(err.kind == "auth" or err.kind == "transport", err.kind)
    c:close()
  end)

  it("has a non-blocking form that poll drives", function()
    local c = client()
    local h = c:warmup { wait = false }
    assert.equals("providers_page", h:op())
    local hs = { h }
    drain(c, hs, { budget = 0.001 })
    assert.equals(1, emu.counters().token_requests)
    local connects = c:stats().connects
    assert.is_userdata((c:get_content(emu.PROVIDER, emu.CONTENT)))
    assert.equals(1, emu.counters().token_requests)
    assert.equals(connects, c:stats().connects)
    c:close()
  end)

  it("names bad options", function()
    local c = client()
    assert.has_error(function() c:warmup(true) end, "bad argument #1 to 'warmup' (table or nil expected, got boolean)")
    assert.has_error(function() c:warmup { wiat = false } end,
      "bad argument #1 to 'warmup' (unknown option 'wiat'; warmup takes { wait = boolean })")
    assert.has_error(function() c:warmup { wait = 0 } end, "bad argument #1 to 'warmup' (wait must be a boolean, got number)")
    c:close()
  end)

  it("on an io = \"external\" client runs through the driver, or hands the read to take()", function()
    local c = viva.client { io = "external", graph_url = emu.graph_url, token = "t" }
    assert.has_error(function() c:warmup() end)                   -- no driver: a sync call cannot wait
    local h = c:warmup { wait = false }
    local reqs = c:take()
    assert.equals(1, #reqs)
    assert.equals("GET", reqs[1].method)
    assert.matches("/employeeExperience/learningProviders%?%$top=1$", reqs[1].url)
    c:deliver(reqs[1].id, { status = 403, headers = {}, body = "" })
    assert.equals(h, c:poll(0)[1])
    local seen = 0
    local d = viva.client { io = "external", graph_url = emu.graph_url, token = "t", driver = function(cl)
      for _, r in ipairs(cl:take()) do
        seen = seen + 1
        cl:deliver(r.id, nil, "reset")
      end
    end, max_retries = 0 }
    local ok, err = d:warmup()
    assert.is_nil(ok)
    assert.equals("transport", err.kind)
    assert.equals(1, seen)
    c:close()
    d:close()
  end)
end)
