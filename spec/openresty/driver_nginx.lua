-- io = "ngx" inside a real nginx (Debian's ngx_lua, LuaJIT): one client per worker, made in
-- init_worker_by_lua and shared by every request, against the emulator over TLS. The handlers
-- are spec/openresty/app.lua; the counts come from the emulator's admin API.
local emu = require "support.emulator"
local ngxt = require "support.openresty"
local http = require "support.http"

local PROVIDER = emu.PROVIDER

local srv

local function json(path, timeout)
  local r = srv:get(path, timeout)
  assert.equals(200, r.status, path .. ": " .. tostring(r.body))
  assert.is_table(r.json, path .. ": " .. tostring(r.body))
  return r.json
end

-- polls a background job of the test server until it is done
local function job(id, limit)
  for _ = 1, (limit or 120) * 10 do
    local j = json("/job?job=" .. id)
    if j.done then return j end
    os.execute("sleep 0.1")
  end
  error("job " .. id .. " never finished")
end

local function gets_of(id)
  local n = 0
  for _, e in ipairs(emu.log(0)) do
    if e.method == "GET" and e.path:find(id, 1, true) then n = n + 1 end
  end
  return n
end

-- the id of learner n's one activity (a fresh token: a spec below expires them all)
local function first_id(n)
  -- listing a learner's activities is delegated only (an app token gets Graph's 403)
  local list = emu.graph("GET", "/users/" .. emu.user(n) .. "/employeeExperience/learningCourseActivities",
    { token = emu.user_token() })
  return list.json.value[1].id
end

