-- Shell commands from the specs, read the same way on every Lua: os.execute and a popen's
-- close give true|nil, "exit"|"signal", code on 5.2+, but the raw wait status (a number) or
-- nothing on 5.1 and LuaJIT. Must parse on 5.1 (no bitwise operators).
local M = {}

--- os.execute(cmd), as 5.2+ returns it: true|nil, "exit"|"signal", code.
function M.execute(cmd)
  local a, b, c = os.execute(cmd)
  if type(a) ~= "number" then return a, b, c end
  -- a wait status: exit code in bits 8-15, or the signal in bits 0-6
  local sig = a % 128
  if sig ~= 0 then return nil, "signal", sig end
  local code = math.floor(a / 256) % 256
  if code == 0 then return true, "exit", 0 end
  return nil, "exit", code
end

--- Whether cmd exits 0.
function M.ok(cmd)
  return M.execute(cmd) == true
end

--- Runs cmd (a shell command line, as io.popen takes it): its exit code (128 + n for signal
-- n, as sh says) and its standard output. The status comes from the shell itself, after the
-- output, as 5.1's popen close gives none.
function M.capture(cmd)
  local p = assert(io.popen("{ " .. cmd .. "\n}; printf '\\n%d' $?", "r"))
  local out = p:read("*a")
  p:close()
  local body, code = out:match("^(.*)\n(%d+)$")
  return tonumber(code), body
end

--- Runs cmd with stderr joined to stdout: exit code, output.
function M.run(cmd)
  return M.capture("(" .. cmd .. ") 2>&1")
end

return M
