-- Runs bin/vivalearning as a real child process against the emulator, for the CLI specs.
local shell = require "support.shell"
local emu = require "support.emulator"
local support = require "support.lualayer"
local q, slurp = support.q, support.slurp

local M = {}

local VARS = { "VIVA_TENANT_ID", "VIVA_CLIENT_ID", "VIVA_CLIENT_SECRET", "VIVA_GRAPH_URL",
               "VIVA_AUTHORITY_URL", "VIVA_CA_FILE", "VIVA_TOKEN", "VIVA_USERNAME", "VIVA_PASSWORD" }

-- The importer app's credentials and the emulator's URLs, overridden by env (false = unset).
function M.env(env)
  local e = {
    VIVA_TENANT_ID = emu.TENANT, VIVA_CLIENT_ID = emu.APPS.importer.client_id,
    VIVA_CLIENT_SECRET = emu.APPS.importer.client_secret, VIVA_GRAPH_URL = emu.graph_url,
    VIVA_AUTHORITY_URL = emu.authority_url, VIVA_CA_FILE = emu.ca,
  }
  for k, v in pairs(env or {}) do e[k] = v end
  return e
end

local function cwd()
  local p = io.popen("pwd")
  local d = p:read("*l")
  p:close()
  return d
end
M.ROOT = cwd()

-- "env -u ... K=V ... lua bin/vivalearning ARGS" (a shell command line); opts.cwd: run it in
-- that directory.
function M.command(args, env, opts)
  opts = opts or {}
  local parts = { opts.cwd and ("cd " .. q(opts.cwd) .. " && env") or "env" }
  for _, k in ipairs(VARS) do parts[#parts + 1] = "-u " .. k end
  for k, v in pairs(M.env(env)) do
    if v ~= false then parts[#parts + 1] = q(k .. "=" .. v) end
  end
  parts[#parts + 1] = q("LUA_PATH=" .. package.path)
  parts[#parts + 1] = q("LUA_CPATH=" .. package.cpath)
  parts[#parts + 1] = support.LUA
  parts[#parts + 1] = opts.cwd and q(M.ROOT .. "/bin/vivalearning") or "bin/vivalearning"
  for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
  return table.concat(parts, " ")
end

--- Run with args (array), env overrides, a stdin path, opts (cwd =): exit code, stdout, stderr.
function M.run(args, env, stdin, opts)
  local out, err = os.tmpname(), os.tmpname()
  local ok, _, code = shell.execute(M.command(args, env, opts) .. " >" .. out .. " 2>" .. err ..
    " <" .. q(stdin or "/dev/null"))
  local so, se = slurp(out), slurp(err)
  os.remove(out); os.remove(err)
  return ok and 0 or code, so, se
end

--- Run a shell script under a pseudo-terminal (util-linux script): everything the terminal
-- showed, and whether the script succeeded. The script runs in the spec's directory.
function M.pty(script)
  local out = os.tmpname()
  local ok = shell.execute("script -qec " .. q(script) .. " /dev/null >" .. out .. " 2>&1 </dev/null")
  local s = slurp(out)
  os.remove(out)
  return s, ok == true
end

M.q = q
return M
