-- Output is whole or nothing: export -o FILE, export to stdout, contents and providers write
-- nothing (no header, no file, an existing file untouched) when the request fails. JSON Lines
-- are the models' own JSON (empty arrays stay [], keys in schema order). --results - writes the
-- results to stdout (the summary then goes to stderr).
local shell = require "support.shell"
local sample = require "vivalearning.sample"
local jsonl = require "vivalearning.jsonl"
local emu = require "support.emulator"
local cli = require "support.cli"
local slurp = require("support.lualayer").slurp

local PROVIDER = emu.PROVIDER
local ACTIVITIES = "/v1.0/users/.*/employeeExperience/learningCourseActivities$"

local function exists(path)
  local f = io.open(path, "r")
  if f then f:close() end
  return f ~= nil
end

-- files in a directory whose name starts with prefix
local function leftovers(dir, prefix)
  local p = io.popen("ls -a " .. cli.q(dir))
  local t = {}
  for name in p:lines() do
    if name:sub(1, #prefix) == prefix then t[#t + 1] = name end
  end
  p:close()
  return t
end

describe("vivalearning output", function()
  local learner = emu.user(9)
  before_each(function()
    emu.reset()
    local src = os.tmpname() .. ".csv"
    sample.write(src, 100, { prefix = "out-" })
    assert.equal(0, (cli.run({ "import", src, "--provider", PROVIDER, "-q" })))
    os.remove(src)
  end)
  after_each(function() emu.clear_faults() end)

  it("export -o FILE: no file when the request fails, an existing file untouched, no temporary left", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(shell.execute("mkdir " .. cli.q(dir)))
    local out = dir .. "/learner.csv"
    emu.fault({ method = "GET", path = ACTIVITIES, status = 403, count = 1 })
    local code, so, se = cli.run({ "export", "--user", learner, "-o", out })
    assert.is_false(exists(out))
    assert.same({}, leftovers(dir, "learner"))
    assert.equal("", so)
    assert.equal(1, code, se)
    -- an existing file stays as it was
    local f = assert(io.open(out, "w")); f:write("old\n"); f:close()
    emu.fault({ method = "GET", path = ACTIVITIES, status = 403, count = 1 })
    assert.equal(1, (cli.run({ "export", "--user", learner, "-o", out })))
    assert.equal("old\n", slurp(out))
    assert.same({ "learner.csv" }, leftovers(dir, "learner"))
    -- and replaced whole when it succeeds
    assert.equal(0, (cli.run({ "export", "--user", learner, "-o", out })))
    assert.matches("^type,externalCourseActivityId,", slurp(out))
    assert.same({ "learner.csv" }, leftovers(dir, "learner"))
    shell.execute("rm -rf " .. cli.q(dir))
  end)

  it("export: nothing written when paging fails after the first page was read", function()
    -- every nextLink points back at its own page: the pager delivers page 1, then stops with
    -- an error (a loop)
    emu.settings({ next_link_loop = true })
    local dir = os.tmpname()
    os.remove(dir)
    assert(shell.execute("mkdir " .. cli.q(dir)))
    local out = dir .. "/learner.jsonl"
    local code, so, se = cli.run({ "export", "--user", learner, "--top", "2", "-o", out })
    assert.same({}, leftovers(dir, "learner"))
    assert.equal("", so)
    assert.matches("nextLinkLoop", se)
    assert.equal(1, code, se)
    code, so, se = cli.run({ "export", "--user", learner, "--top", "2" })
    assert.equal("", so)
    assert.equal(1, code, se)
    shell.execute("rm -rf " .. cli.q(dir))
  end)

  it("export, contents and providers print nothing on stdout when the request fails", function()
    emu.fault({ method = "GET", path = ACTIVITIES, status = 403, count = 1 })
    local code, so = cli.run({ "export", "--user", learner })
    assert.equal("", so); assert.equal(1, code)
    code, so = cli.run({ "contents", "--provider", "c0000000-0000-4000-8000-000000000099" })
    assert.equal("", so); assert.equal(1, code)
    code, so = cli.run({ "providers" })   -- an app token: Graph refuses
    assert.equal("", so); assert.equal(1, code)
    code, so = cli.run({ "contents", "--provider", PROVIDER, "--format", "jsonl" }, { VIVA_CLIENT_SECRET = "wrong" })
    assert.equal(2, code); assert.equal("", so)
  end)

  it("JSON Lines are the models' own JSON: empty arrays stay [], keys in schema order", function()
    local code, so = cli.run({ "contents", "--provider", PROVIDER, "--format", "jsonl" })
    assert.equal(0, code)
    local n = 0
    for line in so:gmatch("[^\n]+") do
      n = n + 1
      assert.matches('^{"id":"d0000000%-', line)
      assert.matches('"contributors":[],"additionalTags":[],"skillTags":[]', line, 1, true)
      local i1, i2, i3 = line:find('"externalId"', 1, true), line:find('"title"', 1, true), line:find('"languageTag"', 1, true)
      assert.is_true(i1 < i2 and i2 < i3)
    end
    assert.equal(20, n)
    local c2, o2 = cli.run({ "export", "--user", learner, "--format", "jsonl" })
    assert.equal(0, c2)
    local m = 0
    for line in o2:gmatch("[^\n]+") do
      m = m + 1
      assert.matches('^{"@odata.type":"#microsoft.graph.learning[%a]+","id":"', line)
      assert.truthy(jsonl.decode(line).learnerUserId)
    end
    assert.is_true(m > 0)
  end)

  it("--results - writes the results to stdout and the summary to stderr", function()
    local src = os.tmpname() .. ".csv"
    sample.write(src, 7, { prefix = "dash-", invalid = 1 })
    local code, so, se = cli.run({ "import", src, "--provider", PROVIDER, "--results", "-" })
    assert.equal(1, code)
    local lines = {}
    for l in so:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.equal("row,external_id,id,outcome,status,code,message,request_id,retry_after", lines[1])
    assert.equal(8, #lines)
    assert.matches("7 rows read: 6 created", se)
    assert.not_matches("rows read", so)
    local c2, o2 = cli.run({ "import", src, "--provider", PROVIDER, "--mode", "upsert", "--results", "-",
                             "--results-format", "jsonl", "-q" })
    assert.equal(1, c2)
    local k = 0
    for l in o2:gmatch("[^\n]+") do k = k + 1; assert.truthy(jsonl.decode(l).outcome) end
    assert.equal(7, k)
    os.remove(src)
  end)
end)

describe("viva.bulk.export to a path", function()
  local viva = require "vivalearning"
  local learner = sample.rows(1, { prefix = "lib-out-" })().learnerUserId   -- row 1's learner
  before_each(function()
    emu.reset()
    local src = os.tmpname() .. ".csv"
    sample.write(src, 60, { prefix = "lib-out-" })
    assert.equal(0, (cli.run({ "import", src, "--provider", PROVIDER, "-q" })))
    os.remove(src)
  end)
  after_each(function() emu.clear_faults() end)

  it("writes under a temporary name and renames at the end: a failure leaves the old file, no temporary", function()
    local c = require("support.lualayer").client()
    local dir = os.tmpname()
    os.remove(dir)
    assert(shell.execute("mkdir " .. cli.q(dir)))
    local out = dir .. "/acts.jsonl"
    local f = assert(io.open(out, "w")); f:write("old\n"); f:close()
    emu.settings({ next_link_loop = true })
    local n, err = viva.bulk.export(c, { user = learner, output = out, top = 2 })
    assert.is_nil(n)
    assert.matches("nextLinkLoop", tostring(err))
    assert.equal("old\n", slurp(out))
    assert.same({ "acts.jsonl" }, leftovers(dir, "acts"))
    emu.settings({ next_link_loop = false })
    n = assert(viva.bulk.export(c, { user = learner, output = out }))
    assert.is_true(n > 0)
    local k = 0
    for line in slurp(out):gmatch("[^\n]+") do k = k + 1; assert.matches('^{"@odata.type":', line) end
    assert.equal(n, k)
    assert.same({ "acts.jsonl" }, leftovers(dir, "acts"))
    local n2, err2 = viva.bulk.export(c, { user = learner, output = dir .. "/no/such/dir.csv" })
    assert.is_nil(n2)
    assert.matches(dir .. "/no/such/dir.csv: ", err2, 1, true)
    shell.execute("rm -rf " .. cli.q(dir))
  end)
end)
