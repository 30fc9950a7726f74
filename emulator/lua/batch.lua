-- JSON batching: POST /v1.0/$batch {"requests":[{id, method, url, headers?, body?, dependsOn?}]}
-- Up to 20 items; relative URLs; dependsOn (424 when a dependency failed); each item goes through the
-- same pipeline (log, faults, auth, rate limit, counters) as a top-level request.  The envelope is 200
-- when it parses (settings.batch_throttled_status = 424 makes a throttled item turn it into 424, §6 #22).
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
  local throttled = false
  for _, key in ipairs(seq) do
    local b = by_id[key]
    local it = b.item
    local failed_dep
    for _, d in ipairs(it.dependsOn or {}) do
      local r = results[tostring(d):lower()]
      if r and r.status >= 400 then failed_dep = tostring(d) break end
    end
    local out
    if failed_dep then
      local e = errors.graph(req, 424, "FailedDependency",
        "The request depends on request '" .. failed_dep .. "', which failed.")
      out = { id = b.id, status = 424, headers = { ["Content-Type"] = "application/json" }, body = e.json }
    else
      local url = it.url
      do
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
          out = { id = b.id, status = 400, headers = { ["Content-Type"] = "application/json" }, body = e.json }
        else
          local sub = {
            method = it.method:upper(), raw_path = "/" .. req.version .. path, raw_query = query,
            headers = headers, body = body, base = req.base, scheme = req.scheme, protocol = req.protocol,
            batch_seq = env_entry_seq, batch_item = b.id, prejson = prejson,
          }
          if not sub_crid then sub.headers["client-request-id"] = nil end
          local resp = router.process(sub)
          if resp.drop or resp.truncate then
            return { drop = resp.drop, truncate = resp.truncate, stall = resp.stall, fault = resp.fault }
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
          out = { id = b.id, status = resp.status, headers = h, body = bodyv }
          if resp.status == 429 then throttled = true end
        end
      end
    end
    results[key] = out
  end
  local responses = {}
  for _, key in ipairs(order) do responses[#responses + 1] = results[key] end
  local status = 200
  if throttled and tonumber(state.settings.batch_throttled_status) == 424 then status = 424 end
  return { status = status, json = { responses = json.array(responses) } }
end

return M
