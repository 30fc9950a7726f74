-- Crash and resume: an import in a child process is SIGKILLed at random points, several times,
-- then run to the end with the same journal. Zero rows lost, zero duplicates (emulator
-- counters), exactly one outcome per row, and the journal parses after every kill.
local shell = require "support.shell"
local viva = require "vivalearning"
local sample = require "vivalearning.sample"
local results = require "vivalearning.results"
local journal = require "vivalearning.journal"
local emu = require "support.emulator"

local PROVIDER = emu.PROVIDER
local sys = require "vivalearning.sys"

local support = require "support.lualayer"
local q = support.q

local LUA, LUA_ENV = support.LUA, support.LUA_ENV
local sleep = sys.sleep

-- The child: one import with a journal; prints "read created failed resumed" at the end.
local CHILD = [[
local viva = require "vivalearning"
local a = { ... }
local c = viva.client { graph_url = a[1], authority_url = a[2], tenant = a[3], client_id = a[4],
                        client_secret = a[5], ca_file = a[6] }
local s, err = viva.bulk.import(c, a[7], { provider = a[8], journal = a[9], results = a[10],
  batch = tonumber(a[11]), concurrency = tonumber(a[12]), mode = a[13] })
if not s then io.stderr:write(tostring(err), "\n"); os.exit(2) end
print(("%d %d %d %d %d %d"):format(s.read, s.created, s.failed, s.resumed, s.updated, s.unchanged))
]]

