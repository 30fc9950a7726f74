-- Pure units of the Lua layer: the CSV reader/writer, JSON Lines, the journal framing and the
-- results file. No emulator needed.
local csv = require "vivalearning.csv"
local jsonl = require "vivalearning.jsonl"
local journal = require "vivalearning.journal"
local results = require "vivalearning.results"
local progress = require "vivalearning.progress"

local function tmpname()
  local p = os.tmpname()
  return p
end

local function write(path, s)
  local f = assert(io.open(path, "wb")); f:write(s); f:close()
end

local function read(path)
  local f = assert(io.open(path, "rb")); local s = f:read("*a"); f:close(); return s
end

local function all(path, opts)
  local r = assert(csv.reader(path, opts))
  local out = {}
  for rec, err in r:records() do
    assert(rec, err)
    out[#out + 1] = rec
  end
  r:close()
  return out, r.columns
end

describe("csv reader", function()
  local path
  before_each(function() path = tmpname() end)
  after_each(function() os.remove(path) end)

  it("reads a header and plain records", function()
    write(path, "a,b,c\n1,2,3\n4,,6\n")
    local recs, cols = all(path)
    assert.same({ "a", "b", "c" }, cols)
    assert.same({ { "1", "2", "3" }, { "4", "", "6" } }, recs)
  end)

  it("handles quotes, doubled quotes, commas and line breaks inside quoted fields", function()
    write(path, 'x,y\r\n"a,b","say ""hi"""\r\n"line1\r\nline2",z\r\n"",""\r\n')
    local recs = all(path)
    assert.same({ "a,b", 'say "hi"' }, recs[1])
    assert.same({ "line1\r\nline2", "z" }, recs[2])
    assert.same({ "", "" }, recs[3])
  end)

  it("keeps a trailing empty field and reads a last line without newline", function()
    write(path, "a,b\n1,\n2,3")
    assert.same({ { "1", "" }, { "2", "3" } }, all(path))
  end)

  it("skips a UTF-8 byte-order mark", function()
    write(path, "\239\187\191name,v\nx,1\n")
    local _, cols = all(path)
    assert.equal("name", cols[1])
  end)

  it("tracks the line each record starts on", function()
    write(path, 'h\n"a\nb"\nc\n')
    local r = assert(csv.reader(path))
    assert(r:read()); assert.equal(2, r.record_line)
    assert(r:read()); assert.equal(4, r.record_line)
    assert.equal(2, r.record)
    r:close()
  end)

  it("reports malformed input with its line number", function()
    for _, case in ipairs {
      { 'h1,h2\nok,1\nbad"quote,2\n', 2, "line 3: quote inside an unquoted field" },
      { 'h\n"open\n', 1, "line 2: quoted field not closed" },
      { 'h,i\n"a"b,c\n', 1, "unexpected character after closing quote" },
    } do
      write(path, case[1])
      local r = assert(csv.reader(path))
      for _ = 1, case[2] - 1 do assert(r:read()) end
      local rec, err = r:read()
      assert.is_nil(rec)
      assert.matches(case[3], err, 1, true)
      r:close()
    end
  end)

  it("fails cleanly on an empty file or a missing one", function()
    write(path, "")
    local r, err = csv.reader(path)
    assert.is_nil(r); assert.matches("empty", err)
    r, err = csv.reader(path .. ".missing")
    assert.is_nil(r); assert.truthy(err)
  end)
end)

describe("csv writer", function()
  it("round-trips awkward values through the reader", function()
    local path = tmpname()
    local rows = {
      { "plain", "with,comma", 'with "quote"', "two\nlines", " lead", "trail ", "" },
      { "ü ñ 日本", "=1+2", "\r\n", "'", "", "x", "y" },
    }
    local w = assert(csv.writer(path))
    w:write({ "a", "b", "c", "d", "e", "f", "g" })
    for _, r in ipairs(rows) do assert(w:write(r)) end
    w:close()
    assert.same(rows, (all(path)))
    os.remove(path)
  end)

  it("writes nil holes as empty fields when told the width", function()
    local path = tmpname()
    local w = assert(csv.writer(path, { eol = "\n" }))
    w:write({ "a", nil, "c" }, 3)
    w:close()
    assert.equal("a,,c\n", read(path))
    os.remove(path)
  end)
end)

describe("jsonl", function()
  it("reads values line by line, skipping blank lines, and reports bad lines", function()
    local path = tmpname()
    write(path, '{"a":1}\n\n  \n[1,2]\nnot json\n{"b":null}\n')
    local r = assert(jsonl.reader(path))
    assert.same({ a = 1 }, r:read())
    assert.same({ 1, 2 }, r:read())
    local v, err = r:read()
    assert.is_false(v); assert.matches("line 5", err)
    local b = r:read()
    assert.equal(jsonl.null, b.b)
    assert.is_nil(r:read())
    r:close()
    os.remove(path)
  end)

  it("writes one value per line", function()
    local path = tmpname()
    local w = assert(jsonl.writer(path))
    w:write({ x = "a\nb" }); w:write({ 1, 2 })
    w:close()
    assert.equal('{"x":"a\\nb"}\n[1,2]\n', read(path))
    os.remove(path)
  end)
end)

describe("journal", function()
  local path
  before_each(function() path = tmpname(); os.remove(path) end)
  after_each(function() os.remove(path); os.remove(path .. ".tmp") end)

  local function records(p)
    local it, info = journal.read(p)
    local out = {}
    for r in it do out[#out + 1] = r end
    return out, info
  end

  it("appends framed records that read back after sync", function()
    local j = assert(journal.open(path))
    j:append({ k = "begin", mode = "create" })
    j:append({ k = "done", o = { { 1, "created" } } })
    assert(j:sync())
    j:close()
    local recs = records(path)
    assert.equal(2, #recs)
    assert.equal("begin", recs[1].k)
    assert.equal("created", recs[2].o[1][2])
    assert.matches("^%d+:%x%x%x%x%x%x%x%x:{", read(path))
  end)

  it("ignores a torn last line at every cut point, and open() cuts it off", function()
    local j = assert(journal.open(path))
    j:append({ k = "a", n = 1 }); j:append({ k = "b", n = 2 })
    j:close()
    local good = read(path)
    local third = journal.frame({ k = "c", n = 3, s = "some text" })
    for cut = 1, #third - 1 do
      write(path, good .. third:sub(1, cut))
      local recs, info = records(path)
      assert.equal(2, #recs, "cut " .. cut)
      assert.is_true(info.torn)
    end
    -- reopen: the torn tail goes, new records follow on a fresh line
    local j2 = assert(journal.open(path))
    j2:append({ k = "d", n = 4 })
    j2:close()
    local recs, info = records(path)
    assert.same({ "a", "b", "d" }, { recs[1].k, recs[2].k, recs[3].k })
    assert.is_false(info.torn)
  end)

  it("detects a flipped byte by its checksum, and damage before the end is an error", function()
    local j = assert(journal.open(path))
    j:append({ k = "a", v = "xxxx" }); j:append({ k = "b", v = "yyyy" })
    j:close()
    local s = read(path)
    local i = s:find("xxxx")
    write(path, s:sub(1, i - 1) .. "xxyx" .. s:sub(i + 4))
    assert.has_error(function() records(path) end)
    local i2 = s:find("yyyy")
    write(path, s:sub(1, i2 - 1) .. "yyzy" .. s:sub(i2 + 4))
    local recs, info = records(path)
    assert.equal(1, #recs)
    assert.is_true(info.torn)
  end)

  it("reads a missing journal as empty", function()
    local recs = records(path)
    assert.equal(0, #recs)
  end)
end)

describe("results file", function()
  for _, ext in ipairs { "csv", "jsonl" } do
    it("writes and reads back outcomes as " .. ext, function()
      local path = tmpname() .. "." .. ext
      local w = assert(results.open(path))
      assert.equal(ext, w.format)
      w:write({ row = 1, external_id = "e1", id = "x:1", outcome = "created", status = 201 })
      w:write({ row = 2, external_id = "e,2", outcome = "failed", status = 400, code = "badRequest",
                message = 'bad "value"\nhere', request_id = "r-2" })
      w:close()
      local got = {}
      for r in results.read(path) do got[#got + 1] = r end
      assert.equal(2, #got)
      assert.equal(1, got[1].row); assert.equal("created", got[1].outcome); assert.equal(201, got[1].status)
      assert.equal("e,2", got[2].external_id)
      assert.equal('bad "value"\nhere', got[2].message)
      assert.equal("badRequest", got[2].code)
      os.remove(path)
    end)
  end
end)

describe("progress", function()
  it("renders done/total, rate, ETA and failures", function()
    local line = progress.render({ done = 50, total = 100, failed = 2, rate = 10, eta = 5, elapsed = 5 }, 80, "import")
    assert.matches("50/100", line)
    assert.matches(" 50%%", line)
    assert.matches("10 rows/s", line)
    assert.matches("ETA%s+0:05", line)
    assert.matches("failed 2", line)
    assert.matches("%[#+%.+%]", line)
    assert.is_true(#line <= 80)
  end)

  it("renders an unknown total without a bar", function()
    local line = progress.render({ done = 7, failed = 0, rate = 3, elapsed = 61 }, 80)
    assert.matches("7 rows", line)
    assert.not_matches("%[", line)
  end)

  it("is silent on a non-terminal unless given a callback", function()
    local path = tmpname()
    local fh = assert(io.open(path, "w"))
    local p = progress.new({ stream = fh, total = 10 })
    assert.equal("none", p.mode)
    p:update(5, 0, true); p:finish(10, 0)
    fh:close()
    assert.equal("", read(path))
    local seen = {}
    local p2 = progress.new({ stream = io.open(path, "w"), total = 10, callback = function(st) seen[#seen + 1] = st end })
    assert.equal("callback", p2.mode)
    p2:update(5, 1, true); p2:finish(10, 1)
    assert.equal(2, #seen)
    assert.equal(5, seen[1].done); assert.equal(10, seen[1].total); assert.equal(1, seen[1].failed)
    assert.is_true(seen[2].final)
    os.remove(path)
  end)

  it("draws a bar when asked to, even on a file", function()
    local path = tmpname()
    local fh = assert(io.open(path, "w"))
    local p = progress.new({ stream = fh, total = 4, mode = "bar", width = 60 })
    p:update(2, 0, true); p:finish(4, 0)
    fh:close()
    local s = read(path)
    assert.matches("2/4", s); assert.matches("4/4", s); assert.matches("\n$", s)
    os.remove(path)
  end)
end)

describe("row mapping", function()
  local rows = require "vivalearning.rows"

  it("nests dotted CSV columns, converts integers, reads the type column", function()
    local nr = rows.normalize({ type = "self-initiated", externalcourseActivityId = "x-1", completionPercentage = " 40 ",
                                ["dueDateTime.dateTime"] = "2026-01-01T00:00:00", ["dueDateTime.timeZone"] = "UTC",
                                notes = "", status = "inProgress", ["@odata.context"] = "dropped" })
    assert.equal("self_initiated", nr.kind)
    assert.equal("x-1", nr.ext)
    assert.equal(40, nr.fields.completionPercentage)
    assert.equal("integer", math.type(nr.fields.completionPercentage))
    assert.same({ dateTime = "2026-01-01T00:00:00", timeZone = "UTC" }, nr.fields.dueDateTime)
    assert.is_nil(nr.fields.notes)             -- empty cell = not given
    assert.is_nil(nr.fields["@odata.context"])
    assert.equal("x-1", nr.fields.externalCourseActivityId)
    assert.equal("abc", rows.normalize({ completionPercentage = "abc" }).fields.completionPercentage)
    assert.equal(7, rows.normalize({ completionPercentage = 7.0 }).fields.completionPercentage)
  end)

  it("takes the type from Graph names, the option, or reports an unknown one", function()
    assert.equal("assignment", rows.normalize({ ["@odata.type"] = "#microsoft.graph.learningAssignment" }).kind)
    assert.equal("self_initiated", rows.normalize({ ["@odata.type"] = "#microsoft.graph.learningSelfInitiatedCourse" }).kind)
    assert.equal("assignment", rows.normalize({}, { type = "assignment" }).kind)
    local nr = rows.normalize({ type = "webinar" }, { type = "assignment" })
    assert.is_nil(nr.kind); assert.matches("webinar", nr.type_error)
  end)

  it("diffs a row against an existing activity: only what differs, complex fields merged", function()
    local existing = { status = "inProgress", completionPercentage = 10, startedDateTime = "2026-01-01T10:00:00.0000000+00:00",
                       dueDateTime = { dateTime = "2026-12-01T00:00:00", timeZone = "UTC" }, learnerUserId = "u" }
    assert.is_nil(rows.diff({ status = "inProgress", startedDateTime = "2026-01-01T11:00:00+01:00", learnerUserId = "u",
                              dueDateTime = { dateTime = "2026-12-01T00:00:00.0000000" } }, existing))
    local ch = rows.diff({ status = "completed", completionPercentage = 10, dueDateTime = { timeZone = "Pacific Standard Time" } }, existing)
    assert.same({ status = "completed", dueDateTime = { dateTime = "2026-12-01T00:00:00", timeZone = "Pacific Standard Time" } }, ch)
  end)

  it("compares date-times by instant", function()
    assert.is_true(rows.same("2026-01-01T00:00:00Z", "2025-12-31T19:00:00-05:00", "completedDateTime"))
    assert.is_false(rows.same("2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z", "completedDateTime"))
    assert.is_false(rows.same("2026-01-01T00:00:00Z", "2025-12-31T19:00:00-05:00", "notDate"))
    assert.is_nil(rows.instant("yesterday"))
  end)
end)
