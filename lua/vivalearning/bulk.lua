-- vivalearning.bulk: streamed bulk import (and export) of course activities.
--
--   local summary, err = viva.bulk.import(c, "activities.csv", {
--     provider = "c0000000-...", mode = "upsert", journal = "import.journal", results = "results.csv" })
--
-- Rows flow: source -> normalize (rows.lua) -> validate (viva.check) -> send ($batch of up to
-- 20, or single requests, through c:submit / c:poll) -> exactly one outcome per row, written to
-- the results file and the journal. Memory holds only the rows in flight and a small
-- read-ahead, whatever the size of the source.
--
-- Outcomes: created, updated, unchanged, deleted, failed. summary.read equals the sum of the
-- five counts.
--
-- Concurrency is sized from what the import observes (vivalearning.pace): the window of
-- requests in flight starts at 4 and doubles each round trip until Graph first throttles (429 or
-- 503); from then on sends are paced just below the delivered rate (steps per second, each $batch
-- step counting), probing upward, and the window is what that rate needs at the measured
-- round-trip time (Little's law), never more than opts.concurrency. Throttled batch items are
-- retried after their Retry-After (a 429'd item in the next $batch, others alone); the other
-- rows keep going meanwhile.
--
-- Journal (optional, opts.journal): no create goes out before an "intent" record naming its
-- row is fsynced (one fsync covers the round about to go out and the creates queued behind
-- it); each finished row gets a "done" record, written at once and fsynced with the next
-- intents, at least once a second, and at the end. Run again with the same journal after a crash (even
-- SIGKILL) and rows already done are skipped (their outcomes are copied into the new results
-- file), rows with an intent but no outcome are reconciled by a GET on their
-- externalCourseActivityId before anything is re-sent: no row lost, no duplicate created.
-- The journal is locked (vivalearning.sys.lock, fcntl) while an import uses it, and every
-- record is checked when it is read again (journal.lua and load_journal below): a torn last
-- line is cut with a warning; records missing or damaged stop the import unless
-- journal_repair is given. Rows that failed in an earlier run are tried again (retry_failed).
--
-- Sync (mode = "sync", opts.state): the state database (state.lua) holds, per external id,
-- the Graph id and a hash of the fields last confirmed. A row whose hash matches is unchanged
-- without a request; a changed one is PATCHed by its stored id with the fields that differ
-- (a 404 creates it again); a new one is created (a 409 is looked up and reconciled); a state
-- that knows no row yet looks every row up first, as an upsert. A create's intent is committed
-- before it goes out and outcomes at least once a second, so a killed sync run again loses and
-- doubles nothing. Rows of the state not in the source are reported, and deleted with
-- delete_missing (never when some source row had no readable external id).
local compat = require "vivalearning.compat"
local rows = require "vivalearning.rows"
local csv = require "vivalearning.csv"
local jsonl = require "vivalearning.jsonl"
local journal_mod = require "vivalearning.journal"
local results_mod = require "vivalearning.results"
local progress_mod = require "vivalearning.progress"
local state_mod -- vivalearning.state, loaded by the first sync (it needs vivalearning.sqlite)
local pace = require "vivalearning.pace"

local M = {}

M.OUTCOMES = { "created", "updated", "unchanged", "deleted", "failed" }
M.MODES = { create = true, upsert = true, delete = true, sync = true }
M.defaults = { batch = 20, concurrency = 128, max_attempts = 8, max_pages = nil, max_wait = 120 }

local sys = require "vivalearning.sys"
local now = progress_mod.now
-- Only used when every remaining row waits for a Retry-After and nothing is in flight.
-- Inside nginx (ngx.sleep in a yieldable phase) it yields instead of blocking the worker.
local function sleep(s)
  if s <= 0 then return end
  local ngx_ = rawget(_G, "ngx")
  if ngx_ and ngx_.sleep and ngx_.get_phase and ngx_.get_phase() ~= "init_worker" and ngx_.get_phase() ~= "init" then
    return ngx_.sleep(s)
  end
  sys.sleep(s)
end

local viva -- set by init.lua (the module table: check, assignment, self_initiated, null)
function M._bind(v)
  viva = v
  rows.null = v.null
end

---------------------------------------------------------------------------------------------
-- Sources
---------------------------------------------------------------------------------------------

-- A source yields: rec (table), rownum   |   nil (end)   |   false, rownum, message (unreadable row)
local function source_format(src, opts)
  if opts.format then return opts.format end
  if type(src) == "string" then
    if src:match("%.jsonl$") or src:match("%.ndjson$") or src:match("%.json$") then return "jsonl" end
    return "csv"
  end
  if io.type(src) == "file" then return "csv" end
  if type(src) == "function" then return "iterator" end
  if type(src) == "table" then return "array" end
  return nil
end

local function open_source(src, opts)
  local fmt = source_format(src, opts)
  local n = 0
  if fmt == "csv" then
    local r, err = csv.reader(src)
    if not r then return nil, "cannot read CSV source: " .. tostring(err) end
    local cols = r.columns
    -- conflicting and unknown columns are refused here, once, before any row is read (a
    -- delete reads only the keys, so other columns do not matter to it)
    local hok, herr = rows.check_header(cols, { type = opts.type,
                                                check = opts.mode ~= "delete" and viva.check or nil })
    if not hok then r:close(); return nil, "CSV header: " .. herr end
    return function()
      while true do
        local rec, rerr = r:read()
        if not rec then
          if rerr then n = n + 1; return false, n, rerr end
          r:close()
          return nil
        end
        local blank = true
        for i = 1, #rec do if rec[i] ~= "" then blank = false; break end end
        if not blank then
          n = n + 1
          if #rec ~= #cols then
            return false, n, ("line %d: %d fields, the header has %d"):format(r.record_line, #rec, #cols)
          end
          local t = {}
          for i, k in ipairs(cols) do t[k] = rec[i] end
          return t, n
        end
      end
    end, fmt, function() r:close() end
  elseif fmt == "jsonl" then
    local r, err = jsonl.reader(src)
    if not r then return nil, "cannot read JSON Lines source: " .. tostring(err) end
    return function()
      local v, rerr = r:read()
      if v == nil then r:close(); return nil end
      n = n + 1
      if v == false then return false, n, rerr end
      if type(v) ~= "table" then return false, n, ("line %d: a JSON object expected"):format(r.line) end
      return v, n
    end, fmt, function() r:close() end
  elseif fmt == "array" then
    local i = 0
    return function()
      i = i + 1
      local v = src[i]
      if v == nil then return nil end
      return v, i
    end, fmt, function() end
  elseif fmt == "iterator" then
    return function()
      local v = src()
      if v == nil then return nil end
      n = n + 1
      return v, n
    end, fmt, function() end
  end
  return nil, "unknown source (a CSV or JSON Lines path, a file handle, an array or an iterator expected)"
end

---------------------------------------------------------------------------------------------
-- Shards: N processes split one source, each importing the rows whose key hashes to its K
---------------------------------------------------------------------------------------------

--- FNV-1a, 32 bits, of a string (vivalearning.hash; exported for the README's shard rule).
M.fnv1a32 = require("vivalearning.hash").fnv1a32

-- The shard key of a row: its externalCourseActivityId, else its id (delete by id), else
-- "#" and its row number (a row with neither, or one that could not be read, is reported by
-- exactly one shard).
local function shard_key(rec, n)
  if type(rec) == "table" then
    local ext = rec.externalCourseActivityId
    if ext == nil then ext = rec.externalcourseActivityId end
    if type(ext) == "string" and ext ~= "" then return ext end
    if type(rec.id) == "string" and rec.id ~= "" then return rec.id end
  end
  return "#" .. tostring(n)
end
M.shard_key = shard_key

--- Shard (0 .. n-1) a key belongs to among n.
function M.shard_of(key, n)
  return M.fnv1a32(key) % n
end

-- opts.shard: "K/N" or {k, n}, 0 <= K < N. Returns {k=, n=} or nil; raises on anything else.
local function parse_shard(v, level)
  if v == nil then return nil end
  local k, n
  if type(v) == "string" then
    k, n = v:match("^%s*(%d+)%s*/%s*(%d+)%s*$")
    k, n = compat.tointeger(tonumber(k)), compat.tointeger(tonumber(n))
  elseif type(v) == "table" then
    k, n = compat.tointeger(v[1] or v.k), compat.tointeger(v[2] or v.n)
  end
  if not k or not n or n < 1 or k < 0 or k >= n then
    error(("import: shard must be \"K/N\" or {K, N} with 0 <= K < N, got %s"):format(
      type(v) == "string" and ("%q"):format(v) or tostring(v)), level)
  end
  return { k = k, n = n }
end
M.parse_shard = function(v) return parse_shard(v, 2) end

-- Number of rows in a file source, for the progress total (a cheap streamed pass); only the
-- rows `keep(rec, n)` accepts, when given.
local function count_rows(src, fmt, keep)
  if fmt == "array" and not keep then return #src end
  if type(src) ~= "string" and fmt ~= "array" then return nil end
  local next_row = open_source(src, { format = fmt })
  if not next_row then return nil end
  local n = 0
  while true do
    local v, i = next_row()
    if v == nil then break end
    if not keep or keep(v, i) then n = n + 1 end
  end
  return n
end
M.count_rows = count_rows

---------------------------------------------------------------------------------------------
-- Validation
---------------------------------------------------------------------------------------------

-- viva.check's error list, in whatever shape, as { {field=, message=}, ... }.
local function field_errors(errs)
  local out = {}
  if type(errs) == "string" then
    for line in errs:gmatch("[^\n;]+") do
      local f, m = line:match("^%s*([%w_.@]+):%s*(.*)$")
      out[#out + 1] = { field = f or "", message = m or line }
    end
  elseif type(errs) == "table" then
    for k, e in pairs(errs) do
      if type(e) == "table" then
        -- the value the check refused travels beside the message (join_errors shows it)
        out[#out + 1] = { field = e.field or e.path or (type(k) == "string" and k) or "",
                          message = e.problem or e.message or e.reason or e.msg or tostring(e),
                          value = e.value }
      elseif type(k) == "string" then
        out[#out + 1] = { field = k, message = tostring(e) }
      else
        local f, m = tostring(e):match("^%s*([%w_.@]+):%s*(.*)$")
        out[#out + 1] = { field = f or "", message = m or tostring(e) }
      end
    end
    table.sort(out, function(a, b) return a.field < b.field end)
  end
  return out
end

-- "field: reason" (once) for the results file
local function with_field(field, why)
  why = tostring(why)
  if field and field ~= "" and why:sub(1, #field + 1) ~= field .. ":" then
    return field .. ": " .. why
  end
  return why
end

-- A value as the models' own messages show it: numbers bare, strings in double quotes.
local function show_value(v)
  if v == jsonl.null or v == rows.null then return "null" end
  if type(v) == "string" then
    return '"' .. v:gsub('[%c"\\]', function(ch)
      local named = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
      return named[ch] or ("\\u%04x"):format(ch:byte())
    end) .. '"'
  elseif type(v) == "table" then
    local ok, js = pcall(jsonl.encode, v)
    if ok and js then return js end
  end
  return tostring(v)
end
M._show_value = show_value

-- "field: reason, got value; ..." (the value only where the check reported one)
local function join_errors(list)
  local parts = {}
  for i, e in ipairs(list) do
    local m = e.message
    if e.value ~= nil and not m:find(", got ", 1, true) then m = m .. ", got " .. show_value(e.value) end
    parts[i] = (e.field ~= "" and (e.field .. ": ") or "") .. m
  end
  return table.concat(parts, "; ")
end

-- Prepare one row for its mode. Returns row, or nil, field, message.
local function prepare(rec, n, opts)
  if type(rec) == "userdata" then
    -- a model given directly (Lua source)
    local t = rec:totable()
    rec = t
  end
  if type(rec) ~= "table" then return nil, "", "row is not a table" end
  local nr = rows.normalize(rec, { type = opts.type, json_null = jsonl.null })
  local row = { n = n, ext = nr.ext, id = nr.id, kind = nr.kind }
  if nr.errors then
    -- unreadable values and keys given twice; a delete only needs its keys
    local list = {}
    for _, e in ipairs(nr.errors) do
      if opts.mode ~= "delete" or e.key then list[#list + 1] = e end
    end
    if #list > 0 then return nil, list[1].field, join_errors(list) end
  end
  if opts.mode == "delete" then
    if type(nr.id) ~= "string" and type(nr.ext) ~= "string" then
      return nil, "externalCourseActivityId", "an id or an externalCourseActivityId is needed to delete"
    end
    if nr.id ~= nil and type(nr.id) ~= "string" then return nil, "id", "string expected" end
    return row
  end
  if nr.type_error then return nil, "type", nr.type_error, rec.type or rec["@odata.type"] end
  if not nr.kind then return nil, "type", "no type column and no type option (assignment or self_initiated)" end
  if type(nr.ext) ~= "string" or nr.ext == "" then
    return nil, "externalCourseActivityId", "required for import (rows are matched and resumed by it)"
  end
  local f = nr.fields
  f.id = nil
  if f.learningProviderId == nil then
    f.learningProviderId = opts.provider
  elseif f.learningProviderId ~= opts.provider then
    return nil, "learningProviderId", ("%s differs from the import's provider %s"):format(
      tostring(f.learningProviderId), opts.provider)
  end
  local ok, errs = viva.check(nr.kind, f)
  if not ok then
    local list = field_errors(errs)
    if #list == 0 then list = { { field = "", message = tostring(errs) } } end
    return nil, list[1].field, join_errors(list), list[1].value
  end
  row.fields = f
  return row
end
M._prepare = prepare

---------------------------------------------------------------------------------------------
-- Errors
---------------------------------------------------------------------------------------------

local function err_status(err)
  return type(err) == "table" and tonumber(err.status) or nil
end

-- "throttled" (429/503: retry after its hint), "transient" (may have been applied: 5xx,
-- transport), or nil (final).
local function classify(err)
  if type(err) ~= "table" then return nil end
  local st = err_status(err)
  if err.kind == "throttled" or st == 429 or st == 503 then return "throttled" end
  if err.kind == "transport" or st == 500 or st == 502 or st == 504 then return "transient" end
  return nil
end

-- The token endpoint (or the token provider) refused us: a wrong secret, a disabled app.
-- OAuth error codes are lower_snake_case (invalid_client, unauthorized_client, ...), Graph's
-- are camelCase (InvalidAuthenticationToken), so a Graph 401 on one request is not this.
local function token_refused(err)
  local code = tostring(err.code or "")
  return err.aadsts ~= nil or code == "" or code:match("^[a-z]+_[a-z_]+$") ~= nil
end

local function err_fields(err)
  if type(err) ~= "table" then
    return { message = tostring(err) }
  end
  return { status = err_status(err), code = err.code, message = err.message or tostring(err),
           request_id = err.request_id }
end

---------------------------------------------------------------------------------------------
-- The import
---------------------------------------------------------------------------------------------

-- outcome and status of a write that succeeded
local WRITE_OUTCOME = { create = { "created", 201 }, update = { "updated", 204 }, delete = { "deleted", 204 } }

-- Every option of import, and what its value must be (options.any: checked where it is used).
-- One table: a new option is one line here.
local opt = require "vivalearning.options"
M.IMPORT_OPTIONS = {
  provider = opt.string,
  mode = opt.one_of("create", "upsert", "delete", "sync"),
  type = function(v) if not rows.kind(v) then return "assignment or self_initiated" end end,
  format = opt.one_of("csv", "jsonl"),
  batch = opt.either(opt.boolean, opt.integer(1, 20)),
  concurrency = opt.integer(1),
  max_attempts = opt.integer(1),
  journal = opt.string,
  results = function(v)
    if type(v) ~= "string" and io.type(v) ~= "file" then return "a path or an open file" end
  end,
  results_format = opt.one_of("csv", "jsonl"),
  progress = opt.either(opt.boolean, opt.one_of("bar")),
  on_progress = opt.callable,
  on_outcome = opt.callable,
  dry_run = opt.boolean,
  label = opt.string,
  -- read by the journal, deadline and sharding code
  max_wait = opt.any, deadline = opt.any, journal_repair = opt.any, retry_failed = opt.any,
  shard = opt.any,
  -- sync mode (the state database, state.lua); checked against the mode in check_opts
  state = opt.string,
  delete_missing = opt.boolean,
  verify = function(v)
    if v == true or v == false then return nil end
    if type(v) ~= "number" or v ~= v or v <= 0 or v > 1 then return "a boolean or a share of rows 0 < x <= 1" end
  end,
}

local function check_opts(c, source, opts)
  if c == nil then error("bad argument #1 to 'import' (client expected)", 3) end
  if source == nil then error("bad argument #2 to 'import' (source expected)", 3) end
  if type(opts) ~= "table" then error("bad argument #3 to 'import' (options table expected)", 3) end
  if type(opts.provider) ~= "string" or opts.provider == "" then
    error("import: opts.provider (the learning provider id) is required", 3)
  end
  opt.check("import", opts, M.IMPORT_OPTIONS, 3)
  local mode = opts.mode or "create"
  local batch = opts.batch
  if batch == nil or batch == true then batch = M.defaults.batch end
  if batch == false then batch = 1 end
  local conc = opts.concurrency or M.defaults.concurrency
  if mode == "sync" then
    if opts.state == nil then error("import: mode \"sync\" needs opts.state (the state database path)", 3) end
    if opts.journal ~= nil then
      error("import: mode \"sync\" keeps its journal in opts.state; opts.journal is for the other modes", 3)
    end
  else
    for _, k in ipairs({ "state", "delete_missing", "verify" }) do
      if opts[k] ~= nil then error(("import: opts.%s is only for mode \"sync\""):format(k), 3) end
    end
  end
  return mode, batch, conc, parse_shard(opts.shard, 4)
end

---------------------------------------------------------------------------------------------
-- Files: the same file under two names, the source's size and mtime
---------------------------------------------------------------------------------------------

-- What identifies a file: dev:ino of the file, or (when it does not exist yet) of its
-- directory plus its name; nil when neither can be found (then it cannot be compared).
local function file_id(f)
  if io.type(f) == "file" then
    local st = sys.stat(f)
    return st and ("%d:%d"):format(st.dev, st.ino)
  end
  if type(f) ~= "string" then return nil end
  local st, _, code = sys.stat(f)
  if st then return ("%d:%d"):format(st.dev, st.ino) end
  if code ~= "ENOENT" then return nil end
  local dir, base = f:match("^(.*)/([^/]*)$")
  if not dir then dir, base = ".", f elseif dir == "" then dir = "/" end
  local dst = sys.stat(dir)
  return dst and ("%d:%d/%s"):format(dst.dev, dst.ino, base)
end

-- Refuse results or journal on the source, and results on the journal (compared by device
-- and inode: symlinks, hard links, "./x" and "x" are one file). nil, message, or true.
local function check_files(source, opts)
  local sid = file_id(source)
  local jid = opts.journal and file_id(opts.journal)
  local rid = opts.results and file_id(opts.results)
  local sname = type(source) == "string" and source or "(the open source file)"
  if jid and jid == sid then
    return nil, ("journal %s is the source file %s: it would be written over"):format(opts.journal, sname)
  end
  if rid and rid == sid then
    return nil, ("results file %s is the source file %s: it would be written over"):format(
      tostring(opts.results), sname)
  end
  if rid and rid == jid then
    return nil, ("results file %s is the journal %s: they would write over each other"):format(
      tostring(opts.results), opts.journal)
  end
  local tid = opts.state and file_id(opts.state)
  if tid and tid == sid then
    return nil, ("state %s is the source file %s: it would be written over"):format(opts.state, sname)
  end
  if tid and tid == rid then
    return nil, ("results file %s is the state %s: they would write over each other"):format(
      tostring(opts.results), opts.state)
  end
  return true
end

-- size and mtime of a source file (recorded in the journal to see a changed source)
local function source_stat(source)
  if type(source) ~= "string" and io.type(source) ~= "file" then return nil end
  local st = sys.stat(source)
  if not st or st.type ~= "file" then return nil end
  -- mtime as text: a JSON number would keep 14 digits, not the nanoseconds
  return { size = st.size, mtime = ("%.9f"):format(st.mtime) }
end

---------------------------------------------------------------------------------------------
-- The journal of an earlier run
---------------------------------------------------------------------------------------------

local OUTCOME = {}
for _, o in ipairs(M.OUTCOMES) do OUTCOME[o] = true end
local INTENT_OP = { create = true, update = true, delete = true }
-- the fields of a "done" entry after row and outcome, with their types
local DONE_FIELDS = { { "external_id", "string" }, { "id", "string" }, { "status", "integer" },
                      { "code", "string" }, { "message", "string" }, { "request_id", "string" },
                      { "retry_after", "number" } }

-- max_wait (seconds a row may wait for a Retry-After) and deadline (seconds the whole import
-- may run, nil = none); raises on a bad value.
local function check_wait_opts(opts)
  local mw = opts.max_wait
  if mw == nil then mw = M.defaults.max_wait end
  if type(mw) ~= "number" or mw ~= mw or mw < 0 then
    error("import: max_wait must be a number of seconds >= 0, got " .. tostring(opts.max_wait), 3)
  end
  local dl = opts.deadline
  if dl ~= nil and (type(dl) ~= "number" or dl ~= dl or dl <= 0) then
    error("import: deadline must be a number of seconds > 0, got " .. tostring(dl), 3)
  end
  return mw, dl
end

-- A row that failed in an earlier run is tried again (opts.retry_failed, default true),
-- except a create refused with 409 (the activity exists: sending it again gets the same).
-- A row that was sent (not invalid) is looked up first: its create may have been applied
-- (not in delete mode: there a 404 after a retry would read as "already gone").
local function retry_failed_row(rec, mode)
  if rec.outcome ~= "failed" then return nil end
  if mode == "create" and rec.status == 409 then return nil end
  return { reconcile = mode ~= "delete" and rec.code ~= "invalidRow" and rec.code ~= "duplicateRow" }
end

-- Check every record of jr.loaded and build the resume state, or nil, message (naming the
-- journal, the line and the problem): a record with a valid checksum can still be wrong.
local function load_journal(jr, opts, mode, provider, shard_name, source, fmt)
  local path = opts.journal
  local st = { done_rows = {}, intents = {}, prior = {}, retry_rows = {}, warnings = {},
               records = #jr.loaded, retried = 0 }
  local final = {}        -- row -> its outcome record (the last one)
  local last_stat, max_row = nil, 0
  local function bad(i, rec, why)
    return nil, ("journal %s: line %d (%s record): %s"):format(path, i, tostring(type(rec) == "table" and rec.k), why)
  end
  local function pos_int(v) return compat.type(v) == "integer" and v >= 1 end
  local function opt_field(v, t)
    if v == nil or v == jsonl.null or v == false then return true, nil end
    if t == "integer" then return compat.type(v) == "integer", v end
    return type(v) == t, v
  end
  for i, rec in ipairs(jr.loaded) do
    local k = rec.k
    if i == 1 and k ~= "begin" and not opts.journal_repair then
      return bad(i, rec, "the journal does not start with its header (a begin record): records are missing at the start")
    end
    if k == "begin" then
      if i ~= 1 and not opts.journal_repair then return bad(i, rec, "a second header") end
      if rec.mode ~= mode or rec.provider ~= provider or rec.shard ~= shard_name then
        return nil, ("journal %s belongs to a %s import into provider %s%s"):format(path,
          tostring(rec.mode), tostring(rec.provider), rec.shard and (", shard " .. rec.shard) or "")
      end
      last_stat = rec.stat
    elseif k == "run" then
      last_stat = rec.stat
    elseif k == "intent" then
      if type(rec.r) ~= "table" or type(rec.x) ~= "table" then return bad(i, rec, "no row list (r, x)") end
      for j, r in ipairs(rec.r) do
        if not pos_int(r) then return bad(i, rec, ("row %s is not a row number"):format(tostring(r))) end
        local x = rec.x[j]
        if x ~= false and type(x) ~= "string" then return bad(i, rec, ("row %d has no external id"):format(r)) end
        local op = rec.o and rec.o[j]
        if op ~= nil and not INTENT_OP[op] then return bad(i, rec, ("row %d: unknown operation %s"):format(r, tostring(op))) end
        if not st.done_rows[r] then st.intents[r] = { ext = x or nil, op = op } end
      end
    elseif k == "done" then
      if type(rec.o) ~= "table" then return bad(i, rec, "no outcome list (o)") end
      for _, o in ipairs(rec.o) do
        if type(o) ~= "table" then return bad(i, rec, "an outcome entry that is not a list") end
        local row, outcome = o[1], o[2]
        if not pos_int(row) then return bad(i, rec, ("row %s is not a row number"):format(tostring(row))) end
        if not OUTCOME[outcome] then
          return bad(i, rec, ("row %d: %s is not an outcome"):format(row, outcome == nil and "no outcome" or tostring(outcome)))
        end
        local r = { row = row, outcome = outcome }
        for j, f in ipairs(DONE_FIELDS) do
          local ok, v = opt_field(o[j + 2], f[2])
          if not ok then return bad(i, rec, ("row %d: %s must be a %s"):format(row, f[1], f[2])) end
          r[f[1]] = v
        end
        local was = final[row]
        if was and was.outcome ~= "failed" then
          return bad(i, rec, ("row %d is done twice (%s, then %s)"):format(row, was.outcome, outcome))
        end
        final[row] = r
        st.intents[row] = nil
        if row > max_row then max_row = row end
      end
    elseif k ~= "end" then
      return bad(i, rec, "unknown record kind " .. tostring(k))
    end
  end
  -- a row number beyond the source: the journal is of another file
  if max_row > 0 and (type(source) == "string" or type(source) == "table") then
    local n = count_rows(source, fmt)
    if n and max_row > n then
      return nil, ("journal %s: row %d is done, but the source has %d rows: the journal is of another file"):format(
        path, max_row, n)
    end
  end
  for row = 1, max_row do
    local r = final[row]
    if r then
      local again = opts.retry_failed ~= false and retry_failed_row(r, mode)
      if again then
        st.retry_rows[row] = again
        st.retried = st.retried + 1
      else
        st.done_rows[row] = true
        st.prior[#st.prior + 1] = r
      end
    end
  end
  if jr.info.torn then
    st.warnings[#st.warnings + 1] = ("journal %s: a torn last line (line %d, %d bytes) was cut off: "
      .. "the import before was killed while writing it"):format(path, jr.info.torn_line or 0, jr.info.torn_bytes or 0)
  end
  if jr.info.repaired then
    st.warnings[#st.warnings + 1] = ("journal %s was repaired (%s); rows without an outcome are looked up "
      .. "before anything is sent"):format(path, table.concat(jr.info.problems, "; "))
  end
  st.max_row = max_row
  local now_stat = source_stat(source)
  if type(last_stat) == "table" and now_stat
      and (last_stat.size ~= now_stat.size or last_stat.mtime ~= now_stat.mtime) then
    st.warnings[#st.warnings + 1] = ("the source %s changed since the last run with journal %s (%s bytes then, %d now): "
      .. "rows already done were not read again%s"):format(type(source) == "string" and source or "file", path,
      tostring(last_stat.size), now_stat.size,
      opts.retry_failed ~= false and ", rows that failed are tried again" or "")
  end
  return st
end

--- Import rows. See the header of this file and README "Paging and bulk import".
-- opts: provider (required), mode ("create"|"upsert"|"delete"), type (default row type),
--   format ("csv"|"jsonl" for a path or file handle), batch (1..20, default 20; 1 = no $batch),
--   concurrency (max requests in flight, default 16), journal (path), results (path),
--   results_format ("csv"|"jsonl"), progress (true|"bar"|false), on_progress(state),
--   on_outcome(record) (failed rows also carry field and value), dry_run (validate only),
--   max_attempts (per row, default 8), shard ("K/N" or {K, N}: only the rows whose
--   externalCourseActivityId, else id, else "#<row>", hashes to K: FNV-1a 32 mod N, 0 <= K < N),
--   max_wait (longest Retry-After a row waits for, seconds, default 120), deadline (seconds
--   the import may send for), journal_repair (go on with a damaged journal), retry_failed
--   (default true: rows that failed in an earlier run with the journal are tried again).
--   Sync (mode = "sync"): state (path of the state database, required; see state.lua),
--   delete_missing (delete rows of the state absent from the source), verify (true, or a
--   share 0 < x <= 1 of the rows re-read from Graph per run). No journal: intents and
--   outcomes are committed to the state.
--   An unknown or ill-typed option raises (M.IMPORT_OPTIONS lists them all). A CSV header with
--   a duplicated, conflicting or unknown column returns nil, err before any row is sent.
-- Returns summary { read, created, updated, unchanged, deleted, failed, invalid, resumed,
--   retried, requests, elapsed, rate, mode, warnings, torn_journal, journal_repaired,
--   deadline_reached, not_attempted, and with a shard: shard = {k, n}, other_shards; in sync
--   mode state_rows, state_fallback, verified, repaired, missing, missing_ids (the first 100),
--   and for a dry run would = {create, update, unchanged, lookup, delete} }, or
--   nil, err when the import cannot start (source, journal or results file unusable or one
--   and the same file; journal in use, damaged, or of another import or shard).
function M.import(c, source, opts)
  opts = opts or {}
  local mode, batch_size, max_window, shard = check_opts(c, source, opts)
  local provider = opts.provider
  local max_attempts = opts.max_attempts or M.defaults.max_attempts
  local max_wait, deadline = check_wait_opts(opts)
  local popts = { mode = mode, provider = provider, type = opts.type }

  local fok, ferr = check_files(source, opts)
  if not fok then return nil, ferr end

  local t_start = now()
  local deadline_at = deadline and t_start + deadline
  local next_row, fmt, close_source = open_source(source, opts)
  if not next_row then return nil, fmt end

  local summary = { read = 0, created = 0, updated = 0, unchanged = 0, deleted = 0, failed = 0,
                    invalid = 0, resumed = 0, requests = 0, mode = mode }

  -- a shard sees only its own rows (the others are not read, counted or journaled)
  local in_shard
  if shard then
    summary.shard, summary.other_shards = shard, 0
    in_shard = function(rec, n) return M.shard_of(shard_key(rec, n), shard.n) == shard.k end
    local all_rows = next_row
    next_row = function()
      while true do
        local rec, n, msg = all_rows()
        if rec == nil or in_shard(rec, n) then return rec, n, msg end
        summary.other_shards = summary.other_shards + 1
      end
    end
  end
  local shard_name = shard and (shard.k .. "/" .. shard.n) or nil

  -- journal: resume state (the journal is locked from here until it is closed)
  local done_rows, intents = {}, {}
  local jr, results
  local prior = {}
  local retry_rows = {}
  local reconcile_all = false   -- a repaired journal: any row may have been sent
  local journal_max_row = 0
  summary.warnings = {}
  if opts.journal then
    local jerr
    jr, jerr = journal_mod.open(opts.journal, { repair = opts.journal_repair,
      header = { k = "begin", v = 2, mode = mode, provider = provider, shard = shard_name,
                 source = type(source) == "string" and source or fmt } })
    if not jr then close_source(); return nil, jerr end
    jr.clock = now
    local st, lerr = load_journal(jr, opts, mode, provider, shard_name, source, fmt)
    if not st then jr:close(); close_source(); return nil, lerr end
    done_rows, intents, prior, retry_rows = st.done_rows, st.intents, st.prior, st.retry_rows
    journal_max_row = st.max_row
    summary.torn_journal = jr.info.torn
    summary.journal_repaired = jr.info.repaired or nil
    reconcile_all = jr.info.repaired == true
    summary.retried = st.retried
    for _, w in ipairs(st.warnings) do summary.warnings[#summary.warnings + 1] = w end
    local src_stat = source_stat(source)
    if st.records == 0 then
      jr:append({ k = "begin", v = 2, mode = mode, provider = provider, shard = shard_name,
                  source = type(source) == "string" and source or fmt, stat = src_stat })
    end
    jr:append({ k = "run", pid = sys.getpid(), stat = src_stat })
    local sok, serr = jr:sync()
    if not sok then jr:close(); close_source(); return nil, "journal: " .. tostring(serr) end
  end

  -- sync: the state database (see state.lua), locked from here until it is closed. A state
  -- that knows no row yet (a new file) is filled by lookups, as an upsert does.
  local store, verify_period, store_fallback
  if mode == "sync" then
    state_mod = state_mod or require "vivalearning.state"
    local serr
    store, serr = state_mod.open(opts.state, { provider = provider, shard = shard_name })
    if not store then close_source(); return nil, serr end
    summary.state_rows = store.count
    store_fallback = store.count == 0
    summary.state_fallback = store_fallback or nil
    if not opts.dry_run then
      local rok, rerr = store:start_run(type(source) == "string" and source or fmt, "sync")
      if not rok then store:close(); close_source(); return nil, rerr end
    end
    if opts.verify == true then verify_period = 1
    elseif opts.verify then verify_period = math.max(1, math.floor(1 / opts.verify + 0.5)) end
    summary.verified, summary.repaired, summary.missing = 0, 0, 0
  end
  -- sync: is this row one of the run's share to verify? Row i is verified once every
  -- verify_period runs (FNV-1a of its external id, plus the run number, modulo the period).
  local function to_verify(ext)
    if not verify_period then return false end
    return (M.fnv1a32(ext) + (store.run or 0)) % verify_period == 0
  end

  if opts.results then
    local rerr
    results, rerr = results_mod.open(opts.results, opts.results_format)
    if not results then
      close_source()
      if jr then jr:close() end
      if store then store:close() end
      return nil, "cannot write results: " .. tostring(rerr)
    end
  end

  local function count(outcome) summary[outcome] = summary[outcome] + 1 end

  -- outcomes already recorded by an earlier run of this journal
  for _, rec in ipairs(prior) do
    count(rec.outcome)
    summary.read = summary.read + 1
    summary.resumed = summary.resumed + 1
    if results then results:write(rec) end
  end
  prior = nil

  local total
  local prog
  if opts.progress ~= false and (opts.progress or opts.on_progress) then
    local pmode = opts.progress == "bar" and "bar" or (opts.progress == true and "auto") or "callback"
    if pmode == "auto" and not progress_mod.isatty(io.stderr) and not opts.on_progress then pmode = "none" end
    if pmode ~= "none" then total = count_rows(source, fmt, in_shard) end
    prog = progress_mod.new({ mode = pmode, total = total, callback = opts.on_progress,
                              label = opts.label or mode })
  end

  local pending_done = {}  -- journal "done" entries not yet appended

  local function finish(row, outcome, info)
    info = info or {}
    local rec = { row = row.n, external_id = row.ext, id = info.id or row.id, outcome = outcome,
                  status = info.status, code = info.code, message = info.message,
                  request_id = info.request_id, field = info.field, value = info.value,
                  retry_after = info.retry_after }
    count(outcome)
    summary.read = summary.read + 1
    if outcome == "failed" and info.invalid then summary.invalid = summary.invalid + 1 end
    if results then results:write(rec) end
    if jr and not info.not_done then
      pending_done[#pending_done + 1] = { rec.row, outcome, rec.external_id, rec.id, rec.status,
                                          rec.code, rec.message, rec.request_id, rec.retry_after }
    end
    if store and row.ext and not info.not_done and not info.invalid then
      if row.verify and outcome == "updated" then summary.repaired = summary.repaired + 1 end
      if outcome == "deleted" then
        store:forget(row.ext)
      elseif outcome == "failed" then
        -- a failure that may have been applied keeps its create intent (looked up next time)
        local st = rec.status
        store:failed(row.ext, row.kind, st, row.intended and (st == nil or st == 429 or st >= 500))
      elseif not row.no_request and row.hash then
        -- the fields' JSON only for the rows stored (most rows of a nightly sync are unchanged)
        store:confirm(row.ext, row.kind, rec.id, row.hash, state_mod.fields_json(row.fields), outcome, rec.status)
      end
    end
    if opts.on_outcome then opts.on_outcome(rec) end
    row.final = true
  end

  ------------------------------------------------------------------ dry run: validate only
  if opts.dry_run then
    while true do
      local rec, n, msg = next_row()
      if rec == nil then break end
      if rec == false then
        finish({ n = n }, "failed", { message = msg, invalid = true })
      elseif not done_rows[n] then
        local row, field, why, value = prepare(rec, n, popts)
        if row then
          summary.valid = (summary.valid or 0) + 1
          summary.read = summary.read + 1
          if store then
            -- what a sync would do with the row, from the state alone (nothing is sent)
            local e = store:get(row.ext)
            local h = state_mod.hash(row.kind, row.fields, rows.null)
            local w
            if not e or not e.id or e.pending then w = (store_fallback or e) and "lookup" or "create"
            elseif to_verify(row.ext) or e.kind ~= row.kind then w = "lookup"
            elseif e.hash == h then w = "unchanged"
            else w = "update" end
            summary.would = summary.would or { create = 0, update = 0, unchanged = 0, lookup = 0, delete = 0 }
            summary.would[w] = summary.would[w] + 1
            store:seen(row.ext)
          end
        else
          local ext = type(rec) == "table" and (rec.externalCourseActivityId or rec.externalcourseActivityId) or nil
          if store then
            if type(ext) == "string" and ext ~= "" then store:seen(ext) else summary.unkeyed = true end
          end
          finish({ n = n, ext = ext },
            "failed", { message = with_field(field, why), field = field, value = value, invalid = true,
                        code = "invalidRow" })
        end
      end
    end
    close_source()
    if store then
      -- rows in the state and not in the source: what --delete-missing would delete
      summary.would = summary.would or { create = 0, update = 0, unchanged = 0, lookup = 0, delete = 0 }
      summary.missing_ids = {}
      for ext in store:missing() do
        summary.missing = summary.missing + 1
        if #summary.missing_ids < 100 then summary.missing_ids[#summary.missing_ids + 1] = ext end
      end
      if opts.delete_missing then summary.would.delete = summary.missing end
      store:close()
    end
    if results then results:close() end
    if jr then jr:close() end
    summary.dry_run = true
    return summary
  end

  ------------------------------------------------------------------ scheduler state
  local start_missing       -- sync: the rows of the state not in the source (set below)
  local ready = {}          -- FIFO of ops
  local rhead, rtail = 1, 0
  local delayed = {}        -- ops waiting for not_before
  local inflight = {}       -- req -> { ops = {...}, batch = bool, seq = n }
  local ninflight = 0
  local active_ext = {}     -- ext -> row number, rows not finished
  local buffered = 0        -- rows read and not finished
  local source_done = false
  local ctl = pace.new { max_window = max_window, per_request = batch_size, t = now() }
  local window = ctl.window
  local seq = 0
  local lookahead = max_window * batch_size * 2 + 256
  local batch_lookup = batch_size > 1  -- lookups inside $batch (turned off if the client refuses)

  local function push(op)
    rtail = rtail + 1
    ready[rtail] = op
  end
  local function pop()
    if rhead > rtail then return nil end
    local op = ready[rhead]
    ready[rhead] = nil
    rhead = rhead + 1
    return op
  end
  local function qlen() return rtail - rhead + 1 end

  local function release(row)
    if row.ext and active_ext[row.ext] == row.n then active_ext[row.ext] = nil end
    buffered = buffered - 1
  end

  local function fail(row, info)
    finish(row, "failed", info)
    release(row)
  end

  -- The deadline: a row without an outcome is reported failed, code "deadline", and not
  -- journaled as done, so a run with the same journal does it (looked up first if it had an
  -- intent).
  local function not_done(row, why)
    summary.deadline_reached = true
    summary.not_attempted = (summary.not_attempted or 0) + 1
    finish(row, "failed", { code = "deadline", message = "not done by the import's deadline: " .. why,
                            not_done = true })
    release(row)
  end

  local function start_row(row)
    if mode == "sync" then
      -- what the state knows decides: nothing sent for an unchanged row, a PATCH by the
      -- stored id for a changed one, a create for a new one, a lookup when unsure
      store:seen(row.ext)
      row.hash = state_mod.hash(row.kind, row.fields, rows.null)
      local e = store:get(row.ext)
      row.verify = to_verify(row.ext)
      if row.verify then summary.verified = summary.verified + 1 end
      if e and e.pending then
        -- a create intent of a run that did not finish: it may exist, look it up first
        row.reconcile, row.intent_op = true, "create"
        push({ row = row, op = "lookup" })
      elseif not e or not e.id then
        push({ row = row, op = (store_fallback or e or row.reconcile) and "lookup" or "create" })
      elseif row.verify or e.kind ~= row.kind or row.reconcile then
        push({ row = row, op = "lookup" })
      elseif e.hash == row.hash then
        row.id, row.no_request = e.id, true
        finish(row, "unchanged", { id = e.id, message = "unchanged since the last sync (nothing sent)" })
        release(row)
      else
        local old = e.fields and jsonl.decode(e.fields)
        local changes = rows.diff(row.fields, type(old) == "table" and type(old.fields) == "table" and old.fields or {})
        row.id = e.id
        if not changes then
          -- the same fields in another spelling: confirmed as they are
          finish(row, "unchanged", { id = e.id, message = "unchanged since the last sync (nothing sent)" })
          release(row)
        else
          row.changes = changes
          push({ row = row, op = "update" })
        end
      end
    elseif mode == "delete" then
      if row.id then push({ row = row, op = "delete" })
      else push({ row = row, op = "lookup" }) end
    elseif mode == "upsert" or row.reconcile then
      push({ row = row, op = "lookup" })
    else
      push({ row = row, op = "create" })
    end
  end

  local last_row = 0
  local function read_rows()
    while not source_done and buffered < lookahead and qlen() < lookahead do
      local rec, n, msg = next_row()
      if rec == nil then
        source_done = true
        if journal_max_row > last_row then
          -- an iterator source (not counted before): the journal's rows beyond it were copied
          summary.warnings[#summary.warnings + 1] = ("journal %s has outcomes up to row %d, but the source "
            .. "had %d rows: is it the journal of another source?"):format(opts.journal, journal_max_row, last_row)
        end
        break
      end
      last_row = n
      if rec == false then
        if store then summary.unkeyed = true end
        finish({ n = n }, "failed", { message = msg, invalid = true, code = "invalidRow" })
      elseif not done_rows[n] then
        local row, field, why, value = prepare(rec, n, popts)
        if not row then
          local ext = type(rec) == "table" and (rec.externalCourseActivityId or rec.externalcourseActivityId) or nil
          if store then
            -- an invalid row is still in the source: never reported missing (nor deleted)
            if type(ext) == "string" and ext ~= "" then store:seen(ext) else summary.unkeyed = true end
          end
          finish({ n = n, ext = type(ext) == "string" and ext or nil }, "failed",
            { message = with_field(field, why), field = field, value = value, invalid = true,
              code = "invalidRow" })
        else
          local intent = intents[n]
          if intent then
            if row.ext and intent.ext and intent.ext ~= row.ext then
              source_done = true
              summary.fatal = ("row %d: the source differs from the journal (externalCourseActivityId %s, journal has %s)")
                :format(n, tostring(row.ext), tostring(intent.ext))
              break
            end
            row.reconcile = true
            row.intent_op = intent.op
            intents[n] = nil
          end
          local again = retry_rows[n] or (reconcile_all and { reconcile = true })
          if again then
            -- failed in an earlier run, tried again; if it was sent, it may exist already
            retry_rows[n] = nil
            if again.reconcile then row.reconcile = true end
          end
          if row.ext and active_ext[row.ext] then
            finish(row, "failed", { message = ("externalCourseActivityId %s is also on row %d, which is still in progress")
              :format(row.ext, active_ext[row.ext]), code = "duplicateRow", invalid = true })
          else
            if row.ext then active_ext[row.ext] = n end
            buffered = buffered + 1
            row.attempts = 0
            start_row(row)
          end
        end
      end
    end
  end

  -- retry an op later, alone
  local function retry(op, err, ambiguous)
    local row = op.row
    row.attempts = row.attempts + 1
    if row.attempts >= max_attempts then
      local e = err_fields(err)
      e.message = ("gave up after %d attempts: %s"):format(row.attempts, tostring(e.message))
      fail(row, e)
      return
    end
    local wait = type(err) == "table" and tonumber(err.retry_after)
    if wait and wait > max_wait then
      -- the service asks for a longer wait than this import allows: the row fails throttled
      -- (a re-run with the journal tries it again, looked up first)
      local e = err_fields(err)
      e.code, e.retry_after = "throttled", wait
      e.message = ("Retry-After %gs is longer than max_wait (%gs): %s"):format(wait, max_wait, tostring(e.message))
      fail(row, e)
      return
    end
    if not wait or wait < 0 then
      wait = math.min(30, 0.2 * 2 ^ row.attempts) * (0.5 + math.random() * 0.5)
    end
    if deadline_at and now() + wait > deadline_at then
      not_done(row, ("waiting %gs for a retry would pass the import's deadline"):format(wait))
      return
    end
    -- a 429 means the request was not processed: the row goes out again in a $batch like any
    -- other (alone, it would take a whole request of the window for one step)
    local single = not (err_status(err) == 429 and not ambiguous)
    local nop = { row = row, op = op.op, single = single or nil, not_before = now() + wait }
    if ambiguous and op.op == "create" then
      -- it may have been applied: look it up before sending it again (found = created by us)
      nop.op = "lookup"; row.reconcile = true; row.intent_op = "create"
    end
    if ambiguous and op.op == "delete" then row.delete_retried = true end
    delayed[#delayed + 1] = nop
  end

  -- a throttled request (or step): the pace controller cuts the rate once per round trip
  local function throttled_event(entry)
    entry.throttled = true
  end

  -- one op finished: ok/value or err
  local function handle(op, ok, value, err, entry)
    local row = op.row
    if row.final then return end
    if not ok and type(err) == "table" and err.kind == "auth" and not token_refused(err) then
      -- Graph refused the token of this item (401 InvalidAuthenticationToken inside a $batch:
      -- it expired or was revoked): sent again alone, the client refreshes the token first
      retry(op, err, false)
      return
    end
    if not ok and type(err) == "table" and err.kind == "auth" then
      -- no token: nothing else can succeed either. Stop; rows without an outcome stay
      -- unprocessed (not failed), so a run with the same journal does them later.
      if not summary.fatal then summary.fatal = "authentication failed: " .. tostring(err) end
      source_done = true
      row.final = true
      release(row)
      summary.unprocessed = (summary.unprocessed or 0) + 1
      return
    end
    if not ok then
      local cls = classify(err)
      if cls == "throttled" then
        throttled_event(entry)
        retry(op, err, op.op == "create" and err_status(err) == 503)
        return
      elseif cls == "transient" then
        retry(op, err, true)
        return
      end
    end
    local o = op.op
    local done = WRITE_OUTCOME[o]
    if done then
      if ok then
        if o == "create" and (type(value) == "userdata" or type(value) == "table") then
          row.id = value.id or row.id
        end
        finish(row, done[1], { id = row.id, status = done[2] })
        release(row)
      elseif o == "create" and (mode == "upsert" or mode == "sync") and err_status(err) == 409 and not row.conflict then
        -- the row exists after all (created since our lookup, or the lookup did not see it
        -- yet): look it up again, then update it or report it unchanged
        row.conflict = err
        row.reconcile = false
        row.intent_op = nil
        push({ row = row, op = "lookup" })
      elseif o == "update" and mode == "sync" and row.changes and err_status(err) == 404 then
        -- deleted in Graph since the last sync: created again
        row.changes, row.id, row.recreated = nil, nil, true
        push({ row = row, op = "create" })
      elseif o == "delete" and err_status(err) == 404 and (row.reconcile or row.delete_retried) then
        finish(row, "deleted", { id = row.id, status = 404, code = err.code,
                                 message = "already gone (deleted by an earlier attempt)" })
        release(row)
      else
        fail(row, err_fields(err))
      end
    elseif o == "lookup" then
      if ok then
        local existing = value
        row.id = existing.id
        if mode == "delete" then
          push({ row = row, op = "delete" })
        elseif mode == "create" then
          -- only a reconciliation looks up in create mode: the earlier attempt got through
          finish(row, "created", { id = row.id, status = 200, message = "created by an earlier attempt (reconciled)" })
          release(row)
        else
          local t = existing:totable()
          if rows.kind(t["@odata.type"]) and rows.kind(t["@odata.type"]) ~= row.kind then
            fail(row, { id = row.id, code = "typeMismatch",
              message = ("the existing activity is a %s; the row is a %s"):format(
                rows.kind(t["@odata.type"]), row.kind) })
            return
          end
          local changes = rows.diff(row.fields, t)
          if not changes then
            local outcome = "unchanged"
            if row.reconcile and row.intent_op == "create" then outcome = "created"
            elseif row.reconcile and row.intent_op == "update" then outcome = "updated" end
            finish(row, outcome, { id = row.id, status = 200 })
            release(row)
          else
            local okset, serr = pcall(function()
              for k, v in pairs(changes) do existing[k] = v end
            end)
            if not okset then
              fail(row, { id = row.id, code = "invalidRow", message = tostring(serr), invalid = true })
              return
            end
            row.model = existing
            push({ row = row, op = "update" })
          end
        end
      elseif err_status(err) == 404 and row.conflict then
        -- Graph said it exists (409), the lookup says it does not: report the 409
        fail(row, err_fields(row.conflict))
      elseif err_status(err) == 404 then
        if mode == "delete" then
          if row.reconcile then
            finish(row, "deleted", { status = 404, message = "already gone (deleted by an earlier attempt)" })
            release(row)
          else
            fail(row, err_fields(err))
          end
        else
          push({ row = row, op = "create" })
        end
      else
        fail(row, err_fields(err))
      end
    end
  end

  -- models are built when a create is first sent (rows waiting in the queue stay plain tables)
  local function model_for(row)
    if row.model then return row.model end
    local ok, m = pcall(viva[row.kind], row.fields)
    if not ok then return nil, tostring(m) end
    row.model = m
    return m
  end

  local function item_for(op)
    local row = op.row
    if op.op == "create" then
      local m, merr = model_for(row)
      if not m then return nil, merr end
      return { op = "create", provider = provider, model = m }
    elseif op.op == "update" and row.changes then
      return { op = "update", provider = provider, id = row.id, changes = row.changes }
    elseif op.op == "update" then
      return { op = "update", provider = provider, model = row.model }
    elseif op.op == "delete" then
      return { op = "delete", provider = provider, id = row.id }
    else
      return { op = "get_by_external_id", provider = provider, external_id = row.ext }
    end
  end

  local function submit_single(op)
    local row, o = op.row, op.op
    local req, serr
    local ok, perr = pcall(function()
      if o == "create" then
        local m, merr = model_for(row)
        if not m then serr = merr; return end
        req = c:submit("create", provider, m)
      elseif o == "update" and row.changes then
        req = c:submit("update", provider, row.id, row.changes)
      elseif o == "update" then
        req = c:submit("update", provider, row.model)
      elseif o == "delete" then
        req = c:submit("delete", provider, row.id)
      else
        req = c:submit("get_by_external_id", provider, row.ext)
      end
    end)
    if not ok or not req then
      fail(row, { code = "invalidRow", message = tostring(serr or perr), invalid = true })
      return nil
    end
    return req
  end

  -- pick up to batch_size ops for one request
  local function take_batch()
    local ops = {}
    while #ops < batch_size do
      local op = pop()
      if not op then break end
      if not op.row.final then
        if op.single or (op.op == "lookup" and not batch_lookup) then
          if #ops == 0 then return { op } , true end
          -- leave it for the next round
          rhead = rhead - 1; ready[rhead] = op
          break
        end
        ops[#ops + 1] = op
      end
    end
    if #ops == 0 then return nil end
    return ops, (#ops == 1)
  end

  -- past the deadline: nothing more is sent; every row still queued, waiting, or not read yet
  -- is reported not done
  local function cut_at_deadline()
    summary.deadline_reached = true
    local function cut(op)
      if not op.row.final then not_done(op.row, op.row.attempts > 0 and "waiting for a retry" or "not sent") end
    end
    while true do
      local op = pop()
      if not op then break end
      cut(op)
    end
    for _, op in ipairs(delayed) do cut(op) end
    delayed = {}
    if not source_done then
      source_done = true
      while true do
        local rec, n = next_row()
        if rec == nil then break end
        if not done_rows[n] then
          local ext = type(rec) == "table" and (rec.externalCourseActivityId or rec.externalcourseActivityId) or nil
          buffered = buffered + 1
          not_done({ n = n, ext = type(ext) == "string" and ext or nil }, "not read")
        end
      end
    end
  end

  local function dispatch()
    local t = now()
    if deadline_at and t >= deadline_at then cut_at_deadline(); return end
    if summary.fatal then
      -- fatal error: nothing more is sent; rows still queued stay unprocessed (no outcome,
      -- nothing journaled for them), so a later run with the same journal does them
      local function drop(op)
        if not op.row.final then
          op.row.final = true
          release(op.row)
          summary.unprocessed = (summary.unprocessed or 0) + 1
        end
      end
      while true do
        local op = pop()
        if not op then break end
        drop(op)
      end
      for _, op in ipairs(delayed) do drop(op) end
      delayed = {}
      return
    end
    -- due retries go to the front
    if #delayed > 0 then
      local keep = {}
      for _, op in ipairs(delayed) do
        if op.not_before <= t then
          rhead = rhead - 1; ready[rhead] = op
        else
          keep[#keep + 1] = op
        end
      end
      delayed = keep
    end
    -- group commit: with a journal, a round goes out when half the window is free (or nothing
    -- is in flight), so one fsync covers several requests
    local free = math.floor(window) - ninflight
    if jr and ninflight > 0 and free < math.max(1, math.floor(window / 2)) then return end
    local planned = {}
    while ninflight + #planned < math.floor(window) and ctl:can_send(t) do
      local ops, single = take_batch()
      if not ops then break end
      planned[#planned + 1] = { ops = ops, single = single }
      ctl:sent(t, #ops)
    end
    if #planned == 0 then return end
    -- Intents. Creates are the one thing that must never be sent twice: before a create goes
    -- out, an intent naming its row is fsynced. One fsync covers the creates about to go out
    -- and every create queued behind them (intent ahead), so most rounds need none; a row
    -- with an intent that was never sent costs one GET when resumed. Updates and deletes are
    -- idempotent: their intents are written (flushed), not fsynced.
    if jr then
      local need_sync = false
      for _, p in ipairs(planned) do
        for _, op in ipairs(p.ops) do
          if op.op == "create" and not op.row.intended then need_sync = true end
        end
      end
      local r, x, o = {}, {}, {}
      local function note(op)
        if op.op == "create" then
          if need_sync and not op.row.intended then
            op.row.intended = true
            r[#r + 1] = op.row.n; x[#x + 1] = op.row.ext or false; o[#o + 1] = "create"
          end
        elseif op.op ~= "lookup" then
          r[#r + 1] = op.row.n; x[#x + 1] = op.row.ext or false; o[#o + 1] = op.op
        end
      end
      for _, p in ipairs(planned) do
        for _, op in ipairs(p.ops) do note(op) end
      end
      if need_sync then
        for i = rhead, rtail do
          local op = ready[i]
          if op and op.op == "create" and not op.row.final then note(op) end
        end
        for _, op in ipairs(delayed) do
          if op.op == "create" and not op.row.final then note(op) end
        end
      end
      if #r > 0 then jr:append({ k = "intent", r = r, x = x, o = o }) end
      if #pending_done > 0 then
        jr:append({ k = "done", o = pending_done })
        pending_done = {}
      end
      local ok, serr
      if need_sync then ok, serr = jr:sync() else ok, serr = jr:flush() end
      if not ok then error("journal: " .. tostring(serr)) end
    end
    if store then
      -- sync: the intent of every create about to go out is committed first (WAL, synchronous
      -- FULL: on disk when the commit returns), with the outcomes written since the last one
      for _, p in ipairs(planned) do
        for _, op in ipairs(p.ops) do
          if op.op == "create" and not op.row.intended then
            op.row.intended = true
            store:intend(op.row.ext, op.row.kind)
          end
        end
      end
      if store.in_tx then
        local cok, cerr = store:commit()
        if not cok then error(cerr) end
        store.last_commit = now()
      end
    end
    for _, p in ipairs(planned) do
      local req
      if p.single then
        req = submit_single(p.ops[1])
      else
        local items, live = {}, {}
        for _, op in ipairs(p.ops) do
          local it, ierr = item_for(op)
          if it then
            items[#items + 1] = it; live[#live + 1] = op
          else
            fail(op.row, { code = "invalidRow", message = tostring(ierr), invalid = true })
          end
        end
        p.ops = live
        if #items == 1 then
          req = submit_single(live[1])
          p.single = true
        elseif #items > 1 then
          local ok, r = pcall(c.submit, c, "batch", items)
          if ok and r then req = r
          else
            for _, op in ipairs(live) do
              fail(op.row, { code = "clientError", message = tostring(r) })
            end
          end
        end
      end
      if req then
        seq = seq + 1
        inflight[req] = { ops = p.ops, batch = not p.single, seq = seq, t_sent = t }
        ninflight = ninflight + 1
        summary.requests = summary.requests + 1
      end
    end
  end

  local complete_entry
  local function complete(req)
    local entry = inflight[req]
    if not entry then return end
    inflight[req] = nil
    ninflight = ninflight - 1
    -- the client retries a throttled single request itself (max_retries, after its Retry-After):
    -- more than one attempt means Graph pushed back, and the round trip is not one RTT
    local info = req:info()
    local retried = info and (info.attempts or 1) > 1
    complete_entry(req, entry)
    if retried then entry.throttled = true end
    -- what came back tells the pace controller the delivered rate (steps not throttled), the
    -- round-trip time and whether Graph throttled
    local t = now()
    ctl:completed(t, entry.delivered or 0, entry.throttled == true, not retried and t - entry.t_sent or nil,
                  entry.t_sent)
    window = ctl.window
    summary.throttled = ctl.cuts > 0 and ctl.cuts or nil
  end
  complete_entry = function(req, entry)
    local a, b = req:result()
    if entry.batch then
      if not a and err_status(b) == 424 then
        -- Graph's other answer to a throttled item (graph-api.md section 6 #22): the whole
        -- envelope is 424. Some items may have been applied, so every item is retried alone,
        -- and creates are looked up by external id first.
        throttled_event(entry)
        for _, op in ipairs(entry.ops) do retry(op, b, true) end
        return
      end
      if not a then
        -- the whole $batch failed
        local cls = classify(b)
        if cls == "throttled" then throttled_event(entry) end
        for _, op in ipairs(entry.ops) do
          if cls then retry(op, b, cls == "transient" or err_status(b) == 503)
          elseif type(b) == "table" and b.kind == "validation" and op.op == "lookup" and batch_lookup then
            -- this client cannot look up by external id inside $batch: single lookups from now on
            batch_lookup = false
            push({ row = op.row, op = "lookup", single = true })
          else
            handle(op, false, nil, b, entry)
          end
        end
        return
      end
      local passed = 0
      for i, op in ipairs(entry.ops) do
        local r = a[i] or { ok = false, err = { kind = "protocol", message = "no response for this item" } }
        if r.ok or classify(r.err) ~= "throttled" then passed = passed + 1 end
        handle(op, r.ok, r.value, r.err, entry)
      end
      entry.delivered = passed
    else
      local op = entry.ops[1]
      if a ~= nil and a ~= false then
        entry.delivered = 1
        handle(op, true, a, nil, entry)
      else
        handle(op, false, nil, b, entry)
      end
    end
  end

  -- sync, once the source is done: rows in the state and not in the source are reported,
  -- and deleted with delete_missing. Returns true when it queued deletes.
  local missing_done = false
  start_missing = function()
    if missing_done or not store or summary.fatal or summary.deadline_reached then return false end
    missing_done = true
    local list = {}
    summary.missing_ids = {}
    for ext, id, kind in store:missing() do
      summary.missing = summary.missing + 1
      if #summary.missing_ids < 100 then summary.missing_ids[#summary.missing_ids + 1] = ext end
      if opts.delete_missing then list[#list + 1] = { ext = ext, id = id, kind = kind } end
    end
    local orphans = store:pending_missing()
    if orphans > 0 then
      summary.warnings[#summary.warnings + 1] = ("%d rows of the state have the create intent of an unfinished run "
        .. "and are not in the source: they may exist in Graph (put them back in the source to reconcile them)"):format(orphans)
    end
    if summary.missing == 0 then return false end
    if opts.delete_missing and summary.unkeyed then
      summary.warnings[#summary.warnings + 1] = ("%d rows of the state are not in the source, but some rows of the "
        .. "source could not be read or have no externalCourseActivityId: nothing was deleted"):format(summary.missing)
      return false
    end
    if not opts.delete_missing then
      summary.warnings[#summary.warnings + 1] = ("%d rows of the state are not in the source (first: %s); "
        .. "delete_missing (--delete-missing) deletes them"):format(summary.missing, summary.missing_ids[1])
      return false
    end
    for _, m in ipairs(list) do
      buffered = buffered + 1
      -- reconcile: a 404 means already gone (deleted in Graph meanwhile)
      local row = { ext = m.ext, id = m.id, kind = m.kind, attempts = 0, reconcile = true, missing = true }
      push({ row = row, op = "delete" })
    end
    return #list > 0
  end

  ------------------------------------------------------------------ main loop
  local ok, loop_err = pcall(function()
    while true do
      read_rows()
      -- the steps left, once the source is read (the pace stops probing near the end)
      if source_done then ctl:remaining(qlen() + #delayed) end
      dispatch()
      if ninflight == 0 then
        if #delayed == 0 and qlen() == 0 and source_done and not start_missing() then break end
        if qlen() == 0 and #delayed > 0 then
          local soonest = math.huge
          for _, op in ipairs(delayed) do soonest = math.min(soonest, op.not_before) end
          if deadline_at then soonest = math.min(soonest, deadline_at) end
          sleep(math.min(0.5, math.max(0, soonest - now())))
        elseif qlen() > 0 then
          sleep(math.min(0.5, ctl:wait(now())))   -- paced: the next send is due then
        end
      else
        local timeout = 0.2
        if qlen() > 0 and ninflight < math.floor(window) then timeout = math.min(timeout, ctl:wait(now())) end
        if #delayed > 0 then
          local soonest = math.huge
          for _, op in ipairs(delayed) do soonest = math.min(soonest, op.not_before) end
          timeout = math.max(0, math.min(timeout, soonest - now()))
        end
        local done = c:poll(timeout)
        for _, req in ipairs(done or {}) do complete(req) end
      end
      if jr and #pending_done > 0 then
        -- outcomes are written at once (a killed process loses nothing written) and fsynced
        -- with the next round of creates, or at least once a second
        jr:append({ k = "done", o = pending_done })
        pending_done = {}
        local sok, serr
        if now() - (jr.last_sync or 0) > 1 then sok, serr = jr:sync() else sok, serr = jr:flush() end
        if not sok then error("journal: " .. tostring(serr)) end
      end
      if store and store.in_tx and now() - (store.last_commit or 0) > 1 then
        -- outcomes are committed at least once a second (a row whose outcome was lost is
        -- sent again: a PATCH is idempotent, a create has its intent)
        local cok, cerr = store:commit()
        if not cok then error(cerr) end
        store.last_commit = now()
      end
      if prog then prog:update(summary.read, summary.failed) end
    end
  end)

  close_source()
  if store then
    local counts = { read = summary.read, created = summary.created, updated = summary.updated,
                     unchanged = summary.unchanged, deleted = summary.deleted, failed = summary.failed }
    local eok, eerr = store:end_run((ok and not summary.fatal and not summary.deadline_reached) and "done" or "interrupted", counts)
    store:close()
    if ok and not eok then ok, loop_err = false, eerr end
  end
  if jr then
    if #pending_done > 0 then jr:append({ k = "done", o = pending_done }) end
    if ok and not summary.fatal then
      jr:append({ k = "end", read = summary.read })
    end
    jr:close()
  end
  if results then results:close() end
  if prog and ok then
    -- a callback that raises makes the import return nil, err (everything is closed by now)
    ok, loop_err = pcall(prog.finish, prog, summary.read, summary.failed)
  end
  if not ok then return nil, loop_err end
  if summary.fatal then return nil, summary.fatal, summary end
  if summary.deadline_reached then
    summary.warnings[#summary.warnings + 1] = ("the deadline (%gs) passed: %d rows were not done%s"):format(
      deadline, summary.not_attempted or 0,
      jr and "; run again with the same journal to do them" or "")
  end
  summary.elapsed = now() - t_start
  summary.window = window
  return summary
end

---------------------------------------------------------------------------------------------
-- Export
---------------------------------------------------------------------------------------------

--- Write a learner's activities (c:activities{user=|me=}) to a CSV or JSON Lines file.
-- opts: user | me, format ("csv"|"jsonl", default from the file name, else csv), output (path
-- or file handle; default io.stdout), select, top. Returns the number of rows, or nil, err.
-- A path is written under a temporary name beside it and renamed at the end, so a failed
-- export leaves no file (and an existing one untouched). JSON Lines are the models' own JSON.
function M.export(c, opts)
  opts = opts or {}
  local out = opts.output or io.stdout
  local format = opts.format or results_mod.format_for(out)
  if format ~= "jsonl" and format ~= "csv" then error("export: format must be csv or jsonl", 2) end
  local path, tmp = nil, nil
  if type(out) == "string" then
    path, tmp = out, ("%s.tmp-%d"):format(out, math.random(0, 0x7fffffff))
    out = tmp
  end
  local w, werr
  if format == "jsonl" then w, werr = jsonl.writer(out)
  else w, werr = csv.writer(out, { eol = "\n" }) end
  if not w then
    if path then werr = path .. ": " .. (tostring(werr):match("^.*: (.-)$") or tostring(werr)) end
    return nil, werr
  end
  local function fail(err)
    w:close()
    if tmp then os.remove(tmp) end
    return nil, err
  end
  if format == "csv" then w:write(rows.columns) end
  local n = 0
  local q = { user = opts.user, me = opts.me, select = opts.select, top = opts.top, max_pages = opts.max_pages }
  for act, err in c:activities(q) do
    if not act then return fail(err) end
    n = n + 1
    if format == "jsonl" then
      local ok, jerr = w.fh:write(act:tojson(), "\n")
      if not ok then return fail(jerr) end
    else
      local flat = rows.from_model(act)
      local rec = {}
      for i, k in ipairs(rows.columns) do
        local v = flat[k]
        if v == rows.null then v = nil end
        rec[i] = v ~= nil and tostring(v) or ""
      end
      local ok, cerr = w:write(rec, #rows.columns)
      if not ok then return fail(cerr) end
    end
  end
  if tmp then
    local ok, cerr = w.fh:close()
    w.fh = nil
    if not ok then os.remove(tmp); return nil, cerr end
    local rok, rerr = os.rename(tmp, path)
    if not rok then os.remove(tmp); return nil, rerr end
  else
    w:close()
  end
  return n
end

return M
