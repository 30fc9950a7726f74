-- vivalearning.journal: an append-only, framed, fsynced journal of JSON records.
--
-- One record per line:   <byte length of json>:<FNV-1a 32 of json, 8 hex digits>:<json>\n
-- A process killed mid-write leaves at most one incomplete last line; read() detects it by the
-- missing newline, the length or the checksum and ignores it. A bad line that is *not* the last
-- one means the file was damaged by something else, and read() reports it instead of guessing.
-- sync() flushes and fsyncs, so what it covered survives a crash of the process or the machine.
local compat = require "vivalearning.compat"
local jsonl = require "vivalearning.jsonl"

local M = {}

local fnv1a = require("vivalearning.hash").fnv1a32
M.checksum = fnv1a

-- fsync comes from vivalearning.sys, the small OS-glue module built beside the core.
local sys = require "vivalearning.sys"

local Journal = {}
Journal.__index = Journal

-- Journals this process holds open (by dev:ino): a second import in the same process must
-- refuse too, and must not open-and-close the file (that would drop the first one's fcntl lock).
local held = setmetatable({}, { __mode = "v" })

--- Encode one record as a framed line (exposed for tests).
function M.frame(rec)
  local s, err = jsonl.encode(rec)
  if not s then error("journal: cannot encode record: " .. tostring(err), 2) end
  return ("%d:%08x:%s\n"):format(#s, fnv1a(s), s)
end

--- Parse a framed line (without its newline): record, or nil, reason.
function M.unframe(line)
  local len, sum, body = line:match("^(%d+):(%x%x%x%x%x%x%x%x):(.*)$")
  if not len then return nil, "bad frame" end
  if tonumber(len) ~= #body then return nil, "length mismatch" end
  if tonumber(sum, 16) ~= fnv1a(body) then return nil, "checksum mismatch" end
  local rec, err = jsonl.decode(body)
  if rec == nil then return nil, "bad json: " .. tostring(err) end
  return rec
end

-- Sequence numbers: Journal:append() numbers records (field `seq`, 1, 2, ...) in a journal that
-- starts numbered (every journal this version creates). A gap, or a first record that is not
-- number 1, means records were lost (a truncated or spliced file): an error, unlike a torn
-- last line. Journals of earlier versions (no `seq`) are read without this check.

-- Scan the lines of an open handle from its start. Calls on_record(rec) for each intact
-- record; returns info { records, torn (a bad or unterminated last line was left out),
-- keep (byte length up to the end of the last intact line), seq (last number, or nil for an
-- unnumbered journal), problems (what repair skipped) }, or raises (message naming the path
-- and line) on damage before the last line. With repair, damaged lines and gaps are skipped
-- and listed in info.problems instead.
local function scan(fh, path, on_record, repair)
  local info = { torn = false, records = 0, keep = 0, problems = {}, torn_bytes = 0 }
  local n, pos = 0, 0
  local pending -- a line that failed to parse: an error only if more lines follow
  local numbered, last_seq
  local function problem(msg)
    if not repair then error(("journal %s: %s"):format(path, msg), 0) end
    info.problems[#info.problems + 1] = msg
  end
  fh:seek("set", 0)
  while true do
    local l = compat.read_line(fh)
    if not l then break end
    n = n + 1
    pos = pos + #l
    if pending then
      problem(("damaged record at line %d (%s), and records follow it"):format(pending.n, pending.why))
      pending = nil
    end
    if l:sub(-1) ~= "\n" then
      pending = { n = n, why = "no newline", bytes = #l }
    else
      local rec, why = M.unframe(l:sub(1, -2))
      if rec and type(rec) ~= "table" then rec, why = nil, "not a JSON object" end
      if rec then
        local sq = rec.seq
        if info.records == 0 then
          numbered = sq ~= nil
          if numbered and sq ~= 1 then
            problem(("line %d is record number %s, not 1: records are missing at the start"):format(n, tostring(sq)))
          end
        elseif numbered and sq ~= (last_seq or 0) + 1 then
          problem(("line %d is record number %s after number %s: records are missing"):format(
            n, tostring(sq), tostring(last_seq)))
        elseif not numbered and sq ~= nil then
          problem(("line %d is numbered in a journal whose first record is not"):format(n))
        end
        if numbered and compat.type(sq) == "integer" then last_seq = sq end
        info.records = info.records + 1
        info.keep = pos
        on_record(rec, n)
      else
        pending = { n = n, why = why, bytes = #l }
      end
    end
  end
  if pending then info.torn = true; info.torn_bytes = pending.bytes; info.torn_line = pending.n end
  if info.records == 0 then numbered = true end
  info.seq = numbered and (last_seq or 0) or nil
  return info
end

--- Read every intact record of a journal file.
-- Returns an iterator over records, or raises when the file is damaged before its last line
-- (a bad line followed by others, a gap in the record numbers). A missing file gives an empty
-- iterator (nothing was journaled yet). After iteration, `info.torn` is true when a torn last
-- line was ignored. opts.repair: skip damage instead (listed in info.problems).
function M.read(path, opts)
  local info = { torn = false, records = 0 }
  local recs = {}
  local ok, res
  local st = sys.stat(path)
  local h = st and held[("%d:%d"):format(st.dev, st.ino)]
  if h and h.fh then
    -- open in this process: read through its handle (closing another descriptor of the
    -- file would drop the lock), then back to appending at the end
    h.fh:flush()
    ok, res = pcall(scan, h.fh, path, function(rec) recs[#recs + 1] = rec end, opts and opts.repair)
    h.fh:seek("end")
  else
    local fh = io.open(path, "rb")
    if not fh then return function() return nil end, info end
    ok, res = pcall(scan, fh, path, function(rec) recs[#recs + 1] = rec end, opts and opts.repair)
    fh:close()
  end
  if not ok then
    -- same contract as before: the error surfaces while iterating
    return function() error(res, 0) end, info
  end
  for k, v in pairs(res) do info[k] = v end
  local i = 0
  return function() i = i + 1; return recs[i] end, info
end


local function file_key(st) return ("%d:%d"):format(st.dev, st.ino) end

-- Open path (created if missing) and take its lock: handle, or nil, message, holder pid.
local function acquire(path)
  for _ = 1, 5 do
    local st = sys.stat(path)
    if st and st.type == "directory" then return nil, ("journal %s is a directory, not a file"):format(path) end
    if st and held[file_key(st)] then
      return nil, ("journal %s is in use by another import in this process (pid %d)"):format(path, sys.getpid()),
        sys.getpid()
    end
    local fh, err = io.open(path, "a+b")
    if not fh then return nil, "cannot open journal: " .. tostring(err) end
    local ok, lerr, pid = sys.lock(fh)
    if not ok then
      fh:close()
      if pid then
        return nil, ("journal %s is in use by another import (process %d holds its lock); "
          .. "wait for it to finish, or use another journal"):format(path, pid), pid
      end
      return nil, ("journal %s: %s"):format(path, tostring(lerr))
    end
    -- the file may have been replaced (a repair renames a new one in) between open and lock
    local mine, now_there = sys.stat(fh), sys.stat(path)
    if now_there and mine.dev == now_there.dev and mine.ino == now_there.ino then return fh, nil, nil, mine end
    fh:close()
  end
  return nil, ("journal %s keeps being replaced; is another import rewriting it?"):format(path)
end

local function new_journal(fh, path, st, seq)
  local self = setmetatable({ fh = fh, path = path, dirty = false, syncs = 0, seq = seq,
                              key = file_key(st) }, Journal)
  held[self.key] = self
  return self
end

--- Open a journal for appending, under an exclusive lock (sys.lock: fcntl), held until
-- close(): a second opener, in this or another process, gets nil, message naming the
-- journal and the holder's pid, pid. The records already there are checked (as read()
-- does) and kept in j.loaded, j.info describes them; a torn last line left by a crash is
-- cut off (in place), so new records start on a fresh line. opts.repair: damaged lines and
-- gaps are skipped, and the file is rewritten with the intact records only (renumbered),
-- led by opts.header (a record) when the first one is not of its kind.
function M.open(path, opts)
  opts = opts or {}
  local fh, err, pid, st = acquire(path)
  if not fh then return nil, err, pid end
  local loaded = {}
  local ok, info = pcall(scan, fh, path, function(rec) loaded[#loaded + 1] = rec end, opts.repair)
  if not ok then fh:close(); return nil, info end
  if #info.problems > 0 then
    -- repair: write the intact records to a new file, locked before it takes the name
    local tmp = path .. ".repair"
    local nfh, nerr = io.open(tmp, "w+b")
    if not nfh then fh:close(); return nil, ("cannot repair journal %s: %s"):format(path, tostring(nerr)) end
    local lok, lerr = sys.lock(nfh)
    if not lok then nfh:close(); fh:close(); return nil, ("cannot repair journal %s: %s"):format(path, tostring(lerr)) end
    -- a header lost with the records at the start is put back (opts.header, when given)
    if opts.header and (not loaded[1] or loaded[1].k ~= opts.header.k) then
      table.insert(loaded, 1, opts.header)
      info.problems[#info.problems + 1] = "its header was written again"
    end
    for i, rec in ipairs(loaded) do
      rec.seq = i
      nfh:write(M.frame(rec))
    end
    local sok, serr = sys.fsync(nfh)
    if not sok then nfh:close(); fh:close(); return nil, serr end
    local rok, rerr = os.rename(tmp, path)
    if not rok then nfh:close(); fh:close(); return nil, ("cannot repair journal %s: %s"):format(path, tostring(rerr)) end
    fh:close()
    fh, st = nfh, sys.stat(nfh)
    info.seq = #loaded
    info.keep = nil
    info.repaired = true
  elseif info.torn then
    local tok, terr = sys.truncate(fh, info.keep)
    if not tok then fh:close(); return nil, ("journal %s: %s"):format(path, tostring(terr)) end
    sys.fsync(fh)
  end
  fh:seek("end")
  fh:setvbuf("full", 65536)
  local self = new_journal(fh, path, st, info.seq)
  self.loaded, self.info = loaded, info
  return self
end

--- Append a record (buffered until sync()).
function Journal:append(rec)
  if self.seq then
    self.seq = self.seq + 1
    rec.seq = self.seq
  end
  local ok, err = self.fh:write(M.frame(rec))
  if not ok then return nil, err end
  self.dirty = true
  return true
end

--- Write what was appended to the file (no fsync): enough to survive the process being
-- killed, not a machine crash.
function Journal:flush()
  local ok, err = self.fh:flush()
  if not ok then return nil, err end
  return true
end

--- Flush and fsync everything appended so far.
function Journal:sync()
  if not self.dirty then return true end
  local ok, err = self.fh:flush()
  if not ok then return nil, err end
  ok, err = sys.fsync(self.fh)
  if not ok then return nil, err end
  self.dirty = false
  self.syncs = self.syncs + 1
  self.last_sync = self.clock and self.clock() or os.time()
  return true
end

--- Sync, close, and so release the lock (idempotent).
function Journal:close()
  if self.fh then
    self:sync()
    self.fh:close()
    self.fh = nil
    if held[self.key] == self then held[self.key] = nil end
  end
end


return M
