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
    local f = assert(io.open(lf, "rb")); local s = f:read("a"); f:close()
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
