-- Reading import sources: line ends, numbers, conflicting and unknown columns, option checks of
-- viva.bulk.import. Reader units need no emulator; the imports run against the real one
-- (VIVA_EMU_DIR, set by spec/run) and count what it received.
local viva = require "vivalearning"
local csv = require "vivalearning.csv"
local jsonl = require "vivalearning.jsonl"
local rows = require "vivalearning.rows"
local sample = require "vivalearning.sample"
local results = require "vivalearning.results"

local function tmp(ext) return os.tmpname() .. (ext or "") end

local function write(path, s)
  local f = assert(io.open(path, "wb")); f:write(s); f:close()
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

describe("csv reader line ends", function()
  local path
  before_each(function() path = tmp() end)
  after_each(function() os.remove(path) end)

  it("accepts CR-only, LF and CRLF line ends, also mixed in one file", function()
    write(path, "a,b\r1,2\r3,4\r")
    local recs, cols = all(path)
    assert.same({ "a", "b" }, cols)
    assert.same({ { "1", "2" }, { "3", "4" } }, recs)
    write(path, "a,b\r\n1,2\n3,4\r5,6")
    assert.same({ { "1", "2" }, { "3", "4" }, { "5", "6" } }, (all(path)))
    -- a quoted field keeps the line break as it is in the file
    write(path, 'a,b\r"x\ry",2\r"p\r\nq",3\r')
    assert.same({ { "x\ry", "2" }, { "p\r\nq", "3" } }, (all(path)))
    -- a BOM, then CR-only
    write(path, "\239\187\191h\rv\r")
    local r2, c2 = all(path)
    assert.same({ "h" }, c2); assert.same({ { "v" } }, r2)
  end)

  it("keeps a CRLF that straddles two read chunks as one line end", function()
    local s = "k,v\r\n1,a\r\n22,bb\r\n333,\"c\r\nc\"\r\n"
    write(path, s)
    for chunk = 1, #s + 1 do
      local recs = all(path, { chunk = chunk })
      assert.same({ { "1", "a" }, { "22", "bb" }, { "333", "c\r\nc" } }, recs, "chunk " .. chunk)
    end
    local r = assert(csv.reader(path, { chunk = 1 }))
    while r:read() do end
    assert.equal(5, r.line)
    r:close()
  end)

  it("counts the lines of a CR-only file in its error messages", function()
    write(path, 'h1,h2\rok,1\rbad"quote,2\r')
    local r = assert(csv.reader(path))
    assert(r:read())
    local rec, err = r:read()
    assert.is_nil(rec)
    assert.matches("line 3: quote inside an unquoted field", err, 1, true)
    r:close()
  end)
end)

describe("jsonl reader line ends", function()
  it("reads CR-only, LF and CRLF line ends, also mixed", function()
    local path = tmp()
    write(path, '{"a":1}\r{"a":2}\r\n\r{"a":3}\n{"a":"x\\ry"}')
    for _, chunk in ipairs { 1, 2, 3, 7, 8, 9, 65536 } do
      local r = assert(jsonl.reader(path, { chunk = chunk }))
      assert.same({ a = 1 }, r:read())
      assert.same({ a = 2 }, r:read())
      assert.same({ a = 3 }, r:read())
      assert.same({ a = "x\ry" }, r:read())
      assert.is_nil(r:read())
      assert.equal(5, r.line)
      r:close()
    end
    write(path, '{"a":1}\rnot json\r')
    local r = assert(jsonl.reader(path))
    assert(r:read())
    local v, err = r:read()
    assert.is_false(v); assert.matches("line 2", err)
    r:close()
    os.remove(path)
  end)
end)

describe("bulk import sources", function()
  local emu = require "support.emulator"
  local PROVIDER = sample.provider
  local c
  setup(function() c = require("support.lualayer").client() end)
  before_each(function() emu.reset() end)

  local function creates() return emu.counters().creates[PROVIDER] or {} end
  local function ncreated()
    local n = 0
    for _, k in pairs(creates()) do n = n + k end
    return n
  end

  it("imports a CSV and a JSON Lines file with CR-only line ends", function()
    local lf, cr = tmp(".csv"), tmp(".csv")
    sample.write(lf, 12, { prefix = "cr-" })
    local f = assert(io.open(lf, "rb")); local s = f:read("*a"); f:close()
    write(cr, (s:gsub("\n", "\r")))
    local sum = assert(viva.bulk.import(c, cr, { provider = PROVIDER }))
    assert.equal(12, sum.read)
    assert.equal(12, sum.created)
    assert.equal(12, ncreated())
    local jl = tmp(".jsonl")
    local lines = {}
    for i = 1, 5 do
      local t = sample.row(i, function() return 1 end, { prefix = "crj-" })
      lines[i] = jsonl.encode(t)
    end
    write(jl, table.concat(lines, "\r") .. "\r")
    sum = assert(viva.bulk.import(c, jl, { provider = PROVIDER }))
    assert.equal(5, sum.read)
    assert.equal(5, sum.created)
    os.remove(lf); os.remove(cr); os.remove(jl)
  end)
end)

