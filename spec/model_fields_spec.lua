-- Every field rule of every model type (graph-api.md §2), checked three ways: the constructor,
-- assignment to a field, and viva.check (which reports instead of raising).
local utf8_len = (rawget(_G, "utf8") or require "compat53.utf8").len   -- lua-compat53 below 5.3
local compat = require "vivalearning.compat"
local viva = require "vivalearning"

local function raises(fn, text)
  local ok, err = pcall(fn)
  assert.is_false(ok, "expected an error containing: " .. text)
  err = tostring(err)
  assert.is_truthy(err:find(text, 1, true), "error '" .. err .. "' does not contain '" .. text .. "'")
  return err
end

-- Rules, written independently of src/schema.c.
local STRING = {
  good = { "abc", "", "ünïcödé ✓", string.rep("x", 1000) },
  bad = { { 42, "string expected" }, { true, "string expected" }, { {}, "string expected" },
          { "\255\254", "valid UTF-8 string expected" }, { "a\0b", "string without NUL bytes expected" } },
}
local REQ_STRING = {
  good = { "abc", "7ba2228a-e020-11ec-9d64-0242ac120002" },
  bad = { { "", "non-empty string expected" }, { 42, "string expected" },
          { "\192\128", "valid UTF-8 string expected" }, { "a\0", "string without NUL bytes expected" } },
}
local DTO_RULE = "DateTimeOffset string with Z or +hh:mm offset expected"
local NOT_A_DATE, NOT_A_TIME = "not a calendar date", "not a time of day"
local DTO = {
  good = { "2021-05-11T22:57:17+00:00", "2021-05-11T22:57:17Z", "2021-04-01T04:26:06.1995367Z",
           "2024-02-29T00:00:00-05:30", "2000-02-29T23:59:59.123456789012+14:00" },
  bad = { { "2021-05-11T22:57:17", DTO_RULE }, { "2021-02-30T00:00:00Z", NOT_A_DATE },
          { "2023-02-29T00:00:00Z", NOT_A_DATE }, { "1900-02-29T00:00:00Z", NOT_A_DATE },
          { "2021-13-01T00:00:00Z", NOT_A_DATE }, { "2021-05-11 22:57:17Z", DTO_RULE },
          { "2021-05-11T24:00:00Z", NOT_A_TIME }, { "2021-05-11T22:60:00Z", NOT_A_TIME },
          { "2021-05-11T22:57:17+0000", DTO_RULE }, { "yesterday", DTO_RULE }, { "", DTO_RULE },
          { "2021-05-11T22:57:17.1234567890123Z", DTO_RULE }, { "2021-05-11T22:57:17.Z", DTO_RULE },
          { 1620773837, DTO_RULE } },
}
local function int_rule(min, max)
  local r = string.format("integer %d..%d expected", min, max)
  return {
    good = { min, max, math.floor((min + max) / 2), 0.0 + min },
    bad = { { max + 1, r }, { min - 1, r }, { min + 0.5, r }, { tostring(min), r }, { true, r },
            { 1 / 0, r }, { 0 / 0, r }, { 2 ^ 31, r } },
  }
end
local BOOL = { good = { true, false }, bad = { { "true", "boolean expected" }, { 1, "boolean expected" } } }
local function enum_rule(members)
  local r = "one of " .. table.concat(members, ", ") .. " expected"
  local good = {}
  for i, m in ipairs(members) do good[i] = m end
  return { good = good,
           bad = { { members[1]:upper(), r }, { "done", r }, { 1, r }, { "", r } } }
