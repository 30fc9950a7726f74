-- bench/frame.lua: the game side of bench/frame_host.c (make bench-frame, and make bench). 32
-- get_content requests kept in flight over HTTPS/h2 against the emulator, the client polled once
-- a frame at 60 fps; the CA file is the system bundle plus the emulator's CA, so loading it costs
-- what a real deployment's does. Runs: no warmup (the token fetch and the first connection, CA
-- loading included, happen inside the frames), with c:warmup() first, and with warmup but no
-- budget (a plain poll(0), for comparison); the host runs Lua's collector between frames (gc =
-- "host", see frame_host.c), and once more leaves it to Lua inside the frames (gc = "auto").
-- Env: BENCH_BUDGET (seconds, default 0.001).
local viva = require "vivalearning"
local emu = require "support.emulator"
assert(emu.http, "bench/frame.lua: no emulator (set VIVA_EMU_DIR)")

local BUDGET = tonumber(os.getenv("BENCH_BUDGET") or "0.001")
local IN_FLIGHT = 32
local SYSTEM_CA = "/etc/ssl/certs/ca-certificates.crt"

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local ca_file = os.tmpname()
do
  local f = assert(io.open(ca_file, "wb"))
  f:write(slurp(SYSTEM_CA), "\n", slurp(emu.ca))
  f:close()
end
local _, ncerts = slurp(ca_file):gsub("BEGIN CERTIFICATE", "")

local function run(name, warm, budget, gc)
  local r = { name = name, gc = gc }
  local c, inflight, done, errors, first_err, next_content, tokens0
  function r.setup()
    emu.reset()
    tokens0 = emu.counters().token_requests
    local a = emu.APPS.importer
    c = viva.client { graph_url = emu.graph_url, authority_url = emu.authority_url, ca_file = ca_file,
      tenant = emu.TENANT, client_id = a.client_id, client_secret = a.client_secret,
      max_concurrency = IN_FLIGHT }
    if warm then assert(c:warmup()) end
    inflight, done, errors, next_content = 0, 0, 0, 0
    return c, budget
  end
  function r.before()
    while inflight < IN_FLIGHT do
      next_content = next_content % 20 + 1
      c:submit("get_content", emu.PROVIDER, emu.content(1, next_content))
      inflight = inflight + 1
    end
  end
  function r.after(_, list)
    for _, h in ipairs(list) do
      inflight = inflight - 1
      done = done + 1
      local v, err = h:result()
      if not v then
        errors = errors + 1
        first_err = first_err or tostring(err)
      end
    end
  end
  function r.finish()
    local st = c:stats()
    local text = ("%d completions, %d errors, %d token requests in the frames, %d connections")
      :format(done, errors, emu.counters().token_requests - tokens0 - (warm and 1 or 0), st.connects)
    c:close()
    return text .. (first_err and (" (" .. first_err .. ")") or "")
  end
  return r
end

local ms = ("%g ms"):format(BUDGET * 1e3)
io.write(("CA file: %d certificates (%s + the emulator's CA); %d in flight, 60 fps; only poll is timed\n")
  :format(ncerts, SYSTEM_CA, IN_FLIGHT))
io.flush()
return {
  run("no warmup, budget " .. ms .. ":", false, BUDGET, "host"),
  run("warmup, budget " .. ms .. ":", true, BUDGET, "host"),
  run("warmup, budget " .. ms .. ", Lua's GC:", true, BUDGET, "auto"),
  run("warmup, no budget:", true, nil, "host"),
}
