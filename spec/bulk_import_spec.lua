-- viva.bulk.import against the real emulator through the real client: every source kind,
-- every mode, invalid rows, the results file. Needs VIVA_EMU_DIR (spec/run sets it).
local viva = require "vivalearning"
local sample = require "vivalearning.sample"
local results = require "vivalearning.results"
local jsonl = require "vivalearning.jsonl"

local emu = require "support.emulator"
local PROVIDER = sample.provider

local client = require("support.lualayer").client

local function creates()
  return emu.counters().creates[PROVIDER] or {}
end

local function tmp(ext) return os.tmpname() .. ext end

local function outcomes(path)
  local byrow, counts, n = {}, {}, 0
  for r in results.read(path) do
    n = n + 1
    assert.is_nil(byrow[r.row], "row " .. tostring(r.row) .. " has two outcomes")
    byrow[r.row] = r
    counts[r.outcome] = (counts[r.outcome] or 0) + 1
  end
  return byrow, counts, n
end

describe("bulk import", function()
  local c
  setup(function() c = client() end)
  before_each(function() emu.reset() end)

  it("imports a CSV file: valid rows created once, invalid rows reported and never sent", function()
    local src, res = tmp(".csv"), tmp(".csv")
    local invalid = sample.write(src, 300, { invalid = 5, prefix = "csv-" })
    local s = assert(viva.bulk.import(c, src, { provider = PROVIDER, results = res }))
    assert.equal(300, s.read)
    assert.equal(295, s.created)
    assert.equal(5, s.failed)
    assert.equal(5, s.invalid)
    assert.equal(s.read, s.created + s.updated + s.unchanged + s.deleted + s.failed)
    -- the emulator saw exactly one create per valid row, none for the invalid ones
    local cr = creates()
    local n = 0
    for ext, k in pairs(cr) do n = n + 1; assert.equal(1, k, ext) end
    assert.equal(295, n)
    -- results: one line per row; invalid rows name their field
    local byrow, counts, lines = outcomes(res)
    assert.equal(300, lines)
    assert.equal(295, counts.created)
    for _, bad in ipairs(invalid) do
      local r = byrow[bad.row]
      assert.equal("failed", r.outcome)
      assert.equal("invalidRow", r.code)
      assert.matches(bad.field, r.message, 1, true)
      if r.external_id then assert.is_nil(cr[r.external_id]) end
    end
    for i = 1, 300 do
      local r = byrow[i]
      if r.outcome == "created" then
        assert.equal(201, r.status)
        assert.truthy(r.id)
        assert.equal(("csv-%06d"):format(i), r.external_id)
      end
    end
    -- what was created reads back with the row's fields
    local got = assert(c:get_by_external_id(PROVIDER, "csv-000001"))
    assert.equal(byrow[1].id, got.id)
    os.remove(src); os.remove(res)
  end)

  it("imports a JSON Lines file, with results as JSON Lines", function()
    local src, res = tmp(".jsonl"), tmp(".jsonl")
    sample.write(src, 60, { prefix = "jl-" })
    local s = assert(viva.bulk.import(c, src, { provider = PROVIDER, results = res }))
    assert.equal(60, s.created)
    local _, counts, lines = outcomes(res)
    assert.equal(60, lines); assert.equal(60, counts.created)
    local f = assert(io.open(res)); local first = f:read("*l"); f:close()
    assert.truthy(jsonl.decode(first).outcome)
    os.remove(src); os.remove(res)
  end)

  it("imports a Lua array of nested and dotted tables, with the type from the options", function()
    local rows = {
      { externalCourseActivityId = "arr-1", learnerUserId = sample.learner(2), learningContentId = sample.content(1),
        status = "notStarted", assignmentType = "required",
        dueDateTime = { dateTime = "2026-12-01T00:00:00", timeZone = "UTC" } },
      { externalCourseActivityId = "arr-2", learnerUserId = sample.learner(3), learningContentId = sample.content(2),
        status = "inProgress", completionPercentage = 40, assignmentType = "recommended",
        ["notes.content"] = "dotted", ["notes.contentType"] = "text" },
      { externalCourseActivityId = "arr-3", type = "self_initiated", learnerUserId = sample.learner(4),
        learningContentId = sample.content(3), status = "inProgress", startedDateTime = "2026-01-02T03:04:05Z" },
    }
    local seen = {}
    local s = assert(viva.bulk.import(c, rows, { provider = PROVIDER, type = "assignment",
                                                 on_outcome = function(r) seen[#seen + 1] = r end }))
    assert.equal(3, s.created)
    assert.equal(3, #seen)
    local a2 = assert(c:get_by_external_id(PROVIDER, "arr-2"))
    assert.equal("dotted", a2.notes.content)
    assert.equal(40, a2.completionPercentage)
    local a3 = assert(c:get_by_external_id(PROVIDER, "arr-3"))
    assert.equal("#microsoft.graph.learningSelfInitiatedCourse", a3:totable()["@odata.type"])
  end)

  it("imports from an iterator, one row at a time, with single requests", function()
    local it = sample.rows(45, { prefix = "it-" })
    local src = function() return (it()) end
    local s = assert(viva.bulk.import(c, src, { provider = PROVIDER, batch = 1 }))
    assert.equal(45, s.created)
    assert.equal(45, s.requests)
    local n = 0
    for _, k in pairs(creates()) do n = n + 1; assert.equal(1, k) end
    assert.equal(45, n)
  end)

  it("upserts: changed rows updated, unchanged rows not sent, new rows created", function()
    local v1, v2, res = tmp(".csv"), tmp(".csv"), tmp(".csv")
    sample.write(v1, 100, { prefix = "up-" })
    assert.equal(100, assert(viva.bulk.import(c, v1, { provider = PROVIDER })).created)
    -- v2: rows 1..120 (20 new), every 10th of the first 100 changed
    sample.write(v2, 120, { prefix = "up-", changed = function(i) return i % 10 == 0 and i <= 100 end })
    local since = emu.last_seq()
    local s = assert(viva.bulk.import(c, v2, { provider = PROVIDER, mode = "upsert", results = res }))
    assert.equal(120, s.read)
    assert.equal(20, s.created)
    local changed_already_completed = 0
    -- a changed row whose status was already "completed" with the same date stays unchanged;
    -- count what really changed from the results instead of guessing
    local byrow = outcomes(res)
    for i = 10, 100, 10 do
      assert.is_true(byrow[i].outcome == "updated" or byrow[i].outcome == "unchanged")
      if byrow[i].outcome == "unchanged" then changed_already_completed = changed_already_completed + 1 end
    end
    assert.equal(10 - changed_already_completed, s.updated)
    assert.equal(90 + changed_already_completed, s.unchanged)
    -- unchanged rows were not written: PATCH count equals updated count
    local patches = 0
    for _, e in ipairs(emu.log(since)) do if e.method == "PATCH" then patches = patches + 1 end end
    assert.equal(s.updated, patches)
    local a = assert(c:get_by_external_id(PROVIDER, "up-000020"))
    assert.equal("completed", a.status)
    assert.equal(100, a.completionPercentage)
    -- nothing created twice
    for ext, k in pairs(creates()) do assert.equal(1, k, ext) end
    -- running the same file again changes nothing
    local s2 = assert(viva.bulk.import(c, v2, { provider = PROVIDER, mode = "upsert" }))
    assert.equal(120, s2.unchanged)
    os.remove(v1); os.remove(v2); os.remove(res)
  end)

  it("deletes by external id and by id; a missing one fails with 404", function()
    local src = tmp(".csv")
    sample.write(src, 30, { prefix = "del-" })
    assert.equal(30, assert(viva.bulk.import(c, src, { provider = PROVIDER })).created)
    local a5 = assert(c:get_by_external_id(PROVIDER, "del-000005"))
    local rows = {}
    for i = 1, 30 do
      if i == 5 then rows[#rows + 1] = { id = a5.id }
      else rows[#rows + 1] = { externalCourseActivityId = ("del-%06d"):format(i) } end
    end
    rows[#rows + 1] = { externalCourseActivityId = "del-missing" }
    rows[#rows + 1] = { learnerUserId = "no key at all" }
    local res = tmp(".csv")
    local s = assert(viva.bulk.import(c, rows, { provider = PROVIDER, mode = "delete", results = res }))
    assert.equal(30, s.deleted)
    assert.equal(2, s.failed)
    local byrow = outcomes(res)
    assert.equal(404, byrow[31].status)
    assert.equal("invalidRow", byrow[32].code)
    local gone, err = c:get_by_external_id(PROVIDER, "del-000007")
    assert.is_nil(gone); assert.equal(404, err.status)
    os.remove(src); os.remove(res)
  end)

  it("dry_run validates every row and sends nothing", function()
    local src = tmp(".csv")
    sample.write(src, 50, { invalid = 5 })
    local before = emu.counters()
    local s = assert(viva.bulk.import(c, src, { provider = PROVIDER, dry_run = true }))
    assert.equal(50, s.read); assert.equal(45, s.valid); assert.equal(5, s.failed)
    local after = emu.counters()
    assert.equal(before.requests, after.requests)
    os.remove(src)
  end)

  it("reports unreadable CSV rows and rows of another provider, and goes on", function()
    local src = tmp(".csv")
    local f = assert(io.open(src, "w"))
    f:write("type,externalCourseActivityId,learnerUserId,learningContentId,status,assignmentType,learningProviderId\n")
    f:write(("assignment,ok-1,%s,%s,notStarted,required,\n"):format(sample.learner(1), sample.content(1)))
    f:write('assignment,bad"quote,x,y,notStarted,required,\n')
    f:write(("assignment,ok-2,%s,%s,notStarted,required,c0000000-0000-4000-8000-000000000002\n"):format(sample.learner(1), sample.content(2)))
    f:write("assignment,short-row\n")
    f:write(("assignment,ok-3,%s,%s,notStarted,required,\n"):format(sample.learner(1), sample.content(3)))
    f:close()
    local res = tmp(".csv")
    local s = assert(viva.bulk.import(c, src, { provider = PROVIDER, results = res }))
    assert.equal(5, s.read); assert.equal(2, s.created); assert.equal(3, s.failed)
    local byrow = outcomes(res)
    assert.matches("quote", byrow[2].message)
    assert.matches("learningProviderId", byrow[3].message)
    assert.matches("fields", byrow[4].message)
    os.remove(src); os.remove(res)
  end)

  it("fails the second of two rows with the same external id; Graph's 409 catches one seen before", function()
    local row = { type = "assignment", externalCourseActivityId = "dup-1", learnerUserId = sample.learner(1),
                  learningContentId = sample.content(1), status = "notStarted", assignmentType = "required" }
    local res = tmp(".csv")
    local s = assert(viva.bulk.import(c, { row, row }, { provider = PROVIDER, results = res }))
    assert.equal(1, s.created); assert.equal(1, s.failed)
    local byrow = outcomes(res)
    assert.equal("duplicateRow", byrow[2].code)
    assert.equal(1, creates()["dup-1"])
    s = assert(viva.bulk.import(c, { row }, { provider = PROVIDER, results = res }))
    assert.equal(1, s.failed)
    assert.equal(409, outcomes(res)[1].status)
    os.remove(res)
  end)

  it("fails a row that Graph refuses, with its status, code and request id", function()
    local rows = { { type = "assignment", externalCourseActivityId = "unlic-1",
                     learnerUserId = "b0000000-0000-4000-8000-000000000901", -- unlicensed user
                     learningContentId = sample.content(1), status = "notStarted", assignmentType = "required" } }
    local res = tmp(".csv")
    local s = assert(viva.bulk.import(c, rows, { provider = PROVIDER, results = res }))
    assert.equal(1, s.failed)
    local r = outcomes(res)[1]
    assert.is_true(r.status >= 400 and r.status < 500)
    assert.truthy(r.code); assert.truthy(r.request_id)
    os.remove(res)
  end)

  it("raises on misuse and returns nil, err when the source cannot be read", function()
    assert.has_error(function() viva.bulk.import(c, {}, {}) end)
    assert.has_error(function() viva.bulk.import(c, {}, { provider = PROVIDER, mode = "merge" }) end)
    assert.has_error(function() viva.bulk.import(c, {}, { provider = PROVIDER, batch = 21 }) end)
    local s, err = viva.bulk.import(c, "/nonexistent/file.csv", { provider = PROVIDER })
    assert.is_nil(s); assert.matches("cannot read", err)
  end)
end)
