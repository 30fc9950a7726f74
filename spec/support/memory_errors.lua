-- Run by spec/client_memory_spec.lua in a Lua host with vl_host_fail_alloc (.ci/lua_host.c):
--   <host> spec/support/memory_errors.lua <emulator dir> <scenario>
-- For k = 1, 2, ... the k-th allocation of one client call fails (a memory error), until the call
-- makes fewer than k. After each, with allocations working again, the client must account for
-- every request: nothing lost, nothing stuck, the next call works. Prints one line per scenario,
-- "ok <scenario> <number of memory errors>" or "FAIL <scenario> k=<k>: <what>", and exits 0 or 1.
package.path = "./lua/?.lua;./lua/?/init.lua;./spec/?.lua;" .. package.path
package.cpath = (os.getenv("VIVA_CHILD_CPATH") or "./?.so") .. ";" .. package.cpath
local emu = require "support.emulator"
emu.load(arg[1])
local clients = require "support.client"

local fail = assert(vl_host_fail_alloc, "run me in .ci/lua_host.c")

local function client(over)
  return clients.new("importer", { max_retries = 1, backoff = { base = 0.01, cap = 0.02 } }, over)
end

-- polls (a bounded number of times) until every handle is done; returns the ones that are not
local function settle(c, hs)
  for _ = 1, 100 do
    local left = 0
    for _, h in ipairs(hs) do if not h:done() then left = left + 1 end end
    if left == 0 then return 0 end
    c:poll(0.1)
  end
  local left = 0
  for _, h in ipairs(hs) do if not h:done() then left = left + 1 end end
  return left
end

local function check_content(h, what)
  local v, err = h:result()
  if not v then return what .. ": " .. tostring(err) end
  if v.id ~= emu.CONTENT then return what .. ": wrong content " .. tostring(v.id) end
end

-- Each scenario: prepare() (allocations work), call(state) (the k-th allocation fails; returns
-- whether it raised), check(state) (allocations work; returns a problem or nil).
local scenarios = {}

-- a synchronous call on a client that has its token
local sync_client
scenarios.sync = {
  prepare = function()
    if not sync_client then
      sync_client = client()
      assert(sync_client:get_content(emu.PROVIDER, emu.CONTENT))
    end
    return sync_client
  end,
  call = function(c) return pcall(c.get_content, c, emu.PROVIDER, emu.CONTENT) end,
  check = function(c)
    if c:pending() ~= 0 then return "pending() = " .. c:pending() .. " after the call" end
    local v, err = c:get_content(emu.PROVIDER, emu.CONTENT)
    if not v then return "the next call failed: " .. tostring(err) end
  end,
}

-- a poll that finishes submitted requests (the engine building their outcomes)
local poll_client
scenarios.poll = {
  prepare = function()
    if not poll_client then
      poll_client = client()
      assert(poll_client:get_content(emu.PROVIDER, emu.CONTENT))
    end
    local st = { c = poll_client, hs = {} }
    for i = 1, 3 do st.hs[i] = poll_client:submit("get_content", emu.PROVIDER, emu.CONTENT) end
    return st
  end,
  call = function(st) return pcall(st.c.poll, st.c, 5) end,
  check = function(st)
    local left = settle(st.c, st.hs)
    if left > 0 then return left .. " of 3 submitted requests never finished (pending() = " .. st.c:pending() .. ")" end
    for i = 1, 3 do
      local e = check_content(st.hs[i], "request " .. i)
      if e then return e end
    end
  end,
}

-- the first call of a fresh client: the token fetch, then the call
scenarios.token = {
  prepare = function()
    local c = client()
    return { c = c, h = c:submit("get_content", emu.PROVIDER, emu.CONTENT) }
  end,
  call = function(st) return pcall(st.c.poll, st.c, 5) end,
  check = function(st)
    if settle(st.c, { st.h }) > 0 then return "the request never finished (pending() = " .. st.c:pending() .. ")" end
    local e = check_content(st.h, "the request")
    st.c:close()
    return e
  end,
}

-- the first call of a client with a token_provider
local token
scenarios.provider = {
  prepare = function()
    token = token or emu.token("importer")
    local c = client { client_secret = false, tenant = false, client_id = false,
                       token_provider = function() return token, 3600 end }
    return { c = c, h = c:submit("get_content", emu.PROVIDER, emu.CONTENT) }
  end,
  call = scenarios.token.call,
  check = scenarios.token.check,
}

-- viva.client{...} when one of its C allocations fails (its copies of the options, libcurl's
-- handles): it raises, or the client it returns works
scenarios.new = {
  malloc = true,
  prepare = function() return {} end,
  call = function(st)
    st.ok, st.c = pcall(client)
    return st.ok
  end,
  check = function(st)
    if not st.ok then
      if not tostring(st.c):find("viva.client: ", 1, true) then return "raised " .. tostring(st.c) end
      return
    end
    local h = st.c:submit("get_content", emu.PROVIDER, emu.CONTENT)
    if settle(st.c, { h }) > 0 then return "the request never finished" end
    local e = check_content(h, "the request")
    st.c:close()
    return e
  end,
}

local name = arg[2]
local sc = assert(scenarios[name], "unknown scenario")
if sc.malloc then fail = assert(vl_host_fail_malloc, "run me in a plain build of .ci/lua_host.c") end
local errors = 0
for k = 1, 100000 do
  local st = sc.prepare()
  collectgarbage()
  fail(k)
  local ok = sc.call(st)
  local fired = fail(0)
  if not ok then errors = errors + 1 end
  local problem = sc.check(st)
  if problem then
    print(string.format("FAIL %s k=%d: %s", name, k, problem))
    os.exit(1)
  end
  if not fired then
    print(string.format("ok %s %d", name, errors))
    os.exit(0)
  end
end
