-- Every error row of graph-api.md §3 through the client, and the error object's fields.
local viva = require "vivalearning"
local emu = require "support.emulator"

local clients = require "support.client"

local function client(app, over)
  return clients.new(app, { max_retries = 0, backoff = { base = 0.01, cap = 0.05 } }, over)
end

local assignment = clients.assignments("err")

local function check_graph_error(err, status, code, message_pattern)
  assert.is_table(err)
  assert.equals(status, err.status)
  assert.equals(code, err.code)
  if message_pattern then assert.matches(message_pattern, err.message) end
  assert.is_string(err.request_id)
  assert.matches("^%x+%-%x+%-%x+%-%x+%-%x+$", err.client_request_id)
  assert.is_string(err.date)
  assert.equals(1, err.attempts)
  local line = tostring(err)
  assert.is_nil(line:find("\n"))
  assert.matches(tostring(status), line)
  assert.matches(code, line, 1, true)
end

describe("client errors (graph-api.md §3)", function()
  local c
  before_each(function()
    emu.reset()
    c = client()
  end)
  after_each(function() c:close() end)

  it("405 methodNotAllowed", function()
    -- the client only issues documented method/path pairs; a same-origin nextLink to $batch is a GET on it
    local page, err = c:activities_page { next_link = emu.graph_url .. "/$batch" }
    assert.is_nil(page)
    check_graph_error(err, 405, "methodNotAllowed", "This method isn't supported")
    assert.equals("http", err.kind)
  end)

  it("403 Forbidden: no permission scope", function()
    local r = client("reader")
    local act, err = r:create(emu.PROVIDER, assignment())
    assert.is_nil(act)
    check_graph_error(err, 403, "Forbidden", "doesn't have access")
    assert.equals("http", err.kind)
    r:close()
  end)

  it("403 Forbidden: the user license is not valid", function()
    local act, err = c:create(emu.PROVIDER, assignment { learnerUserId = emu.UNLICENSED })
    assert.is_nil(act)
    check_graph_error(err, 403, "Forbidden", "license is not valid")
  end)

  it("403 Forbidden: provider not valid for the learning content", function()
    local act, err = c:create(emu.PROVIDER_FABRIKAM, assignment())
    assert.is_nil(act)
    check_graph_error(err, 403, "Forbidden", "provider isn't valid")
  end)

  it("400 badRequest: provider not enabled", function()
    local act, err = c:create(emu.PROVIDER_DORMANT, assignment { learningContentId = emu.content(3, 1) })
    assert.is_nil(act)
    check_graph_error(err, 400, "badRequest", "isn't enabled")
  end)

  it("400 badRequest: unknown registrationId", function()
    local act, err = c:create("c0000000-0000-4000-8000-0000000000ff", assignment())
    assert.is_nil(act)
    check_graph_error(err, 400, "badRequest", "registrationId")
  end)

  it("400 badRequest: required / invalid input fields", function()
    -- what the client cannot know: a required field left out, a field that cannot change
    local t = assignment():totable()
    t.assignmentType = nil
    local act, err = c:create(emu.PROVIDER, viva.assignment(t))
    assert.is_nil(act)
    check_graph_error(err, 400, "badRequest", "Input field assignmentType is required")
    local a = assignment()
    assert(c:create(emu.PROVIDER, a))
    a.learnerUserId = emu.user(3)
    local ok
    ok, err = c:update(emu.PROVIDER, a)
    assert.is_nil(ok)
    check_graph_error(err, 400, "badRequest", "Input field learnerUserId is invalid")
    -- what it can: an invalid or empty field of a changes table is never sent
    local T = "#microsoft.graph.learningAssignment"
    local seq = emu.last_seq()
    for _, changes in ipairs { { ["@odata.type"] = T, dueDateTime = { timeZone = "UTC" } },
                               { ["@odata.type"] = T, dueDateTime = { dateTime = "" } },
                               { ["@odata.type"] = T, completionPercentage = 250 } } do
      ok, err = c:update(emu.PROVIDER, a.id, changes)
      assert.is_nil(ok)
      assert.equals("validation", err.kind)
    end
    assert.equals(0, #emu.log(seq))
  end)

  it("404 notFound", function()
    local act, err = c:get("00000000-0000-4000-8000-000000000404")
    assert.is_nil(act)
    check_graph_error(err, 404, "notFound", "doesn't exist")
    assert.equals("http", err.kind)
  end)

  it("500 internalServerError (not retried)", function()
    emu.fault { path = "/learningCourseActivities/", status = 500, count = 1 }
    local cc = client(nil, { max_retries = 3 })
    local act, err = cc:get("00000000-0000-4000-8000-000000000500")
    assert.is_nil(act)
    assert.equals(500, err.status)
    assert.equals("http", err.kind)
    assert.equals(1, err.attempts)
    cc:close()
  end)

  it("429 tooManyRequests with 'Retry after N minutes' and 503 serviceUnavailable", function()
    emu.fault { path = "/learningCourseActivities/", status = 429, body_minutes = 2, count = 1 }
    local act, err = c:get("00000000-0000-4000-8000-000000000429")
    assert.is_nil(act)
    assert.equals("throttled", err.kind)
    assert.equals(429, err.status)
    assert.equals(120, err.retry_after)
    emu.fault { path = "/learningCourseActivities/", status = 503, retry_after = "7", count = 1 }
    act, err = c:get("00000000-0000-4000-8000-000000000503")
    assert.is_nil(act)
    assert.equals("throttled", err.kind)
    assert.equals(503, err.status)
    assert.equals(7, err.retry_after)
    assert.matches("retry%-after 7s", tostring(err))
  end)

  it("401 from Graph with a fixed token is an auth error", function()
    local t = viva.client { graph_url = emu.graph_url, ca_file = emu.ca, token = "not-a-real-token" }
    local act, err = t:get("00000000-0000-4000-8000-000000000401")
    assert.is_nil(act)
    assert.equals("auth", err.kind)
    assert.equals(401, err.status)
    assert.equals("InvalidAuthenticationToken", err.code)
    assert.is_nil(tostring(err):find("not-a-real-token", 1, true))
    t:close()
  end)

  it("keeps Graph's innerError and the client-request-id we sent", function()
    local seq = emu.last_seq()
    local _, err = c:get("00000000-0000-4000-8000-000000000404")
    local sent
    for _, e in ipairs(emu.log(seq)) do if e.path:find("learningCourseActivities") then sent = e end end
    assert.equals(sent.client_request_id, err.client_request_id)
    assert.is_table(err.inner_error)
    assert.equals(err.request_id, err.inner_error["request-id"])
    assert.equals("GET", err.method)
    assert.matches("/learningCourseActivities/", err.url)
    assert.equals(viva.is_error(err), true)
  end)

  it("transport errors carry curl's cause", function()
    -- a closed port on loopback
    local t = viva.client { graph_url = "https://127.0.0.1:1/v1.0", ca_file = emu.ca, token = "t",
                            max_retries = 1, backoff = { base = 0.01, cap = 0.01 } }
    local act, err = t:get("x")
    assert.is_nil(act)
    assert.equals("transport", err.kind)
    assert.matches("Couldn't connect", err.cause)
    assert.equals(7, err.curl_code)
    assert.equals(2, err.attempts)        -- not sent: safe to retry
    t:close()
  end)

  it("raises on misuse, returns errors for data", function()
    assert.has_error(function() c:get(42) end)
    assert.has_error(function() c:create(emu.PROVIDER, 42) end)
    assert.has_error(function() c:submit("nope") end)
    assert.has_error(function() c:update(emu.PROVIDER, { id = "x", status = "completed" }) end,
      "vivalearning: update takes a model (its changes are sent), or an id and a changes table")
    assert.has_error(function() c:activities_page {} end, "vivalearning: activities_page needs user = id or me = true")
    assert.has_error(function() c:activities_page { user = "u", top = -1 } end, "vivalearning: top must be a non-negative integer")
    local v, err = c:get("")
    assert.is_nil(v)
    assert.equals("validation", err.kind)
  end)

  it("viva.error builds error objects for the Lua layer", function()
    local e = viva.error { kind = "protocol", message = "nextLink loop" }
    assert.is_true(viva.is_error(e))
    assert.equals("vivalearning: protocol error: nextLink loop", tostring(e))
    assert.is_false(viva.is_error({}))
  end)
end)
