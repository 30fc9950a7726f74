-- Paging (c:activities, c:activity_pages, c:providers, c:contents ...) over the real emulator.
local viva = require "vivalearning"
local sample = require "vivalearning.sample"
local emu = require "support.emulator"

local PROVIDER = emu.PROVIDER

local client = require("support.lualayer").client

-- n activities for one learner (through the bulk importer), external ids pg-000001..
local function seed_learner(c, learner, n)
  local rows = {}
  for i = 1, n do
    rows[i] = { type = "self_initiated", externalCourseActivityId = ("pg-%06d"):format(i), learnerUserId = learner,
                learningContentId = sample.content(i), status = "inProgress", startedDateTime = "2026-01-01T00:00:00Z" }
  end
  local s = assert(viva.bulk.import(c, rows, { provider = PROVIDER }))
  assert.equal(n, s.created)
end

describe("pager", function()
  local c, u
  local learner = emu.user(7)
  setup(function()
    c = client()
    -- a learner's activities are listed for a delegated token only (graph-api.md §1.0)
    u = require("support.lualayer").user_client()
    emu.reset()
    seed_learner(c, learner, 1000)
  end)
  after_each(function() emu.settings({ page_size = 50, empty_pages = 0, next_link_loop = false }) end)

  it("iterates 1000 items over 100 pages, each exactly once, lazily", function()
    emu.settings({ page_size = 10 })
    local since = emu.last_seq()
    local seen, n = {}, 0
    local it = u:activities { user = learner }
    -- nothing fetched before the first call
    assert.equal(0, #emu.log(since))
    local first = it()
    assert.truthy(first)
    local gets = 0
    for _, e in ipairs(emu.log(since)) do if e.method == "GET" then gets = gets + 1 end end
    assert.equal(1, gets)
    seen[first.externalCourseActivityId] = true
    n = 1
    for act, err in it do
      assert.truthy(act, tostring(err))
      assert.is_nil(seen[act.externalCourseActivityId])
      seen[act.externalCourseActivityId] = true
      n = n + 1
    end
    assert.equal(1000, n)
    gets = 0
    for _, e in ipairs(emu.log(since)) do
      if e.method == "GET" and e.path:find("learningCourseActivities", 1, true) then gets = gets + 1 end
    end
    assert.equal(100, gets)
  end)

  it("gives pages with their number, and stops when nextLink is absent", function()
    emu.settings({ page_size = 300 })
    local sizes, numbers = {}, {}
    for page, err in u:activity_pages { user = learner } do
      assert.truthy(page, tostring(err))
      sizes[#sizes + 1] = #page.value
      numbers[#numbers + 1] = page.number
    end
    assert.same({ 300, 300, 300, 100 }, sizes)
    assert.same({ 1, 2, 3, 4 }, numbers)
  end)

  it("passes top and select through, and they survive into the nextLink", function()
    local n, pages = 0, 0
    for page, err in u:activity_pages { user = learner, top = 250, select = "id,status" } do
      assert.truthy(page, tostring(err))
      pages = pages + 1
      for _, act in ipairs(page.value) do
        n = n + 1
        assert.truthy(act.id)
        assert.is_nil(act.learnerUserId)
      end
    end
    assert.equal(1000, n)
    assert.equal(4, pages)
  end)

  it("ends with a pageLimit error at the page cap instead of running on", function()
    emu.settings({ page_size = 10 })
    local n, last_err, calls = 0, nil, 0
    for act, err in u:activities { user = learner, max_pages = 3 } do
      calls = calls + 1
      if not act then last_err = err; break end
      n = n + 1
    end
    assert.equal(30, n)
    assert.truthy(last_err)
    assert.equal("pageLimit", last_err.code)
    assert.equal("protocol", last_err.kind)
    assert.matches("3 pages", tostring(last_err))
  end)

  it("yields false, err (never raises) when a page fails, then ends", function()
    local got = {}
    for act, err in u:activities { user = emu.user(999) } do
      got[#got + 1] = { act, err }
    end
    assert.equal(1, #got)
    assert.is_false(got[1][1])
    assert.truthy(got[1][2].status)
    -- an app without read permission: 403 through the iterator
    local noperm = client("noperm")
    local it = noperm:activities { user = learner }
    local a, err = it()
    assert.is_false(a)
    assert.equal(403, err.status)
    assert.is_nil((it()))
  end)

  it("yields an error mid-way when a later page fails, after the items it had", function()
    emu.settings({ page_size = 100 })
    local n, e = 0, nil
    -- read two pages, then every GET of the collection answers 500 (the client's retries too)
    local it = u:activities { user = learner }
    for _ = 1, 200 do assert.truthy(it()); n = n + 1 end
    emu.fault({ method = "GET", path = "/v1.0/users/.*/learningCourseActivities", status = 500, count = 100 })
    for act, err in it do
      if not act then e = err; break end
      n = n + 1
    end
    emu.clear_faults()
    assert.equal(200, n)
    assert.truthy(e)
    assert.equal(500, e.status)
  end)

  it("follows empty pages that still carry a nextLink", function()
    emu.settings({ page_size = 100, empty_pages = 3 })
    local n, pages, empty = 0, 0, 0
    for page, err in u:activity_pages { user = learner } do
      assert.truthy(page, tostring(err))
      pages = pages + 1
      if #page.value == 0 then empty = empty + 1 end
      n = n + #page.value
    end
    assert.equal(1000, n)
    assert.equal(3, empty)
    assert.equal(13, pages)
    local seen, m = {}, 0
    for act, err in u:activities { user = learner } do
      assert.truthy(act, tostring(err))
      assert.is_nil(seen[act.id]); seen[act.id] = true
      m = m + 1
    end
    assert.equal(1000, m)
  end)

  it("ends a self-referencing nextLink loop with a nextLinkLoop error instead of spinning", function()
    emu.settings({ page_size = 10, next_link_loop = true })
    local items, err_seen, calls = 0, nil, 0
    for act, err in u:activities { user = learner } do
      calls = calls + 1
      assert.is_true(calls < 100, "the pager is spinning")
      if not act then err_seen = err; break end
      items = items + 1
    end
    assert.truthy(err_seen)
    assert.equal("nextLinkLoop", err_seen.code)
    assert.equal("protocol", err_seen.kind)
    assert.is_true(items <= 20)      -- at most the page that carried the repeated link again
    -- the page iterator: pages, then the error, then the end
    local pages, perr = 0, nil
    local it = u:activity_pages { user = learner }
    for page, err in it do
      if not page then perr = err; break end
      pages = pages + 1
      assert.is_true(pages < 10, "the pager is spinning")
    end
    assert.equal("nextLinkLoop", perr.code)
    assert.is_nil((it()))
    emu.settings({ next_link_loop = false })
  end)

  it("returns an empty sequence for a learner with no activities", function()
    local n = 0
    for act in u:activities { user = emu.user(40) } do n = n + 1 end
    assert.equal(0, n)
  end)

  it("pages contents of a provider and (delegated) providers", function()
    local ids = {}
    emu.settings({ page_size = 7 })
    for content, err in c:contents { provider = PROVIDER } do
      assert.truthy(content, tostring(err))
      ids[#ids + 1] = content.externalId
    end
    assert.equal(20, #ids)
    local pages = 0
    for p in c:content_pages { provider = PROVIDER } do assert.truthy(p); pages = pages + 1 end
    assert.equal(3, pages)
    local user = client("console", { username = emu.ADELE.upn, password = emu.ADELE.password })
    local names = {}
    for p, err in user:providers {} do
      assert.truthy(p, tostring(err))
      names[#names + 1] = p.displayName
    end
    table.sort(names)
    assert.same({ "Contoso Academy", "Dormant LMS", "Fabrikam Learning" }, names)
  end)

  it("raises on misuse (not a table of options)", function()
    assert.has_error(function() c:activities("user") end)
  end)
end)