describe("row values", function()
  it("reads integers from strings and integral floats; refuses out-of-range and fractional ones, naming the value", function()
    local function one(v)
      local nr = rows.normalize({ completionPercentage = v })
      return nr.fields.completionPercentage, nr.errors
    end
    assert.equal(40, (one(" 40 ")))
    assert.equal(7, (one(7.0)))
    assert.equal(100, (one("1e2")))
    for _, case in ipairs {
      { "99999999999999999999999", "integer expected, got 99999999999999999999999 (out of range)" },
      { "50.5", "integer expected, got 50.5" },
      { 50.5, "integer expected, got 50.5" },
      { 1e23, "integer expected, got 1e+23 (out of range)" },
      { "-1e30", "out of range" },
    } do
      local v, errs = one(case[1])
      assert.equal(case[1], v)           -- kept as given, never nil
      assert.truthy(errs, tostring(case[1]))
      assert.equal("completionPercentage", errs[1].field)
      assert.matches(case[2], errs[1].message, 1, true)
    end
    -- not a number at all: left to the model check, which names the field
    assert.equal("abc", (one("abc")))
    assert.is_nil(select(2, one("abc")))
  end)

  it("refuses a row that gives one field under two keys, naming both", function()
    local nr = rows.normalize({ externalCourseActivityId = "a", externalcourseActivityId = "b" })
    assert.equal("externalCourseActivityId", nr.errors[1].field)
    assert.matches("externalCourseActivityId and externalcourseActivityId", nr.errors[1].message, 1, true)
    nr = rows.normalize({ notes = "plain", ["notes.content"] = "dotted" })
    assert.matches("notes and notes.content", nr.errors[1].message, 1, true)
    nr = rows.normalize({ notes = { content = "x" }, ["notes.contentType"] = "text" })
    assert.matches("notes and notes.contentType", nr.errors[1].message, 1, true)
    nr = rows.normalize({ type = "assignment", ["@odata.type"] = "#microsoft.graph.learningSelfInitiatedCourse" })
    assert.matches("@odata.type and type", nr.errors[1].message, 1, true)
    -- parts of one field are no conflict; an empty cell is not given
    assert.is_nil(rows.normalize({ ["notes.content"] = "x", ["notes.contentType"] = "text" }).errors)
    assert.is_nil(rows.normalize({ externalCourseActivityId = "a", externalcourseActivityId = "" }).errors)
  end)

  it("reads a plain-string notes as the itemBody the model makes of it", function()
    local nr = rows.normalize({ notes = "Assigned by HR" })
    assert.same({ contentType = "text", content = "Assigned by HR" }, nr.fields.notes)
    assert.is_nil(rows.diff(nr.fields, { notes = { contentType = "text", content = "Assigned by HR" } }))
    assert.same({ notes = { contentType = "text", content = "changed" } },
      rows.diff(rows.normalize({ notes = "changed" }).fields, { notes = { contentType = "text", content = "Assigned by HR" } }))
  end)

  it("checks a CSV header: duplicates, two columns for one field, unknown columns with a suggestion", function()
    local check = viva.check
    local function hdr(cols, t) return rows.check_header(cols, { check = check, type = t }) end
    assert.is_true(hdr(rows.columns))
    local ok, err = hdr({ "type", "status", "status" })
    assert.is_nil(ok); assert.matches("columns 2 and 3 are both named 'status'", err, 1, true)
    ok, err = hdr({ "type", "notes", "notes.content" })
    assert.is_nil(ok); assert.matches("'notes' and 'notes.content'", err, 1, true)
    ok, err = hdr({ "type", "externalcourseActivityId", "externalCourseActivityId" })
    assert.is_nil(ok); assert.matches("'externalCourseActivityId' and 'externalcourseActivityId'", err, 1, true)
    ok, err = hdr({ "type", "@odata.type" })
    assert.is_nil(ok); assert.matches("'type' and '@odata.type'", err, 1, true)
    ok, err = hdr({ "externalCourseActivityId", "complettionPercentage" }, "assignment")
    assert.is_nil(ok)
    assert.equal("column 'complettionPercentage' is not a field of learningAssignment; did you mean 'completionPercentage'?", err)
    -- a type column: unknown only when no row type has it
    assert.is_true(hdr({ "type", "assignmentType", "startedDateTime" }))
    ok, err = hdr({ "type", "bogus.content" })
    assert.is_nil(ok)
    assert.matches("column 'bogus.content' is not a field of learningAssignment or learningSelfInitiatedCourse", err, 1, true)
    -- a self_initiated import has no assignmentType
    ok, err = hdr({ "externalCourseActivityId", "assignmentType" }, "self_initiated")
    assert.is_nil(ok); assert.matches("learningSelfInitiatedCourse", err, 1, true)
  end)
end)

