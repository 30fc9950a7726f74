-- Incremental sync (mode = "sync", a state database): unchanged rows send nothing, changed
-- rows are PATCHed by their stored id, a row deleted in Graph is created again, rows missing
-- from the source are reported (deleted with delete_missing; a dry run shows them), verify
-- repairs drift, a missing state falls back to lookups. Checked with the emulator's request
-- log and counters.
local viva = require "vivalearning"
local sample = require "vivalearning.sample"
local state = require "vivalearning.state"
local results = require "vivalearning.results"
local emu = require "support.emulator"
local support = require "support.lualayer"

local PROVIDER = emu.PROVIDER

local function tmp(ext)
  local p = os.tmpname() .. ext
  os.remove(p)
  return p
end

local function rm_state(p)
  for _, s in ipairs({ "", "-wal", "-shm", "-lock" }) do os.remove(p .. s) end
end

-- the Graph requests of the log since seq (each $batch step counted; the envelope not)
local function graph_requests(since)
  local out = {}
  for _, e in ipairs(emu.log(since)) do
    if e.path and e.path:find("/v1.0/", 1, true) and not e.path:find("%$batch") then out[#out + 1] = e end
  end
  return out
end

local function sync(c, src, st, extra)
  local o = { provider = PROVIDER, mode = "sync", state = st }
  for k, v in pairs(extra or {}) do o[k] = v end
  return viva.bulk.import(c, src, o)
end

describe("bulk sync with a state database", function()
  local c
  before_each(function()
    emu.reset()
    c = support.client()
  end)

  it("sends nothing for unchanged rows, PATCHes changed rows by their stored id, creates new ones", function()
    local v1, v2, st = tmp(".csv"), tmp(".csv"), tmp(".sqlite")
    sample.write(v1, 60, { prefix = "sy-" })
    -- a new state: every row is looked up first (today's upsert), and the state filled
    local s1 = assert(sync(c, v1, st))
    assert.equal(60, s1.created); assert.is_true(s1.state_fallback)
    -- the same file again: not one request
    local before = emu.counters().requests
    local s2 = assert(sync(c, v1, st))
    assert.equal(60, s2.unchanged); assert.equal(0, s2.requests)
    assert.equal(before, emu.counters().requests)
    -- every 10th row changed and 5 new rows
    sample.write(v2, 65, { prefix = "sy-", changed = function(i) return i % 10 == 0 end })
    local seq = emu.last_seq()
    local s3 = assert(sync(c, v2, st))
    assert.equal(5, s3.created); assert.equal(6, s3.updated); assert.equal(54, s3.unchanged)
    local reqs = graph_requests(seq)
    local patches, posts, gets = 0, 0, 0
    for _, e in ipairs(reqs) do
      if e.method == "PATCH" then
        patches = patches + 1
        -- by id: the path names the activity, no lookup by external id went before
        assert.matches("/learningCourseActivities/[^/?]+$", e.path)
      elseif e.method == "POST" then posts = posts + 1
      elseif e.method == "GET" then gets = gets + 1 end
    end
    assert.equal(6, patches); assert.equal(5, posts); assert.equal(0, gets)
    -- Graph has the changes, and each external id was created once
    local a = assert(c:get_by_external_id(PROVIDER, "sy-000010"))
    assert.equal("completed", a.status)
    for i = 1, 65 do assert.equal(1, emu.creates(PROVIDER, ("sy-%06d"):format(i)), i) end
    os.remove(v1); os.remove(v2); rm_state(st)
  end)

  it("creates again a row deleted in Graph behind its back (the PATCH by id answers 404)", function()
    local v1, v2, st = tmp(".csv"), tmp(".csv"), tmp(".sqlite")
    sample.write(v1, 10, { prefix = "gone-" })
    assert(sync(c, v1, st))
    local a = assert(c:get_by_external_id(PROVIDER, "gone-000004"))
    assert(c:delete(PROVIDER, a.id))
    sample.write(v2, 10, { prefix = "gone-", changed = function(i) return i == 4 end })
    local s = assert(sync(c, v2, st))
    assert.equal(1, s.created); assert.equal(9, s.unchanged)
    assert.equal(2, emu.creates(PROVIDER, "gone-000004"))
    local b = assert(c:get_by_external_id(PROVIDER, "gone-000004"))
    assert.equal("completed", b.status)
    -- the state has the new id: a third run sends nothing
    local again = assert(sync(c, v2, st))
    assert.equal(0, again.requests); assert.equal(10, again.unchanged)
    os.remove(v1); os.remove(v2); rm_state(st)
  end)

  it("reports rows missing from the source, shows them in a dry run, deletes them only with delete_missing", function()
    local v1, v2, st = tmp(".csv"), tmp(".csv"), tmp(".sqlite")
    sample.write(v1, 12, { prefix = "mir-" })
    assert(sync(c, v1, st))
    sample.write(v2, 9, { prefix = "mir-" })   -- rows 10..12 left the source
    local s = assert(sync(c, v2, st))
    assert.equal(3, s.missing); assert.equal(0, s.deleted); assert.equal(0, s.requests)
    assert.matches("3 rows of the state are not in the source", s.warnings[1])
    assert.truthy(c:get_by_external_id(PROVIDER, "mir-000011"))
    -- the dry run says what would go, and sends nothing
    local before = emu.counters().requests
    local d = assert(sync(c, v2, st, { delete_missing = true, dry_run = true }))
    assert.equal(3, d.would.delete); assert.equal(9, d.would.unchanged)
    assert.same({ "mir-000010", "mir-000011", "mir-000012" }, d.missing_ids)
    assert.equal(before, emu.counters().requests)
    -- with delete_missing they are deleted in Graph and leave the state
    local res = tmp(".csv")
    local del = assert(sync(c, v2, st, { delete_missing = true, results = res }))
    assert.equal(3, del.deleted); assert.equal(9, del.unchanged)
    local r1, err = c:get_by_external_id(PROVIDER, "mir-000011")
    assert.is_nil(r1); assert.equal(404, err.status)
    local deleted = {}
    for r in results.read(res) do if r.outcome == "deleted" then deleted[#deleted + 1] = r.external_id end end
    table.sort(deleted)
    assert.same({ "mir-000010", "mir-000011", "mir-000012" }, deleted)
    local again = assert(sync(c, v2, st, { delete_missing = true }))
    assert.equal(0, again.missing); assert.equal(0, again.requests)
    os.remove(v1); os.remove(v2); os.remove(res); rm_state(st)
  end)

  it("does not delete missing rows when some source rows have no external id", function()
    local v1, st = tmp(".csv"), tmp(".sqlite")
    sample.write(v1, 10, { prefix = "mk-" })
    assert(sync(c, v1, st))
    local src = {}
    for t, i in sample.rows(5, { prefix = "mk-" }) do src[i] = t end
    src[6] = { type = "assignment", learnerUserId = sample.learner(1) }   -- no external id
    local s = assert(sync(c, src, st, { delete_missing = true }))
    assert.equal(0, s.deleted); assert.equal(5, s.missing)
    assert.matches("nothing was deleted", s.warnings[#s.warnings])
    assert.truthy(c:get_by_external_id(PROVIDER, "mk-000009"))
    os.remove(v1); rm_state(st)
  end)

  it("verify re-reads rows from Graph and repairs a row changed behind our back", function()
    local v1, st = tmp(".csv"), tmp(".sqlite")
    sample.write(v1, 8, { prefix = "ver-" })
    assert(sync(c, v1, st))
    local a = assert(c:get_by_external_id(PROVIDER, "ver-000003"))
    local was = a.status
    a.status = was == "completed" and "inProgress" or "completed"
    if a.status == "completed" then a.completionPercentage = 100; a.completedDateTime = "2026-11-01T00:00:00Z"
    else a.completionPercentage = 40; a.completedDateTime = viva.null end
    assert(c:update(PROVIDER, a))
    -- without verify the drift is not seen
    local plain = assert(sync(c, v1, st))
    assert.equal(0, plain.requests)
    local s = assert(sync(c, v1, st, { verify = true }))
    assert.equal(8, s.verified); assert.equal(1, s.repaired); assert.equal(1, s.updated); assert.equal(7, s.unchanged)
    assert.equal(was, assert(c:get_by_external_id(PROVIDER, "ver-000003")).status)
    os.remove(v1); rm_state(st)
  end)

  it("verify with a share checks every row once over 1/share runs", function()
    local v1, st = tmp(".csv"), tmp(".sqlite")
    sample.write(v1, 40, { prefix = "sh-" })
    assert(sync(c, v1, st))
    local total = 0
    for _ = 1, 4 do
      local s = assert(sync(c, v1, st, { verify = 0.25 }))
      assert.is_true(s.verified < 40)
      total = total + s.verified
    end
    assert.equal(40, total)
    os.remove(v1); rm_state(st)
  end)

  it("a row known to the state but created by no one of us (409) is reconciled, not failed", function()
    local v1, st = tmp(".csv"), tmp(".sqlite")
    sample.write(v1, 6, { prefix = "pre-" })
    -- the state knows rows 1..3; rows 4..6 exist in Graph already (created by an upsert)
    local part = tmp(".csv")
    sample.write(part, 3, { prefix = "pre-" })
    assert(sync(c, part, st))
    assert(viva.bulk.import(c, v1, { provider = PROVIDER, mode = "upsert" }))
    local s = assert(sync(c, v1, st))
    assert.equal(0, s.failed); assert.equal(6, s.unchanged)
    -- rows 4..6: one create refused 409 each (counted as attempts), then found by a lookup
    assert.equal(3, emu.counters().conflicts)
    for i = 1, 3 do assert.equal(1, emu.creates(PROVIDER, ("pre-%06d"):format(i))) end
    -- now in the state: the next run sends nothing
    assert.equal(0, assert(sync(c, v1, st)).requests)
    os.remove(v1); os.remove(part); rm_state(st)
  end)

  it("keeps one state per shard: each shard syncs and mirrors only its own rows", function()
    local v1, s0, s1 = tmp(".csv"), tmp(".sqlite"), tmp(".sqlite")
    sample.write(v1, 40, { prefix = "shd-" })
    local a = assert(sync(c, v1, s0, { shard = "0/2" }))
    local b = assert(sync(c, v1, s1, { shard = "1/2" }))
    assert.equal(40, a.created + b.created)
    assert.is_true(a.created > 0 and b.created > 0)
    for i = 1, 40 do assert.equal(1, emu.creates(PROVIDER, ("shd-%06d"):format(i))) end
    -- again, mirroring: nothing sent, nothing of the other shard seen as missing
    for _, run in ipairs({ { s0, "0/2", a.created }, { s1, "1/2", b.created } }) do
      local r = assert(sync(c, v1, run[1], { shard = run[2], delete_missing = true }))
      assert.equal(0, r.requests); assert.equal(0, r.missing); assert.equal(0, r.deleted)
      assert.equal(run[3], r.unchanged)
    end
    os.remove(v1); rm_state(s0); rm_state(s1)
  end)

  it("warns of a create intent left by a killed run whose row is no longer in the source", function()
    local v1, v2, st = tmp(".csv"), tmp(".csv"), tmp(".sqlite")
    sample.write(v1, 5, { prefix = "orph-" })
    assert(sync(c, v1, st))
    -- as a run killed between the intent and the create would leave it
    local s = assert(state.open(st, { provider = PROVIDER }))
    s.run = 99
    s:intend("orph-000009", "assignment")
    assert(s:commit())
    s:close()
    sample.write(v2, 5, { prefix = "orph-" })
    local r = assert(sync(c, v2, st))
    assert.equal(0, r.requests)
    assert.matches("1 rows of the state have the create intent of an unfinished run", r.warnings[1])
    os.remove(v1); os.remove(v2); rm_state(st)
  end)

  it("checks its options: state only with sync, sync needs a state and no journal", function()
    local v1 = tmp(".csv")
    sample.write(v1, 1, { prefix = "opt-" })
    assert.has_error(function() viva.bulk.import(c, v1, { provider = PROVIDER, mode = "sync" }) end,
      'import: mode "sync" needs opts.state (the state database path)')
    assert.has_error(function() viva.bulk.import(c, v1, { provider = PROVIDER, state = "x.sqlite" }) end,
      'import: opts.state is only for mode "sync"')
    assert.has_error(function() viva.bulk.import(c, v1, { provider = PROVIDER, mode = "upsert", delete_missing = true }) end,
      'import: opts.delete_missing is only for mode "sync"')
    local function raises(o, want)
      o.provider = PROVIDER
      local ok, err = pcall(viva.bulk.import, c, v1, o)
      assert.is_false(ok)
      assert.truthy(tostring(err):find(want, 1, true), tostring(err))
    end
    raises({ mode = "sync", state = "x", journal = "j" }, 'mode "sync" keeps its journal in opts.state')
    raises({ mode = "sync", state = "x", verify = 2 }, "option 'verify' must be a boolean or a share of rows 0 < x <= 1, got 2")
    raises({ mode = "sync", state = "x", verify = 0 }, "option 'verify' must be a boolean or a share of rows 0 < x <= 1, got 0")
    raises({ mode = "sync", state = "x", delete_missing = "yes" }, "option 'delete_missing' must be a boolean")
    raises({ mode = "sync", state = 5 }, "option 'state' must be a non-empty string, got 5")
    raises({ mode = "sync", state = "x", stat = "y" }, "state")
    os.remove(v1)
  end)

  it("state rows() gives what we believe is in Graph", function()
    local v1, st = tmp(".csv"), tmp(".sqlite")
    sample.write(v1, 5, { prefix = "exp-" })
    assert(sync(c, v1, st))
    local s = assert(state.open(st, { writer = false }))
    local n = 0
    for r in s:rows() do
      n = n + 1
      local a = assert(c:get_by_external_id(PROVIDER, r.externalCourseActivityId))
      assert.equal(a.id, r.id); assert.equal(a.status, r.status)
    end
    assert.equal(5, n)
    assert.equal(5, s:info().rows)
    s:close(); s:close()
    os.remove(v1); rm_state(st)
  end)
end)
