-- Failed rows are visible without --results: `import` and `--dry-run` list the first 20 on
-- stderr (row, external id, field, value, reason) and say how many more there are; every
-- validation message, in the results file too, carries the offending value.
local sample = require "vivalearning.sample"
local results = require "vivalearning.results"
local emu = require "support.emulator"
local cli = require "support.cli"

local PROVIDER = emu.PROVIDER

-- a CSV with the sample's columns and the given rows (tables of column = value)
local function write_csv(path, list)
  local rows = require "vivalearning.rows"
  local csv = require "vivalearning.csv"
  local w = assert(csv.writer(path, { eol = "\n" }))
  w:write(rows.columns)
  for t, i in sample.rows(#list) do
    for k, v in pairs(list[i]) do t[k] = v end
    local rec = {}
    for c, k in ipairs(rows.columns) do rec[c] = t[k] or "" end
    w:write(rec, #rows.columns)
  end
  w:close()
end

local function failed_lines(err)
  local t = {}
  for l in err:gmatch("[^\n]+") do
    if l:match("^  row %d+") then t[#t + 1] = l end
  end
  return t
end

describe("vivalearning import: failed rows", function()
  before_each(function() emu.reset() end)

  it("lists the first 20 failed rows on stderr with field, value and reason, and how many more", function()
    local src = os.tmpname() .. ".csv"
    local list = {}
    -- rows 1..25 are bad (odd: completionPercentage, even: status), 26..30 good
    for i = 1, 30 do
      list[i] = { externalCourseActivityId = ("fl-%02d"):format(i) }
      if i <= 25 and i % 2 == 1 then list[i].completionPercentage = tostring(100 + i) end
      if i <= 25 and i % 2 == 0 then list[i].status = "st" .. i end
    end
    write_csv(src, list)
    for _, args in ipairs { { "import", src, "--provider", PROVIDER },
                            { "import", src, "--provider", PROVIDER, "--dry-run" } } do
      emu.reset()
      local code, out, err = cli.run(args)
      assert.equal(1, code, err)
      local lines = failed_lines(err)
      assert.equal(20, #lines, err)
      assert.matches("and 5 more failed rows", err)
      local seen = {}
      for _, l in ipairs(lines) do
        local n = tonumber(l:match("^  row (%d+)"))
        seen[#seen + 1] = n
        assert.matches(("fl%%-%02d"):format(n), l, 1)
        if n % 2 == 1 then
          assert.matches("completionPercentage: integer 0..100 expected, got " .. list[n].completionPercentage, l, 1, true)
        else
          assert.matches('status: one of .* expected, got "' .. list[n].status .. '"', l)
        end
      end
      -- the first 20 in row order
      for i = 2, #seen do assert.is_true(seen[i - 1] < seen[i]) end
      assert.equal(1, seen[1])
      assert.not_matches("  row", out)
    end
    os.remove(src)
  end)

  it("says 'row' for one more, and lists Graph's failures with their status and code", function()
    local src = os.tmpname() .. ".csv"
    local list = {}
    for i = 1, 21 do list[i] = { externalCourseActivityId = "one-" .. i, status = "nope" } end
    write_csv(src, list)
    local code, _, err = cli.run({ "import", src, "--provider", PROVIDER, "--dry-run" })
    assert.equal(1, code)
    assert.matches("and 1 more failed row ", err)
    -- Graph's 409 for an existing external id
    local src2 = os.tmpname() .. ".csv"
    write_csv(src2, { { externalCourseActivityId = "dup-1" } })
    assert.equal(0, (cli.run({ "import", src2, "--provider", PROVIDER, "-q" })))
    local c2, out2, e2 = cli.run({ "import", src2, "--provider", PROVIDER })
    assert.equal(1, c2)
    assert.matches("1 row read: 0 created", out2)
    assert.matches("  row 1 %(dup%-1%): 409 ", e2)
    assert.not_matches("more failed", e2)
    os.remove(src); os.remove(src2)
  end)

  it("import: the client leaves throttled single requests to the import (its pace sees the 429s)", function()
    local src = os.tmpname() .. ".csv"
    local list = {}
    for i = 1, 10 do list[i] = { externalCourseActivityId = "thr-" .. i } end
    write_csv(src, list)
    emu.fault({ method = "POST", path = "/learningCourseActivities$", status = 429, retry_after = "0.2", count = 3 })
    local code, out = cli.run({ "import", src, "--provider", PROVIDER, "--no-batch" })
    emu.clear_faults()
    assert.equal(0, code)
    assert.matches("10 rows read: 10 created", out)
    -- the import sent the three rows again itself (a client retrying on its own, max_retries 3,
    -- would make it 10 requests and hide the 429s until its retries were over)
    assert.matches("  13 requests in ", out)
    assert.matches("throttled %d+ times?; concurrency backed off", out)
    os.remove(src)
  end)

  it("shows an explicit JSON null as null", function()
    local src = os.tmpname() .. ".jsonl"
    local f = assert(io.open(src, "w"))
    f:write(('{"@odata.type":"#microsoft.graph.learningAssignment","externalCourseActivityId":"nul-1",' ..
      '"learnerUserId":null,"learningContentId":"%s","status":"inProgress","assignmentType":"required"}\n'):format(sample.content(1)))
    f:close()
    local code, _, err = cli.run({ "import", src, "--provider", PROVIDER, "--dry-run" })
    assert.equal(1, code)
    assert.matches("  row 1 (nul-1): learnerUserId: non-null value expected (field is not nullable), got null\n", err, 1, true)
    os.remove(src)
  end)

  it("writes the offending value into the results file's message", function()
    local src, res = os.tmpname() .. ".csv", os.tmpname() .. ".csv"
    sample.write(src, 10, { invalid = 2 })
    local code = cli.run({ "import", src, "--provider", PROVIDER, "--results", res, "-q" })
    assert.equal(1, code)
    local msgs = {}
    for r in results.read(res) do
      if r.outcome == "failed" then msgs[#msgs + 1] = r.message end
    end
    table.sort(msgs)
    assert.same({ "completionPercentage: integer 0..100 expected, got 150",
                  'status: one of notStarted, inProgress, completed, unknownFutureValue expected, got "finished"' }, msgs)
    os.remove(src); os.remove(res)
  end)
end)
