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
