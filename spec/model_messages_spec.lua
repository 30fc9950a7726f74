-- Validation messages of the C model (and of the request builders): they say what is wrong in
-- the words a user would use (a date that is not on the calendar, an enum member in the wrong
-- case) and always show the offending value.
local viva = require "vivalearning"
local clients = require "support.client"

local function message(fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

local function has(msg, ...)
  for i = 1, select("#", ...) do
    local text = select(i, ...)
    assert.is_truthy(msg:find(text, 1, true), "'" .. msg .. "' lacks '" .. text .. "'")
  end
end

local function problem_of(kind, t, field)
  local ok, errs = viva.check(kind, t)
  assert.is_false(ok)
  for _, e in ipairs(errs) do if e.field == field then return e.problem, e end end
  error("no problem reported for " .. field)
end

describe("validation messages", function()
  describe("dates", function()
    it("a date that is not on the calendar says so, not that an offset is expected", function()
      for _, v in ipairs { "2026-02-30T17:00:00Z", "2023-02-29T00:00:00Z", "1900-02-29T00:00:00+01:00",
                           "2026-13-01T00:00:00Z", "2026-00-10T00:00:00Z", "2026-04-31T00:00:00Z",
                           "2026-01-00T00:00:00Z" } do
        local msg = message(function() viva.assignment { completedDateTime = v } end)
        has(msg, "completedDateTime", "not a calendar date", '"' .. v .. '"')
        assert.is_nil(msg:find("offset", 1, true), msg)
        has(problem_of("assignment", { completedDateTime = v }, "completedDateTime"), "not a calendar date")
      end
      local msg = message(function() viva.self_initiated { startedDateTime = "2026-02-30T17:00:00Z" } end)
      has(msg, "startedDateTime: not a calendar date", '"2026-02-30T17:00:00Z"')
      msg = message(function() viva.content { createdDateTime = "2025-11-31T08:00:00.5+02:00" } end)
      has(msg, "createdDateTime: not a calendar date")
    end)

    it("a time of day out of range says so", function()
      for _, v in ipairs { "2026-02-10T24:00:00Z", "2026-02-10T23:60:00Z", "2026-02-10T23:59:60Z" } do
        local msg = message(function() viva.assignment { assignedDateTime = v } end)
        has(msg, "assignedDateTime", "not a time of day", '"' .. v .. '"')
      end
    end)

    it("the local date-time of dateTimeTimeZone gets the same messages", function()
      local msg = message(function() viva.assignment { dueDateTime = { dateTime = "2026-02-30T17:00:00" } } end)
      has(msg, "dueDateTime.dateTime: not a calendar date", '"2026-02-30T17:00:00"')
      msg = message(function() viva.assignment { dueDateTime = { dateTime = "2026-02-10T25:00:00" } } end)
      has(msg, "dueDateTime.dateTime: not a time of day")
    end)

    it("a missing or malformed offset still names the expected form", function()
      local msg = message(function() viva.assignment { completedDateTime = "2026-02-10T17:00:00" } end)
      has(msg, "completedDateTime: DateTimeOffset string with Z or +hh:mm offset expected", '"2026-02-10T17:00:00"')
      msg = message(function() viva.assignment { completedDateTime = "2026-02-10T17:00:00+0100" } end)
      has(msg, "offset expected")
    end)
  end)

  describe("enums", function()
    it("a member in the wrong case gets did you mean", function()
      for _, v in ipairs { "Completed", "COMPLETED", "compLeted" } do
        local msg = message(function() viva.assignment { status = v } end)
        has(msg, "status: one of notStarted, inProgress, completed, unknownFutureValue expected",
            "did you mean 'completed'?", '"' .. v .. '"')
        has(problem_of("assignment", { status = v }, "status"), "did you mean 'completed'?")
      end
      local a = viva.assignment {}
      has(message(function() a.status = "NOTSTARTED" end), "did you mean 'notStarted'?")
      has(message(function() a.assignmentType = "Required" end), "did you mean 'required'?")
      has(message(function() viva.content { level = "Beginner" } end), "did you mean 'beginner'?")
      has(message(function() a.notes = { contentType = "HTML", content = "x" } end),
          "notes.contentType", "did you mean 'html'?", '"HTML"')
    end)

    it("a value that is no member in any case gets no suggestion", function()
      local msg = message(function() viva.assignment { status = "done" } end)
      assert.is_nil(msg:find("did you mean", 1, true), msg)
      has(msg, '"done"')
    end)
  end)

  describe("the offending value", function()
    it("is in every message of a model", function()
      local deep = {}
      local t = deep
      for _ = 1, 70 do t.x = {}; t = t.x end
      local a = viva.assignment {}
      local cases = {
        { function() viva.assignment { statuss = "x" } end, "statuss", 'got "x"' },
        { function() viva.assignment { completionPercentage = 101 } end, "completionPercentage", "got 101" },
        { function() viva.assignment { dueDateTime = { dateTime = "2026-01-01T00:00:00", tz = "UTC" } } end,
          "dueDateTime.tz", 'got "UTC"' },
        { function() viva.assignment { dueDateTime = { timeZone = "UTC" } } end, "dueDateTime.dateTime", "got nil" },
        { function() viva.assignment { ["@extra"] = deep } end, "@extra", "got table" },
        { function() a["@odata.type"] = "#microsoft.graph.learningContent" end, "@odata.type",
          'got "#microsoft.graph.learningContent"' },
        { function() a.kind = "x" end, "kind: is a method", 'got "x"' },
        { function() a.statsu = 5 end, "statsu", "got 5" },
        { function() viva.content { skillTags = { "a", 5 } } end, "skillTags[2]", "got 5" },
      }
      for _, case in ipairs(cases) do has(message(case[1]), case[2], case[3]) end
    end)

    it("is in the validation errors of the request builders", function()
      local c = clients.new("importer")
      local _, err = c:get("a\nb")
      assert.equals("validation", err.kind)
      has(err.message, "id", '"a\\x0ab"')
      _, err = c:get_by_external_id("c0000000-0000-4000-8000-000000000001", "x\0y")
      has(err.message, "external id", '"x\\x00y"')
      _, err = c:activities_page { user = "." }
      has(err.message, "user id", '"."')
      _, err = c:create("c0000000-0000-4000-8000-000000000001", { ["@odata.type"] = "#microsoft.graph.learningContent" })
      assert.equals("validation", err.kind)
      has(err.message, "@odata.type", '"#microsoft.graph.learningContent"')
      _, err = c:create("c0000000-0000-4000-8000-000000000001", { learnerUserId = "u" })
      has(err.message, "@odata.type", "got nil")
      c:close()
    end)
  end)
end)
