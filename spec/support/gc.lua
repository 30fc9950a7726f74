-- The collector's incremental mode with given parameters, on every Lua: collectgarbage
-- ("incremental", pause, stepmul, stepsize) is 5.4's; 5.1-5.3 and LuaJIT are always incremental
-- and take the pause and step multiplier one at a time (there is no step size to set).
local M = {}

local HAS_MODES = _VERSION == "Lua 5.4"

--- Sets incremental mode with pause and stepmul (stepsize on 5.4 only); returns the previous
-- mode for M.restore.
function M.incremental(pause, stepmul, stepsize)
  if HAS_MODES then return collectgarbage("incremental", pause, stepmul, stepsize) end
  collectgarbage("setpause", pause)
  collectgarbage("setstepmul", stepmul)
  return "incremental"
end

--- Back to a mode M.incremental returned ("generational" exists on 5.4 only).
function M.restore(mode)
  if HAS_MODES then collectgarbage(mode) end
end

--- An object whose finalizer is f: a table on 5.2+, a newproxy userdata on 5.1 and LuaJIT
-- (which run __gc for userdata only).
function M.finalized(f)
  if newproxy then
    local p = newproxy(true)
    getmetatable(p).__gc = f
    return p
  end
  return setmetatable({}, { __gc = f })
end

return M