describe("io = 'ngx' in nginx", function()
  setup(function()
    emu.reset()
    srv = ngxt.start(emu)
  end)
  teardown(function()
    if srv then
      local bad = srv:errors()
      srv:stop()
      assert.same({}, bad)
    end
  end)

  it("loads the module in the worker and answers", function()
    assert.equals("pong\n", srv:get("/ping").body)
  end)

  it("creates, gets, updates and deletes through the worker's client (token fetched through the driver)", function()
    local r = json("/crud?ext=ngx-crud-1")
    assert.is_true(r.ok, tostring(r.err and r.err.message))
    assert.is_true(r.got.ok)
    assert.equals(r.created, r.got.id)
    assert.equals("notStarted", r.got.status)
    assert.is_true(r.updated)
    assert.equals("completed", r.after_update.status)
    assert.is_true(r.deleted)
    assert.is_false(r.after_delete.ok)
    assert.equals(404, r.after_delete.err.status)
    assert.equals(1, emu.counters().creates[PROVIDER]["ngx-crud-1"])
  end)

  it("runs $batch and the pager", function()
    local b = json("/batch?ext=ngx-page&n=5&learner=7")
    assert.is_true(b.ok)
    assert.equals(6, b.n)
    assert.same({ 201, 201, 201, 201, 201, 404 }, b.statuses)
    -- the pager over cosockets, on the worker's app client: this is about paging, not about
    -- permissions, so the emulator's lenient variant lets an app token list a learner's activities
    emu.settings { app_can_list_user_activities = true }
    local p = json("/pager?user=" .. emu.user(7) .. "&top=2")
    emu.settings { app_can_list_user_activities = false }
    assert.is_true(p.ok, p.err and p.err.message)
    assert.equals(5, p.count)
    assert.equals(3, p.pages)
    assert.equals(5, p.items)
  end)

  it("works in rewrite, access, a timer and several light threads of one request", function()
    local b = json("/batch?ext=ngx-phase&n=1&learner=9")
    assert.is_true(b.ok)
    local id = first_id(9)
    assert.equals("ok rewrite " .. id .. "\n", srv:get("/rewrite?id=" .. id).body)
    assert.equals("ok access " .. id .. "\n", srv:get("/access?id=" .. id).body)
    json("/timer_get?job=tg1&id=" .. id)
    local t = job("tg1", 10)
    assert.is_true(t.ok)
    assert.equals(id, t.id)
    local th = json("/threads?n=8&id=" .. id)
    assert.equals(8, th.ok)
  end)

  it("retries by the policy: two 503s, then the answer", function()
    local b = json("/batch?ext=ngx-retry&n=1&learner=11")
    assert.is_true(b.ok)
    local id = first_id(11)
    emu.clear_log()
    emu.fault { method = "GET", path = "learningCourseActivities/" .. id:gsub("%p", "%%%0"), status = 503, retry_after = "0.2", count = 2 }
    local r = json("/get?id=" .. id)
    assert.is_true(r.ok, r.err and r.err.message)
    assert.equals(3, gets_of(id))
  end)

  it("fetches a new token when the emulator expires the old one (401, refresh, replay)", function()
    local b = json("/batch?ext=ngx-tok&n=1&learner=12")
    assert.is_true(b.ok)
    local before = emu.counters().token_requests
    emu.expire_tokens()
    local r = json("/get?id=00000000-0000-4000-8000-00000000beef")
    assert.equals(404, r.err.status)      -- answered (not found) with a fresh token
    assert.equals(before + 1, emu.counters().token_requests)
  end)

  it("imports 2,000 rows in a timer: every row created exactly once", function()
    json("/import_start?job=imp&n=2000&prefix=ngx-bulk")
    local j = job("imp", 300)
    assert.is_true(j.ok, j.error)
    assert.equals(2000, j.read)
    assert.equals(2000, j.created)
    assert.equals(0, j.failed)
    local creates = emu.counters().creates[PROVIDER]
    for i = 1, 2000 do
      assert.equals(1, creates["ngx-bulk-" .. i], "row " .. i)
    end
  end)

  it("keeps the worker serving while a request waits on a slow upstream", function()
    local b = json("/batch?ext=ngx-slow&n=1&learner=13")
    assert.is_true(b.ok)
    local id = first_id(13)
    emu.fault { method = "GET", path = "learningCourseActivities/" .. id:gsub("%p", "%%%0"), delay = 2, count = 1 }
    local out = os.tmpname()
    os.execute("curl -s -o " .. http.shell_quote(out) .. " " .. http.shell_quote(srv.url .. "/get?id=" .. id) .. " &")
    os.execute("sleep 0.4")
    local ping = srv:get("/ping", 5)
    local slow_at_ping = http.read_file(out) or ""
    assert.equals("pong\n", ping.body)
    assert.equals("", slow_at_ping)       -- the slow request was still waiting when /ping answered
    local body
    for _ = 1, 100 do
      body = http.read_file(out) or ""
      if body ~= "" then break end
      os.execute("sleep 0.1")
    end
    os.remove(out)
    assert.matches('"ok":true', body)
  end)

  it("says where a sync call cannot wait (log_by_lua) and keeps take/deliver to itself", function()
    assert.equals("logged\n", srv:get("/logphase").body)
    local r
    for _ = 1, 50 do
      r = json("/last_log_error")
      if r.err then break end
      os.execute("sleep 0.05")
    end
    assert.matches('io = "ngx" waits by yielding, and it cannot here %(API disabled in the context of log_by_lua%*%): ' ..
      "call it from rewrite, access, content or a timer", r.err)
    r = json("/take")
    assert.is_false(r.ok)
    assert.matches('take: an io = "ngx" client moves its bytes itself', r.err)
    -- argument errors read as the method's, as with io = "curl"
    assert.equals("bad argument #2 to 'batch' (table expected, got number)", r.batch_err)
    assert.equals("vivalearning: id must be a string, got nil", r.get_err)
  end)

  it("serves many requests at once on the worker's one client, each with its own results", function()
    local b = json("/batch?ext=ngx-many&n=1&learner=15")
    assert.is_true(b.ok)
    local id = first_id(15)
    -- every answer 0.3 s late: all 56 calls are in flight together
    emu.fault { method = "GET", path = "learningCourseActivities/" .. id:gsub("%p", "%%%0"), delay = 0.3, count = 56 }
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    -- 24 concurrent requests: 16 sync gets, 8 submit/poll loops of 5 handles each
    local cmds = {}
    for i = 1, 16 do cmds[#cmds + 1] = ("curl -s -o %s/g%d %s"):format(dir, i, http.shell_quote(srv.url .. "/get?id=" .. id)) end
    for i = 1, 8 do cmds[#cmds + 1] = ("curl -s -o %s/p%d %s"):format(dir, i, http.shell_quote(srv.url .. "/submit_poll?n=5&id=" .. id)) end
    assert(os.execute("(" .. table.concat(cmds, " & ") .. " & wait)"))
    for i = 1, 16 do assert.matches('"ok":true', http.read_file(dir .. "/g" .. i) or "", "get " .. i) end
    for i = 1, 8 do
      local p = http.json_decode(http.read_file(dir .. "/p" .. i) or "")
      assert.same({ n = 5, got = 5, foreign = 0 }, p)
    end
    os.execute("rm -rf " .. dir)
  end)

  it("recovers a create whose answer was lost (dropped after commit): looked up by external id, created once", function()
    emu.clear_log()
    emu.fault { method = "POST", path = "learningCourseActivities$", drop = true, after = true, count = 1 }
    local r = json("/create?ext=ngx-lost-1&learner=16")
    assert.is_true(r.ok, r.err and r.err.message)
    assert.equals(1, emu.counters().creates[PROVIDER]["ngx-lost-1"])
    local methods = {}
    for _, e in ipairs(emu.log(0)) do
      if e.path:find("learningCourseActivities", 1, true) then methods[#methods + 1] = e.method end
    end
    assert.same({ "POST", "GET" }, methods)
  end)

  it("waits out a 429's Retry-After on a create, then creates once", function()
    emu.clear_log()
    emu.fault { method = "POST", path = "learningCourseActivities$", status = 429, retry_after = "1", count = 1 }
    local r = json("/create?ext=ngx-429-1&learner=17")
    assert.is_true(r.ok, r.err and r.err.message)
    assert.equals(1, emu.counters().creates[PROVIDER]["ngx-429-1"])
    local posts = {}
    for _, e in ipairs(emu.log(0)) do
      if e.method == "POST" and e.path:find("learningCourseActivities$") then posts[#posts + 1] = e end
    end
    assert.equals(2, #posts)
    assert.equals(429, posts[1].status)
    assert.equals(201, posts[2].status)
  end)
end)
