-- bench/requests.lua: creates/s and gets/s through viva.client at concurrency 1, 8 and 32 against
-- the emulator, next to wrk on the same endpoint with the same body in the same run (the ceiling),
-- plus the client's CPU time per request (os.clock = user+sys of this process / requests).
-- Run by `make bench` (bench/run) with lua5.4; needs wrk. Env: BENCH_SECONDS (2), BENCH_ROUNDS (3).
-- Both tools talk HTTP/1.1 to the emulator's plain port (wrk has no HTTP/2); the client is also
-- measured over HTTPS + HTTP/2 (its normal setup), where wrk would need TLS too. wrk sends the same
-- headers as the client (the emulator logs every header, so they cost it time).
package.path = "./lua/?.lua;./lua/?/init.lua;./spec/?.lua;" .. package.path
package.cpath = "./?.so;" .. package.cpath

local viva = require "vivalearning"
local emu = require("support.emulator")
assert(emu.http, "bench/requests.lua: no emulator (set VIVA_EMU_DIR)")

local SECONDS = tonumber(os.getenv("BENCH_SECONDS") or "2")
local ROUNDS = tonumber(os.getenv("BENCH_ROUNDS") or "3")    -- wrk and client alternate; best of each
local LEVELS = { 1, 8, 32 }

