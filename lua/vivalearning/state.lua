-- vivalearning.state: the local state database of an incremental sync (bulk.import with
-- mode = "sync", `vivalearning sync`, `vivalearning state show|export`).
--
-- SQLite through vivalearning.sqlite, our own small binding to libsqlite3 (src/sqlite/sqlite.c)
-- rather than lua-dbi-sqlite3: one system library instead of a package per Lua version, exact
-- 64-bit integers, errors that name the statement, and the busy timeout and transactions in
-- our hands. The database is in WAL mode with synchronous = FULL: a commit is on disk when it
-- returns, so a SIGKILL loses nothing committed.
--
-- One row per externalCourseActivityId: the Graph id, the kind, a hash of the fields as last
-- confirmed in Graph (and the fields themselves, for `state export`), the last outcome, its
-- HTTP status, when (unix seconds) and in which run; `pending` = "create" is the intent of a
-- create committed before the create goes out (a row left pending by a killed run is looked up
-- by its external id before anything is sent again). One row per run in `run`.
--
-- The file is ours when its application_id is APP_ID; its schema version is user_version,
-- brought up to VERSION by MIGRATIONS when an older one is opened (a newer one is refused).
-- One writer at a time: a sync holds an fcntl lock on "<state>-lock" (vivalearning.sys.lock)
-- for as long as the state is open, and a second one is refused at once, naming the holder.
local sqlite = require "vivalearning.sqlite"
local sys = require "vivalearning.sys"
local jsonl = require "vivalearning.jsonl"

local M = {}

M.APP_ID = 0x5669764c  -- "VivL"
M.VERSION = 1

-- MIGRATIONS[v]: the SQL that brings a state of version v - 1 to version v.
M.MIGRATIONS = {
  [1] = [[
    CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE activity(
      ext TEXT PRIMARY KEY, id TEXT, kind TEXT, hash TEXT, fields TEXT,
      outcome TEXT, status INTEGER, at INTEGER, run INTEGER, pending TEXT);
    CREATE TABLE run(
      run INTEGER PRIMARY KEY, pid INTEGER, started INTEGER, ended INTEGER,
      source TEXT, mode TEXT, status TEXT, counts TEXT);
  ]],
}

local held = {}  -- state paths (dev:ino of the lock file) this process holds

---------------------------------------------------------------------------------------------
-- Hash of the fields: FNV-1a 64 of a canonical form (keys sorted, every string and key
-- length-prefixed, so no escaping is needed and no two values read alike)
---------------------------------------------------------------------------------------------

local concat, sort, format = table.concat, table.sort, string.format

-- "s<len>:" and "<len>:" prefixes by length, made once: the form is built of pieces that
-- already exist (no new string per value, no number formatting)
local SPRE = setmetatable({}, { __index = function(t, len) local p = "s" .. len .. ":"; t[len] = p; return p end })
local KPRE = setmetatable({}, { __index = function(t, len) local p = len .. ":"; t[len] = p; return p end })

