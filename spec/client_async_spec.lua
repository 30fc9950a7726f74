-- submit/poll: 50 concurrent transfers, our own admission control, frame-loop polling.
local viva = require "vivalearning"
local emu = require "support.emulator"

local clients = require "support.client"

local function client(over)
  return clients.new("importer", { backoff = { base = 0.01, cap = 0.05 } }, over)
end

describe("client submit/poll", function()
  before_each(function() emu.reset() end)

  it("runs 50 creates concurrently, each result mapped to its handle", function()
    local c = client { max_concurrency = 50 }
    local hs, models = {}, {}
    for i = 1, 50 do
      models[i] = viva.assignment { learningContentId = emu.CONTENT, learnerUserId = emu.user(i),
        assignmentType = "recommended", status = "notStarted", externalCourseActivityId = "async-" .. i }
      hs[i] = c:submit("create", emu.PROVIDER, models[i])
    end
    local seen, polls = {}, 0
    while #seen < 50 do
      for _, h in ipairs(c:poll(1)) do seen[#seen + 1] = h end
      polls = polls + 1
      assert.is_true(polls < 1000)
    end
    for i, h in ipairs(hs) do
      assert.is_true(h:done())
      local act, err = h:result()
      assert.is_nil(err)
      assert.equals("async-" .. i, act.externalCourseActivityId)
      assert.equals(emu.user(i), act.learnerUserId)
      assert.equals(act.id, models[i].id)
      assert.equals(1, emu.creates(emu.PROVIDER, "async-" .. i))
    end
    local st = c:stats()
    assert.is_true(st.max_active > 8, "max in flight " .. st.max_active)
    assert.is_true(st.connects <= 3, "connections " .. st.connects)
    assert.equals(0, c:pending())
    c:close()
  end)

  it("never has more than max_concurrency transfers in flight", function()
    emu.fault { path = "/learningContents/", delay = 0.2 }
    local c = client { max_concurrency = 4 }
    local hs = {}
    for i = 1, 20 do hs[i] = c:submit("get_content", emu.PROVIDER, emu.content(1, i)) end
    assert.equals(20, c:pending())
    local got = 0
    while got < 20 do
      got = got + #c:poll(0.05)
      assert.is_true(c:stats().active <= 4)
    end
    assert.equals(4, c:stats().max_active)
    for _, h in ipairs(hs) do assert.is_userdata((h:result())) end
    emu.clear_faults()
    c:close()
  end)

  it("works from a frame loop with poll(0)", function()
    local c = client()
    local h = c:submit("get_content", emu.PROVIDER, emu.CONTENT)
    local frames = 0
    while not h:done() do
      c:poll(0)
      frames = frames + 1
      assert.is_true(frames < 1e6)
    end
    assert.equals(emu.CONTENT, (h:result()).id)
    assert.equals(0, #c:poll(0))
    c:close()
  end)

  it("keeps finished handles for poll while a synchronous call runs", function()
    local c = client()
    local h = c:submit("get_content", emu.PROVIDER, emu.CONTENT)
    assert(c:get_content(emu.PROVIDER, emu.content(1, 2)))
    local done = c:poll(0)
    if #done == 0 then done = c:poll(1) end
    assert.equals(h, done[1])
    c:close()
  end)

  it("raises when a result is read before the request is done", function()
    emu.fault { path = "/learningContents/", delay = 0.3, count = 1 }
    local c = client()
    local h = c:submit("get_content", emu.PROVIDER, emu.CONTENT)
    assert.has_error(function() h:result() end, "vivalearning: request not finished yet (poll until handle:done())")
    while not h:done() do c:poll(1) end
    assert.is_userdata((h:result()))
    c:close()
  end)
end)
