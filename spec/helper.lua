-- busted helper (see .busted): makes sure an emulator answers before any spec runs.
-- 1. VIVA_EMU_DIR (as set by spec/run or the Makefile) or emulator/.run has a live instance: use it.
-- 2. Otherwise start one in a fresh temporary directory, and stop it when this Lua state closes
--    (a __gc/__close sentinel held in the registry; busted exits with os.exit(code, true), which
--    closes the state on 5.2+; on 5.1 and LuaJIT os.exit does not, the watchdog does it), and also
--    when this process dies any other way (a watchdog shell that waits for our pid).
local sh = require("support.shell").ok

-- 5.4 seeds math.random itself; before it every process draws the same numbers (the same
-- assertion ids, external ids, ... run after run against one emulator).
if _VERSION ~= "Lua 5.4" then
  local f = io.open("/dev/urandom", "rb")
  local b = f and f:read(4) or ""
  if f then f:close() end
  local seed = os.time()
  for i = 1, #b do seed = seed * 256 + b:byte(i) end
  math.randomseed(seed % 2147483647)
end

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function live(dir)
  return sh("./emulator/run --dir " .. q(dir) .. " --status --quiet >/dev/null 2>&1")
end

local dir = os.getenv("VIVA_EMU_DIR")
if not (dir and live(dir)) then
  if not dir and live("emulator/.run") then
    dir = "emulator/.run"
  else
    local tmp = os.tmpname()
    os.remove(tmp)
    dir = tmp .. "-emu"
    if not sh("./emulator/run --dir " .. q(dir) .. " --quiet") then
      error("spec/helper.lua: could not start the emulator in " .. dir)
    end
    local stopped = false
    local function stop()
      if stopped then return end
      stopped = true
      sh("./emulator/stop --dir " .. q(dir) .. " --quiet >/dev/null 2>&1; rm -rf " .. q(dir))
    end
    -- 5.1 and LuaJIT run __gc for userdata only (newproxy's), not for tables.
    local sentinel = newproxy and newproxy(true) or setmetatable({}, {})
    getmetatable(sentinel).__gc, getmetatable(sentinel).__close = stop, stop
    debug.getregistry()["vivalearning.spec.emulator_sentinel"] = sentinel
    -- The watchdog: if this process is killed (no __gc), nginx must not stay behind.
    local f = io.open("/proc/self/stat", "r")
    local stat = f and f:read("*l")
    if f then f:close() end
    local pid = stat and stat:match("^(%d+)")
    if pid then
      sh("nohup sh -c " .. q("while kill -0 " .. pid .. " 2>/dev/null; do sleep 1; done; " ..
        "./emulator/stop --dir " .. q(dir) .. " --quiet; rm -rf " .. q(dir)) ..
        " >/dev/null 2>&1 &")
    end
  end
end

VIVA_EMU_ACTIVE_DIR = dir
require("support.emulator").load(dir)

-- No spec ever reaches the real IMDS (169.254.169.254): the documented override points managed
-- identity at the emulator's IMDS, for this process and every command it starts.
do
  local env = require("support.emulator").read_env(dir)
  local imds = assert(env.VIVA_EMU_IMDS, "no VIVA_EMU_IMDS in " .. dir)
  -- spec/run exports it before busted starts; busted run by hand (or a child Lua without this
  -- build's vivalearning.sys) gets it here
  if os.getenv("AZURE_POD_IDENTITY_AUTHORITY_HOST") ~= imds then
    require("vivalearning.sys").setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", imds)
  end
end
