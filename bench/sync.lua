-- bench/sync.lua (run by `make bench` through bench/run): the nightly-sync scenario.
--
-- N rows (default 100,000; BENCH_SYNC_ROWS) synced once with `mode = "sync"` and a state
-- database, then again with 1% of the rows changed (BENCH_SYNC_CHANGED, a share): requests the
-- emulator counted (each $batch step is one), wall time and peak RSS of the second run, against
-- today's `mode = "upsert"` of the same changed file over the same activities. Once on loopback
-- and once at 80 ms round trip (BENCH_SYNC_LATENCY, seconds; 0 skips it) with a throttling
-- profile (1,000 requests/s per app, burst 2,000). Target: the second sync sends at most
-- changed/20 + 5 requests and takes under 5% of the upsert's time; peak RSS flat in N.
-- Each import runs in its own child process (VmHWM is that import's).
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./?.so;" .. package.cpath

local LUA = os.getenv("LUA") or "lua5.4"
local function sh_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function read_env(dir)
  local env = {}
  local f = assert(io.open(dir .. "/env"), "no emulator env in " .. dir)
  for line in f:lines() do
    local k, v = line:match("^([%w_]+)=(.*)$")
    if k then env[k] = v:gsub("^['\"]", ""):gsub("['\"]$", "") end
  end
  f:close()
  return env
end

local TENANT = "72f988bf-0000-4000-8000-000000000001"
local APP, SECRET = "a0000000-0000-4000-8000-000000000001", "importer-secret-1"
local PROVIDER = "c0000000-0000-4000-8000-000000000001"

---------------------------------------------------------------------------------- child
if arg[1] == "--child" then
  -- lua5.4 bench/sync.lua --child MODE FILE [STATE]
  local mode, file, state = arg[2], arg[3], arg[4]
  local viva = require "vivalearning"
  local env = read_env(os.getenv("VIVA_EMU_DIR"))
  local c = viva.client {
    graph_url = env.VIVA_EMU_HTTPS .. "/v1.0", authority_url = env.VIVA_EMU_HTTPS,
    tenant = TENANT, client_id = APP, client_secret = SECRET, ca_file = env.VIVA_EMU_CA,
  }
  local progress = require "vivalearning.progress"
  local t0 = progress.now()
  local s, err = viva.bulk.import(c, file, { provider = PROVIDER, mode = mode, state = state, progress = false })
  local dt = progress.now() - t0
  if not s then io.stderr:write("import failed: ", tostring(err), "\n"); os.exit(1) end
  local hwm
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^VmHWM:%s*(%d+)")
    if kb then hwm = tonumber(kb) end
  end
  print(("%d %d %d %d %d %.3f %d %d"):format(s.read, s.created, s.updated, s.unchanged, s.failed, dt, hwm or 0, s.requests))
  os.exit(0)
end

---------------------------------------------------------------------------------- driver
local sample = require "vivalearning.sample"
local cjson = require "cjson"
local emu_dir = assert(os.getenv("VIVA_EMU_DIR"), "VIVA_EMU_DIR must name the emulator's state dir")
local env = read_env(emu_dir)
local N = tonumber(os.getenv("BENCH_SYNC_ROWS")) or 100000
local SHARE = tonumber(os.getenv("BENCH_SYNC_CHANGED")) or 0.01
local LATENCY = tonumber(os.getenv("BENCH_SYNC_LATENCY") or "0.08")
local out = "bench/out"
os.execute("mkdir -p " .. out)

local function admin(method, path, body)
  local cmd = ("curl -s -X %s %s%s"):format(method, env.VIVA_EMU_HTTP, path)
  if body then cmd = cmd .. " -H 'content-type: application/json' --data " .. sh_quote(body) end
  local p = io.popen(cmd)
  local res = p:read("a")
  p:close()
  return res
end
local function requests() return cjson.decode(admin("GET", "/_emulator/counters")).requests end

local function setup(latency)
  admin("POST", "/_emulator/reset")
  if latency and latency > 0 then
    admin("POST", "/_emulator/settings", cjson.encode({ latency = { base = latency, jitter = latency / 4 },
      throttle = { app = { per_second = 1000, burst = 2000 } } }))
  end
end

local function child(mode, file, state)
  local before = requests()
  local cmd = ("VIVA_EMU_DIR=%s %s bench/sync.lua --child %s %s %s"):format(sh_quote(emu_dir), LUA, mode,
    sh_quote(file), state and sh_quote(state) or "")
  local p = io.popen(cmd)
  local line = p:read("a")
  p:close()
  local r, cr, up, un, f, secs, hwm, http = line:match("(%d+) (%d+) (%d+) (%d+) (%d+) ([%d.]+) (%d+) (%d+)")
  assert(r, "child failed: " .. line)
  -- http: HTTP requests sent (a $batch is one); steps: what the emulator counted (each
  -- $batch step is one request against Graph's throttling)
  return { read = tonumber(r), created = tonumber(cr), updated = tonumber(up), unchanged = tonumber(un),
           failed = tonumber(f), secs = tonumber(secs), hwm_kb = tonumber(hwm), http = tonumber(http),
           steps = requests() - before }
end

local v1, v2 = ("%s/sync-%d-a.csv"):format(out, N), ("%s/sync-%d-b.csv"):format(out, N)
local every = math.max(1, math.floor(1 / SHARE + 0.5))
sample.write(v1, N, { prefix = "nightly-" })
sample.write(v2, N, { prefix = "nightly-", changed = function(i) return i % every == 0 end })
local changed_rows = N // every

local function scenario(label, latency)
  local state = ("%s/sync-%d.sqlite"):format(out, N)
  for _, s in ipairs({ "", "-wal", "-shm", "-lock" }) do os.remove(state .. s) end
  setup(latency)
  local first = child("sync", v1, state)
  local second = child("sync", v2, state)
  setup(latency)
  child("create", v1)
  local ups = child("upsert", v2)
  local target = changed_rows / 20 + 5
  print(("  %s: first sync %d rows: %d HTTP requests (%d Graph steps), %.1f s (a new state: every row looked up)"):format(
    label, first.read, first.http, first.steps, first.secs))
  print(("  %s: second sync (%d changed): %d HTTP requests (target <= %d), %d steps, %.2f s, %d updated, peak RSS %.1f MB"):format(
    label, changed_rows, second.http, math.floor(target), second.steps, second.secs, second.updated, second.hwm_kb / 1024))
  print(("  %s: upsert of the same file:   %d HTTP requests, %d steps, %.2f s, %d updated, peak RSS %.1f MB -> sync takes %.1f%% of its time (target < 5%%)")
    :format(label, ups.http, ups.steps, ups.secs, ups.updated, ups.hwm_kb / 1024, 100 * second.secs / ups.secs))
  for _, s in ipairs({ "", "-wal", "-shm", "-lock" }) do os.remove(state .. s) end
end

print(("nightly sync bench: %d rows, %.1f%% changed, emulator %s"):format(N, SHARE * 100, env.VIVA_EMU_HTTPS))
scenario("loopback", nil)
if LATENCY > 0 then scenario(("%d ms RTT, throttled"):format(math.floor(LATENCY * 1000 + 0.5)), LATENCY) end
os.remove(v1); os.remove(v2)
admin("POST", "/_emulator/reset")
