-- vivalearning.csv: streaming RFC 4180 reader and writer.
--
-- The reader pulls one record at a time from a file handle, so memory does not grow with the
-- file. Quoted fields may hold commas, doubled quotes and line breaks (kept as they are in the
-- file); CRLF, LF and lone CR line ends are accepted, also mixed; a UTF-8 byte-order mark at the start is
-- skipped. Malformed input (a stray quote inside an unquoted field, text after a closing quote,
-- a quote left open at end of file) is reported with its line number, never guessed at.
local stream = require "vivalearning.stream"

local M = {}

local Reader = stream.methods({})
Reader.__index = Reader

--- Open a reader on a path or an open file handle.
-- opts.header (default true): the first record names the columns; read() then returns
-- records as arrays and reader.columns holds the names. opts.chunk: read size in bytes.
function M.reader(src, opts)
  opts = opts or {}
  local fh, owned = stream.open(src, "rb")
  if not fh then return nil, owned end
  local r = setmetatable({ fh = fh, owned = owned, line = 0, record = 0, first = true,
                           next_line = stream.lines(fh, opts.chunk) }, Reader)
  if opts.header ~= false then
    local cols, err = r:read()
    if not cols then
      if owned then fh:close() end
      return nil, err or "empty CSV file (no header line)"
    end
    r.columns = cols
    r.record = 0
  end
  return r
end

-- One physical line without its terminator; the terminator is returned separately.
local function next_line(self)
  local l, eol = self.next_line()
  if not l then return nil end
  self.line = self.line + 1
  if self.first then
    self.first = false
    if l:sub(1, 3) == "\239\187\191" then l = l:sub(4) end
  end
  return l, eol
end

--- Next record as an array of strings; nil at end of file; nil, err on malformed input.
-- reader.record_line is the line the record starts on, reader.record its ordinal (1-based,
-- header excluded).
function Reader:read()
  local s, eol = next_line(self)
  if not s then return nil end
  self.record_line = self.line
  local fields, n, pos = {}, 0, 1
  while true do
    if s:byte(pos) == 34 then -- '"'
      local parts, p = {}, pos + 1
      while true do
        local q = s:find('"', p, true)
        if not q then
          parts[#parts + 1] = s:sub(p) .. eol
          local nxt, e2 = next_line(self)
          if not nxt then
            return nil, ("line %d: quoted field not closed at end of file"):format(self.record_line)
          end
          s, eol, p = nxt, e2, 1
        elseif s:byte(q + 1) == 34 then
          parts[#parts + 1] = s:sub(p, q)
          p = q + 2
        else
          parts[#parts + 1] = s:sub(p, q - 1)
          n = n + 1
          fields[n] = table.concat(parts)
          local c = s:byte(q + 1)
          if c == nil then
            self.record = self.record + 1
            return fields
          elseif c == 44 then
            pos = q + 2
            if pos > #s then
              n = n + 1; fields[n] = ""
              self.record = self.record + 1
              return fields
            end
            break
          else
            return nil, ("line %d: unexpected character after closing quote"):format(self.line)
          end
        end
      end
    else
      local c = s:find(",", pos, true)
      local f = s:sub(pos, (c or 0) - 1)
      if f:find('"', 1, true) then
        return nil, ("line %d: quote inside an unquoted field"):format(self.line)
      end
      n = n + 1
      fields[n] = f
      if not c then
        self.record = self.record + 1
        return fields
      end
      pos = c + 1
      if pos > #s then
        n = n + 1; fields[n] = ""
        self.record = self.record + 1
        return fields
      end
    end
  end
end

--- Iterate records: for rec, err in reader:records() do ... end (err ends the loop after it).
function Reader:records()
  local failed = false
  return function()
    if failed then return nil end
    local rec, err = self:read()
    if not rec and err then failed = true; return false, err end
    return rec
  end
end

local Writer = stream.methods({})
Writer.__index = Writer

--- Writer on a path or file handle. opts.eol defaults to "\r\n" (RFC 4180).
function M.writer(dst, opts)
  opts = opts or {}
  return stream.new(Writer, dst, opts.append and "ab" or "wb", { eol = opts.eol or "\r\n" })
end

--- Quote one value when it needs it (comma, quote, CR/LF, leading or trailing space).
function M.quote(v)
  if v == nil then return "" end
  v = tostring(v)
  if v:find('[,"\r\n]') or v:find("^%s") or v:find("%s$") then
    return '"' .. v:gsub('"', '""') .. '"'
  end
  return v
end

--- Write one record (array of values; nil holes are written as empty fields when n is given).
function Writer:write(fields, n)
  n = n or #fields
  local out = {}
  for i = 1, n do out[i] = M.quote(fields[i]) end
  local ok, err = self.fh:write(table.concat(out, ","), self.eol)
  if not ok then return nil, err end
  return true
end

return M
