-- The journal and re-runs against the real emulator: one import per journal (lock), a results
-- or journal file that is the source, damaged or truncated journals, journal records with bad
-- content, re-runs after the user fixed rows, resumed failed rows.
local shell = require "support.shell"
local viva = require "vivalearning"
local sample = require "vivalearning.sample"
local results = require "vivalearning.results"
local journal = require "vivalearning.journal"
local sys = require "vivalearning.sys"
local emu = require "support.emulator"
local support = require "support.lualayer"

local PROVIDER = emu.PROVIDER
local q, slurp = support.q, support.slurp
local LUA, LUA_ENV = support.LUA, support.LUA_ENV

local function tmp(ext) local p = os.tmpname(); os.remove(p); return p .. ext end

local function write(path, s)
  local f = assert(io.open(path, "wb")); f:write(s); f:close()
end

local function creates(ext) return (emu.counters().creates[PROVIDER] or {})[ext] or 0 end

local function outcomes(path)
  local byrow, n = {}, 0
  for r in results.read(path) do
    n = n + 1
    assert.is_nil(byrow[r.row], "row " .. tostring(r.row) .. " has two outcomes")
    byrow[r.row] = r
  end
  return byrow, n
end

-- the framed lines of a journal file
local function lines_of(path)
  local t = {}
  for l in slurp(path):gmatch("[^\n]*\n") do t[#t + 1] = l end
  return t
end

-- run bin/vivalearning import with args; returns exit code, stdout, stderr
local function vl(args)
  local out, err = os.tmpname(), os.tmpname()
  local parts = { "env", q("VIVA_TENANT_ID=" .. emu.TENANT), q("VIVA_CLIENT_ID=" .. emu.APPS.importer.client_id),
    q("VIVA_CLIENT_SECRET=" .. emu.APPS.importer.client_secret), q("VIVA_GRAPH_URL=" .. emu.graph_url),
    q("VIVA_AUTHORITY_URL=" .. emu.authority_url), q("VIVA_CA_FILE=" .. emu.ca),
    q("LUA_PATH=" .. package.path), q("LUA_CPATH=" .. package.cpath), LUA, "bin/vivalearning" }
  for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
  local ok, _, code = shell.execute(table.concat(parts, " ") .. " >" .. out .. " 2>" .. err .. " </dev/null")
  local so, se = slurp(out), slurp(err)
  os.remove(out); os.remove(err)
  return ok and 0 or code, so, se
end

describe("bulk import journal", function()
  local c
  setup(function() c = support.client() end)
  before_each(function() emu.reset() end)
  after_each(function() emu.clear_faults() end)

  -- issue 3
  describe("lock", function()
    local CHILD = [[
local viva = require "vivalearning"
local a = { ... }
local f = assert(io.open(a[10], "w")); f:write(require("vivalearning.sys").getpid()); f:close()
local c = viva.client { graph_url = a[1], authority_url = a[2], tenant = a[3], client_id = a[4],
                        client_secret = a[5], ca_file = a[6] }
local s, err = viva.bulk.import(c, a[7], { provider = a[8], journal = a[9], batch = 20, concurrency = 1 })
if not s then io.stderr:write(tostring(err), "\n"); os.exit(2) end
print(s.created)
]]

    it("lets one import at a time use a journal; the second refuses at once, naming journal and pid", function()
      local script, src, jr, pidf, outf = tmp(".lua"), tmp(".csv"), tmp(".journal"), tmp(".pid"), tmp(".out")
      write(script, CHILD)
      sample.write(src, 200, { prefix = "lock-" })
      -- slow enough that the child still holds the journal when the second import starts
      emu.fault({ method = "POST", path = "/v1.0/%$batch", delay = 0.4 })
      local args = { emu.graph_url, emu.authority_url, emu.TENANT, emu.APPS.importer.client_id,
                     emu.APPS.importer.client_secret, emu.ca, src, PROVIDER, jr, pidf }
      local parts = { LUA_ENV, LUA, q(script) }
      for _, v in ipairs(args) do parts[#parts + 1] = q(v) end
      local done = tmp(".done")
      shell.execute("sh -c " .. q(table.concat(parts, " ") .. " >" .. outf .. " 2>&1; touch " .. done) .. " &")
      -- wait until the child has written its journal header (it holds the lock from then on)
      local child_pid
      for _ = 1, 500 do
        local it, info = journal.read(jr)
        local n = 0
        for _ in it do n = n + 1 end
        child_pid = tonumber(slurp(pidf) or "")
        if n > 0 and child_pid then break end
        sys.sleep(0.02)
      end
      assert.truthy(child_pid, "the child never started")
      local s, err = viva.bulk.import(c, src, { provider = PROVIDER, journal = jr })
      assert.is_nil(s)
      assert.matches(jr, err, 1, true)
      assert.matches(tostring(child_pid), err, 1, true)
      assert.is_nil(io.open(done), "the child finished before the second import started; the check proved nothing")
      -- the child finishes alone: every row created exactly once
      for _ = 1, 3000 do
        if io.open(done) then break end
        sys.sleep(0.02)
      end
      assert.equal("200", (slurp(outf):match("^(%d+)")))
      for i = 1, 200 do assert.equal(1, creates(("lock-%06d"):format(i)), i) end
      -- and then the journal is free again: a re-run is a no-op
      local again = assert(viva.bulk.import(c, src, { provider = PROVIDER, journal = jr }))
      assert.equal(200, again.resumed)
      for _, p in ipairs { script, src, jr, pidf, outf, done } do os.remove(p) end
    end)

    it("refuses a second import on the same journal in the same process", function()
      local src, jr = tmp(".csv"), tmp(".journal")
      sample.write(src, 5, { prefix = "lock1-" })
      local inner_err, other_err
      local s = assert(viva.bulk.import(c, src, { provider = PROVIDER, journal = jr, on_outcome = function()
        if inner_err == nil then
          local s2, e2 = viva.bulk.import(c, src, { provider = PROVIDER, journal = jr })
          inner_err = s2 and "it ran" or e2
          -- reading it here must not drop the lock: another process is still refused
          for _ in journal.read(jr) do end
          local script = tmp(".lua")
          write(script, "local j, e = require('vivalearning.journal').open(" .. ("%q"):format(jr)
            .. ") print(j and 'opened' or e)")
          local p = io.popen(LUA_ENV .. " " .. LUA .. " " .. q(script))
          other_err = p:read("*a")
          p:close()
          os.remove(script)
        end
      end }))
      assert.equal(5, s.created)
      assert.matches("in use", inner_err)
      assert.matches(jr, inner_err, 1, true)
      assert.matches("in use by another import %(process %d+", other_err)
      for i = 1, 5 do assert.equal(1, creates(("lock1-%06d"):format(i))) end
      os.remove(src); os.remove(jr)
    end)
  end)

  -- issue 4
  describe("files that are one", function()
    it("refuses results or journal on the source, and results on the journal, before writing anything", function()
      local dir = tmp(".d")
      assert(shell.execute("mkdir " .. q(dir)))
      local src = dir .. "/src.csv"
      sample.write(src, 10, { prefix = "same-" })
      local before = slurp(src)
      assert(shell.execute("ln -s src.csv " .. q(dir .. "/link.csv")))
      assert(shell.execute("ln " .. q(src) .. " " .. q(dir .. "/hard.csv")))
      local cases = {
        { results = src, what = "results" },
        { results = dir .. "/./src.csv", what = "results" },
        { results = dir .. "/link.csv", what = "results" },
        { results = dir .. "/hard.csv", what = "results" },
        { journal = dir .. "//src.csv", what = "journal" },
        { journal = dir .. "/link.csv", what = "journal" },
        { journal = dir .. "/j", results = dir .. "/./j", what = "results" },
      }
      for _, k in ipairs(cases) do
        local s, err = viva.bulk.import(c, src, { provider = PROVIDER, results = k.results, journal = k.journal })
        assert.is_nil(s, k.what)
        assert.matches(k.what, err)
        assert.equal(before, slurp(src))
        assert.is_nil(io.open(dir .. "/j"), "the journal was created")
      end
      assert.equal(0, creates("same-000001"))
      -- and through the command (exit 2, the source untouched)
      local code, _, err = vl({ "import", src, "--provider", PROVIDER, "--results", dir .. "/hard.csv" })
      assert.equal(2, code)
      assert.matches("results", err)
      assert.equal(before, slurp(src))
      code, _, err = vl({ "import", src, "--provider", PROVIDER, "--journal", src })
      assert.equal(2, code)
      assert.matches("journal", err)
      assert.equal(before, slurp(src))
      shell.execute("rm -rf " .. q(dir))
    end)
  end)

  -- issue 6
  describe("damaged journals", function()
    local function first_run(n, prefix)
      local src, jr = tmp(".csv"), tmp(".journal")
      sample.write(src, n, { prefix = prefix })
      assert.equal(n, assert(viva.bulk.import(c, src, { provider = PROVIDER, journal = jr, batch = 5, concurrency = 1 })).created)
      return src, jr
    end

    it("stops on records missing in the middle or at the start, unless journal_repair is given", function()
      local src, jr = first_run(60, "gap-")
      local good = lines_of(jr)
      assert.is_true(#good > 6)
      -- lines lost in the middle (the journal was truncated and appended to, or spliced)
      write(jr, table.concat(good, "", 1, 2) .. table.concat(good, "", 5))
      local s, err = viva.bulk.import(c, src, { provider = PROVIDER, journal = jr })
      assert.is_nil(s)
      assert.matches(jr, err, 1, true)
      assert.matches("missing", err)
      -- the header lost
      write(jr, table.concat(good, "", 2))
      s, err = viva.bulk.import(c, src, { provider = PROVIDER, journal = jr })
      assert.is_nil(s)
      assert.matches("missing at the start", err)
      -- repaired, the header is written again: the next run needs no option
      s = assert(viva.bulk.import(c, src, { provider = PROVIDER, journal = jr, journal_repair = true }))
      assert.equal(60, s.read); assert.equal(0, s.failed)
      s = assert(viva.bulk.import(c, src, { provider = PROVIDER, journal = jr }))
      assert.equal(60, s.resumed)
      -- going on when asked: rows without an outcome are looked up first, none is created twice
      write(jr, table.concat(good, "", 1, 2) .. table.concat(good, "", 5))
      local res = tmp(".csv")
      s = assert(viva.bulk.import(c, src, { provider = PROVIDER, journal = jr, journal_repair = true, results = res }))
      assert.equal(60, s.read)
      assert.equal(60, s.created)
      assert.equal(0, s.failed)
      assert.truthy(s.journal_repaired)
      for i = 1, 60 do assert.equal(1, creates(("gap-%06d"):format(i)), i) end
      -- the repaired journal is clean: the next run needs no option
      s = assert(viva.bulk.import(c, src, { provider = PROVIDER, journal = jr }))
      assert.equal(60, s.resumed)
      os.remove(src); os.remove(jr); os.remove(res)
    end)

    it("the command refuses a damaged journal (exit 2) and goes on with --repair-journal", function()
      local src, jr = first_run(30, "cgap-")
      local good = lines_of(jr)
      write(jr, table.concat(good, "", 1, 2) .. table.concat(good, "", 5))
      local code, _, err = vl({ "import", src, "--provider", PROVIDER, "--journal", jr })
      assert.equal(2, code)
      assert.matches("records are missing", err)
      local out
      code, out, err = vl({ "import", src, "--provider", PROVIDER, "--journal", jr, "--repair-journal" })
      assert.equal(0, code, err)
      assert.matches("30 created", out)
      assert.matches("warning: .*repaired", err)
      for i = 1, 30 do assert.equal(1, creates(("cgap-%06d"):format(i)), i) end
      os.remove(src); os.remove(jr)
    end)

    it("stops on a damaged record followed by others", function()
      local src, jr = first_run(20, "dmg-")
      local l = lines_of(jr)
      local at
      for i = 1, #l - 1 do if l[i]:find("created", 1, true) then at = i; break end end
      l[at] = l[at]:gsub("created", "crea7ed", 1)
      write(jr, table.concat(l))
      local s, err = viva.bulk.import(c, src, { provider = PROVIDER, journal = jr })
      assert.is_nil(s)
      assert.matches(jr, err, 1, true)
      assert.matches("line " .. at, err)
      os.remove(src); os.remove(jr)
    end)

    it("cuts a torn tail and says so in the summary; the command warns", function()
      local src, jr = first_run(20, "torn-")
      local l = lines_of(jr)
      write(jr, table.concat(l, "", 1, #l - 1) .. l[#l]:sub(1, 10))
      local s = assert(viva.bulk.import(c, src, { provider = PROVIDER, journal = jr }))
      assert.is_true(s.torn_journal)
      assert.matches("torn", table.concat(s.warnings or {}, "\n"))
      l = lines_of(jr)
      write(jr, table.concat(l, "", 1, #l - 1) .. l[#l]:sub(1, 10))
      local code, _, err = vl({ "import", src, "--provider", PROVIDER, "--journal", jr })
      assert.equal(0, code)
      assert.matches("warning: .*torn", err)
      os.remove(src); os.remove(jr)
    end)
  end)

  -- issue 7
  describe("journal records with bad content", function()
    local function journal_with(records)
      local jr = tmp(".journal")
      local j = assert(journal.open(jr))
      j:append({ k = "begin", v = 2, mode = "create", provider = PROVIDER })
      for _, r in ipairs(records) do j:append(r) end
      j:close()
      return jr
    end

    it("refuses each, naming the journal and the problem", function()
      local src = tmp(".csv")
      sample.write(src, 10, { prefix = "bad-" })
      for _, case in ipairs {
        { { k = "done", o = { { 1 } } }, "outcome" },
        { { k = "done", o = { { 1, "exploded", "bad-000001" } } }, "outcome" },
        { { k = "done", o = { { 1, "created", "bad-000001" } } }, { k = "done", o = { { 1, "created", "bad-000001" } } }, "twice" },
        { { k = "done", o = { { 99, "created", "bad-000099" } } }, "row 99" },
        { { k = "done", o = { { "x", "created" } } }, "row" },
        { { k = "done", o = "oops" }, "done" },
        { { k = "intent", r = { 1 } }, "intent" },
        { { k = "martian" }, "martian" },
      } do
        local msg = table.remove(case)
        local jr = journal_with(case)
        local s, err = viva.bulk.import(c, src, { provider = PROVIDER, journal = jr })
        assert.is_nil(s, msg)
        assert.matches(jr, err, 1, true)
        assert.matches(msg, err, 1, true)
        os.remove(jr)
      end
      assert.equal(0, emu.counters().requests, "nothing may be sent on a bad journal")
      os.remove(src)
    end)

    it("warns when an iterator source ends before the rows its journal has outcomes for", function()
      local jr = tmp(".journal")
      local t = {}
      for r in sample.rows(6, { prefix = "it-" }) do t[#t + 1] = r end
      local function iter(n) local i = 0; return function() i = i + 1; if i <= n then return t[i] end end end
      assert(viva.bulk.import(c, iter(6), { provider = PROVIDER, journal = jr }))
      local s = assert(viva.bulk.import(c, iter(3), { provider = PROVIDER, journal = jr }))
      assert.matches("outcomes up to row 6, but the source had 3 rows", table.concat(s.warnings, "\n"), 1, true)
      os.remove(jr)
    end)

    it("gives a clear error for a journal that is a directory", function()
      local src, dir = tmp(".csv"), tmp(".d")
      sample.write(src, 3, { prefix = "dir-" })
      assert(shell.execute("mkdir " .. q(dir)))
      local s, err = viva.bulk.import(c, src, { provider = PROVIDER, journal = dir })
      assert.is_nil(s)
      assert.matches("journal " .. dir .. " is a directory", err, 1, true)
      os.remove(dir); os.remove(src)
    end)

    it("returns nil, err when on_progress raises (and the journal stays usable)", function()
      local src, jr = tmp(".csv"), tmp(".journal")
      sample.write(src, 50, { prefix = "cb-" })
      local s, err = viva.bulk.import(c, src, { provider = PROVIDER, journal = jr,
        on_progress = function() error("callback exploded") end })
      assert.is_nil(s)
      assert.matches("callback exploded", tostring(err))
      s = assert(viva.bulk.import(c, src, { provider = PROVIDER, journal = jr }))
      assert.equal(50, s.read)
      for i = 1, 50 do assert.equal(1, creates(("cb-%06d"):format(i)), i) end
      os.remove(src); os.remove(jr)
    end)
  end)

  -- issue 18, through the command
  it("the command takes --max-wait and --deadline", function()
    local src, res = tmp(".csv"), tmp(".csv")
    sample.write(src, 3, { prefix = "cmw-" })
    emu.fault({ method = "POST", path = "/v1.0/employeeExperience/learningProviders/.*/learningCourseActivities$",
                status = 429, retry_after = 3600 })
    local code, out, err = vl({ "import", src, "--provider", PROVIDER, "--max-wait", "2", "--results", res })
    assert.equal(1, code, err)
    assert.matches("3 failed", out)
    for r in results.read(res) do assert.equal("throttled", r.code); assert.equal(3600, r.retry_after) end
    code, out, err = vl({ "import", src, "--provider", PROVIDER, "--max-wait", "7200", "--deadline", "1" })
    assert.equal(1, code, err)
    assert.matches("warning: the deadline", err)
    code, _, err = vl({ "import", src, "--provider", PROVIDER, "--deadline", "soon" })
    assert.equal(2, code)
    assert.matches("deadline", err)
    os.remove(src); os.remove(res)
  end)

  -- issue 26 and the first-hour re-run item
  describe("re-runs", function()
    it("copies failed rows from the journal without userdata in id or status", function()
      local src, jr, res = tmp(".csv"), tmp(".journal"), tmp(".csv")
      sample.write(src, 10, { prefix = "nul-" })
      -- row 3 exists already: its create fails 409, and a re-run keeps that outcome
      local t = {}
      for r in sample.rows(10, { prefix = "nul-" }) do t[#t + 1] = r end
      assert(viva.bulk.import(c, { t[3] }, { provider = PROVIDER }))
      local s = assert(viva.bulk.import(c, src, { provider = PROVIDER, journal = jr }))
      assert.equal(1, s.failed)
      s = assert(viva.bulk.import(c, src, { provider = PROVIDER, journal = jr, results = res }))
      assert.equal(10, s.resumed)
      assert.not_matches("userdata", slurp(res))
      local byrow = outcomes(res)
      assert.equal("failed", byrow[3].outcome)
      assert.equal(409, byrow[3].status)
      assert.is_nil(byrow[3].id)
      os.remove(src); os.remove(jr); os.remove(res)
    end)

    it("a delete that failed 404 is tried again and still fails 404 (not taken as already gone)", function()
      local jr = tmp(".journal")
      local src = { { externalCourseActivityId = "never-there-1" } }
      local s = assert(viva.bulk.import(c, src, { provider = PROVIDER, mode = "delete", journal = jr }))
      assert.equal(1, s.failed)
      s = assert(viva.bulk.import(c, src, { provider = PROVIDER, mode = "delete", journal = jr }))
      assert.equal(1, s.retried)
      assert.equal(1, s.failed)
      assert.equal(0, s.deleted)
      os.remove(jr)
    end)

    it("tries again the rows that failed once the user fixed them, and reports the changed source", function()
      local src, jr, res = tmp(".csv"), tmp(".journal"), tmp(".csv")
      local bad = sample.write(src, 40, { prefix = "fix-", invalid = 4 })
      local s = assert(viva.bulk.import(c, src, { provider = PROVIDER, journal = jr }))
      assert.equal(4, s.failed)
      assert.equal(36, s.created)
      -- the user fixes the file (same rows, now all valid)
      sys.sleep(0.01)
      sample.write(src, 40, { prefix = "fix-" })
      s = assert(viva.bulk.import(c, src, { provider = PROVIDER, journal = jr, results = res }))
      assert.equal(40, s.read)
      assert.equal(36, s.resumed)
      assert.equal(40, s.created)
      assert.equal(0, s.failed)
      assert.matches("source .*changed", table.concat(s.warnings or {}, "\n"))
      for i = 1, 40 do assert.equal(1, creates(("fix-%06d"):format(i)), i) end
      local byrow, n = outcomes(res)
      assert.equal(40, n)
      for _, b in ipairs(bad) do assert.equal("created", byrow[b.row].outcome) end
      -- the command prints the warning too (the source changed against the last run)
      sample.write(src, 40, { prefix = "fix-", changed = function(i) return i == 1 end })
      local code, _, err = vl({ "import", src, "--provider", PROVIDER, "--journal", jr })
      assert.equal(0, code)
      assert.matches("warning: .*source", err)
      -- retry_failed = false keeps failed outcomes as they are
      os.remove(jr)
      sample.write(src, 10, { prefix = "keep-", invalid = 2 })
      assert(viva.bulk.import(c, src, { provider = PROVIDER, journal = jr }))
      sample.write(src, 10, { prefix = "keep-" })
      s = assert(viva.bulk.import(c, src, { provider = PROVIDER, journal = jr, retry_failed = false }))
      assert.equal(10, s.resumed)
      assert.equal(2, s.failed)
      os.remove(src); os.remove(jr); os.remove(res)
    end)
  end)
end)