end
local DURATION_RULE = "ISO 8601 duration string expected (e.g. PT20M)"
local DURATION = {
  good = { "PT20M", "P1D", "PT1H30M", "PT0.5S", "-PT1S", "P1DT2H", "PT36H" },
  bad = { { "PDT1H", DURATION_RULE }, { "P", DURATION_RULE }, { "PT", DURATION_RULE },
          { "20 minutes", DURATION_RULE }, { "PT1H1H", DURATION_RULE }, { "PT1M1H", DURATION_RULE },
          { "P1W", DURATION_RULE }, { 20, DURATION_RULE } },
}
local DTTZ_RULE = "dateTimeTimeZone table {dateTime=, timeZone=} expected"
local DTTZ = {
  good = { { dateTime = "2022-09-22T16:05:00.0000000", timeZone = "UTC" },
           { dateTime = "2022-09-22T16:05:00" },
           { dateTime = "2022-09-22T16:05:00", timeZone = "Pacific Standard Time" },
           { dateTime = "2022-09-22T16:05:00Z", timeZone = viva.null } },
  bad = { { "2022-09-22T16:05:00", DTTZ_RULE }, { 5, DTTZ_RULE },
          { { timeZone = "UTC" }, ".dateTime: string expected (required)" },
          { { dateTime = viva.null, timeZone = "UTC" }, ".dateTime: non-null string expected" },
          { { dateTime = "2022-13-22T16:05:00" }, ".dateTime: not a calendar date" },
          { { dateTime = "tomorrow" }, ".dateTime: date-time string expected" },
          { { dateTime = "2022-09-22T16:05:00", timeZone = 5 }, ".timeZone: time zone name string expected" },
          { { dateTime = "2022-09-22T16:05:00", timeZone = "" }, ".timeZone: time zone name string expected" },
          { { dateTime = "2022-09-22T16:05:00", tz = "UTC" }, ".tz: unknown key (dateTime and timeZone expected)" } },
}
local BODY_RULE = "itemBody table {contentType=, content=} or string expected"
local BODY = {
  good = { { contentType = "text", content = "required assignment added for user" },
           { contentType = "html", content = "<b>due</b>" }, { content = "only content" },
           { contentType = viva.null, content = viva.null } },
  bad = { { 5, BODY_RULE }, { true, BODY_RULE },
          { { contentType = "markdown", content = "x" }, ".contentType: one of text, html expected" },
          { { contentType = "Text" }, ".contentType: one of text, html expected" },
          { { content = 5 }, ".content: string expected" },
          { { content = "\255" }, ".content: valid UTF-8 string expected" },
          { { contentType = "text", body = "x" }, ".body: unknown key (contentType and content expected)" } },
}
local STRLIST = {
  good = { {}, { "a" }, { "Lina Wagner", "Lisa Richter" } },
  bad = { { "a", "array of strings expected" }, { { a = "b" }, "array of strings expected" },
          { { 1, 2 }, "[1]: string expected" }, { { "ok", "\255" }, "[2]: valid UTF-8 string expected" },
          { { "x\0y" }, "[1]: string without NUL bytes expected" }, { viva.null, "non-null value expected" } },
}

local function f(rule, opts)
  opts = opts or {}
  return { rule = rule, nullable = opts.nullable, required = opts.required }
end

local activity = {
  id = f(STRING),
  completedDateTime = f(DTO, { nullable = true }),
  completionPercentage = f(int_rule(0, 100), { nullable = true }),
  externalCourseActivityId = f(STRING, { nullable = true }),
  learnerUserId = f(REQ_STRING, { required = true }),
  learningContentId = f(REQ_STRING, { required = true }),
  learningProviderId = f(STRING, { nullable = true }),
  status = f(enum_rule { "notStarted", "inProgress", "completed", "unknownFutureValue" },
             { nullable = true, required = true }),
}
local function extend(base, more)
  local t = {}
  for k, v in pairs(base) do t[k] = v end
  for k, v in pairs(more) do t[k] = v end
  return t
end
local kinds = {
  assignment = extend(activity, {
    assignedDateTime = f(DTO, { nullable = true }),
    assignerUserId = f(STRING, { nullable = true }),
    assignmentType = f(enum_rule { "required", "recommended", "unknownFutureValue", "peerRecommended" },
                       { required = true }),
    dueDateTime = f(DTTZ, { nullable = true }),
    notes = f(BODY, { nullable = true }),
  }),
  self_initiated = extend(activity, {
    startedDateTime = f(DTO, { nullable = true }),
  }),
  provider = {
    id = f(STRING),
    displayName = f(REQ_STRING, { required = true }),
    squareLogoWebUrlForDarkTheme = f(REQ_STRING, { required = true }),
    longLogoWebUrlForDarkTheme = f(REQ_STRING, { required = true }),
    squareLogoWebUrlForLightTheme = f(REQ_STRING, { required = true }),
    longLogoWebUrlForLightTheme = f(REQ_STRING, { required = true }),
    loginWebUrl = f(STRING, { nullable = true }),
    isCourseActivitySyncEnabled = f(BOOL, { nullable = true }),
  },
  content = {
    id = f(STRING),
    externalId = f(REQ_STRING, { required = true }),
    title = f(REQ_STRING, { required = true }),
    contentWebUrl = f(REQ_STRING, { required = true }),
    languageTag = f(REQ_STRING, { required = true }),
    description = f(STRING, { nullable = true }),
    sourceName = f(STRING, { nullable = true }),
    thumbnailWebUrl = f(STRING, { nullable = true }),
    format = f(STRING, { nullable = true }),
    numberOfPages = f(int_rule(0, 2147483647), { nullable = true }),
    duration = f(DURATION, { nullable = true }),
    level = f(enum_rule { "beginner", "intermediate", "advanced", "unknownFutureValue" }, { nullable = true }),
    createdDateTime = f(DTO, { nullable = true }),
    lastModifiedDateTime = f(DTO, { nullable = true }),
    contributors = f(STRLIST),
    additionalTags = f(STRLIST),
    skillTags = f(STRLIST),
    isActive = f(BOOL, { nullable = true }),
    isPremium = f(BOOL, { nullable = true }),
    isSearchable = f(BOOL, { nullable = true }),
  },
}

