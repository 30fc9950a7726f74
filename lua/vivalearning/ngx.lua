-- io = "ngx": the client inside nginx (ngx_lua, LuaJIT), over cosockets, never blocking the worker.
--
-- The C core runs as io = "external" (take, deliver, next_wakeup, tick: see docs/architecture.md)
-- and this file moves the bytes. One I/O loop per client runs in a zero-delay ngx.timer: it owns
-- every socket (a cosocket belongs to the request or timer that made it, so requests sharing one
-- client must not do each other's I/O: a finished or aborted request would take an attempt of
-- another with it). Its light threads run the attempts (vivalearning.ngx_http), as many as the
-- engine's admission hands out. Requests only submit and then wait on a semaphore: a sync call
-- yields its light thread, never inside a C call (LuaJIT cannot resume a C frame, so these are
-- Lua loops over submit, not the core's sync methods). The loop ends when nothing is left, and
-- starts again with the next submit. See docs/openresty.md.
local http = require "vivalearning.ngx_http"

local M = {}

local semaphore        -- ngx.semaphore, loaded with the first client (only inside nginx)

-- The core's methods this layer does not turn into waits.
local OWN = { submit = true, poll = true, pending = true, take = true, deliver = true, tick = true,
              next_wakeup = true, stats = true, close = true }

local RECYCLE = 2000   -- attempts per loop timer: its fake request's pool only grows while it runs

local Client = {}
Client.__index = Client
local methods_built = false

-- Every op becomes submit + wait; the Lua methods (the pager) take this client as they are.
local function build_methods(core)
  if methods_built then return end
  methods_built = true
  local cm = core.client_methods
  for name, f in pairs(cm) do
    if not OWN[name] then
      if debug.getinfo(f, "S").what == "C" then
        Client[name] = function(self, ...)
          local ok, h = pcall(cm.submit, self._c, name, ...)
          if not ok then
            -- submit's argument numbers are one past the method's (its op name comes first)
            if type(h) == "string" then
              h = h:gsub("^bad argument #(%d+) to '[^']*'", function(n)
                return ("bad argument #%d to '%s'"):format(tonumber(n) - 1, name)
              end)
            end
            error(h, 0)
          end
          return self:_wait(h)
        end
      else
        Client[name] = f
      end
    end
  end
  Client._cm = cm
end

local function sans_io(what)
  return function()
    error('vivalearning: ' .. what .. ': an io = "ngx" client moves its bytes itself', 2)
  end
end
Client.take, Client.deliver, Client.tick, Client.next_wakeup =
  sans_io("take"), sans_io("deliver"), sans_io("tick"), sans_io("next_wakeup")

function Client:pending() return self._cm.pending(self._c) end
function Client:stats() return self._cm.stats(self._c) end
function Client:__tostring() return (tostring(self._c):gsub("^vivalearning client", "vivalearning client (io=ngx)")) end

-- Hands the finished handles to whoever waits for them: a sync call's semaphore, or the done
-- list of the light thread that submitted it (its c:poll).
function Client:_route()
  if self.closed then return end
  local done = self._cm.poll(self._c, 0)
  for i = 1, #done do
    local h = done[i]
    local s = self.waiters[h]
    if s then
      s:post(1)
    else
      local co = self.owners[h]
      if co then
        local ctx = self.owner_ctx[h]
        self.owners[h], self.owner_ctx[h] = nil, nil
        local list = self.done_by[co]
        if not list or list.ctx ~= ctx then list = { ctx = ctx }; self.done_by[co] = list end
        list[#list + 1] = h
        local ps = self.pollers[co]
        if ps and ps:count() < 1 then ps:post(1) end
      end
    end
  end
end

local loop

-- The request (or timer) a light thread runs for. ngx_lua reuses coroutines across requests,
-- so a thread's done list also remembers whose it is: a later request never gets another's.
local function request_ctx()
  local ok, ctx = pcall(function() return ngx.ctx end)
  return ok and ctx or false
end

function Client:_ensure()
  if self.running or self.closed then return end
  local ok, err = ngx.timer.at(0, loop, self)
  if not ok then error('vivalearning: io = "ngx" could not start its I/O timer: ' .. tostring(err), 3) end
  self.running = true
end

function Client:_kick()
  self:_ensure()
  if self.kick:count() < 1 then self.kick:post(1) end
end

local function must_wait(s, t)
  local ok, err = s:wait(t)
  if not ok and err ~= "timeout" then
    error('vivalearning: io = "ngx" waits by yielding, and it cannot here (' .. tostring(err) ..
          '): call it from rewrite, access, content or a timer (ngx.timer.at)', 3)
  end
end

-- A sync call: the handle's semaphore is posted when the loop finishes it.
function Client:_wait(h)
  if not h:done() then
    local s = semaphore.new(0)
    self.waiters[h] = s
    local ok, err = pcall(function()
      self:_kick()
      while not h:done() do
        must_wait(s, 1)
        -- a loop that died (an error is logged) starts again with the next wait
        if not h:done() then self:_ensure() end
      end
    end)
    self.waiters[h] = nil
    if not ok then error(err, 0) end
  end
  self:_route()
  return h:result()
end

function Client:submit(op, ...)
  local h = self._cm.submit(self._c, op, ...)
  self.owners[h] = coroutine.running()
  self.owner_ctx[h] = request_ctx()
  self:_kick()
  return h
end

-- c:poll(t): the handles this light thread submitted that finished, waiting up to t seconds
-- for one (yielding, as everything here does).
function Client:poll(t)
  t = t or 0
  if type(t) ~= "number" or t ~= t or t == math.huge or t == -math.huge then
    error("bad argument #1 to 'poll' (finite number of seconds expected, got " .. tostring(t) .. ")", 2)
  end
  local co, ctx = coroutine.running(), request_ctx()
  self:_route()
  local list = self.done_by[co]
  if list and list.ctx ~= ctx then list = nil end
  if (not list or #list == 0) and t > 0 and not self.closed then
    local ps = self.pollers[co]
    if not ps then ps = semaphore.new(0); self.pollers[co] = ps end
    self:_kick()
    must_wait(ps, t)
    list = self.done_by[co]
    if list and list.ctx ~= ctx then list = nil end
  end
  self.done_by[co] = nil
  if not list then return {} end
  list.ctx = nil
  return list
end

function Client:close()
  if self.closed then return end
  self.closed = true
  self._cm.close(self._c)
  for _, s in pairs(self.waiters) do s:post(1) end
  for _, s in pairs(self.pollers) do s:post(1) end
  if self.kick:count() < 1 then self.kick:post(1) end
end
Client.__close = Client.close
Client.__gc = Client.close       -- LuaJIT ignores __gc on tables; the core's own __gc frees it

-- One attempt, in a worker light thread of the loop.
local function perform(self, req)
  local ok, res, outcome, detail = pcall(http.exchange, req, self.hopts)
  if self.closed then return end
  local cm, c = self._cm, self._c
  if not ok then
    pcall(cm.deliver, c, req.id, nil, "fatal", "the io = \"ngx\" driver failed: " .. tostring(res))
  elseif res then
    pcall(cm.deliver, c, req.id, res)
  else
    pcall(cm.deliver, c, req.id, nil, outcome, detail)
  end
end

-- A worker light thread: takes attempts from its generation's queue until the loop stops it.
local function worker(self, gen)
  while true do
    local req = table.remove(gen.queue, 1)
    if req then
      perform(self, req)
      gen.inflight = gen.inflight - 1
      if self.kick:count() < 1 then self.kick:post(1) end
    elseif gen.stopped then
      break
    else
      gen.idle = gen.idle + 1
      gen.qsema:wait(10)
      gen.idle = gen.idle - 1
    end
  end
  gen.nworkers = gen.nworkers - 1
end

local function run(self, gen)
  local cm, c = self._cm, self._c
  local spawned = 0
  while not self.closed do
    local reqs = cm.take(c)
    for i = 1, #reqs do
      gen.queue[#gen.queue + 1] = reqs[i]
      gen.inflight = gen.inflight + 1
      spawned = spawned + 1
      if gen.idle > 0 then
        gen.qsema:post(1)
      else
        local th, err = ngx.thread.spawn(worker, self, gen)
        if th then gen.nworkers = gen.nworkers + 1
        else
          gen.inflight = gen.inflight - 1
          table.remove(gen.queue)
          cm.deliver(c, reqs[i].id, nil, "not_sent", "no light thread: " .. tostring(err))
        end
      end
    end
    self:_route()
    if #reqs == 0 then
      if gen.inflight == 0 and cm.pending(c) == 0 then break end
      if spawned >= RECYCLE then break end       -- a fresh timer takes over; these workers drain
      local w, wait = cm.next_wakeup(c), 1
      if w then wait = math.min(1, w - self.clock()) end
      if wait > 0 then self.kick:wait(wait) else ngx.sleep(0) end
      if self.closed then break end
      cm.tick(c)
      self:_route()
    end
  end
end

loop = function(premature, self)
  local gen = { queue = {}, qsema = semaphore.new(0), inflight = 0, idle = 0, nworkers = 0 }
  local ok, err = pcall(run, self, gen)
  self.running = false
  gen.stopped = true
  if gen.nworkers > 0 then gen.qsema:post(gen.nworkers) end
  if not ok then
    ngx.log(ngx.ERR, "vivalearning io=ngx: the I/O loop failed: ", tostring(err))
    for _, s in pairs(self.waiters) do s:post(1) end
  elseif not self.closed and (self._cm.pending(self._c) > 0) then
    -- more work (or a recycle): a fresh timer; in-flight attempts finish in this one
    local tok, terr = pcall(self._ensure, self)
    if not tok then ngx.log(ngx.ERR, "vivalearning io=ngx: ", tostring(terr)) end
  end
end

-- viva.client{ io = "ngx", ... }: the options of viva.client, less driver and ca_file.
function M.client(core, opts)
  if not (rawget(_G, "ngx") and ngx.socket and ngx.timer) then
    error('viva.client: io = "ngx" runs inside nginx (ngx_lua); outside it use io = "curl"', 3)
  end
  if opts.driver ~= nil then error('viva.client: driver does not go with io = "ngx" (it is its own driver)', 3) end
  if opts.ca_file ~= nil then
    error('viva.client: ca_file does not go with io = "ngx": nginx verifies against lua_ssl_trusted_certificate', 3)
  end
  semaphore = semaphore or require "ngx.semaphore"
  build_methods(core)
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.io = "external"
  o.clock = o.clock or function() ngx.update_time(); return ngx.now() end
  local c = core.client(o)
  local t = type(opts.timeouts) == "table" and opts.timeouts or {}
  local self = setmetatable({
    _c = c,
    clock = o.clock,
    kick = semaphore.new(0),
    waiters = {},                                      -- handle -> semaphore of a sync call
    owners = setmetatable({}, { __mode = "k" }),       -- submitted handle -> its light thread
    owner_ctx = setmetatable({}, { __mode = "k" }),    -- submitted handle -> its request's ngx.ctx
    done_by = setmetatable({}, { __mode = "k" }),      -- light thread -> finished handles
    pollers = setmetatable({}, { __mode = "k" }),      -- light thread -> its poll semaphore
    hopts = { connect_timeout = t.connect or 10, max_body = opts.max_body_bytes or 16 * 1024 * 1024,
              pool_size = opts.max_concurrency or 16 },
  }, Client)
  return self
end

return M
