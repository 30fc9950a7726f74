-- Fault rules (POST /_emulator/faults): match method + path (a Lua pattern against the path without
-- query) and answer a status with Retry-After in any form, a "Retry after N minutes" body, a delay,
-- a dropped connection, or a 2xx with a raw body (an empty 200 where an entity is due, a malformed
-- page); before the request is processed, or after it (after = true: committed, then
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
local function int_string(v) return (v % 1 == 0) and string.format("%d", v) or tostring(v) end

-- Field checks of a rule: each returns the stored value, or nil and the message.
local function boolean(name)
  return function(v)
    if type(v) ~= "boolean" then return nil, name .. " must be a boolean" end
    return v or nil
  end
end
local function number_in(name, lo, hi, what)
  return function(v)
    if not num(v) or v < lo or v > hi then return nil, name .. " must be " .. what end
    return v
  end
end
local FIELDS = {
  path = function(v)
    if type(v) ~= "string" then return nil, "path (a Lua pattern) is required" end
    if not pcall(string.find, "/v1.0/x", v) then return nil, "path is not a valid Lua pattern" end
    return v
  end,
  method = function(v)
    if type(v) ~= "string" then return nil, "method must be a string" end
    return v:upper()
  end,
  status = function(v)
    if not num(v) or v % 1 ~= 0 or not ((v >= 400 and v <= 599) or (v >= 200 and v <= 299)) then
      return nil, "status must be an HTTP error status (429, 500, 503, 504, ...), or 2xx with a body"
    end
    return v
  end,
  retry_after = function(v)
    if type(v) == "string" then return v end
    if num(v) then return int_string(v) end
    return nil, "retry_after must be a string (sent verbatim) or a number of seconds"
  end,
  retry_after_ms = function(v)
    if type(v) == "string" then return v end
    if num(v) then return int_string(v) end
    return nil, "retry_after_ms must be a number"
  end,
  retry_after_date = number_in("retry_after_date", -1e9, 1e9, "a number of seconds ahead"),
  body_minutes = number_in("body_minutes", 0, 1e6, "a number"),
  delay = number_in("delay", 0, 600, "0..600 seconds"),
  stall = number_in("stall", 0, 600, "0..600 seconds"),
  share = number_in("share", 0, 1, "0..1"),
  count = function(v)
    if not num(v) or v < 1 or v % 1 ~= 0 then return nil, "count must be a positive integer" end
    return v
  end,
  drop = boolean("drop"), truncate = boolean("truncate"), after = boolean("after"),
  headers = function(v)
    if type(v) ~= "table" or json.is_array(v) then return nil, "headers must be an object" end
    for k, hv in pairs(v) do
      if type(hv) ~= "string" then return nil, "header values must be strings" end
      if tostring(k):find("[\r\n:]") or hv:find("[\r\n]") then return nil, "invalid header" end
    end
    return v
  end,
  body = function(v)
    if type(v) ~= "string" then return nil, "body must be a string (sent verbatim)" end
    return v
  end,
}

-- Validates and adds a rule; returns the rule or nil, message.
function M.add(spec)
  if type(spec) ~= "table" or json.is_array(spec) then return nil, "a fault rule must be a JSON object" end
  for k in pairs(spec) do
    if not FIELDS[k] then return nil, "unknown fault field '" .. tostring(k) .. "'" end
  end
  if spec.path == nil then return nil, "path (a Lua pattern) is required" end
  local r = { id = M.next_id, hits = 0, seen = 0 }
  for k, v in pairs(spec) do
    local value, err = FIELDS[k](v)
    if err then return nil, err end
    r[k] = value
  end
  r.remaining = r.count
  -- a success status answers the raw body given (e.g. "": an empty 200 where an entity is due)
  if r.status and r.status < 400 and not r.body then
    return nil, "status " .. int_string(r.status) .. " needs a body (the raw body to answer, \"\" for none)"
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
  return json.array(util.values(M.rules))
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
  if req.is_mi then
    -- IMDS's error shape ({"error","error_description"}); App Service clients read any non-200 as a failure
    return { status = status, headers = headers, entra = true,
             json = { error = status == 429 and "too_many_requests" or "unknown", error_description = "The emulator injected a failure." } }
  end
  if req.is_token and status == 429 then
    -- ESTS throttling: a plain-text body, not JSON (entra-signin.md §9.1;
    -- AzureAD/microsoft-authentication-library-for-dotnet#2855, #3907)
    return { status = 429, headers = headers, text = "Too Many Requests", content_type = "text/plain; charset=utf-8" }
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
