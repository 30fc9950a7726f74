-- bench/openresty.lua: the io = "ngx" cosocket driver inside one nginx worker against the
-- emulator, next to the libcurl client (this process) and wrk on the same endpoint, in the same
-- run: GETs of one activity at c=32 over HTTP/1.1 (and the two clients over HTTPS). Then the
-- worker's latency while it waits: /ping answered during a 2 s upstream delay.
-- Run by `make bench` (bench/run) with lua5.4; needs wrk and the LuaJIT build (make build LUA=luajit).
-- Env: BENCH_SECONDS (2), BENCH_ROUNDS (3), BENCH_CONC (32).
package.path = "./lua/?.lua;./lua/?/init.lua;./spec/?.lua;" .. package.path
package.cpath = "./?.so;" .. package.cpath

local viva = require "vivalearning"
local emu = require("support.emulator")
local ngxt = require "support.openresty"
local http = require "support.http"
assert(emu.http, "bench/openresty.lua: no emulator (set VIVA_EMU_DIR)")

local SECONDS = tonumber(os.getenv("BENCH_SECONDS") or "2")
local ROUNDS = tonumber(os.getenv("BENCH_ROUNDS") or "3")
local CONC = tonumber(os.getenv("BENCH_CONC") or "32")

local function sh(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  p:close()
  return out
end

if sh("command -v wrk") == "" then print("bench/openresty.lua: wrk not found; skipping"); os.exit(0) end
if not io.open(ngxt.CORE, "rb") then print("bench/openresty.lua: no LuaJIT build (make build LUA=luajit); skipping"); os.exit(0) end

local function now()
  local f = io.open("/proc/uptime")
  local t = f:read("*n")
  f:close()
  return t
end

emu.reset()
local token = emu.token("importer")
local function client(base, conc)
  return viva.client { graph_url = base .. "/v1.0", token = token, ca_file = emu.ca, max_concurrency = conc,
                       allow_http = true, max_retries = 0 }
end
local seed = assert(client(emu.http, 1):create(emu.PROVIDER, viva.assignment {
  assignmentType = "required", learnerUserId = emu.LEARNER, learningContentId = emu.CONTENT, status = "notStarted",
  externalCourseActivityId = "bench-openresty-1" }))

-- libcurl: conc requests in flight for SECONDS (as bench/requests.lua drives it)
local function curl_gets(base, conc)
  local c = client(base, conc)
  assert(c:get(seed.id))
  local inflight, done, errors = 0, 0, 0
  local t0 = now()
  local stop, t, loops = t0 + SECONDS, t0, 0
  while true do
    loops = loops + 1
    if loops % 64 == 0 then t = now() end
    if t < stop then
      while inflight < conc do c:submit("get", seed.id); inflight = inflight + 1 end
    elseif inflight == 0 then break end
    for _, h in ipairs(c:poll(1)) do
      inflight, done = inflight - 1, done + 1
      if not h:result() then errors = errors + 1 end
    end
  end
  c:close()
  return done / (now() - t0), errors
end

local srv = ngxt.start(emu)
local function ngx_gets(tls)
  local r = srv:get(string.format("/bench?conc=%d&seconds=%g&id=%s&token=%s&tls=%s", CONC, SECONDS, seed.id, token,
    tls and "1" or "0"), SECONDS + 30)
  if not r.json then io.stderr:write("bench/openresty.lua: ", tostring(r.body), "\n"); return 0, 1 end
  return r.json.rps, r.json.errors
end

local HEADERS = "-H 'Accept: application/json' -H 'client-request-id: 4b6b1f0e-2d2c-4c11-9a53-8d0e7b0c9f01' " ..
  "-H 'return-client-request-id: true' -H 'User-Agent: lua-vivalearning/" .. viva._VERSION .. "'"
local function wrk(url)
  local out = sh(string.format("wrk -t1 -c%d -d%ds -H 'Authorization: Bearer %s' %s %s 2>&1", CONC, SECONDS, token, HEADERS, url))
  return tonumber(out:match("Requests/sec:%s*([%d%.]+)")) or 0
end

local function best(f)
  local b, e = 0, 0
  for _ = 1, ROUNDS do
    local r, errs = f()
    b = math.max(b, r); e = e + (errs or 0)
  end
  return b, e
end

print(string.format("bench/openresty.lua: best of %d runs of %ds, c=%d, GET activity, emulator %s (1 worker); " ..
  "cosocket driver in 1 nginx worker (LuaJIT), libcurl client in lua5.4, wrk -t1", ROUNDS, SECONDS, CONC, emu.http))
local url = emu.http .. "/v1.0/employeeExperience/learningCourseActivities/" .. seed.id
local W, C, N, CE, NE = 0, 0, 0, 0, 0
for _ = 1, ROUNDS do
  W = math.max(W, wrk(url))
  local c, ce = curl_gets(emu.http, CONC); C = math.max(C, c); CE = CE + ce
  local n, ne = ngx_gets(false); N = math.max(N, n); NE = NE + ne
end
print(string.format("HTTP/1.1   wrk %7.0f/s   libcurl client %7.0f/s   cosocket driver %7.0f/s   (driver/wrk %.2f, driver/libcurl %.2f)%s",
  W, C, N, N / W, N / C, (CE + NE) > 0 and ("   ERRORS " .. (CE + NE)) or ""))
local TC, TCE = best(function() return curl_gets(emu.https, CONC) end)
local TN, TNE = best(function() return ngx_gets(true) end)
print(string.format("HTTPS      libcurl client (h2) %7.0f/s   cosocket driver (TLS, HTTP/1.1, pooled) %7.0f/s%s",
  TC, TN, (TCE + TNE) > 0 and ("   ERRORS " .. (TCE + TNE)) or ""))

-- /ping while a request of the same worker waits 2 s on the emulator (a delay fault)
emu.fault { method = "GET", path = "learningCourseActivities/" .. seed.id:gsub("%p", "%%%0"), delay = 2, count = 1 }
local out = os.tmpname()
os.execute("curl -s -o " .. http.shell_quote(out) .. " " .. http.shell_quote(srv.url .. "/get?id=" .. seed.id) .. " &")
os.execute("sleep 0.3")
local times = {}
for i = 1, 10 do
  local t = sh("curl -s -o /dev/null -w '%{time_total}' " .. http.shell_quote(srv.url .. "/ping"))
  times[i] = tonumber(t) * 1000
  os.execute("sleep 0.1")
end
local slow_done_during = (http.read_file(out) or "") ~= ""
os.execute("sleep 1.5")
os.remove(out)
table.sort(times)
print(string.format("/ping during a 2 s upstream wait (10 pings, curl time_total): median %.1f ms, max %.1f ms%s",
  (times[5] + times[6]) / 2, times[10], slow_done_during and "   (the slow request ended early: figure invalid)" or ""))
srv:stop()
emu.reset()
