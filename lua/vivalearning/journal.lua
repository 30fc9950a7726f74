-- vivalearning.journal: an append-only, framed, fsynced journal of JSON records.
--
-- One record per line:   <byte length of json>:<FNV-1a 32 of json, 8 hex digits>:<json>\n
-- A process killed mid-write leaves at most one incomplete last line; read() detects it by the
-- missing newline, the length or the checksum and ignores it. A bad line that is *not* the last
-- one means the file was damaged by something else, and read() reports it instead of guessing.
-- sync() flushes and fsyncs, so what it covered survives a crash of the process or the machine.
local jsonl = require "vivalearning.jsonl"

local M = {}

local function fnv1a(s)
  local h = 0x811c9dc5
  for i = 1, #s do
    h = ((h ~ s:byte(i)) * 0x01000193) & 0xffffffff
  end
  return h
end
M.checksum = fnv1a

-- fsync comes from vivalearning.sys, the small OS-glue module built beside the core.
local sys = require "vivalearning.sys"

local Journal = {}
Journal.__index = Journal

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

--- Read every intact record of a journal file.
-- Returns an iterator over records, or nil, err when the file cannot be opened or is damaged
-- before its last line. A missing file gives an empty iterator (nothing was journaled yet).
-- After iteration, `info.torn` is true when a torn last line was ignored.
function M.read(path)
  local fh = io.open(path, "rb")
  local info = { torn = false, records = 0 }
  if not fh then return function() return nil end, info end
  local n = 0
  local pending -- a line that failed to parse: an error only if more lines follow
  local iter = function()
    while true do
      local l = fh:read("L")
      if not l then
        fh:close()
        if pending then info.torn = true end
        return nil
      end
      n = n + 1
      if pending then
        fh:close()
        error(("journal %s: damaged record at line %d (%s)"):format(path, pending.n, pending.why), 0)
      end
      if l:sub(-1) ~= "\n" then
        info.torn = true
        pending = { n = n, why = "no newline" }
      else
        local rec, why = M.unframe(l:sub(1, -2))
        if rec then
          info.records = info.records + 1
          return rec
        end
        pending = { n = n, why = why }
      end
    end
  end
  return iter, info
end

--- Open a journal for appending. A torn last line left by a crash is cut off first, so new
-- records start on a fresh line.
function M.open(path)
  local fh = io.open(path, "rb")
  if fh then
    local size = fh:seek("end")
    if size > 0 then
      -- find the end of the last complete line
      local chunk = 4096
      local pos, keep = size, nil
      while pos > 0 and not keep do
        local start = math.max(0, pos - chunk)
        fh:seek("set", start)
        local data = fh:read(pos - start)
        local last = nil
        for i = #data, 1, -1 do
          if data:byte(i) == 10 then last = i; break end
        end
        if last then keep = start + last end
        pos = start
      end
      keep = keep or 0
      fh:close()
      if keep < size then
        -- rewrite without the torn tail (small file: copy; rename keeps it atomic)
        local src = assert(io.open(path, "rb"))
        local tmp = path .. ".tmp"
        local dst = assert(io.open(tmp, "wb"))
        local left = keep
        while left > 0 do
          local d = src:read(math.min(left, 1 << 20))
          dst:write(d)
          left = left - #d
        end
        src:close()
        dst:flush()
        sys.fsync(dst)
        dst:close()
        assert(os.rename(tmp, path))
      end
    else
      fh:close()
    end
  end
  local afh, err = io.open(path, "ab")
  if not afh then return nil, err end
  afh:setvbuf("full", 1 << 16)
  return setmetatable({ fh = afh, path = path, dirty = false, syncs = 0 }, Journal)
end

--- Append a record (buffered until sync()).
function Journal:append(rec)
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

function Journal:close()
  if self.fh then
    self:sync()
    self.fh:close()
    self.fh = nil
  end
end


return M
