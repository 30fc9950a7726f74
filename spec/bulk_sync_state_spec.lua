-- The journal's guarantees, on the sync's state database: two syncs at once (the second is
-- refused at once, naming the holder), SIGKILL at random points then resume (zero lost, zero
-- created twice: the emulator's create counters), a corrupted, truncated, foreign or newer
-- state refused with a message naming it, a state or results file that is the source refused,
-- and the schema's migration path.
local shell = require "support.shell"
local viva = require "vivalearning"
local sample = require "vivalearning.sample"
local state = require "vivalearning.state"
local sqlite = require "vivalearning.sqlite"
local sys = require "vivalearning.sys"
local emu = require "support.emulator"
local support = require "support.lualayer"

local PROVIDER = emu.PROVIDER
local q, LUA, LUA_ENV = support.q, support.LUA, support.LUA_ENV
local sleep = sys.sleep

local function tmp(ext)
  local p = os.tmpname() .. ext
  os.remove(p)
  return p
end
local function rm_state(p)
  for _, s in ipairs({ "", "-wal", "-shm", "-lock" }) do os.remove(p .. s) end
end

-- The child: one sync; prints "read created updated unchanged failed" at the end.
local CHILD = [[
local viva = require "vivalearning"
local a = { ... }
local c = viva.client { graph_url = a[1], authority_url = a[2], tenant = a[3], client_id = a[4],
                        client_secret = a[5], ca_file = a[6] }
local s, err = viva.bulk.import(c, a[7], { provider = a[8], mode = "sync", state = a[9],
  batch = tonumber(a[10]), concurrency = tonumber(a[11]) })
if not s then io.stderr:write(tostring(err), "\n"); os.exit(2) end
print(("%d %d %d %d %d"):format(s.read, s.created, s.updated, s.unchanged, s.failed))
]]

local function child_cmd(script, src, st, batch, conc)
  local args = { emu.graph_url, emu.authority_url, emu.TENANT, emu.APPS.importer.client_id,
                 emu.APPS.importer.client_secret, emu.ca, src, PROVIDER, st, batch, conc }
  local parts = { LUA_ENV, LUA, q(script) }
  for _, v in ipairs(args) do parts[#parts + 1] = q(v) end
  return table.concat(parts, " ")
end

local function alive(pid) return shell.execute("kill -0 " .. pid .. " 2>/dev/null") == true end

local function start(cmd)
  local p = io.popen("sh -c " .. q(cmd .. " >/dev/null 2>&1 & echo $!"))
  local pid = tonumber(p:read("*l"))
  p:close()
  return pid
end

local function kill(pid)
  shell.execute("kill -9 " .. pid .. " 2>/dev/null")
  for _ = 1, 200 do
    if not alive(pid) then break end
    sleep(0.02)
  end
end

local function run_and_kill(cmd, after)
  local pid = start(cmd)
  sleep(after)
  local was_running = alive(pid)
  kill(pid)
  return was_running
end

local function run_to_end(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("*a")
  p:close()
  local r, cr, up, un, f = out:match("(%d+) (%d+) (%d+) (%d+) (%d+)")
  assert(r, "child failed: " .. out)
  return { read = tonumber(r), created = tonumber(cr), updated = tonumber(up), unchanged = tonumber(un),
           failed = tonumber(f) }
end

-- every row of the state: ext -> { id, hash, pending }
local function state_rows(path)
  local db = assert(sqlite.open(path, { readonly = true }))
  local st = assert(db:prepare("SELECT ext, id, hash, pending FROM activity"))
  local out = {}
  for ext, id, hash, pending in st:rows() do out[ext] = { id = id, hash = hash, pending = pending } end
  db:close()
  return out
end

describe("sync state database: the journal's guarantees", function()
  local script, c
  setup(function()
    script = os.tmpname() .. ".lua"
    local f = assert(io.open(script, "w")); f:write(CHILD); f:close()
    math.randomseed(os.time())
  end)
  teardown(function() os.remove(script) end)
  before_each(function() emu.reset(); c = support.client() end)
  after_each(function() emu.clear_faults() end)

  local function trial(batch, conc, kills, n, prefix, first)
    local v1, v2, st = tmp(".csv"), tmp(".csv"), tmp(".sqlite")
    if first then
      -- a synced first part; the killed runs change every 4th row of it and add the rest
      sample.write(v1, first, { prefix = prefix })
      assert(viva.bulk.import(c, v1, { provider = PROVIDER, mode = "sync", state = st }))
    end
    sample.write(v2, n, { prefix = prefix, changed = function(i) return i % 4 == 0 end })
    emu.fault({ method = "POST", path = batch > 1 and "/v1.0/%$batch" or "learningCourseActivities$", delay = 0.03 })
    if batch > 1 then emu.fault({ method = "PATCH", path = "learningCourseActivities/", delay = 0.03 }) end
    local cmd = child_cmd(script, v2, st, batch, conc)
    local killed_mid = 0
    for _ = 1, kills do
      if run_and_kill(cmd, 0.15 + math.random() * 0.6) then killed_mid = killed_mid + 1 end
      -- the state opens after every kill (nothing torn: SQLite's WAL), and no writer is left
      local s = assert(state.open(st, { provider = PROVIDER }))
      s:close()
    end
    assert.is_true(killed_mid > 0, "no kill landed while the sync was running")
    emu.clear_faults()
    local s = run_to_end(cmd)
    assert.equal(n, s.read); assert.equal(0, s.failed)
    -- zero lost, zero doubled: every external id created exactly once, in Graph with the
    -- values of the source, and in the state with its id, a hash and no intent left
    local creates = emu.counters().creates[PROVIDER] or {}
    local rows = state_rows(st)
    for i = 1, n do
      local ext = ("%s%06d"):format(prefix, i)
      assert.equal(1, creates[ext] or 0, ext .. " created " .. tostring(creates[ext]) .. " times")
      local r = rows[ext]
      assert.truthy(r and r.id and r.hash, ext)
      assert.is_nil(r.pending, ext)
    end
    assert.equal(0, emu.counters().conflicts)
    for i = 4, n, 4 do
      assert.equal("completed", assert(c:get_by_external_id(PROVIDER, ("%s%06d"):format(prefix, i))).status)
    end
    -- a run after that sends nothing
    local before = emu.counters().requests
    local again = run_to_end(cmd)
    assert.equal(n, again.unchanged)
    assert.equal(before, emu.counters().requests)
    os.remove(v1); os.remove(v2); rm_state(st)
  end

  it("survives SIGKILL at random points during a sync with $batch (zero lost, zero doubled)", function()
    trial(20, 4, 5, 1200, "sk-", nil)
  end)

  it("survives SIGKILL at random points during a sync of changed and new rows, single requests", function()
    trial(1, 8, 4, 500, "skm-", 250)
  end)

  it("refuses a second writer at once, naming the holder (another process, and this one)", function()
    local v1, st = tmp(".csv"), tmp(".sqlite")
    sample.write(v1, 400, { prefix = "two-" })
    emu.fault({ method = "POST", path = "/v1.0/%$batch", delay = 0.3 })
    local pid = start(child_cmd(script, v1, st, 20, 2))
    local held
    for _ = 1, 100 do
      local f = io.open(st .. "-lock")
      if f then
        f:close()
        local ok, err = viva.bulk.import(c, v1, { provider = PROVIDER, mode = "sync", state = st })
        if not ok and err:find("in use", 1, true) then held = err; break end
        assert.is_nil(ok, "the second sync ran")
      end
      sleep(0.05)
    end
    kill(pid)
    assert.truthy(held, "the child never held the state")
    assert.matches("is in use by another sync %(process " .. pid .. " holds its lock", held)
    -- in this process: a state open for writing cannot be opened again
    local s = assert(state.open(st, { provider = PROVIDER }))
    local ok, err = viva.bulk.import(c, v1, { provider = PROVIDER, mode = "sync", state = st })
    assert.is_nil(ok)
    assert.matches("in use by another sync in this process", err)
    s:close()
    -- readers are not writers: state show works while a sync holds the lock
    local s2 = assert(state.open(st, { provider = PROVIDER }))
    local r = assert(state.open(st, { writer = false }))
    assert.is_number(r:info().rows)
    r:close(); s2:close()
    os.remove(v1); rm_state(st)
  end)

  it("refuses a corrupted, truncated, foreign or newer state with a message naming it", function()
    local v1, st = tmp(".csv"), tmp(".sqlite")
    sample.write(v1, 30, { prefix = "bad-" })
    local function try()
      local s, err = viva.bulk.import(c, v1, { provider = PROVIDER, mode = "sync", state = st })
      assert.is_nil(s)
      return err
    end
    -- not a database at all
    local f = assert(io.open(st, "wb")); f:write(("garbage\n"):rep(1000)); f:close()
    assert.matches("^state " .. st:gsub("%p", "%%%0") .. ": .*not a database", try())
    rm_state(st)
    -- a state cut in half
    assert(viva.bulk.import(c, v1, { provider = PROVIDER, mode = "sync", state = st }))
    local fh = assert(io.open(st, "r+b"))
    local size = fh:seek("end")
    assert(sys.truncate(fh, size // 2)); fh:close()
    local terr = try()
    assert.matches("^state " .. st:gsub("%p", "%%%0") .. ": ", terr)
    assert.matches("malformed", terr)
    rm_state(st)
    -- a page of it overwritten (the activity table's first page)
    assert(viva.bulk.import(c, v1, { provider = PROVIDER, mode = "sync", state = st }))
    fh = assert(io.open(st, "r+b"))
    fh:seek("set", 3 * 4096); fh:write(("\255"):rep(2000)); fh:close()
    assert.matches("^state .*: damaged: .*Page 4", try())
    rm_state(st)
    -- another program's SQLite database
    local db = assert(sqlite.open(st))
    assert(db:exec("CREATE TABLE invoices(n INTEGER); INSERT INTO invoices VALUES (1)"))
    db:close()
    assert.matches("not a vivalearning state database", try())
    rm_state(st)
    -- a state of another provider
    assert(viva.bulk.import(c, v1, { provider = PROVIDER, mode = "sync", state = st }))
    local s, err = viva.bulk.import(c, v1, { provider = "c0000000-0000-4000-8000-000000000002", mode = "sync", state = st })
    assert.is_nil(s)
    assert.truthy(err:find("belongs to provider " .. PROVIDER, 1, true), err)
    -- and of another shard (one state per shard)
    s, err = viva.bulk.import(c, v1, { provider = PROVIDER, mode = "sync", state = st, shard = "0/2" })
    assert.is_nil(s)
    assert.truthy(err:find("not provider " .. PROVIDER .. " shard 0/2", 1, true), err)
    -- written by a newer vivalearning
    db = assert(sqlite.open(st)); assert(db:exec("PRAGMA user_version = 99")); db:close()
    assert.matches("schema version 99 is newer", try())
    rm_state(st)
    os.remove(v1)
  end)

  it("refuses a state or results file that is the source, and results on the state", function()
    local v1, st = tmp(".csv"), tmp(".sqlite")
    sample.write(v1, 3, { prefix = "same-" })
    local s, err = viva.bulk.import(c, v1, { provider = PROVIDER, mode = "sync", state = v1 })
    assert.is_nil(s); assert.matches("is the source file", err)
    -- another name for it
    local link = v1 .. ".link"
    shell.execute("ln -s " .. q(v1) .. " " .. q(link))
    s, err = viva.bulk.import(c, v1, { provider = PROVIDER, mode = "sync", state = link })
    assert.is_nil(s); assert.matches("is the source file", err)
    assert(viva.bulk.import(c, v1, { provider = PROVIDER, mode = "sync", state = st }))
    s, err = viva.bulk.import(c, v1, { provider = PROVIDER, mode = "sync", state = st, results = st })
    assert.is_nil(s); assert.matches("results file .* is the state", err)
    s, err = viva.bulk.import(c, v1, { provider = PROVIDER, mode = "sync", state = st, results = v1 })
    assert.is_nil(s); assert.matches("is the source file", err)
    -- the state is intact after the refusals
    assert.equal(3, assert(viva.bulk.import(c, v1, { provider = PROVIDER, mode = "sync", state = st })).unchanged)
    local f = assert(io.open(v1)); assert.matches("^type,", f:read("*l")); f:close()
    os.remove(link); os.remove(v1); rm_state(st)
  end)

  it("has a schema version with a migration path", function()
    local v1, st = tmp(".csv"), tmp(".sqlite")
    sample.write(v1, 4, { prefix = "mig-" })
    assert(viva.bulk.import(c, v1, { provider = PROVIDER, mode = "sync", state = st }))
    local db = assert(sqlite.open(st, { readonly = true }))
    local ver = assert(db:prepare("PRAGMA user_version")):get()
    db:close()
    assert.equal(state.VERSION, ver)
    -- a version 2 that adds a column: an existing state is brought up to it on open
    local old_v, old_m = state.VERSION, state.MIGRATIONS[state.VERSION + 1]
    state.VERSION = old_v + 1
    state.MIGRATIONS[old_v + 1] = "ALTER TABLE activity ADD COLUMN note TEXT"
    local ok, perr = pcall(function()
      local s = assert(state.open(st, { provider = PROVIDER }))
      assert.equal(old_v, s.migrated)
      s:close()
      local d = assert(sqlite.open(st, { readonly = true }))
      assert.equal(old_v + 1, assert(d:prepare("PRAGMA user_version")):get())
      assert.is_nil(assert(d:prepare("SELECT note FROM activity LIMIT 1")):get())
      d:close()
    end)
    state.VERSION, state.MIGRATIONS[old_v + 1] = old_v, old_m
    assert(ok, perr)
    os.remove(v1); rm_state(st)
  end)
end)