describe("bulk import rows and headers", function()
  local emu = require "support.emulator"
  local PROVIDER = sample.provider
  local c
  setup(function() c = require("support.lualayer").client() end)
  before_each(function() emu.reset() end)

  local HEAD = "type,externalCourseActivityId,learnerUserId,learningContentId,status,assignmentType"
  local function line(ext, i, extra)
    return ("assignment,%s,%s,%s,inProgress,required%s"):format(ext, sample.learner(i), sample.content(i), extra or "")
  end
  local function requests() return emu.counters().requests end
  local function outcomes(path)
    local by = {}
    for r in results.read(path) do by[r.row] = r end
    return by
  end

  it("fails a row whose integer is out of range or fractional, naming the field and the value", function()
    local src, res = tmp(".csv"), tmp(".csv")
    write(src, table.concat({ HEAD .. ",completionPercentage",
      line("big-1", 1, ",99999999999999999999999"), line("big-2", 2, ",50.5"), line("big-3", 3, ",50"),
      line("big-4", 4, ",150") }, "\n") .. "\n")
    local s = assert(viva.bulk.import(c, src, { provider = PROVIDER, results = res }))
    assert.equal(4, s.read); assert.equal(1, s.created); assert.equal(3, s.invalid)
    local by = outcomes(res)
    -- out of the model's range: the model check's message, with the value
    assert.matches("completionPercentage: integer 0..100 expected, got 150", by[4].message, 1, true)
    assert.equal("invalidRow", by[1].code)
    assert.matches("completionPercentage: integer expected, got 99999999999999999999999 (out of range)", by[1].message, 1, true)
    assert.matches("completionPercentage: integer expected, got 50.5", by[2].message, 1, true)
    assert.is_nil(emu.counters().creates[PROVIDER]["big-1"])
    -- JSON Lines: beyond integer range, and a fraction
    local jl = tmp(".jsonl")
    write(jl, ('{"type":"assignment","externalCourseActivityId":"jbig-1","learnerUserId":"%s","learningContentId":"%s","status":"inProgress","assignmentType":"required","completionPercentage":99999999999999999999999}\n'
      .. '{"type":"assignment","externalCourseActivityId":"jbig-2","learnerUserId":"%s","learningContentId":"%s","status":"inProgress","assignmentType":"required","completionPercentage":50.5}\n')
      :format(sample.learner(1), sample.content(1), sample.learner(2), sample.content(2)))
    s = assert(viva.bulk.import(c, jl, { provider = PROVIDER, results = res }))
    assert.equal(2, s.invalid); assert.equal(0, s.created)
    by = outcomes(res)
    assert.matches("completionPercentage: integer expected, got 1e+23 (out of range)", by[1].message, 1, true)
    assert.matches("completionPercentage: integer expected, got 50.5", by[2].message, 1, true)
    os.remove(src); os.remove(res); os.remove(jl)
  end)

  it("refuses conflicting or duplicated columns at the header, before any request", function()
    local src = tmp(".csv")
    for _, case in ipairs {
      { HEAD .. ",notes,notes.content", ",plain,dotted", "'notes' and 'notes.content'" },
      { HEAD .. ",externalcourseActivityId", ",other", "'externalCourseActivityId' and 'externalcourseActivityId'" },
      { HEAD .. ",status", ",completed", "columns 5 and 7 are both named 'status'" },
    } do
      write(src, case[1] .. "\n" .. line("conf-1", 1, case[2]) .. "\n")
      local before = requests()
      for _, dry in ipairs { false, true } do
        local s, err = viva.bulk.import(c, src, { provider = PROVIDER, dry_run = dry })
        assert.is_nil(s)
        assert.matches(case[3], err, 1, true)
      end
      assert.equal(before, requests())
    end
    os.remove(src)
  end)

  it("fails a JSON Lines or Lua row that gives both spellings of the external id, naming both", function()
    local row = { type = "assignment", externalCourseActivityId = "sp-1", externalcourseActivityId = "sp-2",
                  learnerUserId = sample.learner(1), learningContentId = sample.content(1),
                  status = "inProgress", assignmentType = "required" }
    local res = tmp(".csv")
    local s = assert(viva.bulk.import(c, { row }, { provider = PROVIDER, results = res }))
    assert.equal(1, s.invalid)
    assert.matches("externalCourseActivityId and externalcourseActivityId", outcomes(res)[1].message, 1, true)
    local jl = tmp(".jsonl")
    write(jl, jsonl.encode(row) .. "\n")
    s = assert(viva.bulk.import(c, jl, { provider = PROVIDER, results = res }))
    assert.equal(1, s.invalid)
    assert.matches("externalCourseActivityId and externalcourseActivityId", outcomes(res)[1].message, 1, true)
    assert.is_nil(emu.counters().creates[PROVIDER])
    os.remove(res); os.remove(jl)
  end)

  it("reports an unknown column once, at the header, with its suggestion, and sends nothing", function()
    local src = tmp(".csv")
    local body = { HEAD .. ",complettionPercentage" }
    for i = 1, 30 do body[#body + 1] = line(("unk-%d"):format(i), i, ",40") end
    write(src, table.concat(body, "\n") .. "\n")
    local before = requests()
    local s, err = viva.bulk.import(c, src, { provider = PROVIDER })
    assert.is_nil(s)
    assert.equal("CSV header: column 'complettionPercentage' is not a field of learningAssignment or "
      .. "learningSelfInitiatedCourse; did you mean 'completionPercentage'?", err)
    assert.equal(before, requests())
    os.remove(src)
  end)

  it("lets a delete file carry other columns (only its keys are read), but not two spellings of a key", function()
    local src = tmp(".csv")
    write(src, HEAD .. "\n" .. line("del-x1", 1) .. "\n")
    assert.equal(1, assert(viva.bulk.import(c, src, { provider = PROVIDER })).created)
    write(src, "externalCourseActivityId,comment\ndel-x1,gone\n")
    local s = assert(viva.bulk.import(c, src, { provider = PROVIDER, mode = "delete" }))
    assert.equal(1, s.deleted)
    write(src, "externalCourseActivityId,externalcourseActivityId\ndel-x1,del-x2\n")
    local s2, err = viva.bulk.import(c, src, { provider = PROVIDER, mode = "delete" })
    assert.is_nil(s2)
    assert.matches("'externalCourseActivityId' and 'externalcourseActivityId'", err, 1, true)
    os.remove(src)
  end)

  it("upsert: a plain-string notes column is unchanged on the second run", function()
    local src = tmp(".csv")
    write(src, HEAD .. ",notes\n" .. line("pn-1", 1, ",Assigned by HR") .. "\n" .. line("pn-2", 2, ',"Quarterly, part 2"') .. "\n")
    local s = assert(viva.bulk.import(c, src, { provider = PROVIDER, mode = "upsert" }))
    assert.equal(2, s.created)
    local since = emu.last_seq()
    s = assert(viva.bulk.import(c, src, { provider = PROVIDER, mode = "upsert" }))
    assert.equal(2, s.unchanged); assert.equal(0, s.updated)
    local patches = 0
    for _, e in ipairs(emu.log(since)) do if e.method == "PATCH" then patches = patches + 1 end end
    assert.equal(0, patches)
    -- a changed string is an update
    write(src, HEAD .. ",notes\n" .. line("pn-1", 1, ",Assigned by IT") .. "\n")
    s = assert(viva.bulk.import(c, src, { provider = PROVIDER, mode = "upsert" }))
    assert.equal(1, s.updated)
    assert.equal("Assigned by IT", assert(c:get_by_external_id(PROVIDER, "pn-1")).notes.content)
    os.remove(src)
  end)
end)
