-- vivalearning.stream: what the CSV and JSON Lines readers and writers share: opening a path
-- or taking an open file handle, and closing only what they opened.
local M = {}

--- fh, owned for a path (opened in `mode`) or an open file handle (not owned); nil, err.
function M.open(src, mode)
  if type(src) == "string" then
    local fh, err = io.open(src, mode)
    if not fh then return nil, err end
    return fh, true
  end
  return src, false
end

--- A new object of `class` (fields `t` plus fh and owned) on a path or handle; nil, err.
function M.new(class, src, mode, t)
  local fh, owned = M.open(src, mode)
  if not fh then return nil, owned end
  t = t or {}
  t.fh, t.owned = fh, owned
  return setmetatable(t, class)
end

--- Line splitter on a file handle: returns next_line() -> body, eol | nil at end of file.
-- A line ends at CRLF, LF or a lone CR (old spreadsheets), so a file may mix them; eol is the
-- terminator as found ("" for a last line without one). Reads `chunk` bytes at a time.
function M.lines(fh, chunk)
  chunk = chunk or 65536
  local buf, pos, scan, eof = "", 1, 1, false
  return function()
    while true do
      local s = buf:find("[\r\n]", scan)
      -- a CR as the last byte read: an LF may follow in the next chunk
      if s and not (s == #buf and buf:byte(s) == 13 and not eof) then
        local e = s
        if buf:byte(s) == 13 and buf:byte(s + 1) == 10 then e = s + 1 end
        local body, eol = buf:sub(pos, s - 1), buf:sub(s, e)
        pos, scan = e + 1, e + 1
        return body, eol
      end
      if eof then
        if pos > #buf then return nil end
        local body = buf:sub(pos)
        buf, pos, scan = "", 1, 1
        return body, ""
      end
      local data = fh:read(chunk)
      if data then
        -- search again from the pending CR, or from the first new byte
        scan = s and (s - pos + 1) or (#buf - pos + 2)
        buf, pos = buf:sub(pos) .. data, 1
      else
        eof = true
      end
    end
  end
end

--- Methods for an object { fh =, owned = }: flush(), and close() that closes an owned
-- handle (flushes a borrowed one) and forgets it.
function M.methods(class)
  function class:flush() return self.fh:flush() end
  function class:close()
    if self.fh then
      if self.owned then self.fh:close() else self.fh:flush() end
    end
    self.fh = nil
  end
  return class
end

return M
