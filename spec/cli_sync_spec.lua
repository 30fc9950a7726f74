-- `vivalearning sync` and `vivalearning state show|export`, run as real child processes
-- against the emulator.
local sample = require "vivalearning.sample"
local results = require "vivalearning.results"
local jsonl = require "vivalearning.jsonl"
local csv = require "vivalearning.csv"
local emu = require "support.emulator"
local cli = require "support.cli"

local PROVIDER = emu.PROVIDER

local function tmp(ext)
  local p = os.tmpname() .. ext
  os.remove(p)
  return p
end
local function rm_state(p)
  for _, s in ipairs({ "", "-wal", "-shm", "-lock" }) do os.remove(p .. s) end
end

describe("vivalearning sync / state", function()
  before_each(function() emu.reset() end)

  it("syncs, then sends nothing for an unchanged file, then only the changes", function()
    local v1, v2, st, res = tmp(".csv"), tmp(".csv"), tmp(".sqlite"), tmp(".csv")
    sample.write(v1, 30, { prefix = "cs-" })
    local code, out, err = cli.run({ "sync", v1, "--provider", PROVIDER, "--state", st, "--no-progress" })
    assert.equal(0, code, err)
    assert.matches("30 rows read: 30 created", out)
    assert.matches("new: every row was looked up", out)
    local before = emu.counters().requests
    code, out = cli.run({ "sync", v1, "--provider", PROVIDER, "--state", st, "--no-progress" })
    assert.equal(0, code)
    assert.matches("30 unchanged", out)
    assert.equal(before, emu.counters().requests)
    sample.write(v2, 28, { prefix = "cs-", changed = function(i) return i <= 3 end })
    -- the dry run says what would be sent and deleted
    code, out = cli.run({ "sync", v2, "--provider", PROVIDER, "--state", st, "--dry-run", "--delete-missing" })
    assert.equal(0, code, out)
    assert.matches("would send: 0 creates, 3 updates, 0 lookups; 25 unchanged", out)
    assert.matches("2 rows in the state and not in the file would be deleted", out)
    assert.matches("cs%-000029", out)
    assert.equal(before, emu.counters().requests)
    code, out = cli.run({ "sync", v2, "--provider", PROVIDER, "--state", st, "--delete-missing", "--results", res, "--no-progress" })
    assert.equal(0, code, out)
    assert.matches("3 updated, 25 unchanged, 2 deleted, 0 failed", out)
    local outcomes = {}
    for r in results.read(res) do outcomes[r.outcome] = (outcomes[r.outcome] or 0) + 1 end
    assert.same({ updated = 3, unchanged = 25, deleted = 2 }, outcomes)
    -- state show and export
    code, out = cli.run({ "state", "show", "--state", st }, { VIVA_CLIENT_SECRET = false, VIVA_TENANT_ID = false })
    assert.equal(0, code, out)
    assert.matches("provider " .. PROVIDER:gsub("%-", "%%-"), out)
    assert.matches("28 activities", out)
    assert.matches("3 runs; the last: #3 done", out)
    local exp = tmp(".csv")
    code, out = cli.run({ "state", "export", "--state", st, "-o", exp })
    assert.equal(0, code, out)
    local r = assert(csv.reader(exp))
    local n, cols = 0, r.columns
    while true do
      local rec = r:read()
      if not rec then break end
      n = n + 1
      local t = {}
      for i, k in ipairs(cols) do t[k] = rec[i] end
      if t.externalCourseActivityId == "cs-000002" then assert.equal("completed", t.status) end
      assert.truthy(t.id ~= "")
    end
    r:close()
    assert.equal(28, n)
    local jexp = tmp(".jsonl")
    code = cli.run({ "state", "export", "--state", st, "--format", "jsonl", "-o", jexp })
    assert.equal(0, code)
    local jr = assert(jsonl.reader(jexp))
    local first = jr:read()
    jr:close()
    assert.equal("cs-000001", first.externalCourseActivityId)
    -- the export reads back as a sync source: nothing to send
    before = emu.counters().requests
    code, out = cli.run({ "sync", exp, "--provider", PROVIDER, "--state", st, "--no-progress" })
    assert.equal(0, code, out)
    assert.matches("28 unchanged", out)
    assert.equal(before, emu.counters().requests)
    for _, f in ipairs({ v1, v2, res, exp, jexp }) do os.remove(f) end
    rm_state(st)
  end)

  it("refuses bad arguments, naming them", function()
    local code, _, err = cli.run({ "sync", "x.csv", "--provider", PROVIDER })
    assert.equal(2, code); assert.matches("--state", err)
    code, _, err = cli.run({ "sync", "x.csv", "--provider", PROVIDER, "--state", "s", "--verify-share", "2" })
    assert.equal(2, code); assert.matches("%-%-verify%-share: '2' is not a share", err)
    code, _, err = cli.run({ "sync", "x.csv", "--provider", PROVIDER, "--state", "s", "--verify", "--verify-share", "1%" })
    assert.equal(2, code); assert.matches("give one", err)
    code, _, err = cli.run({ "state", "show", "--state", "/nonexistent/s.sqlite" })
    assert.equal(2, code); assert.matches("no such file", err)
    code, _, err = cli.run({ "state", "list", "--state", "s" })
    assert.equal(2, code); assert.matches("action", err)
  end)

  it("--verify-share takes a percentage", function()
    local v1, st = tmp(".csv"), tmp(".sqlite")
    sample.write(v1, 20, { prefix = "vs-" })
    assert.equal(0, (cli.run({ "sync", v1, "--provider", PROVIDER, "--state", st, "--no-progress" })))
    local code, out = cli.run({ "sync", v1, "--provider", PROVIDER, "--state", st, "--verify-share", "100%", "--no-progress" })
    assert.equal(0, code, out)
    assert.matches("20 verified, 0 repaired", out)
    os.remove(v1); rm_state(st)
  end)
end)