local function canon(v, null, out, n)
  local t = type(v)
  if v == nil or v == null or v == jsonl.null then
    n = n + 1; out[n] = "n"
  elseif t == "string" then
    out[n + 1] = SPRE[#v]; out[n + 2] = v; n = n + 2
  elseif t == "table" then
    local keys, nk, mixed = {}, 0, false
    for k in pairs(v) do
      nk = nk + 1; keys[nk] = k
      if type(k) ~= "string" then mixed = true end
    end
    if mixed then sort(keys, function(x, y) return tostring(x) < tostring(y) end) else sort(keys) end
    n = n + 1; out[n] = "{"
    for i = 1, nk do
      local k = keys[i]
      local ks = tostring(k)
      out[n + 1] = KPRE[#ks]; out[n + 2] = ks; n = n + 2
      n = canon(v[k], null, out, n)
    end
    n = n + 1; out[n] = "}"
  elseif t == "number" then
    -- 5 and 5.0 are one value (JSON decoders differ on it)
    n = n + 1
    if v == math.floor(v) and v > -2^53 and v < 2^53 then out[n] = format("i%d", v)
    else out[n] = format("f%.17g", v) end
  elseif t == "boolean" then
    n = n + 1; out[n] = v and "T" or "F"
  else
    local s = tostring(v)
    n = n + 1; out[n] = "?" .. #s .. ":" .. s
  end
  return n
end

--- The hash of the row's kind and fields (16 hex digits).
function M.hash(kind, fields, null)
  local out = { "k", kind or "", ";" }
  canon(fields, null, out, 3)
  return sqlite.hash(concat(out))
end

--- The fields as JSON, as the state stores them (for `state export` and the PATCH's diff).
function M.fields_json(fields)
  return jsonl.encode({ fields = fields })
end

--- Both: the fields as JSON and the hash.
function M.digest(kind, fields, null)
  return M.fields_json(fields), M.hash(kind, fields, null)
end

---------------------------------------------------------------------------------------------
-- Opening
---------------------------------------------------------------------------------------------

local function lock_file(path)
  local lpath = path .. "-lock"
  local fh, err = io.open(lpath, "a+b")
  if not fh then return nil, ("state %s: cannot open its lock file: %s"):format(path, tostring(err)) end
  local st = sys.stat(fh)
  local key = st and ("%d:%d"):format(st.dev, st.ino)
  if key and held[key] then
    fh:close()
    return nil, ("state %s is in use by another sync in this process (pid %d)"):format(path, sys.getpid())
  end
  local ok, lerr, pid = sys.lock(fh)
  if not ok then
    fh:close()
    if pid then
      return nil, ("state %s is in use by another sync (process %d holds its lock %s); wait for it to finish, "
        .. "or use another state (one per shard)"):format(path, pid, lpath), pid
    end
    return nil, ("state %s: %s"):format(path, tostring(lerr))
  end
  if key then held[key] = true end
  return { fh = fh, key = key }
end

local function unlock(lk)
  if not lk then return end
  if lk.key then held[lk.key] = nil end
  if lk.fh then lk.fh:close(); lk.fh = nil end
end

local State = {}
State.__index = State

local function one(db, sql)
  local st, err = db:prepare(sql)
  if not st then return nil, err end
  local a, b = st:get()
  st:finalize()
  if a == nil and b ~= nil then return nil, b end
  return a
end

-- Open (and for a writer create) a state database. opts: provider, shard (text or nil),
-- writer (default true: takes the lock, creates the file, migrates), busy_ms.
-- Returns the state, or nil, message naming the file and the problem, holder pid.
function M.open(path, opts)
  if type(path) ~= "string" or path == "" then error("state: a path expected", 2) end
  opts = opts or {}
  local writer = opts.writer ~= false
  local fst = sys.stat(path)
  if fst and fst.type == "directory" then return nil, ("state %s is a directory, not a file"):format(path) end
  if not writer and not fst then return nil, ("state %s: no such file"):format(path) end
  local lk
  if writer then
    local lerr, pid
    lk, lerr, pid = lock_file(path)
    if not lk then return nil, lerr, pid end
  end
  local db, err = sqlite.open(path, { busy_ms = opts.busy_ms or 5000, readonly = not writer })
  if not db then unlock(lk); return nil, "state " .. tostring(err) end
  local self = setmetatable({ db = db, path = path, lock = lk, writer = writer, stmts = {} }, State)
  local function refuse(why)
    self:close()
    return nil, ("state %s: %s"):format(path, why)
  end
  local app, aerr = one(db, "PRAGMA application_id")
  if app == nil then return refuse(tostring(aerr) .. " (is it a state database?)") end
  local ver = one(db, "PRAGMA user_version")
  local ntables = one(db, "SELECT count(*) FROM sqlite_master")
  if app ~= M.APP_ID then
    if app ~= 0 or ntables ~= 0 then
      return refuse(("not a vivalearning state database (an SQLite database of another program: "
        .. "application_id %d, %d tables); refusing to write over it"):format(app, ntables or 0))
    end
    if not writer then return refuse("an empty database, no sync has filled it yet") end
  end
  if ver > M.VERSION then
    return refuse(("schema version %d is newer than this vivalearning understands (%d)"):format(ver, M.VERSION))
  end
  local ok, qerr = one(db, "PRAGMA quick_check")
  if ok ~= "ok" then return refuse("damaged: " .. tostring(ok or qerr)) end
  if writer then
    local wal = one(db, "PRAGMA journal_mode=WAL")
    if wal ~= "wal" then return refuse("cannot use WAL: " .. tostring(wal)) end
    assert(db:exec("PRAGMA synchronous=FULL"))
    self.created = (app == 0)
    if ver < M.VERSION then
      local okb, berr = db:exec("BEGIN IMMEDIATE")
      if not okb then return refuse(berr) end
      for v = ver + 1, M.VERSION do
        local mok, merr = db:exec(M.MIGRATIONS[v])
        if not mok then db:exec("ROLLBACK"); return refuse(("migration to version %d: %s"):format(v, merr)) end
      end
      db:exec(("PRAGMA application_id=%d; PRAGMA user_version=%d"):format(M.APP_ID, M.VERSION))
      local cok, cerr = db:exec("COMMIT")
      if not cok then return refuse(cerr) end
      self.migrated = ver > 0 and ver or nil
    end
  end
  self.meta = {}
  local mst = assert(db:prepare("SELECT key, value FROM meta"))
  for k, v in mst:rows() do self.meta[k] = v end
  mst:finalize()
  if opts.provider then
    local want_shard = opts.shard or ""
    if self.meta.provider == nil then
      if writer then
        assert(db:exec("BEGIN IMMEDIATE"))
        local ins = assert(db:prepare("INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)"))
        ins:run("provider", opts.provider); ins:run("shard", want_shard)
        ins:finalize()
        assert(db:exec("COMMIT"))
        self.meta.provider, self.meta.shard = opts.provider, want_shard
      end
    elseif self.meta.provider ~= opts.provider or (self.meta.shard or "") ~= want_shard then
      return refuse(("belongs to provider %s%s, not provider %s%s"):format(self.meta.provider,
        (self.meta.shard or "") ~= "" and (" shard " .. self.meta.shard) or "", opts.provider,
        want_shard ~= "" and (" shard " .. want_shard) or ""))
    end
  end
  self.count = one(db, "SELECT count(*) FROM activity") or 0
  return self
end

function State:prep(name, sql)
  local st = self.stmts[name]
  if st then return st end
  st = assert(self.db:prepare(sql))
  self.stmts[name] = st
  return st
end

--- Release everything (idempotent).
function State:close()
  if self.db then
    if self.in_tx then self.db:exec("COMMIT"); self.in_tx = false end
    for _, st in pairs(self.stmts) do st:finalize() end
    self.stmts = {}
    -- the WAL back into the file: a state copied alone (a backup, a CronJob's volume) is whole
    if self.writer then self.db:exec("PRAGMA wal_checkpoint(TRUNCATE)") end
    self.db:close()
    self.db = nil
  end
  unlock(self.lock)
  self.lock = nil
end

-- A write transaction is open from the first write until commit().
function State:tx()
  if not self.in_tx then
    local ok, err = self.db:exec("BEGIN IMMEDIATE")
    if not ok then error("state " .. self.path .. ": " .. err, 0) end
    self.in_tx = true
  end
end

function State:commit()
  if self.in_tx then
    local ok, err = self.db:exec("COMMIT")
    self.in_tx = false
    if not ok then return nil, "state " .. self.path .. ": " .. err end
  end
  return true
end

--- { id, hash, pending, outcome, kind, fields (canonical JSON) } of an external id, or nil
function State:get(ext)
  local st = self:prep("get", "SELECT 1, id, hash, pending, outcome, kind, fields FROM activity WHERE ext = ?1")
  local found, id, hash, pending, outcome, kind, fields = st:get(ext)
  if not found then return nil end
  return { id = id, hash = hash, pending = pending, outcome = outcome, kind = kind, fields = fields }
end

--- Intent of a create (committed by the caller before the create goes out).
function State:intend(ext, kind)
  self:tx()
  assert(self:prep("intend", [[INSERT INTO activity(ext, kind, pending, run) VALUES (?1, ?2, 'create', ?3)
    ON CONFLICT(ext) DO UPDATE SET pending = 'create', run = ?3]]):run(ext, kind, self.run))
end

--- A confirmed state (created, updated, unchanged after a lookup): the fields as in Graph.
function State:confirm(ext, kind, id, hash, fields, outcome, status)
  self:tx()
  assert(self:prep("confirm", [[INSERT INTO activity(ext, id, kind, hash, fields, outcome, status, at, run, pending)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULL)
    ON CONFLICT(ext) DO UPDATE SET id = ?2, kind = ?3, hash = ?4, fields = ?5, outcome = ?6, status = ?7,
      at = ?8, run = ?9, pending = NULL]]):run(ext, id, kind, hash, fields, outcome, status, os.time(), self.run))
end

--- A failure: the outcome is recorded, the confirmed hash is kept (the row is sent next time).
function State:failed(ext, kind, status, keep_pending)
  self:tx()
  assert(self:prep("failed", [[INSERT INTO activity(ext, kind, outcome, status, at, run) VALUES (?1, ?2, 'failed', ?3, ?4, ?5)
    ON CONFLICT(ext) DO UPDATE SET outcome = 'failed', status = ?3, at = ?4, run = ?5,
      pending = CASE WHEN ?6 THEN pending ELSE NULL END]]):run(ext, kind, status, os.time(), self.run, keep_pending and 1 or 0))
end

--- A row deleted from Graph (or found gone): removed from the state.
function State:forget(ext)
  self:tx()
  assert(self:prep("forget", "DELETE FROM activity WHERE ext = ?1"):run(ext))
end

-- Rows seen in this run's source (a temporary table: not in the database file).
function State:seen(ext)
  if not self.seen_ready then
    assert(self.db:exec("CREATE TEMP TABLE IF NOT EXISTS seen(ext TEXT PRIMARY KEY)"))
    self.seen_ready = true
  end
  self:prep("seen", "INSERT OR IGNORE INTO temp.seen(ext) VALUES (?1)"):run(ext)
end

--- Iterator over the rows in the state and not seen in this run: ext, id, kind.
function State:missing()
  if not self.seen_ready then
    assert(self.db:exec("CREATE TEMP TABLE IF NOT EXISTS seen(ext TEXT PRIMARY KEY)"))
    self.seen_ready = true
  end
  local st = assert(self.db:prepare([[SELECT ext, id, kind FROM activity
    WHERE id IS NOT NULL AND ext NOT IN (SELECT ext FROM temp.seen) ORDER BY ext]]))
  local it = st:rows()
  return function()
    local ext, id, kind = it()
    if ext == nil then st:finalize() end
    return ext, id, kind
  end
end

--- Number of rows with a create intent left by an unfinished run and not seen in this run
-- (they may exist in Graph without our knowing their id).
function State:pending_missing()
  if not self.seen_ready then return self:pending_count() end
  return one(self.db, [[SELECT count(*) FROM activity WHERE id IS NULL AND pending IS NOT NULL
    AND ext NOT IN (SELECT ext FROM temp.seen)]]) or 0
end

--- Start a run: its number (recorded in every row it writes).
function State:start_run(source, mode)
  self:tx()
  assert(self:prep("run0", "INSERT INTO run(pid, started, source, mode, status) VALUES (?1, ?2, ?3, ?4, 'running')")
    :run(sys.getpid(), os.time(), source, mode))
  self.run = one(self.db, "SELECT last_insert_rowid()")
  local ok, err = self:commit()
  if not ok then return nil, err end
  return self.run
end

function State:end_run(status, counts)
  self:tx()
  assert(self:prep("run1", "UPDATE run SET ended = ?2, status = ?3, counts = ?4 WHERE run = ?1")
    :run(self.run, os.time(), status, counts and jsonl.encode(counts) or nil))
  return self:commit()
end

--- Number of rows with a create intent left by an earlier run.
function State:pending_count()
  return one(self.db, "SELECT count(*) FROM activity WHERE pending IS NOT NULL") or 0
end

---------------------------------------------------------------------------------------------
-- show / export
---------------------------------------------------------------------------------------------

--- A summary of the state: { path, version, provider, shard, rows, by_outcome = {}, pending, runs, last_run = {...} }
function State:info()
  local t = { path = self.path, version = one(self.db, "PRAGMA user_version"), provider = self.meta.provider,
              shard = self.meta.shard ~= "" and self.meta.shard or nil, rows = self.count, by_outcome = {},
              pending = self:pending_count(), runs = one(self.db, "SELECT count(*) FROM run") or 0 }
  local st = assert(self.db:prepare("SELECT outcome, count(*) FROM activity GROUP BY outcome ORDER BY outcome"))
  for o, n in st:rows() do t.by_outcome[o or "pending"] = n end
  st:finalize()
  local r = assert(self.db:prepare("SELECT run, pid, started, ended, source, mode, status, counts FROM run ORDER BY run DESC LIMIT 1"))
  local run, pid, started, ended, source, mode, status, counts = r:get()
  r:finalize()
  if run then
    t.last_run = { run = run, pid = pid, started = started, ended = ended, source = source, mode = mode,
                   status = status, counts = counts and jsonl.decode(counts) or nil }
  end
  return t
end

--- Iterator over what we believe is in Graph: a plain row table per activity (the import's
-- columns: type, externalCourseActivityId, id and the fields), in external id order.
function State:rows()
  local st = assert(self.db:prepare("SELECT ext, id, kind, fields FROM activity WHERE id IS NOT NULL AND fields IS NOT NULL ORDER BY ext"))
  local it = st:rows()
  return function()
    local ext, id, kind, fields = it()
    if ext == nil then st:finalize(); return nil end
    local doc = jsonl.decode(fields) or {}
    local t = type(doc.fields) == "table" and doc.fields or {}
    t.type, t.externalCourseActivityId, t.id = kind, ext, id
    return t
  end
end

return M