local function child_cmd(script, src, jr, res, batch, conc, mode)
  local args = { emu.graph_url, emu.authority_url, emu.TENANT, emu.APPS.importer.client_id,
                 emu.APPS.importer.client_secret, emu.ca, src, PROVIDER, jr, res, batch, conc, mode or "create" }
  local parts = { LUA_ENV, LUA, q(script) }
  for _, v in ipairs(args) do parts[#parts + 1] = q(v) end
  return table.concat(parts, " ")
end

local function alive(pid)
  return shell.execute("kill -0 " .. pid .. " 2>/dev/null") == true
end

-- start in the background, SIGKILL after `after` seconds; true if it was still running
local function run_and_kill(cmd, after)
  local p = io.popen("sh -c " .. q(cmd .. " >/dev/null 2>&1 & echo $!"))
  local pid = tonumber(p:read("*l"))
  p:close()
  sleep(after)
  local was_running = alive(pid)
  shell.execute("kill -9 " .. pid .. " 2>/dev/null")
  for _ = 1, 200 do
    if not alive(pid) then break end
    sleep(0.02)
  end
  return was_running
end

local function run_to_end(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("*a")
  p:close()
  local r, cr, f, rs, up, un = out:match("(%d+) (%d+) (%d+) (%d+) (%d+) (%d+)")
  assert(r, "child failed: " .. out)
  return { read = tonumber(r), created = tonumber(cr), failed = tonumber(f), resumed = tonumber(rs),
           updated = tonumber(up), unchanged = tonumber(un) }
end

local function journal_parses(path)
  local it = journal.read(path)
  local n = 0
  for _ in it do n = n + 1 end   -- raises on damage before the last line
  return n
end

describe("bulk import crash and resume", function()
  local script
  setup(function()
    script = os.tmpname() .. ".lua"
    local f = assert(io.open(script, "w")); f:write(CHILD); f:close()
    math.randomseed(os.time())
  end)
  teardown(function() os.remove(script) end)
  before_each(function() emu.reset() end)
  after_each(function() emu.clear_faults() end)

  local function trial(batch, conc, kills, n, invalid)
    local src, jr, res = os.tmpname() .. ".csv", os.tmpname() .. ".journal", os.tmpname() .. ".csv"
    os.remove(jr)
    local bad = sample.write(src, n, { prefix = "kill" .. batch .. "-", invalid = invalid })
    -- slow the emulator down a little so the kills land mid-import
    emu.fault({ method = "POST", path = batch > 1 and "/v1.0/%$batch" or "learningCourseActivities$", delay = 0.03 })
    local cmd = child_cmd(script, src, jr, res, batch, conc)
    local killed_mid = 0
    for _ = 1, kills do
      if run_and_kill(cmd, 0.15 + math.random() * 0.6) then killed_mid = killed_mid + 1 end
      local nrec = journal_parses(jr)
      if os.getenv("RESUME_DEBUG") then io.stderr:write("journal records after kill: ", nrec, "\n") end
    end
    assert.is_true(killed_mid > 0, "no kill landed while the import was running")
    emu.clear_faults()
    local s = run_to_end(cmd)
    -- every row has exactly one outcome, counts add up
    assert.equal(n, s.read)
    assert.equal(n - #bad, s.created)
    assert.equal(#bad, s.failed)
    local seen, lines = {}, 0
    for r in results.read(res) do
      lines = lines + 1
      assert.is_nil(seen[r.row], "row " .. r.row .. " twice in the results")
      assert.equal("integer", math.type(r.row))   -- "5", not "5.0", also for rows copied from the journal
      seen[r.row] = r.outcome
    end
    assert.equal(n, lines)
    -- no row lost, no duplicate: the emulator saw exactly one create per valid row
    local creates = emu.counters().creates[PROVIDER] or {}
    local badrow = {}
    for _, b in ipairs(bad) do badrow[b.row] = true end
    for i = 1, n do
      local ext = ("kill%d-%06d"):format(batch, i)
      if badrow[i] then
        assert.equal("failed", seen[i])
      else
        assert.equal("created", seen[i], "row " .. i)
        assert.equal(1, creates[ext] or 0, ext .. " created " .. tostring(creates[ext]) .. " times")
      end
    end
    assert.equal(0, emu.counters().conflicts)
    -- a run over a finished journal sends nothing and reports the same outcomes (the invalid
    -- rows are checked again, as failed rows are tried again, and are still invalid)
    local before = emu.counters().requests
    local again = run_to_end(cmd)
    assert.equal(n, again.read); assert.equal(n - #bad, again.resumed); assert.equal(n - #bad, again.created)
    assert.equal(#bad, again.failed)
    assert.equal(before, emu.counters().requests)
    os.remove(src); os.remove(jr); os.remove(res)
    return killed_mid
  end

  -- VIVA_RESUME_KILLS / VIVA_RESUME_ROWS scale this up to reliability F9 (20 kills, 10,000 rows)
  it("survives SIGKILL at random points with $batch (zero lost, zero duplicates)", function()
    trial(20, 4, tonumber(os.getenv("VIVA_RESUME_KILLS")) or 6, tonumber(os.getenv("VIVA_RESUME_ROWS")) or 1500, 4)
  end)

  it("survives SIGKILL at random points with single requests", function()
    trial(1, 8, 5, 600, 2)
  end)

  it("survives SIGKILL during an upsert (updates and creates mixed)", function()
    local n = 800
    local v1, v2, jr, res = os.tmpname() .. ".csv", os.tmpname() .. ".csv", os.tmpname() .. ".journal", os.tmpname() .. ".csv"
    os.remove(jr)
    -- the first half exists already; the upsert file changes every 3rd row and adds the second half
    sample.write(v1, n // 2, { prefix = "ups-" })
    local c = support.client()
    assert.equal(n // 2, assert(viva.bulk.import(c, v1, { provider = PROVIDER })).created)
    sample.write(v2, n, { prefix = "ups-", changed = function(i) return i % 3 == 0 end })
    emu.fault({ method = "POST", path = "/v1.0/%$batch", delay = 0.03 })
    local cmd = child_cmd(script, v2, jr, res, 20, 4, "upsert")
    local killed_mid = 0
    for _ = 1, 4 do
      if run_and_kill(cmd, 0.1 + math.random() * 0.5) then killed_mid = killed_mid + 1 end
      journal_parses(jr)
    end
    assert.is_true(killed_mid > 0, "no kill landed while the import was running")
    emu.clear_faults()
    local s = run_to_end(cmd)
    assert.equal(n, s.read)
    assert.equal(n // 2, s.created)
    assert.equal(0, s.failed)
    local seen, lines = {}, 0
    for r in results.read(res) do
      lines = lines + 1
      assert.is_nil(seen[r.row]); seen[r.row] = r.outcome
    end
    assert.equal(n, lines)
    local creates = emu.counters().creates[PROVIDER] or {}
    for i = 1, n do
      local ext = ("ups-%06d"):format(i)
      assert.equal(1, creates[ext] or 0, ext)
      if i > n // 2 then assert.equal("created", seen[i]) end
    end
    -- every changed row of the first half now reads back completed
    for i = 3, n // 2, 3 do
      local a = assert(c:get_by_external_id(PROVIDER, ("ups-%06d"):format(i)))
      assert.equal("completed", a.status, "row " .. i)
      assert.is_true(seen[i] == "updated" or seen[i] == "unchanged")
    end
    os.remove(v1); os.remove(v2); os.remove(jr); os.remove(res)
  end)

  it("refuses a journal of another import, and a source that changed under it", function()
    local src, jr = os.tmpname() .. ".csv", os.tmpname() .. ".journal"
    os.remove(jr)
    sample.write(src, 40, { prefix = "j-" })
    local c = support.client()
    assert(viva.bulk.import(c, src, { provider = PROVIDER, journal = jr }))
    local s, err = viva.bulk.import(c, src, { provider = PROVIDER, journal = jr, mode = "upsert" })
    assert.is_nil(s); assert.matches("belongs to a create import", err)
    -- an intent whose row now has another external id: the source changed
    local j = assert(journal.open(jr))
    j:append({ k = "intent", r = { 41 }, x = { "j-000041" }, o = { "create" } })
    j:close()
    sample.write(src, 41, { prefix = "other-" })
    s, err = viva.bulk.import(c, src, { provider = PROVIDER, journal = jr })
    assert.is_nil(s); assert.matches("source differs from the journal", err)
    os.remove(src); os.remove(jr)
  end)
end)
