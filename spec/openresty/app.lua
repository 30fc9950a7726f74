-- The handlers of the test nginx (spec/support/openresty.lua): each runs the client with
-- io = "ngx" and answers JSON for spec/openresty/*_nginx.lua. One client per worker, made in
-- init_worker_by_lua and shared by every request (docs/openresty.md).
local viva = require "vivalearning"
local http = require "vivalearning.ngx_http"
local cjson = require "cjson.safe"

local M = {}

local TENANT = "72f988bf-0000-4000-8000-000000000001"
local IMPORTER = { id = "a0000000-0000-4000-8000-000000000001", secret = "importer-secret-1" }
local PROVIDER = "c0000000-0000-4000-8000-000000000001"
local CONTENT = "d0000000-0000-4000-8000-000001000001"
local ID = "00000000-0000-4000-8000-0000000000aa"

local function learner(n) return string.format("b0000000-0000-4000-8000-%012d", n) end

local T, shared
local jobs = {}    -- background work (timers): id -> result table

local function client(extra)
  local o = { io = "ngx", graph_url = T.https .. "/v1.0", authority_url = T.https, tenant = TENANT,
              client_id = IMPORTER.id, client_secret = IMPORTER.secret, max_concurrency = 32 }
  for k, v in pairs(extra or {}) do o[k] = v end
  return viva.client(o)
end

function M.init_worker()
  T = VIVA_TEST
  shared = client()
end

local function err_table(err)
  if not err then return nil end
  return { kind = err.kind, code = err.code, status = err.status, message = err.message, cause = err.cause,
           attempts = err.attempts }
end

local function get(c, id)
  local a, err = c:get(id)
  if a then return { ok = true, id = a.id, status = a.status } end
  return { ok = false, err = err_table(err) }
end

local function assignment(ext, n)
  return viva.assignment { learningContentId = CONTENT, learnerUserId = learner(n or 2), assignmentType = "required",
                           status = "notStarted", externalCourseActivityId = ext }
end

local H = {}

function H.ping() return "pong" end

function H.get(args) return get(shared, args.id) end

function H.create(args)
  local a, err = shared:create(PROVIDER, assignment(args.ext, tonumber(args.learner)))
  if a then return { ok = true, id = a.id } end
  return { ok = false, err = err_table(err) }
end

function H.crud(args)
  local out = {}
  local a, err = shared:create(PROVIDER, assignment(args.ext))
  if not a then return { ok = false, step = "create", err = err_table(err) } end
  out.created = a.id
  out.got = get(shared, a.id)
  local ok, uerr = shared:update(PROVIDER, a.id, { status = "completed" })
  out.updated = ok == true
  out.update_err = err_table(uerr)
  out.after_update = get(shared, a.id)
  local dok, derr = shared:delete(PROVIDER, a.id)
  out.deleted = dok == true
  out.delete_err = err_table(derr)
  out.after_delete = get(shared, a.id)
  out.ok = true
  return out
end

function H.pager(args)
  local n, pages = 0, 0
  for page, err in shared:activity_pages { user = args.user, top = tonumber(args.top) } do
    if err then return { ok = false, err = err_table(err) } end
    pages = pages + 1
    n = n + #page.value
  end
  local items = 0
  for act, err in shared:activities { user = args.user, top = tonumber(args.top) } do
    if err then return { ok = false, err = err_table(err) } end
    if act then items = items + 1 end
  end
  return { ok = true, count = n, pages = pages, items = items }
end

function H.batch(args)
  local items = {}
  for i = 1, tonumber(args.n or 3) do
    items[i] = { op = "create", provider = PROVIDER, model = assignment(args.ext .. "-" .. i, tonumber(args.learner) or i) }
  end
  items[#items + 1] = { op = "get", id = ID }
  local res, err = shared:batch(items)
  if not res then return { ok = false, err = err_table(err) } end
  local out = { ok = true, n = #res, ok_items = 0, statuses = {} }
  for i, r in ipairs(res) do
    out.statuses[i] = r.status or (r.error and r.error.status) or 0
    if r.ok then out.ok_items = out.ok_items + 1 end
  end
  return out
end

-- A background import: a timer, as a bulk import from nginx is.
function H.import_start(args)
  local id = args.job
  local n = tonumber(args.n or 2000)
  jobs[id] = { done = false }
  local ok, err = ngx.timer.at(0, function()
    local rows = {}
    for i = 1, n do
      rows[i] = { externalCourseActivityId = args.prefix .. "-" .. i, learnerUserId = learner(i % 50 + 1),
                  learningContentId = CONTENT, status = "notStarted", assignmentType = "required" }
    end
    ngx.update_time()
    local t0 = ngx.now()
    local pok, s, ierr = pcall(viva.bulk.import, shared, rows, { provider = PROVIDER, type = "assignment" })
    ngx.update_time()
    if not pok then jobs[id] = { done = true, ok = false, error = tostring(s) }; return end
    if not s then jobs[id] = { done = true, ok = false, error = tostring(ierr) }; return end
    jobs[id] = { done = true, ok = true, created = s.created, failed = s.failed, read = s.read,
                 seconds = ngx.now() - t0 }
  end)
  return { ok = ok, err = err }
end

function H.job(args) return jobs[args.job] or { unknown = true } end

-- A get in a timer
function H.timer_get(args)
  jobs[args.job] = { done = false }
  ngx.timer.at(0, function()
    local r = get(shared, args.id)
    r.done = true
    jobs[args.job] = r
  end)
  return { started = true }
end

-- Light threads of one request, each waiting for its own handle
function H.threads(args)
  local n, ths = tonumber(args.n or 8), {}
  for i = 1, n do ths[i] = ngx.thread.spawn(get, shared, args.id) end
  local ok_n = 0
  for i = 1, n do
    local ok, r = ngx.thread.wait(ths[i])
    if ok and r.ok then ok_n = ok_n + 1 end
  end
  return { n = n, ok = ok_n }
end

-- c:submit and c:poll from a request: this request's handles come back to it, not another's
function H.submit_poll(args)
  local n, mine, got = tonumber(args.n or 5), {}, 0
  for i = 1, n do mine[shared:submit("get", args.id)] = i end
  local foreign = 0
  for _ = 1, 100 do
    for _, h in ipairs(shared:poll(1)) do
      if mine[h] then got = got + 1 else foreign = foreign + 1 end
      local a = h:result()
      if not a then foreign = foreign + 100 end
    end
    if got == n then break end
  end
  return { n = n, got = got, foreign = foreign }
end

-- A fresh client for one request (token = a fixed string, or the importer's credentials)
function H.fresh(args)
  local c = client { max_retries = tonumber(args.retries), timeouts = { attempt = tonumber(args.attempt) } }
  local r = get(c, args.id)
  c:close()
  return r
end

-- The reader against the hostile upstream: one exchange, as the driver runs it
function H.exchange(args)
  local res, outcome, detail = http.exchange(
    { method = args.method or "GET", url = T.hostile .. "/" .. args.case .. "/x", headers = { accept = "application/json" },
      timeout = tonumber(args.timeout or 2) },
    { max_body = tonumber(args.max_body or 1048576), connect_timeout = 2, pool_size = 4 })
  if res then return { status = res.status, body = res.body, headers = res.headers } end
  return { outcome = outcome, detail = detail }
end

-- The whole client against the hostile upstream: the error it raises to its caller
function H.hostile_client(args)
  local c = viva.client { io = "ngx", token = "t", allow_http = true, max_retries = 0,
                          graph_url = T.hostile .. "/" .. args.case .. "/v1.0", timeouts = { attempt = 2 } }
  local r = get(c, ID)
  c:close()
  return r
end

-- bench/openresty.lua: conc light threads of one request, each GETting one activity in a loop
-- for the given seconds, through one io = "ngx" client over plain HTTP (or HTTPS)
function H.bench(args)
  local conc, seconds = tonumber(args.conc or 32), tonumber(args.seconds or 2)
  local base = args.tls == "1" and T.https or T.http
  local c = viva.client { io = "ngx", token = args.token, graph_url = base .. "/v1.0", allow_http = true,
                          max_concurrency = conc, max_retries = 0 }
  assert(c:get(args.id))
  ngx.update_time()
  local t0 = ngx.now()
  local stop, done, errors = t0 + seconds, 0, 0
  local function loop()
    while ngx.now() < stop do
      local a = c:get(args.id)
      if a then done = done + 1 else errors = errors + 1 end
    end
  end
  local ths = {}
  for i = 1, conc do ths[i] = ngx.thread.spawn(loop) end
  for i = 1, conc do ngx.thread.wait(ths[i]) end
  ngx.update_time()
  local wall = ngx.now() - t0
  c:close()
  return { rps = done / wall, done = done, errors = errors, seconds = wall }
end

-- A sync call where nginx cannot yield (log_by_lua): the error it raises, for /last_log_error
local last_log_error
function M.in_log()
  local ok, err = pcall(shared.get, shared, ID)
  last_log_error = ok and "no error" or tostring(err)
end
function H.last_log_error() return { err = last_log_error } end

-- The sans-I/O methods belong to the driver
function H.take()
  local ok, err = pcall(shared.take, shared)
  local bok, berr = pcall(shared.batch, shared, 5)
  local gok, gerr = pcall(shared.get, shared, nil)
  return { ok = ok, err = tostring(err), batch_err = not bok and tostring(berr), get_err = not gok and tostring(gerr) }
end

function M.in_phase(phase)
  local r = get(shared, ngx.var.arg_id)
  ngx.ctx.phase_result = (r.ok and "ok " or "failed ") .. phase .. " " .. tostring(r.id or (r.err and r.err.kind))
end

function M.handle()
  local name = ngx.var.uri:match("^/([%w_]+)")
  local h = name and H[name]
  if not h then ngx.status = 404; ngx.say("no handler"); return end
  local ok, res = pcall(h, ngx.req.get_uri_args())
  if not ok then
    ngx.status = 500
    ngx.say(cjson.encode { error = tostring(res) })
    return
  end
  if type(res) == "string" then ngx.say(res) else ngx.say(cjson.encode(res)) end
end

return M
