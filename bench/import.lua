-- bench/import.lua (run by `make bench` through bench/run): bulk import throughput and memory.
--
--  1. rows/s importing 50,000 activities with $batch (20 per batch) and with single requests,
--     at the default concurrency, against the emulator's HTTPS port;
--  2. the same imports done by the official JS client (@microsoft/microsoft-graph-client,
--     bench/peer/), 16 workers (the SDK has no window of its own), reported as a ratio;
--  3. peak RSS (VmHWM) of our import for 50,000 and 200,000 rows.
--  4. the WAN runs: for round-trip times of 20, 80 and 200 ms (the emulator's latency setting)
--     and a throttling profile of BENCH_RATE (1,000) steps/s per app (burst a tenth of it),
--     10,000 rows (BENCH_WAN_ROWS; the JS client's single requests: at most 15 s of them) through ours ($batch and single) and the JS client ($batch
--     and single, 16 workers as before): rows/s as a fraction of the admitted rate, the share of
--     Graph requests ($batch steps and single requests, from the emulator's log) answered 429,
--     client CPU per row (user+sys of the importing process, /proc/self/stat), and ours/JS.
-- Each import runs in its own child process (so VmHWM is that import's), after an emulator
-- reset. Environment: VIVA_EMU_DIR (the emulator's state dir); BENCH_ROWS overrides 50,000,
-- BENCH_BIG_ROWS overrides 200,000, BENCH_SKIP_PEER=1 skips the JS client, BENCH_RTTS
-- ("20,80,200", ms) the round-trip times, BENCH_SKIP_WAN=1 the WAN runs.
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./?.so;" .. package.cpath

local LUA = os.getenv("LUA") or "lua5.4"

-- user+sys seconds of this process so far, from /proc/self/stat (fields 14 and 15, in ticks)
local function cpu_seconds()
  local f = io.open("/proc/self/stat")
  local line = f:read("a")
  f:close()
  local rest = line:match("%) (.*)$")
  local fields = {}
  for w in rest:gmatch("%S+") do fields[#fields + 1] = w end
  -- rest starts at field 3 (state): utime is field 14, stime 15
  local p = io.popen("getconf CLK_TCK")
  local hz = tonumber(p:read("a")) or 100
  p:close()
  return (tonumber(fields[12]) + tonumber(fields[13])) / hz
end

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
  -- lua5.4 bench/import.lua --child FILE BATCH CONCURRENCY
  local file, batch, conc = arg[2], tonumber(arg[3]), tonumber(arg[4])
  local viva = require "vivalearning"
  local env = read_env(os.getenv("VIVA_EMU_DIR"))
  local c = viva.client {
    graph_url = env.VIVA_EMU_HTTPS .. "/v1.0", authority_url = env.VIVA_EMU_HTTPS,
    tenant = TENANT, client_id = APP, client_secret = SECRET, ca_file = env.VIVA_EMU_CA,
    max_concurrency = conc, max_retries = 0,  -- as the command line configures an import
  }
  local progress = require "vivalearning.progress"
  local t0 = progress.now()
  local s, err = viva.bulk.import(c, file, { provider = PROVIDER, mode = "create", batch = batch,
                                            concurrency = conc, progress = false })
  local dt = progress.now() - t0
  if not s then io.stderr:write("import failed: ", tostring(err), "\n"); os.exit(1) end
  local hwm
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^VmHWM:%s*(%d+)")
    if kb then hwm = tonumber(kb) end
  end
  print(("%d %d %.3f %d %d %.3f %d"):format(s.read, s.created, dt, hwm or 0, s.failed, cpu_seconds(),
    s.throttled or 0))
  os.exit(0)
end

---------------------------------------------------------------------------------- driver
local sample = require "vivalearning.sample"
local emu_dir = assert(os.getenv("VIVA_EMU_DIR"), "VIVA_EMU_DIR must name the emulator's state dir")
local env = read_env(emu_dir)
local N = tonumber(os.getenv("BENCH_ROWS")) or 50000
local BIG = tonumber(os.getenv("BENCH_BIG_ROWS")) or 200000
local CONC = require("vivalearning.bulk").defaults.concurrency
local PEER_CONC = 16  -- the JS client's workers: the SDK has no window of its own; 16 as before
local out = "bench/out"
os.execute("mkdir -p " .. out)

local function admin(method, path, body)
  local cmd = ("curl -s -o /dev/null -w '%%{http_code}' -X %s %s%s"):format(method, env.VIVA_EMU_HTTP, path)
  if body then cmd = cmd .. " -H 'content-type: application/json' --data " .. sh_quote(body) end
  local p = io.popen(cmd)
  local code = p:read("a")
  p:close()
  return tonumber(code)
end

local function reset()
  assert(admin("POST", "/_emulator/reset") == 204, "emulator reset failed")
end

-- the share of Graph requests (single requests and $batch steps; not envelopes, not tokens)
-- answered 429 since the last reset, from the emulator's log (it keeps the last 20,000 entries)
local function share_429()
  local p = io.popen("curl -s '" .. env.VIVA_EMU_HTTP .. "/_emulator/log?since=0'")
  local log = require("cjson").decode(p:read("a"))
  p:close()
  local n, t = 0, 0
  for _, e in ipairs(log.value) do
    if not e.path:find("oauth2", 1, true) and not e.path:find("$batch", 1, true) then
      n = n + 1
      if e.status == 429 then t = t + 1 end
    end
  end
  return t / math.max(n, 1), t, n
end

local profile -- settings applied after each reset (the WAN runs)
local function ours(file, batch)
  reset()
  if profile then assert(admin("POST", "/_emulator/settings", profile) == 204, "settings failed") end
  local cmd = ("VIVA_EMU_DIR=%s %s bench/import.lua --child %s %d %d"):format(sh_quote(emu_dir), LUA,
    sh_quote(file), batch, CONC)
  local p = io.popen(cmd)
  local line = p:read("a")
  p:close()
  local read, created, secs, hwm, failed, cpu = line:match("(%d+) (%d+) ([%d.]+) (%d+) (%d+) ([%d.]+)")
  assert(read, "child failed: " .. line)
  -- reliability L4: the emulator saw one create per row, no duplicates
  local pc = io.popen("curl -s " .. env.VIVA_EMU_HTTP .. "/_emulator/counters")
  local counters = require("cjson").decode(pc:read("a"))
  pc:close()
  local distinct, dups = 0, 0
  for _, n in pairs((counters.creates or {})[PROVIDER] or {}) do
    distinct = distinct + 1
    if n > 1 then dups = dups + 1 end
  end
  return { read = tonumber(read), created = tonumber(created), secs = tonumber(secs),
           rate = tonumber(read) / tonumber(secs), hwm_kb = tonumber(hwm), failed = tonumber(failed),
           distinct = distinct, dups = dups, cpu = tonumber(cpu), share = profile and share_429() }
end

local function peer(file, batch, limit)
  reset()
  if profile then assert(admin("POST", "/_emulator/settings", profile) == 204, "settings failed") end
  local cmd = ("cd bench/peer && NODE_EXTRA_CA_CERTS=%s node import.mjs --base %s --tenant %s --client-id %s " ..
               "--secret %s --provider %s --file %s --concurrency %d --batch %d"):format(
    sh_quote(env.VIVA_EMU_CA), sh_quote(env.VIVA_EMU_HTTPS), TENANT, APP, SECRET, PROVIDER,
    sh_quote("../../" .. file), PEER_CONC, batch) .. (limit and (" --limit %d"):format(limit) or "")
  local p = io.popen(cmd)
  local line = p:read("a")
  p:close()
  local rate = tonumber(line:match('"rows_per_s":([%d.e+]+)'))
  local okn = tonumber(line:match('"ok":(%d+)'))
  if not rate then return nil, line end
  local secs = tonumber(line:match('"seconds":([%d.e+-]+)'))
  return { rate = rate, ok = okn, secs = secs, okrate = okn / secs,
           cpu = tonumber(line:match('"cpu_s":([%d.e+-]+)')), share = profile and share_429() }
end

print(("import bench: %d rows, default options (concurrency cap %d), JS client %d workers, emulator %s"):format(N, CONC, PEER_CONC, env.VIVA_EMU_HTTPS))
local csvfile = ("%s/import-%d.csv"):format(out, N)
local jsonfile = ("%s/import-%d.jsonl"):format(out, N)
sample.write(csvfile, N, { prefix = "bench-" })
sample.write(jsonfile, N, { prefix = "bench-" })

local r_batch = ours(csvfile, 20)
local r_single = ours(csvfile, 1)
for _, r in ipairs { { "$batch(20)", r_batch }, { "single    ", r_single } } do
  local x = r[2]
  print(("  ours  %s: %7.0f rows/s  (%d created, %d failed, %.1f s, peak RSS %.1f MB; emulator: %d distinct creates, %d duplicated)")
    :format(r[1], x.rate, x.created, x.failed, x.secs, x.hwm_kb / 1024, x.distinct, x.dups))
end

if os.getenv("BENCH_SKIP_PEER") ~= "1" then
  local have = io.open("bench/peer/node_modules/@microsoft/microsoft-graph-client/package.json")
  if have then have:close() else
    os.execute("cd bench/peer && npm ci --no-audit --no-fund --silent >/dev/null 2>&1")
  end
  local p_single, e1 = peer(jsonfile, 1)
  local p_batch, e2 = peer(jsonfile, 20)
  if p_single then
    print(("  JS    single    : %7.0f rows/s  (%d ok)  -> ours single / JS single = %.2fx, ours $batch / JS single = %.2fx")
      :format(p_single.rate, p_single.ok, r_single.rate / p_single.rate, r_batch.rate / p_single.rate))
  else
    print("  JS single run failed: " .. tostring(e1))
  end
  if p_batch then
    print(("  JS    $batch(20): %7.0f rows/s  (%d ok)  -> ours $batch / JS $batch = %.2fx"):format(
      p_batch.rate, p_batch.ok, r_batch.rate / p_batch.rate))
  else
    print("  JS $batch run failed: " .. tostring(e2))
  end
end

---------------------------------------------------------------------------------- WAN runs
if os.getenv("BENCH_SKIP_WAN") ~= "1" then
  local RATE = tonumber(os.getenv("BENCH_RATE")) or 1000
  local WN = tonumber(os.getenv("BENCH_WAN_ROWS")) or 10000
  local wcsv = ("%s/import-wan-%d.csv"):format(out, WN)
  local wjson = ("%s/import-wan-%d.jsonl"):format(out, WN)
  sample.write(wcsv, WN, { prefix = "wan-" })
  sample.write(wjson, WN, { prefix = "wan-" })
  local peer_ok = os.getenv("BENCH_SKIP_PEER") ~= "1"
  print(("WAN: %d rows, throttle %d steps/s per app (burst %d), default options (client max_concurrency = %d)")
    :format(WN, RATE, math.max(1, RATE // 10), CONC))
  print("  rtt   client        rows/s  of admitted  429 share  CPU/row")
  local function line(rtt, who, rows_s, share, cpu, rows)
    print(("  %3dms %-12s %7.0f  %9.1f%%  %8.2f%%  %5.0f us"):format(rtt, who, rows_s, rows_s / RATE * 100,
      share * 100, cpu / rows * 1e6))
  end
  for ms in (os.getenv("BENCH_RTTS") or "20,80,200"):gmatch("%d+") do
    local rtt = tonumber(ms)
    profile = ('{"latency":{"base":%g,"jitter":0},"throttle":{"app":{"per_second":%d,"burst":%d}}}')
      :format(rtt / 1000, RATE, math.max(1, RATE // 10))
    local ob, os1 = ours(wcsv, 20), ours(wcsv, 1)
    line(rtt, "ours $batch", ob.created / ob.secs, ob.share, ob.cpu, ob.created)
    line(rtt, "ours single", os1.created / os1.secs, os1.share, os1.cpu, os1.created)
    if peer_ok then
      -- the JS client's single requests go at a flat 16 / RTT: about 15 s of them is enough
      local jb, js = peer(wjson, 20), peer(wjson, 1, math.min(WN, math.floor(PEER_CONC / (rtt / 1000) * 15)))
      if jb and js then
        line(rtt, "JS $batch", jb.okrate, jb.share, jb.cpu, math.max(jb.ok, 1))
        print(("        (JS $batch: %d of %d rows created, the rest failed 429: the SDK retries no step; its rows/s counts created rows)")
          :format(jb.ok, WN))
        line(rtt, "JS single", js.okrate, js.share, js.cpu, math.max(js.ok, 1))
        print(("  %3dms ours/JS: $batch %.2fx rows/s, single %.2fx, ours $batch / JS single %.2fx; CPU per row $batch %.2fx, single %.2fx")
          :format(rtt, ob.created / ob.secs / jb.okrate, os1.created / os1.secs / js.okrate,
            ob.created / ob.secs / js.okrate,
            (ob.cpu / ob.created) / (jb.cpu / math.max(jb.ok, 1)), (os1.cpu / os1.created) / (js.cpu / math.max(js.ok, 1))))
      else
        print("  JS run failed")
      end
    end
  end
  profile = nil
  os.remove(wcsv); os.remove(wjson)
end

local bigfile = ("%s/import-%d.csv"):format(out, BIG)
sample.write(bigfile, BIG, { prefix = "big-" })
local r_big = ours(bigfile, 20)
local ratio = r_big.hwm_kb / r_batch.hwm_kb
print(("  peak RSS: %d rows %.1f MB, %d rows %.1f MB (%.1f%% apart; target within 10%%)"):format(
  N, r_batch.hwm_kb / 1024, BIG, r_big.hwm_kb / 1024, math.abs(ratio - 1) * 100))
os.remove(bigfile)
reset()