local function sorted_keys(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  table.sort(ks)
  return ks
end

local function show(v)
  if type(v) == "string" then return string.format("%q", #v > 30 and v:sub(1, 30) .. "..." or v) end
  if type(v) == "table" then return "table" end
  return tostring(v)
end

local function expected_read(name, v)
  if name == "notes" and type(v) == "string" then return { contentType = "text", content = v } end
  if compat.type(v) == "float" and v == math.floor(v) then return compat.tointeger(v) end
  return v
end

for _, kind in ipairs(sorted_keys(kinds)) do
  local fields = kinds[kind]
  local ctor = viva[kind]
  describe("model field rules: " .. kind, function()
    for _, name in ipairs(sorted_keys(fields)) do
      local spec = fields[name]
      describe(name, function()
        for _, good in ipairs(spec.rule.good) do
          it("accepts " .. show(good), function()
            local m = ctor { [name] = good }
            assert.are.same(expected_read(name, good), m[name])
            local n = ctor {}
            n[name] = good
            assert.are.same(expected_read(name, good), n[name])
            assert.is_true(n == m)
            local errs = select(2, viva.check(kind, { [name] = good })) or {}
            for _, e in ipairs(errs) do assert.are_not.equal(name, e.field) end
          end)
        end
        for _, case in ipairs(spec.rule.bad) do
          local value, problem = case[1], case[2]
          it("rejects " .. show(value) .. " (" .. problem .. ")", function()
            local msg = raises(function() ctor { [name] = value } end, name)
            assert.is_truthy(msg:find(problem, 1, true), msg)
            local m = ctor {}
            msg = raises(function() m[name] = value end, name)
            assert.is_truthy(msg:find(problem, 1, true), msg)
            assert.is_nil(m[name])            -- a rejected value leaves the field untouched
            assert.is_nil(m:changes())
            local ok, errs = viva.check(kind, { [name] = value })
            assert.is_false(ok)
            local found = false
            for _, e in ipairs(errs) do
              if e.field:sub(1, #name) == name and (e.field .. ": " .. e.problem):find(problem, 1, true) then
                found = true
                if e.field == name and value == value then assert.are.equal(value, e.value) end
              end
            end
            assert.is_true(found, "viva.check did not report " .. problem)
          end)
        end
        if spec.nullable then
          it("accepts viva.null (nullable)", function()
            local m = ctor { [name] = viva.null }
            assert.are.equal(viva.null, m[name])
            assert.is_truthy(m:tojson():find('":null', 1, true))
          end)
        elseif spec.rule ~= STRLIST then
          it("rejects viva.null (not nullable)", function()
            raises(function() ctor { [name] = viva.null } end,
                   name .. ": non-null value expected (field is not nullable), got viva.null")
          end)
        end
        if spec.required then
          it("is reported missing by viva.check", function()
            local ok, errs = viva.check(kind, {})
            assert.is_false(ok)
            local found
            for _, e in ipairs(errs) do
              if e.field == name then found = e end
            end
            assert.is_not_nil(found)
            assert.are.equal("required field missing", found.problem)
          end)
        end
        it("can be unset with nil (reads nil, not sent)", function()
          local m = ctor { [name] = spec.rule.good[1] }
          m[name] = nil
          assert.is_nil(m[name])
          assert.is_nil(m:changes())
        end)
      end)
    end

    it("has exactly the schema's fields (pairs after setting every field)", function()
      local t = {}
      for name, spec in pairs(fields) do t[name] = spec.rule.good[1] end
      local m = ctor(t)
      local seen = {}
      for k in m:pairs() do seen[#seen + 1] = k end
      table.sort(seen)
      assert.are.same(sorted_keys(fields), seen)
    end)

    it("viva.check accepts a complete valid table", function()
      local t = {}
      for name, spec in pairs(fields) do
        if spec.required then t[name] = spec.rule.good[#spec.rule.good > 1 and 2 or 1] end
      end
      if kind == "assignment" or kind == "self_initiated" then t.status = "inProgress" end
      assert.is_true(viva.check(kind, t))
    end)
  end)
end

describe("model field rules: across fields", function()
  it("reports every problem of a row at once", function()
    local ok, errs = viva.check("assignment", {
      learnerUserId = 5, completionPercentage = 101, statuss = "x",
      dueDateTime = { dateTime = "bad" }, notes = { contentType = "markdown" },
    })
    assert.is_false(ok)
    local fields = {}
    for _, e in ipairs(errs) do fields[#fields + 1] = e.field end
    table.sort(fields)
    assert.are.same({ "assignmentType", "completionPercentage", "dueDateTime.dateTime", "learnerUserId",
                      "learningContentId", "notes.contentType", "status", "statuss" }, fields)
  end)

  it("keeps error messages valid UTF-8 and short, whatever the value", function()
    local msg = tostring(select(2, pcall(function() viva.content { title = "ok \255\254 é" } end)))
    assert.is_truthy(msg:find('got "ok \\xff\\xfe é"', 1, true), msg)
    assert.is_truthy(utf8_len(msg), msg)
    msg = tostring(select(2, pcall(function() viva.content { title = string.rep("é", 100) .. "\0" } end)))
    assert.is_truthy(utf8_len(msg), msg)
    assert.is_truthy(msg:find("(201 bytes)", 1, true), msg)
    assert.is_true(#msg < 250)
  end)

  it("suggests the nearest field name for a typo (constructor, read, write, check)", function()
    raises(function() viva.assignment { completionPercent = 5 } end,
           "completionPercent: unknown field of learningAssignment (did you mean completionPercentage?)")
    local a = viva.assignment {}
    raises(function() return a.statsu end, "statsu: unknown field of learningAssignment (did you mean status?)")
    raises(function() a.learnerUserID = "x" end, "(did you mean learnerUserId?)")
    raises(function() a.zzzzzzzzzzzz = 1 end, "zzzzzzzzzzzz: unknown field of learningAssignment")
    local _, errs = viva.check("content", { titel = "x" })
    local found
    for _, e in ipairs(errs) do if e.field == "titel" then found = e end end
    assert.are.equal("unknown field of learningContent (did you mean title?)", found.problem)
  end)

  it("does not let a derived type's field onto another type", function()
    raises(function() viva.self_initiated { assignmentType = "required" } end,
           "assignmentType: unknown field of learningSelfInitiatedCourse")
    raises(function() viva.assignment { startedDateTime = "2021-05-21T22:57:17+00:00" } end,
           "startedDateTime: unknown field of learningAssignment")
  end)

  it("accepts both spellings of the alternate key and exposes externalCourseActivityId", function()
    local a = viva.assignment { externalcourseActivityId = "lms-1" }
    assert.are.equal("lms-1", a.externalCourseActivityId)
    assert.are.equal("lms-1", a.externalcourseActivityId)
    a.externalcourseActivityId = "lms-2"
    assert.are.equal("lms-2", a.externalCourseActivityId)
    assert.are.same({ ["@odata.type"] = "#microsoft.graph.learningAssignment", externalCourseActivityId = "lms-2" },
                    a:changes())
    local keys = {}
    for k in a:pairs() do keys[#keys + 1] = k end
    assert.are.same({ "externalCourseActivityId" }, keys)
  end)

  it("checks @odata.type against the constructor's type", function()
    assert.are.equal("assignment", viva.assignment { ["@odata.type"] = "#microsoft.graph.learningAssignment" }:kind())
    raises(function() viva.assignment { ["@odata.type"] = "#microsoft.graph.learningSelfInitiatedCourse" } end,
           '@odata.type: "#microsoft.graph.learningAssignment" expected')
    raises(function() viva.provider { ["@odata.type"] = "#microsoft.graph.learningContent" } end,
           '@odata.type: "#microsoft.graph.learningProvider" expected')
  end)

  it("viva.check('activity', t) picks the type from @odata.type", function()
    local ok, errs = viva.check("activity", { learnerUserId = "u" })
    assert.is_false(ok)
    assert.are.equal("@odata.type", errs[1].field)
    assert.is_true(viva.check("activity", { ["@odata.type"] = "#microsoft.graph.learningSelfInitiatedCourse",
                                            learnerUserId = "u", learningContentId = "c", status = "completed" }))
  end)

  it("rejects misuse with errors, not nil", function()
    assert.has_error(function() viva.check("course", {}) end)
    assert.has_error(function() viva.check("assignment", "x") end)
    assert.has_error(function() viva.assignment("x") end)
    local a = viva.assignment {}
    raises(function() a.kind = "x" end, "kind: is a method of learningAssignment, not a field")
    raises(function() a[1] = "x" end, "field name (string) expected")
    raises(function() return a[true] end, "field name (string) expected")
  end)
end)
