-- JSON batching: POST /v1.0/$batch {"requests":[{id, method, url, headers?, body?, dependsOn?}]}
-- Up to 20 items; relative URLs (an absolute one fails the whole batch); dependsOn (424 when a
-- dependency failed); each item goes through the same pipeline (log, latency, faults, auth, rate
-- limit, counters) as a top-level request.  Independent items run concurrently (light threads) in a
-- seeded random order and are answered in that order (settings.batch_order = "request": one after
-- another, answered in request order).  The envelope is 200 when it parses
-- (settings.batch_throttled_status = 424 makes a throttled item turn it into 424, §6 #22).
local json = require("json")
local util = require("util")
local state = require("state")
local errors = require("errors")

local M = {}

local MAX = 20
local METHODS = { GET = true, POST = true, PATCH = true, PUT = true, DELETE = true }

local function bad(req, message)
  return errors.graph(req, 400, "BadRequest", message)
end

local function header_get(h, name)
  for k, v in pairs(h or {}) do
    if type(k) == "string" and k:lower() == name then return v end
  end
end

function M.run(req)
  local router = require("router")
  local env = req.json
  if type(env) ~= "table" or json.is_array(env) then return bad(req, "Invalid batch payload format.") end
  local items = env.requests
  if type(items) ~= "table" or not (json.is_array(items) or next(items) == nil) then
    return bad(req, "Invalid batch payload format: 'requests' must be an array.")
  end
  if #items == 0 then return bad(req, "Invalid batch payload format: no requests.") end
  if #items > MAX then
    return bad(req, "Invalid batch payload format: the number of requests (" .. #items .. ") exceeds the limit of " .. MAX .. ".")
  end
  local by_id, order = {}, {}
  for i, it in ipairs(items) do
    if type(it) ~= "table" or json.is_array(it) then return bad(req, "Invalid batch payload format: request " .. i .. " is not an object.") end
    local id = it.id
    if type(id) == "number" then id = tostring(id) end
    if type(id) ~= "string" or id == "" then return bad(req, "Invalid batch payload format: request " .. i .. " has no id.") end
    if by_id[id:lower()] then return bad(req, "Invalid batch payload format: duplicate request id '" .. id .. "'.") end
    if type(it.method) ~= "string" or not METHODS[it.method:upper()] then
      return bad(req, "Invalid batch payload format: request '" .. id .. "' has an invalid method.")
    end
    if type(it.url) ~= "string" or it.url == "" then
      return bad(req, "Invalid batch payload format: request '" .. id .. "' has no url.")
    end
    -- Graph refuses the whole batch when a step URL is absolute (https://graph.microsoft.com/...)
    if it.url:match("^%a[%w+.-]*://") then return bad(req, "Invalid batch payload format.") end
    if it.headers ~= nil and (type(it.headers) ~= "table" or json.is_array(it.headers)) then
      return bad(req, "Invalid batch payload format: headers of request '" .. id .. "' must be an object.")
    end
    if it.dependsOn ~= nil and (type(it.dependsOn) ~= "table" or not (json.is_array(it.dependsOn) or next(it.dependsOn) == nil)) then
      return bad(req, "Invalid batch payload format: dependsOn of request '" .. id .. "' must be an array.")
    end
    by_id[id:lower()] = { item = it, id = id, index = i }
    order[#order + 1] = id:lower()
  end
  for _, key in ipairs(order) do
    for _, d in ipairs(by_id[key].item.dependsOn or {}) do
      if type(d) ~= "string" and type(d) ~= "number" then return bad(req, "Invalid batch payload format: bad dependsOn.") end
      if not by_id[tostring(d):lower()] then
        return bad(req, "Invalid batch payload format: request '" .. by_id[key].id .. "' depends on unknown request '" .. tostring(d) .. "'.")
      end
    end
  end
  -- Execution order: dependencies first (stable), a cycle is a malformed batch.
  local done, seq, visiting = {}, {}, {}
  local function visit(key)
    if done[key] then return true end
    if visiting[key] then return false end
    visiting[key] = true
    for _, d in ipairs(by_id[key].item.dependsOn or {}) do
      if not visit(tostring(d):lower()) then return false end
    end
    visiting[key] = nil
    done[key] = true
    seq[#seq + 1] = key
    return true
  end
  for _, key in ipairs(order) do
    if not visit(key) then return bad(req, "Invalid batch payload format: dependsOn has a cycle.") end
  end

  local env_entry_seq = require("log").seq
  local results = {}
  local abort          -- a step whose fault drops/truncates: the whole batch connection goes

  -- One step: 424 when a dependency failed, else through the router's pipeline.  Returns its
  -- response item, or nil and the connection-level failure.
  local function run_step(key)
    local b = by_id[key]
    local it = b.item
    local failed_dep
    for _, d in ipairs(it.dependsOn or {}) do
      local r = results[tostring(d):lower()]
      if r and r.status >= 400 then failed_dep = tostring(d) break end
    end
    if failed_dep then
      local e = errors.graph(req, 424, "FailedDependency",
        "The request depends on request '" .. failed_dep .. "', which failed.")
      return { id = b.id, status = 424, headers = { ["Content-Type"] = "application/json" }, body = e.json }
    end
    local url = it.url
    if url:sub(1, 1) ~= "/" then url = "/" .. url end
    local path, query = url:match("^([^?]*)%??(.*)$")
    local headers = {}
    for k, v in pairs(req.headers) do
      if k == "authorization" or k == "client-request-id" or k == "user-agent" or k == "prefer" then headers[k] = v end
    end
    local sub_crid
    for k, v in pairs(it.headers or {}) do
      if type(v) == "string" then headers[k:lower()] = v end
      if k:lower() == "client-request-id" then sub_crid = v end
    end
    local body = ""
    local berr, prejson
    if it.body ~= nil then
      if not header_get(it.headers, "content-type") then
        berr = "The Content-Type header is required when a batch request has a body."
      elseif type(it.body) == "table" then
        prejson = it.body   -- already decoded with the envelope: no second encode/decode
      elseif type(it.body) == "string" then
        body = util.b64url_decode(it.body) or ngx.decode_base64(it.body) or it.body
      else
        berr = "Invalid body in batch request '" .. b.id .. "'."
      end
    end
    if berr then
      local e = bad(req, berr)
      return { id = b.id, status = 400, headers = { ["Content-Type"] = "application/json" }, body = e.json }
    end
    local sub = {
      method = it.method:upper(), raw_path = "/" .. req.version .. path, raw_query = query,
      headers = headers, body = body, base = req.base, scheme = req.scheme, protocol = req.protocol,
      batch_seq = env_entry_seq, batch_item = b.id, prejson = prejson,
    }
    if not sub_crid then sub.headers["client-request-id"] = nil end
    req.steps_ran = true
    local resp = router.process(sub)
    if resp.drop or resp.truncate then
      return nil, { drop = resp.drop, truncate = resp.truncate, stall = resp.stall, fault = resp.fault }
    end
    -- item headers as Graph shows them (graph-api.md §4): no diagnostics blob per item
    local h = { ["x-ms-resource-unit"] = "1" }
    for k, v in pairs(resp.headers or {}) do
      if k ~= "x-ms-ags-diagnostic" then h[k] = v end
    end
    local bodyv, ct
    if resp.json then
      bodyv, ct = resp.json, router.json_content_type(resp)
    else
      bodyv, ct = router.body_text(resp)
    end
    if ct then h["Content-Type"] = ct end
    return { id = b.id, status = resp.status, headers = h, body = bodyv }
  end

  local function step(key)
    local ok, out, fail = xpcall(run_step, debug.traceback, key)
    if not ok then
      ngx.log(ngx.ERR, "emulator batch step error: ", out)
      local e = errors.graph(req, 500, "internalServerError", "Internal server error.")
      out = { id = by_id[key].id, status = 500, headers = { ["Content-Type"] = "application/json" }, body = e.json }
    end
    if fail then abort = abort or fail end
    results[key] = out or false
    return key
  end

  local answer_order
  if state.settings.batch_order == "request" then
    -- one after another, dependencies first, answered in request order (the emulator's old behaviour)
    for _, key in ipairs(seq) do
      step(key)
      if abort then break end
    end
    answer_order = order
  else
    -- Graph: independent steps run concurrently and come back in any order.  A seeded random
    -- topological order decides which ready step starts first and the order of the answers; each
    -- step is a light thread (it sleeps on latency or a delay fault without holding the others).
    answer_order = M.shuffled_order(order, by_id)
    local pending = {}
    for i, key in ipairs(answer_order) do pending[i] = key end
    local running, nrunning = {}, 0
    local function ready(key)
      for _, d in ipairs(by_id[key].item.dependsOn or {}) do
        if results[tostring(d):lower()] == nil then return false end
      end
      return true
    end
    while true do
      local i = 1
      while not abort and i <= #pending do
        local key = pending[i]
        if ready(key) then
          table.remove(pending, i)
          running[key] = ngx.thread.spawn(step, key)
          nrunning = nrunning + 1
        else
          i = i + 1
        end
      end
      if nrunning == 0 then break end
      local threads = {}
      for _, t in pairs(running) do threads[#threads + 1] = t end
      local ok, key = ngx.thread.wait((unpack or table.unpack)(threads))
      if not ok or not running[key] then
        -- cannot happen (step() catches its errors); wait for the rest rather than spin
        ngx.log(ngx.ERR, "emulator batch: a step thread failed: ", tostring(key))
        for _, t in pairs(running) do pcall(ngx.thread.wait, t) end
        break
      end
      running[key] = nil
      nrunning = nrunning - 1
    end
  end
  if abort then return abort end

  local responses = {}
  local throttled = false
  for _, key in ipairs(answer_order) do
    local out = results[key]
    if out then
      responses[#responses + 1] = out
      if out.status == 429 then throttled = true end
    end
  end
  local status = 200
  if throttled and tonumber(state.settings.batch_throttled_status) == 424 then status = 424 end
  return { status = status, json = { responses = json.array(responses) } }
end

-- Seeded random numbers for the step order (settings.batch_seed; without it, math.random).
-- A Park-Miller generator, restarted by reseed() (reset, or batch_seed set again).
M.rng = nil
function M.reseed() M.rng = nil end
function M.random_int(n)
  if M.rng == nil then
    local seed = state.settings.batch_seed
    if type(seed) ~= "number" then return math.random(n) end
    M.rng = math.floor(math.abs(seed)) % 2147483646 + 1
    for _ = 1, 4 do M.rng = (M.rng * 16807) % 2147483647 end   -- small seeds start with small draws
  end
  M.rng = (M.rng * 16807) % 2147483647
  return math.floor(M.rng / 2147483647 * n) + 1
end

-- A random topological order of the steps (keys): dependencies always before their dependents.
function M.shuffled_order(order, by_id)
  local indegree, dependents = {}, {}
  for _, k in ipairs(order) do indegree[k] = 0; dependents[k] = {} end
  for _, k in ipairs(order) do
    local seen = {}
    for _, d in ipairs(by_id[k].item.dependsOn or {}) do
      local dk = tostring(d):lower()
      if not seen[dk] then
        seen[dk] = true
        indegree[k] = indegree[k] + 1
        local list = dependents[dk]
        list[#list + 1] = k
      end
    end
  end
  local ready = {}
  for _, k in ipairs(order) do if indegree[k] == 0 then ready[#ready + 1] = k end end
  local out = {}
  while #ready > 0 do
    local k = table.remove(ready, M.random_int(#ready))
    out[#out + 1] = k
    for _, dk in ipairs(dependents[k]) do
      indegree[dk] = indegree[dk] - 1
      if indegree[dk] == 0 then ready[#ready + 1] = dk end
    end
  end
  return out
end

return M