local function sh(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  p:close()
  return out
end

local function now()
  -- monotonic enough for a few seconds of measuring: /proc/uptime has 10 ms resolution
  local f = io.open("/proc/uptime")
  local t = f:read("*n")
  f:close()
  return t
end

emu.reset()
local token = emu.token("importer")
local COLL = "/employeeExperience/learningProviders/" .. emu.PROVIDER .. "/learningCourseActivities"

local function client(base, conc, over)
  local o = { graph_url = base .. "/v1.0", token = token, ca_file = emu.ca, max_concurrency = conc,
              allow_http = base:find("^http:") ~= nil, max_retries = 0 }
  for k, v in pairs(over or {}) do o[k] = v end
  return viva.client(o)
end

local run_id = 0
local function new_model(i)
  return viva.assignment { ["@odata.type"] = "#microsoft.graph.learningAssignment", assignmentType = "required",
    learnerUserId = emu.LEARNER, learningContentId = emu.CONTENT, status = "notStarted",
    externalCourseActivityId = string.format("bc-%d-%d", run_id, i) }
end

-- keeps `conc` requests in flight for SECONDS; returns requests/s, CPU µs per request, errors
local function drive(c, conc, submit)
  local inflight, done, errors, i, loops = 0, 0, 0, 0, 0
  local t0, cpu0 = now(), os.clock()
  local stop, t = t0 + SECONDS, t0
  while true do
    loops = loops + 1
    if loops % 64 == 0 then t = now() end      -- reading the clock costs a file read
    if t < stop then
      while inflight < conc do
        i = i + 1
        submit(i)
        inflight = inflight + 1
      end
    elseif inflight == 0 then
      break
    end
    for _, h in ipairs(c:poll(1)) do
      inflight = inflight - 1
      done = done + 1
      local v, err = h:result()
      if not v then
        errors = errors + 1
        if errors == 1 then io.stderr:write("bench: ", tostring(err), "\n") end
      end
    end
  end
  local wall, cpu = now() - t0, os.clock() - cpu0
  return done / wall, cpu / done * 1e6, errors
end

local function client_gets(base, conc, id)
  local c = client(base, conc)
  assert(c:get(id))                                   -- connection(s) warm
  local rps, cpu, errs = drive(c, conc, function() c:submit("get", id) end)
  c:close()
  return rps, cpu, errs
end

local function client_creates(base, conc)
  run_id = run_id + 1
  local c = client(base, conc)
  local rps, cpu, errs = drive(c, conc, function(i) c:submit("create", emu.PROVIDER, new_model(i)) end)
  c:close()
  return rps, cpu, errs
end

local WRK_POST = os.tmpname()
do
  local f = assert(io.open(WRK_POST, "w"))
  f:write([[
local counter, tid = 0, 0
local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
function init(args)
  wrk.method = "POST"
  wrk.headers["Authorization"] = "Bearer " .. args[1]
  wrk.headers["Content-Type"] = "application/json"
  prefix = args[2]
end
request = function()
  counter = counter + 1
  local body = string.format('{"@odata.type":"#microsoft.graph.learningAssignment","assignmentType":"required",' ..
    '"learnerUserId":"]] .. emu.LEARNER .. [[","learningContentId":"]] .. emu.CONTENT .. [[",' ..
    '"status":"notStarted","externalcourseActivityId":"%s-%d-%d"}', prefix, tid, counter)
  return wrk.format(nil, nil, nil, body)
end
]])
  f:close()
end

-- the headers the client sends on every request (Authorization comes separately), so that wrk's
-- requests cost the emulator what the client's cost (its request log records every header)
local CLIENT_HEADERS = {
  "Accept: application/json", "Accept-Encoding: deflate, gzip, br, zstd",
  "client-request-id: 4b6b1f0e-2d2c-4c11-9a53-8d0e7b0c9f01", "return-client-request-id: true",
  "User-Agent: lua-vivalearning/" .. viva._VERSION .. " libcurl/" .. viva.core.curl_version(),
}
local function wrk(conc, url, post)
  run_id = run_id + 1
  local threads = 1          -- one event loop, like the client (wrk -t2 only wins CPU share on a busy machine)
  local hs = {}
  for _, h in ipairs(CLIENT_HEADERS) do hs[#hs + 1] = "-H '" .. h .. "'" end
  if not post then hs[#hs + 1] = "-H 'Prefer: include-unknown-enum-members'" end
  local cmd = string.format("wrk -t%d -c%d -d%ds -H 'Authorization: Bearer %s' %s %s %s %s 2>&1",
    threads, conc, SECONDS, token, table.concat(hs, " "), post and ("-s " .. WRK_POST) or "", url,
    post and ("-- " .. token .. " bw-" .. run_id) or "")
  local out = sh(cmd)
  local rps = tonumber(out:match("Requests/sec:%s*([%d%.]+)"))
  local non2xx = tonumber(out:match("Non%-2xx or 3xx responses:%s*(%d+)")) or 0
  if not rps then io.stderr:write(out) end
  return rps or 0, non2xx
end

if sh("command -v wrk") == "" then
  print("bench/requests.lua: wrk not found; skipping (apt-get install wrk)")
  os.exit(0)
end

-- one activity to GET
local setup = client(emu.http, 1)
local seed = assert(setup:create(emu.PROVIDER, new_model(0)))
setup:close()
local get_url = emu.http .. "/v1.0/employeeExperience/learningCourseActivities/" .. seed.id

local results = {}
local function row(what, conc, w, cr, cpu, errs)
  results[#results + 1] = { what, conc, w, cr, cpu, errs }
  print(string.format("%-26s c=%-3d wrk %8.0f/s   client %8.0f/s   ratio %.2f   client CPU %6.1f µs/req%s",
    what, conc, w, cr, w > 0 and cr / w or 0, cpu, errs > 0 and ("   ERRORS " .. errs) or ""))
  io.stdout:flush()
end

-- other processes on the machine make single runs noisy: alternate wrk and the client ROUNDS
-- times and keep the best figure of each (and the client's lowest CPU per request)
local function best(fw, fc)
  local W, C, CPU, E = 0, 0, math.huge, 0
  for _ = 1, ROUNDS do
    W = math.max(W, fw())
    local cr, cpu, errs = fc()
    C = math.max(C, cr); CPU = math.min(CPU, cpu); E = E + errs
  end
  return W, C, CPU, E
end

-- the load average goes with the figures: the client needs ~40 µs of CPU per request and wrk a
-- few, so on a loaded machine the ratio measures the client's share of the CPU, not the client
local function loadavg()
  local f = io.open("/proc/loadavg")
  local l = f and f:read("*l") or "?"
  if f then f:close() end
  return l:match("^(%S+ %S+ %S+)") or l
end
print(string.format("bench/requests.lua: best of %d alternating %ds runs per figure, emulator %s (1 nginx worker), same host, load average %s",
  ROUNDS, SECONDS, emu.http, loadavg()))
for _, conc in ipairs(LEVELS) do
  row("GET activity (HTTP/1.1)", conc, best(function() return (wrk(conc, get_url, false)) end,
    function() return client_gets(emu.http, conc, seed.id) end))
end
for _, conc in ipairs(LEVELS) do
  row("POST create (HTTP/1.1)", conc, best(function() emu.reset(); return (wrk(conc, emu.http .. "/v1.0" .. COLL, true)) end,
    function() emu.reset(); return client_creates(emu.http, conc) end))
end
-- the client's normal setup: HTTPS with HTTP/2 multiplexing (wrk: HTTPS, HTTP/1.1, one connection each)
emu.reset()
setup = client(emu.https, 1)
seed = assert(setup:create(emu.PROVIDER, new_model(0)))
setup:close()
for _, conc in ipairs(LEVELS) do
  row("GET activity (HTTPS, h2)", conc, best(
    function() return (wrk(conc, emu.https .. "/v1.0/employeeExperience/learningCourseActivities/" .. seed.id, false)) end,
    function() return client_gets(emu.https, conc, seed.id) end))
end
os.remove(WRK_POST)
print("bench/requests.lua: load average at the end " .. loadavg() .. " (ratios under 1x under load: see docs/benchmarks.md)")
emu.reset()
