-- The client's operations against the emulator: activities, pages, providers, contents, $batch,
-- and the same operations through submit/poll.
local viva = require "vivalearning"
local emu = require "support.emulator"

local clients = require "support.client"

local function app_client(over)
  return clients.new("importer", { backoff = { base = 0.01, cap = 0.05 } }, over)
end

-- adele through the console app (password grant): delegated scopes for /me and providers
local user_client = clients.user

local n = 0
local function ext() n = n + 1; return string.format("ops-%d-%d", os.time(), n) end

local function assignment(over)
  local t = {
    learningContentId = emu.CONTENT, learnerUserId = emu.LEARNER, assignmentType = "required",
    status = "notStarted", externalCourseActivityId = ext(),
    dueDateTime = { dateTime = "2026-12-01T00:00:00", timeZone = "UTC" },
  }
  for k, v in pairs(over or {}) do t[k] = v end
  return viva.assignment(t)
end

local function graph_requests(since, pattern)
  local out = {}
  for _, e in ipairs(emu.log(since)) do
    if not pattern or e.path:find(pattern) then out[#out + 1] = e end
  end
  return out
end

describe("client operations", function()
  local c
  before_each(function()
    emu.reset()
    c = app_client()
  end)
  after_each(function() c:close() end)

  it("creates an assignment, returns it with its id and gives the id to the caller's model", function()
    local a = assignment()
    local act, err = c:create(emu.PROVIDER, a)
    assert.is_nil(err)
    assert.is_string(act.id)
    assert.equals(act.id, a.id)
    assert.equals("required", act.assignmentType)
    assert.equals(a.externalCourseActivityId, act.externalCourseActivityId)
    assert.equals(1, emu.creates(emu.PROVIDER, a.externalCourseActivityId))
  end)

  it("creates a self-initiated course, and from a plain table validated by the model", function()
    local s, err = c:create(emu.PROVIDER, viva.self_initiated {
      learningContentId = emu.CONTENT, learnerUserId = emu.LEARNER, status = "inProgress",
      externalCourseActivityId = ext(), startedDateTime = "2026-01-05T10:00:00Z" })
    assert.is_nil(err)
    assert.matches("learningSelfInitiatedCourse", tostring(s))
    assert.equals("inProgress", s.status)
    local t, err2 = c:create(emu.PROVIDER, emu.assignment())
    assert.is_nil(err2)
    assert.is_string(t.id)
  end)

  it("never sends a table that fails validation", function()
    local seq = emu.last_seq()
    local act, err = c:create(emu.PROVIDER, emu.assignment { completionPercentage = 101 })
    assert.is_nil(act)
    assert.equals("validation", err.kind)
    assert.matches("completionPercentage", err.message)
    assert.equals(0, #graph_requests(seq, "learningCourseActivities"))
  end)

  it("gets by id, by external id and for a user", function()
    local a = assignment()
    local act = assert(c:create(emu.PROVIDER, a))
    local g = assert(c:get(act.id))
    assert.equals(act.id, g.id)
    local x = assert(c:get_by_external_id(emu.PROVIDER, a.externalCourseActivityId))
    assert.equals(act.id, x.id)
    local u = assert(c:get_for_user(emu.LEARNER, act.id))
    assert.equals(act.id, u.id)
  end)

  it("updates with only the changed fields, and sends nothing when nothing changed", function()
    local a = assignment()
    assert(c:create(emu.PROVIDER, a))
    local seq = emu.last_seq()
    assert.is_true(c:update(emu.PROVIDER, a))             -- nothing changed since create
    assert.equals(0, #graph_requests(seq, "learningCourseActivities"))
    a.completionPercentage = 60
    a.status = "inProgress"
    assert.is_true(c:update(emu.PROVIDER, a))
    local reqs = graph_requests(seq, "learningCourseActivities")
    assert.equals(1, #reqs)
    assert.equals("PATCH", reqs[1].method)
    local g = assert(c:get(a.id))
    assert.equals(60, g.completionPercentage)
    assert.equals("inProgress", g.status)
    -- the model is clean again: a second update sends nothing
    seq = emu.last_seq()
    assert.is_true(c:update(emu.PROVIDER, a))
    assert.equals(0, #graph_requests(seq, "learningCourseActivities"))
  end)

  it("updates by id with a changes table", function()
    local a = assignment()
    assert(c:create(emu.PROVIDER, a))
    assert.is_true(c:update(emu.PROVIDER, a.id, {
      ["@odata.type"] = "#microsoft.graph.learningAssignment", status = "completed", completionPercentage = 100 }))
    assert.equals("completed", assert(c:get(a.id)).status)
  end)

  it("deletes", function()
    local a = assignment()
    assert(c:create(emu.PROVIDER, a))
    assert.is_true(c:delete(emu.PROVIDER, a.id))
    local g, err = c:get(a.id)
    assert.is_nil(g)
    assert.equals(404, err.status)
  end)

  it("reads a user's activities page by page, following nextLink", function()
    for _ = 1, 5 do assert(c:create(emu.PROVIDER, assignment())) end
    local u = user_client()                  -- listing a learner's activities is delegated only
    local page = assert(u:activities_page { user = emu.LEARNER, top = 2, count = true })
    assert.equals(2, #page.value)
    assert.is_string(page.next_link)
    local seen = {}
    for _, m in ipairs(page.value) do seen[m.id] = true end
    local pages = 1
    while page.next_link do
      page = assert(u:activities_page { next_link = page.next_link })
      for _, m in ipairs(page.value) do
        assert.is_nil(seen[m.id])
        seen[m.id] = true
      end
      pages = pages + 1
    end
    local count = 0
    for _ in pairs(seen) do count = count + 1 end
    assert.equals(5, count)
    assert.equals(3, pages)
  end)

  it("passes $select and $skip", function()
    for _ = 1, 3 do assert(c:create(emu.PROVIDER, assignment())) end
    local u = user_client()
    local seq = emu.last_seq()
    local page = assert(u:activities_page { user = emu.LEARNER, select = { "id", "status" }, skip = 1 })
    assert.equals(2, #page.value)
    local q = graph_requests(seq, "learningCourseActivities")[1].query
    assert.matches("%$select=id,status", q)
    assert.matches("%$skip=1", q)
  end)

  it("reads me's activities with a delegated token", function()
    local a = assert(c:create(emu.PROVIDER, assignment { learnerUserId = emu.ADELE.id }))
    local u = user_client()
    local page = assert(u:activities_page { me = true })
    local found = false
    for _, m in ipairs(page.value) do if m.id == a.id then found = true end end
    assert.is_true(found)
    u:close()
  end)

  it("manages providers (delegated)", function()
    local u = user_client()
    local page = assert(u:providers_page {})
    assert.is_true(#page.value >= 3)
    local p = viva.provider {
      displayName = "Spec Academy",
      squareLogoWebUrlForDarkTheme = "https://example.com/a.png", longLogoWebUrlForDarkTheme = "https://example.com/b.png",
      squareLogoWebUrlForLightTheme = "https://example.com/c.png", longLogoWebUrlForLightTheme = "https://example.com/d.png",
      isCourseActivitySyncEnabled = true,
    }
    local created = assert(u:create_provider(p))
    assert.is_string(created.id)
    assert.equals(created.id, p.id)
    local g = assert(u:get_provider(created.id))
    assert.equals("Spec Academy", g.displayName)
    g.displayName = "Spec Academy II"
    assert.is_true(u:update_provider(g))
    assert.equals("Spec Academy II", assert(u:get_provider(created.id)).displayName)
    assert.is_true(u:update_provider(created.id, { loginWebUrl = "https://example.com/login" }))
    assert.equals("https://example.com/login", assert(u:get_provider(created.id)).loginWebUrl)
    assert.is_true(u:delete_provider(created.id))
    local gone, err = u:get_provider(created.id)
    assert.is_nil(gone)
    assert.equals(404, err.status)
    u:close()
  end)

  it("upserts, gets, lists and deletes contents by id and by externalId", function()
    local m = viva.content {
      externalId = "SPEC-1", title = "Spec course", contentWebUrl = "https://example.com/spec-1", languageTag = "en-us" }
    local up = assert(c:upsert_content(emu.PROVIDER, m))
    assert.equals("SPEC-1", up.externalId)
    assert.is_string(up.id)
    local byext = assert(c:get_content(emu.PROVIDER, { external_id = "SPEC-1" }))
    assert.equals(up.id, byext.id)
    local byid = assert(c:get_content(emu.PROVIDER, up.id))
    assert.equals("Spec course", byid.title)
    byid.title = "Spec course v2"
    local up2 = assert(c:upsert_content(emu.PROVIDER, byid))          -- by id now
    assert.equals("Spec course v2", up2.title)
    local page = assert(c:contents_page { provider = emu.PROVIDER, top = 5 })
    assert.equals(5, #page.value)
    assert.is_string(page.next_link)
    assert.is_true(c:delete_content(emu.PROVIDER, { external_id = "SPEC-1" }))
    local gone, err = c:get_content(emu.PROVIDER, up.id)
    assert.is_nil(gone)
    assert.equals(404, err.status)
    assert.is_true(c:delete_content(emu.PROVIDER, emu.content(1, 2)))
  end)

  it("sends a $batch and maps each result back to its request", function()
    local keep, victim = assignment(), assignment()
    assert(c:create(emu.PROVIDER, keep))
    assert(c:create(emu.PROVIDER, victim))
    local a1, a2 = assignment(), assignment()
    local seq = emu.last_seq()
    local res = assert(c:batch {
      { op = "create", provider = emu.PROVIDER, model = a1 },
      { op = "get", id = "00000000-0000-4000-8000-00000000dead" },
      { op = "create", provider = emu.PROVIDER, model = a2 },
      { op = "get_by_external_id", provider = emu.PROVIDER, external_id = keep.externalCourseActivityId },
      -- independent steps run in any order on Graph (and in the emulator): the delete is not of the entity step 4 reads
      { op = "delete", provider = emu.PROVIDER, id = victim.id },
      { op = "create", provider = emu.PROVIDER, model = emu.assignment { completionPercentage = -1 } },
    })
    assert.equals(6, #res)
    assert.is_true(res[1].ok); assert.equals(201, res[1].status); assert.equals(a1.id, res[1].value.id)
    assert.is_false(res[2].ok); assert.equals(404, res[2].status); assert.equals("http", res[2].err.kind)
    assert.equals("notFound", res[2].err.code)
    assert.is_true(res[3].ok); assert.equals(a2.id, res[3].value.id)
    assert.is_true(res[4].ok); assert.equals(keep.id, res[4].value.id)
    assert.is_true(res[5].ok); assert.equals(204, res[5].status)
    assert.is_false(res[6].ok); assert.equals("validation", res[6].err.kind)   -- never sent
    -- one $batch on the wire, carrying the five valid items only
    local outer, inner = 0, 0
    for _, e in ipairs(graph_requests(seq)) do
      if e.path == "/v1.0/$batch" then outer = outer + 1 else inner = inner + 1 end
    end
    assert.equals(1, outer)
    assert.equals(5, inner)
  end)

  it("answers a batch whose items all fail validation without sending it", function()
    local seq = emu.last_seq()
    local res = assert(c:batch {
      { op = "get", id = ".." },
      { op = "create", provider = emu.PROVIDER, model = emu.assignment { completionPercentage = 101 } },
    })
    assert.equals(2, #res)
    assert.is_false(res[1].ok); assert.equals("validation", res[1].err.kind)
    assert.is_false(res[2].ok); assert.equals("validation", res[2].err.kind)
    assert.equals(0, #graph_requests(seq))
  end)

  it("refuses a batch of more than 20", function()
    local items = {}
    for i = 1, 21 do items[i] = { op = "get", id = "x" .. i } end
    assert.has_error(function() c:batch(items) end, "vivalearning: batch takes 1 to 20 requests, got 21")
  end)

  it("runs every operation through submit/poll with the same results", function()
    -- the lenient variant (A5 with an app token): this is about submit/poll, not permissions
    emu.settings { app_can_list_user_activities = true }
    local a = assignment()
    local h = c:submit("create", emu.PROVIDER, a)
    assert.is_false(h:done())
    local done = {}
    while #done == 0 do done = c:poll(1) end
    assert.equals(h, done[1])
    local act, err = h:result()
    assert.is_nil(err)
    assert.equals(a.id, act.id)
    local handles = {
      c:submit("get", a.id),
      c:submit("get_by_external_id", emu.PROVIDER, a.externalCourseActivityId),
      c:submit("get_for_user", emu.LEARNER, a.id),
      c:submit("activities_page", { user = emu.LEARNER }),
      c:submit("contents_page", { provider = emu.PROVIDER }),
      c:submit("get_content", emu.PROVIDER, emu.CONTENT),
      c:submit("batch", { { op = "get", id = a.id } }),
    }
    local got = 0
    while got < #handles do got = got + #c:poll(1) end
    assert.equals(a.id, (handles[1]:result()).id)
    assert.equals(a.id, (handles[2]:result()).id)
    assert.equals(a.id, (handles[3]:result()).id)
    assert.is_table((handles[4]:result()).value)
    assert.is_table((handles[5]:result()).value)
    assert.equals(emu.CONTENT, (handles[6]:result()).id)
    assert.is_true((handles[7]:result())[1].ok)
    a.status = "completed"
    local u = c:submit("update", emu.PROVIDER, a)
    while not u:done() do c:poll(1) end
    assert.is_true(u:result())
    local d = c:submit("delete", emu.PROVIDER, a.id)
    while not d:done() do c:poll(1) end
    assert.is_true(d:result())
    assert.equals(0, #c:poll(0))
  end)

  it("hands back a validation error through a handle that is done at once", function()
    local h = c:submit("get", "..")
    assert.is_true(h:done())
    local v, err = h:result()
    assert.is_nil(v)
    assert.equals("validation", err.kind)
    local done = c:poll(0)
    assert.equals(h, done[1])
  end)
end)
