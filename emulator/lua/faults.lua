-- Fault rules (POST /_emulator/faults): match method + path (a Lua pattern against the path without
-- query) and answer a status with Retry-After in any form, a "Retry after N minutes" body, a delay, or
-- a dropped connection; before the request is processed, or after it (after = true: committed, then
-- the failure, the ambiguous case).  count = the next K matches; share = the part of matches (0..1).
local json = require("json")
local util = require("util")
local errors = require("errors")

local M = {}
M.rules = {}
M.next_id = 1

local CODES = {
  [429] = { "TooManyRequests", "Please retry again later." },
  [500] = { "internalServerError", "Internal server error." },
  [502] = { "badGateway", "Bad gateway." },
  [503] = { "serviceUnavailable", "The service is temporarily unavailable. Please retry again later." },
  [504] = { "gatewayTimeout", "The gateway timed out. Please retry again later." },
}

function M.reset()
  M.rules = {}
end

local function num(v) return type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge end

-- Validates and adds a rule; returns the rule or nil, message.
function M.add(spec)
  if type(spec) ~= "table" or json.is_array(spec) then return nil, "a fault rule must be a JSON object" end
  local known = {
    method = true, path = true, status = true, retry_after = true, retry_after_ms = true,
    retry_after_date = true, body_minutes = true, delay = true, drop = true, after = true,
    count = true, share = true, headers = true, body = true, truncate = true, stall = true,
  }
  for k in pairs(spec) do
    if not known[k] then return nil, "unknown fault field '" .. tostring(k) .. "'" end
  end
  local r = { id = M.next_id, hits = 0, seen = 0 }
  if spec.path == nil or type(spec.path) ~= "string" then return nil, "path (a Lua pattern) is required" end
  local ok = pcall(string.find, "/v1.0/x", spec.path)
  if not ok then return nil, "path is not a valid Lua pattern" end
  r.path = spec.path
  if spec.method ~= nil then
    if type(spec.method) ~= "string" then return nil, "method must be a string" end
    r.method = spec.method:upper()
  end
  if spec.status ~= nil then
    if not num(spec.status) or spec.status < 400 or spec.status > 599 or spec.status % 1 ~= 0 then
      return nil, "status must be an HTTP error status (429, 500, 503, 504, ...)"
    end
    r.status = spec.status
  end
  if spec.retry_after ~= nil then
    if type(spec.retry_after) == "string" then r.retry_after = spec.retry_after
    elseif num(spec.retry_after) then r.retry_after = (spec.retry_after % 1 == 0) and string.format("%d", spec.retry_after) or tostring(spec.retry_after)
    else return nil, "retry_after must be a string (sent verbatim) or a number of seconds" end
  end
  if spec.retry_after_date ~= nil then
    if not num(spec.retry_after_date) then return nil, "retry_after_date must be a number of seconds ahead" end
    r.retry_after_date = spec.retry_after_date
  end
  if spec.retry_after_ms ~= nil then
    if type(spec.retry_after_ms) ~= "string" and not num(spec.retry_after_ms) then return nil, "retry_after_ms must be a number" end
    r.retry_after_ms = type(spec.retry_after_ms) == "number" and string.format("%d", spec.retry_after_ms) or spec.retry_after_ms
  end
  if spec.body_minutes ~= nil then
    if not num(spec.body_minutes) then return nil, "body_minutes must be a number" end
    r.body_minutes = spec.body_minutes
  end
  if spec.delay ~= nil then
    if not num(spec.delay) or spec.delay < 0 or spec.delay > 600 then return nil, "delay must be 0..600 seconds" end
    r.delay = spec.delay
  end
  if spec.drop ~= nil then
    if type(spec.drop) ~= "boolean" then return nil, "drop must be a boolean" end
    r.drop = spec.drop or nil
  end
  if spec.truncate ~= nil then
    if type(spec.truncate) ~= "boolean" then return nil, "truncate must be a boolean" end
    r.truncate = spec.truncate or nil
  end
  if spec.stall ~= nil then
    if not num(spec.stall) or spec.stall < 0 or spec.stall > 600 then return nil, "stall must be 0..600 seconds" end
    r.stall = spec.stall
  end
  if spec.after ~= nil then
    if type(spec.after) ~= "boolean" then return nil, "after must be a boolean" end
    r.after = spec.after or nil
  end
  if spec.count ~= nil then
    if not num(spec.count) or spec.count < 1 or spec.count % 1 ~= 0 then return nil, "count must be a positive integer" end
    r.count = spec.count
    r.remaining = spec.count
  end
  if spec.share ~= nil then
    if not num(spec.share) or spec.share < 0 or spec.share > 1 then return nil, "share must be 0..1" end
    r.share = spec.share
  end
  if spec.headers ~= nil then
    if type(spec.headers) ~= "table" or json.is_array(spec.headers) then return nil, "headers must be an object" end
    for k, v in pairs(spec.headers) do
      if type(v) ~= "string" then return nil, "header values must be strings" end
      if tostring(k):find("[\r\n:]") or v:find("[\r\n]") then return nil, "invalid header" end
    end
    r.headers = spec.headers
  end
  if spec.body ~= nil then
    if type(spec.body) ~= "string" then return nil, "body must be a string (sent verbatim)" end
    r.body = spec.body
  end
  if not (r.status or r.delay or r.drop or r.truncate or r.stall) then
    return nil, "a fault needs status, delay, drop, truncate or stall"
  end
  M.next_id = M.next_id + 1
  M.rules[#M.rules + 1] = r
  return r
end

function M.remove(id)
  for i, r in ipairs(M.rules) do
    if r.id == id then table.remove(M.rules, i) return true end
  end
  return false
end

-- The first live rule that matches this request (consumes one of its count).
function M.match(req)
  if #M.rules == 0 then return nil end
  for _, r in ipairs(M.rules) do
    if (not r.method or r.method == req.method) and (not r.remaining or r.remaining > 0)
        and req.path:find(r.path) then
      r.seen = r.seen + 1
      if not r.share or math.random() < r.share then
        if r.remaining then r.remaining = r.remaining - 1 end
        r.hits = r.hits + 1
        return r
      end
    end
  end
  return nil
end

function M.list()
  local out = {}
  for _, r in ipairs(M.rules) do out[#out + 1] = r end
  return json.array(out)
end

-- The response a status rule answers with.
function M.response(req, r)
  local status = r.status
  local headers = {}
  if r.retry_after then headers["Retry-After"] = r.retry_after end
  if r.retry_after_date then headers["Retry-After"] = util.http_date(ngx.now() + r.retry_after_date) end
  if r.retry_after_ms then headers["retry-after-ms"] = r.retry_after_ms end
  for k, v in pairs(r.headers or {}) do headers[k] = v end
  if r.body then
    return { status = status, headers = headers, raw = r.body, content_type = headers["Content-Type"] or "application/json" }
  end
  if req.is_token then
    local auth = require("auth")
    local resp = auth.entra_error(req, status, "temporarily_unavailable", 90006,
      "The server is temporarily too busy to handle the request. Please try again later.")
    for k, v in pairs(headers) do resp.headers[k] = v end
    return resp
  end
  local code, message
  if r.body_minutes then
    code = status == 503 and "serviceUnavailable" or "tooManyRequests"
    message = "Retry after " .. (r.body_minutes % 1 == 0 and string.format("%d", r.body_minutes) or tostring(r.body_minutes)) .. " minutes"
  else
    local c = CODES[status] or { "generalException", "The emulator injected a failure." }
    code, message = c[1], c[2]
  end
  return errors.graph(req, status, code, message, headers)
end

return M
