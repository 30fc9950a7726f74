-- Sharding: `import --shard K/N` (and viva.bulk.import's shard option) takes the rows whose
-- externalCourseActivityId hashes (FNV-1a 32, mod N) to K, so N processes split one source,
-- each with its own journal and results. A row without an external id is keyed by its id, else
-- by "#" and its row number: exactly one shard reports it.
local shell = require "support.shell"
local sample = require "vivalearning.sample"
local results = require "vivalearning.results"
local rows = require "vivalearning.rows"
local csv = require "vivalearning.csv"
local emu = require "support.emulator"
local cli = require "support.cli"
local support = require "support.lualayer"

local PROVIDER = emu.PROVIDER
local N_ROWS = 90
local NO_EXT = { [40] = true, [80] = true }

local function write_source(path)
  local w = assert(csv.writer(path, { eol = "\n" }))
  w:write(rows.columns)
  for t, i in sample.rows(N_ROWS, { prefix = "sh-" }) do
    if NO_EXT[i] then t.externalCourseActivityId = "" end
    local rec = {}
    for c, k in ipairs(rows.columns) do rec[c] = t[k] or "" end
    w:write(rec, #rows.columns)
  end
  w:close()
end

describe("sharded import", function()
  local viva = require "vivalearning"
  local bulk = viva.bulk
  before_each(function() emu.reset() end)

  it("hashes with FNV-1a 32 (the published test vectors) and parses K/N", function()
    assert.equal(0x811c9dc5, bulk.fnv1a32(""))
    assert.equal(0xe40c292c, bulk.fnv1a32("a"))
    assert.equal(0xbf9cf968, bulk.fnv1a32("foobar"))
    assert.equal(0xbf9cf968 % 3, bulk.shard_of("foobar", 3))
    assert.same({ k = 1, n = 3 }, bulk.parse_shard("1/3"))
    assert.same({ k = 0, n = 2 }, bulk.parse_shard({ 0, 2 }))
    for _, bad in ipairs { "3/3", "-1/3", "a/b", "1", "0/0", 5 } do
      assert.has_error(function() bulk.parse_shard(bad) end)
    end
    local c = support.client()
    local ok, err = pcall(bulk.import, c, {}, { provider = PROVIDER, shard = "2/2" })
    assert.is_false(ok)
    assert.matches("shard must be", err)
  end)

  it("bulk.import: shards of one array import every row once", function()
    local c = support.client()
    local list = {}
    for t in sample.rows(40, { prefix = "lib-" }) do list[#list + 1] = t end
    local total = 0
    for k = 0, 1 do
      local s = assert(bulk.import(c, list, { provider = PROVIDER, shard = k == 0 and { 0, 2 } or "1/2" }))
      assert.equal(0, s.failed)
      assert.equal(40, s.read + s.other_shards)
      total = total + s.created
    end
    assert.equal(40, total)
    for i = 1, 40 do assert.equal(1, emu.creates(PROVIDER, ("lib-%06d"):format(i))) end
  end)

  it("three processes, one file: every row imported exactly once, each shard its own journal and results", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(shell.execute("mkdir " .. cli.q(dir)))
    local src = dir .. "/all.csv"
    write_source(src)
    -- the three run at the same time
    local parts = {}
    for k = 0, 2 do
      local cmd = cli.command({ "import", src, "--provider", PROVIDER, "--shard", k .. "/3", "--progress",
        "--journal", ("%s/j%d"):format(dir, k), "--results", ("%s/r%d.csv"):format(dir, k) })
      parts[#parts + 1] = ("( %s >%s/out%d 2>%s/err%d; echo $? >%s/rc%d ) &"):format(cmd, dir, k, dir, k, dir, k)
    end
    assert(shell.execute(table.concat(parts, " ") .. " wait"))
    local seen, failed = {}, 0
    for k = 0, 2 do
      local rc = tonumber(support.slurp(("%s/rc%d"):format(dir, k)))
      local out = support.slurp(("%s/out%d"):format(dir, k))
      local read = tonumber(out:match("^(%d+) rows? read"))
      assert.truthy(read, out)
      assert.matches(("shard %d/3: %d rows of other shards skipped"):format(k, N_ROWS - read), out, 1, true)
      -- the progress total is the shard's own rows
      local err = support.slurp(("%s/err%d"):format(dir, k))
      assert.matches(("create %d/%d 100%%"):format(read, read), err, 1, true)
      local shard_failed = 0
      for r in results.read(("%s/r%d.csv"):format(dir, k)) do
        assert.is_nil(seen[r.row], "row " .. r.row .. " in two shards")
        seen[r.row] = k
        local key = r.external_id or ("#" .. r.row)
        assert.equal(k, bulk.shard_of(key, 3))
        if r.outcome == "failed" then
          shard_failed = shard_failed + 1
          assert.is_true(NO_EXT[r.row], r.message)
        else
          assert.equal("created", r.outcome)
        end
      end
      failed = failed + shard_failed
      assert.equal(shard_failed > 0 and 1 or 0, rc)
    end
    for i = 1, N_ROWS do assert.truthy(seen[i], "row " .. i .. " in no shard") end
    assert.equal(2, failed)
    for i = 1, N_ROWS do
      if not NO_EXT[i] then assert.equal(1, emu.creates(PROVIDER, ("sh-%06d"):format(i)), i) end
    end
    -- a shard run again with its journal does nothing new; another shard's journal is refused
    local before = emu.counters().requests
    local code, out = cli.run({ "import", src, "--provider", PROVIDER, "--shard", "1/3", "--journal", dir .. "/j1" })
    assert.matches("rows? read", out)
    assert.is_true(code == 0 or code == 1)
    assert.equal(before, emu.counters().requests)
    local c2, _, e2 = cli.run({ "import", src, "--provider", PROVIDER, "--shard", "1/3", "--journal", dir .. "/j2" })
    assert.equal(2, c2)
    assert.matches("shard 2/3", e2)
    shell.execute("rm -rf " .. cli.q(dir))
  end)

  it("--shard must be K/N with 0 <= K < N", function()
    for _, bad in ipairs { "3/3", "x", "1/0", "-1/2" } do
      local code, out, err = cli.run({ "import", "x.csv", "--provider", PROVIDER, "--shard=" .. bad })
      assert.equal(2, code, bad)
      assert.equal("", out)
      assert.matches("Error: %-%-shard: '" .. bad:gsub("%p", "%%%0") .. "' is not K/N", err)
    end
  end)
end)
