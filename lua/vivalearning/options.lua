-- vivalearning.options: checking the option tables of the Lua layer (bulk import, pager).
-- Misuse raises, as in the C core: an unknown option (with the nearest known name when one is
-- close, as the models do for fields) or a value of the wrong type, naming the option.
local compat = require "vivalearning.compat"
local M = {}

-- Case-insensitive edit distance (the models' suggest() in src/model.c, in Lua).
local function distance(a, b)
  a, b = a:lower(), b:lower()
  if #a > 64 or #b > 64 then return 1000 end
  local row = {}
  for j = 0, #b do row[j] = j end
  for i = 1, #a do
    local prev = row[0]
    row[0] = i
    for j = 1, #b do
      local cur = row[j]
      local v = prev + (a:byte(i) == b:byte(j) and 0 or 1)
      if row[j] + 1 < v then v = row[j] + 1 end
      if row[j - 1] + 1 < v then v = row[j - 1] + 1 end
      row[j] = v
      prev = cur
    end
  end
  return row[#b]
end

--- The name in `names` (an array) nearest to `name`, when it is close enough; else nil.
function M.nearest(name, names)
  if type(name) ~= "string" then return nil end
  local best, bestd = nil, 1000
  for _, n in ipairs(names) do
    local d = distance(name, n)
    if d < bestd then best, bestd = n, d end
  end
  local limit = math.max(2, compat.idiv(#name, 3))
  return bestd <= limit and best or nil
end

local function repr(v)
  if type(v) == "string" then return ("%q"):format(v) end
  if type(v) == "number" or type(v) == "boolean" or v == nil then return tostring(v) end
  return "a " .. type(v)
end
M.repr = repr

-- Value checks: each returns nil when the value fits, else what was expected.
function M.string(v)
  if type(v) ~= "string" or v == "" then return "a non-empty string" end
end
function M.boolean(v)
  if type(v) ~= "boolean" then return "a boolean" end
end
function M.callable(v)
  if type(v) == "function" then return nil end
  local mt = getmetatable(v)
  if type(mt) == "table" and mt.__call then return nil end
  return "a function"
end
function M.integer(lo, hi)
  local what = hi and ("an integer %d..%d"):format(lo, hi) or ("an integer >= %d"):format(lo)
  return function(v)
    if compat.type(v) ~= "integer" or v < lo or (hi and v > hi) then return what end
  end
end
function M.number(lo)
  return function(v)
    if type(v) ~= "number" or v ~= v or v < lo or v == math.huge then
      return ("a number >= %s"):format(lo)
    end
  end
end
function M.one_of(...)
  local set, list = {}, { ... }
  for _, s in ipairs(list) do set[s] = true end
  local what = #list == 1 and list[1] or table.concat(list, ", ", 1, #list - 1) .. " or " .. list[#list]
  return function(v)
    if not set[v] then return what end
  end
end
--- A value that passes any of the checks.
function M.either(...)
  local checks = { ... }
  return function(v)
    local wants = {}
    for i, c in ipairs(checks) do
      local w = c(v)
      if not w then return nil end
      wants[i] = w
    end
    return table.concat(wants, " or ")
  end
end
--- Accepted by name; the code that reads it checks its value.
M.any = true

--- Check opts (a table) against spec (option name -> check or M.any). `where` starts every
-- message ("import", "activities"); level is passed to error() (1 = the caller of check).
function M.check(where, opts, spec, level)
  level = (level or 1) + 1
  for k, v in pairs(opts) do
    local chk = spec[k]
    if chk == nil then
      local names = {}
      for n in pairs(spec) do names[#names + 1] = n end
      table.sort(names)
      local best = M.nearest(k, names)
      error(("%s: unknown option %s%s"):format(where, type(k) == "string" and ("'" .. k .. "'") or repr(k),
        best and ("; did you mean '%s'?"):format(best) or ""), level)
    end
    if type(chk) == "function" then
      local want = chk(v)
      if want then
        error(("%s: option '%s' must be %s, got %s"):format(where, k, want, repr(v)), level)
      end
    end
  end
end

return M
