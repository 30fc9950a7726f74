-- vivalearning.compat: the few number functions of Lua 5.3+ the Lua layer uses, on every Lua
-- (5.1, 5.2, LuaJIT have one number type, a double: an "integer" there is an integral, finite
-- number, exact up to 2^53). This file must parse on 5.1: no //, no bitwise operators.
local M = {}

local floor, huge = math.floor, math.huge

if math.type then
  M.type, M.tointeger = math.type, math.tointeger
else
  --- math.type: "integer" for an integral finite number, "float" for any other, nil otherwise.
  function M.type(v)
    if type(v) ~= "number" then return nil end
    if v == floor(v) and v > -huge and v < huge then return "integer" end
    return "float"
  end

  --- math.tointeger: the number when it is integral (a string converts as on 5.3), else nil.
  function M.tointeger(v)
    if type(v) == "string" then v = tonumber(v) end
    if type(v) == "number" and v == floor(v) and v > -huge and v < huge then return v end
    return nil
  end
end

--- a // b for integers (floor division); an integer on 5.3+ as // gives.
function M.idiv(a, b)
  local q = floor(a / b)
  return M.tointeger(q) or q
end

-- Lua 5.1 (not LuaJIT) has no "*L" (a line with its newline): read the line, and tell from
-- the file position whether a newline ended it. For seekable files only (the journal).
local keeps_newline = pcall(function()
  local f = io.tmpfile()
  if not f then return end
  local ok = pcall(f.read, f, "*L")
  f:close()
  assert(ok)
end)

--- fh:read("*L") on every Lua: the next line with its "\n" (none on a last unended line).
function M.read_line(fh)
  if keeps_newline then return fh:read("*L") end
  local before = fh:seek()
  local l = fh:read("*l")
  if l and fh:seek() > before + #l then l = l .. "\n" end
  return l
end

return M
