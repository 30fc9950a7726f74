-- Client lifetime: a client closed (by close, __gc or __close) while one of its own calls runs
-- is only marked; the call releases it on the way out. The close comes from an "owner" whose
-- finalizer closes its client (or from the client's own hooks), in the middle of the engine.
-- The collector runs a whole cycle at each step here, so a finalizer runs at the first
-- allocation after its object is dropped under plain lua5.4 too; the forced-GC host of
-- `make check` (.ci/lua_host.c) collects at every allocation anyway.
local gc = require "support.gc"
local emu = require "support.emulator"
local clients = require "support.client"

local function client(over)
  return clients.new("importer", { max_retries = 2, backoff = { base = 0.01, cap = 0.02 } }, over)
end

-- Runs f with a collector that finishes a whole cycle, finalizers included, at each step, and
-- a step at the first allocation after a cycle (lua5.4 itself starts in generational mode).
-- The forced-GC host (VIVA_FORCED_GC) is set up like that already, and more.
local function eager_gc(f)
  if os.getenv("VIVA_FORCED_GC") then return f() end
  local mode = gc.incremental(1, 1000, 30)
  collectgarbage("step", 0)
  local ok, a, b = pcall(f)
  gc.incremental(200, 100, 13)
  gc.restore(mode)
  if not ok then error(a, 0) end
  return a, b
end

local function closed_error(v, err)
  assert.is_nil(v)
  assert.equals("transport", err.kind)
  assert.matches("closed before the request completed", err.message)
end

describe("client lifetime", function()
  before_each(function() emu.reset() end)
  after_each(function() emu.clear_faults() end)

  -- Below 5.4 (no step size to set) the collector does not reach a pending finalizer from the
  -- allocations of one call, however eager its steps: there a full collection in the hook runs
  -- it, at the same point.
  local STEPS_SKIP_FINALIZERS = _VERSION ~= "Lua 5.4"

  -- A log hook that drops the owner (its finalizer closes c) at the first event named ev, and
  -- then allocates: the finalizer runs inside the hook, in the middle of the engine.
  local function owner_of(ev, close)
    local st = {}
    st.hook = function(e)
      if e.event == ev and st.owner then
        st.owner = nil
        st.garbage = {}
        if STEPS_SKIP_FINALIZERS then collectgarbage() end
      end
    end
    st.arm = function(c)
      st.owner = gc.finalized(function() st.finalized = true; close(c) end)
    end
    return st
  end

  for _, how in ipairs { "close", "__gc", "__close" } do
    local close = how == "close" and function(c) c:close() end
                  or function(c) getmetatable(c)[how](c) end

    it("defers " .. how .. " from an owner's finalizer during the token response", function()
      local st = owner_of("token", close)
      local c = client { log = st.hook }
      st.arm(c)
      local v, err = eager_gc(function() return c:get_content(emu.PROVIDER, emu.CONTENT) end)
      assert.is_true(st.finalized)
      closed_error(v, err)
      assert.equals("vivalearning.client (closed)", tostring(c))
      assert.has_error(function() c:get("x") end, "vivalearning: attempt to use a closed client")
      c:close()                                  -- idempotent
      getmetatable(c).__gc(c)
    end)

    it("defers " .. how .. " from an owner's finalizer while transfers are in flight (poll)", function()
      local st = owner_of("response", close)
      local c = client { log = st.hook, max_concurrency = 8 }
      assert(c:get_content(emu.PROVIDER, emu.CONTENT))          -- the token is there
      emu.fault { path = "/learningContents/d0000000%-0000%-4000%-8000%-00000100000[2-8]$", delay = 0.3 }
      local hs = {}
      for i = 1, 8 do hs[i] = c:submit("get_content", emu.PROVIDER, emu.content(1, i)) end
      st.arm(c)
      local done = eager_gc(function() return c:poll(10) end)
      assert.is_true(st.finalized)
      assert.equals(1, #done)                   -- the one that answered first
      assert.equals(hs[1], done[1])
      assert.equals(emu.CONTENT, assert(done[1]:result()).id)
      for i = 2, 8 do
        assert.is_true(hs[i]:done())
        closed_error(hs[i]:result())
      end
      assert.has_error(function() c:poll(0) end, "vivalearning: attempt to use a closed client")
    end)

    it("defers " .. how .. " from an owner's finalizer while a throttled call waits to retry", function()
      local st = owner_of("response", close)
      local c = client { log = st.hook }
      assert(c:get_content(emu.PROVIDER, emu.CONTENT))
      emu.fault { path = "/learningContents/", status = 429, retry_after = "0.05", count = 1 }
      st.arm(c)
      local seq = emu.last_seq()
      local v, err = eager_gc(function() return c:get_content(emu.PROVIDER, emu.CONTENT) end)
      assert.is_true(st.finalized)
      closed_error(v, err)
      assert.equals(1, #emu.log(seq))            -- the retry was never sent
    end)
  end

  it("defers close from the client's own log hook and token_provider", function()
    local c
    c = client { log = function(e) if e.event == "token" then c:close() end end }
    closed_error(c:get_content(emu.PROVIDER, emu.CONTENT))
    assert.equals("vivalearning.client (closed)", tostring(c))
    local token = emu.token("importer")
    local p
    p = client { client_secret = false, tenant = false, client_id = false,
                 token_provider = function() getmetatable(p).__close(p); return token, 3600 end }
    closed_error(p:get_content(emu.PROVIDER, emu.CONTENT))
    assert.has_error(function() p:get("x") end, "vivalearning: attempt to use a closed client")
  end)

  it("leaves a request to its client when its handle's __gc is called during a client call", function()
    local h
    local c = client { log = function(e)
      if e.event == "response" and h then getmetatable(h).__gc(h) end
    end }
    assert(c:get_content(emu.PROVIDER, emu.CONTENT))
    h = c:submit("get_content", emu.PROVIDER, emu.CONTENT)
    local done = c:poll(10)
    assert.equals(h, done[1])
    assert.is_true(h:done())
    assert.equals(emu.CONTENT, assert(h:result()).id)
    getmetatable(h).__gc(h)                    -- outside a call: released
    assert.has_error(function() h:result() end, "vivalearning: request handle already released")
    c:close()
  end)

  it("names the method in argument errors raised inside a call, and stays usable after them", function()
    local c = client()
    assert.has_error(function() c:batch(nil) end, "bad argument #1 to 'batch' (table expected, got nil)")
    assert.has_error(function() c:submit("batch", nil) end, "bad argument #2 to 'submit' (table expected, got nil)")
    assert.has_error(function() c:activities_page(42) end, "bad argument #1 to 'activities_page' (table expected, got number)")
    assert.has_error(function() c:submit({}) end, "bad argument #1 to 'submit' (string expected, got table)")
    assert.has_error(function() c:submit("nope") end, "vivalearning: unknown operation 'nope'")
    assert(c:get_content(emu.PROVIDER, emu.CONTENT))
    c:close()
  end)

  it("refuses a call on a client from a finalizer that runs during one of its calls", function()
    local c = client()
    assert(c:get_content(emu.PROVIDER, emu.CONTENT))
    local inner
    local owner = gc.finalized(function() inner = select(2, pcall(c.get, c, "x")) end)
    if STEPS_SKIP_FINALIZERS then           -- (see above) collected from the log hook instead
      c:close()
      c = client { log = function() if not owner and not inner then collectgarbage() end end }
    end
    local v = eager_gc(function()
      owner = nil
      return c:get_content(emu.PROVIDER, emu.CONTENT)
    end)
    assert.equals(emu.CONTENT, v.id)
    -- (from the log hook below 5.4: refused as from a callback of the client)
    assert.matches(STEPS_SKIP_FINALIZERS and "cannot be used from its own token_provider or log callback"
                   or "the client is busy", inner)
    assert(c:get_content(emu.PROVIDER, emu.CONTENT))            -- and it still works
    c:close()
  end)
end)
