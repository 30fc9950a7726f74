-- Per-app rate limit (token bucket): POST /_emulator/rate_limit {per_second, burst?, app?}.
-- A rule without app applies to every app (each app has its own bucket).
local errors = require("errors")
local util = require("util")

local M = {}
M.rules = {}
M.buckets = {}

function M.reset()
  M.rules = {}
  M.buckets = {}
end

function M.set(spec)
  local ps = spec.per_second
  if type(ps) ~= "number" or ps <= 0 then return nil, "per_second must be a positive number" end
  local burst = spec.burst
  if burst ~= nil and (type(burst) ~= "number" or burst < 1) then return nil, "burst must be a number >= 1" end
  if spec.app ~= nil and type(spec.app) ~= "string" then return nil, "app must be a client_id string" end
  local key = spec.app or "*"
  M.rules[key] = { per_second = ps, burst = burst or math.max(1, ps), app = spec.app }
  -- a new rule starts with a full bucket
  for k in pairs(M.buckets) do
    if key == "*" or k == key then M.buckets[k] = nil end
  end
  return true
end

function M.list()
  return util.values(M.rules)
end

-- nil when the request may go on, else seconds to wait.
function M.take(app)
  if not app or next(M.rules) == nil then return nil end
  local rule = M.rules[app] or M.rules["*"]
  if not rule then return nil end
  ngx.update_time()
  local now = ngx.now()
  local b = M.buckets[app]
  if not b then
    b = { tokens = rule.burst, last = now }
    M.buckets[app] = b
  end
  b.tokens = math.min(rule.burst, b.tokens + (now - b.last) * rule.per_second)
  b.last = now
  if b.tokens >= 1 then
    b.tokens = b.tokens - 1
    return nil
  end
  return (1 - b.tokens) / rule.per_second
end

function M.response(req, wait)
  local secs = math.max(1, math.ceil(wait))
  return errors.graph(req, 429, "TooManyRequests", "Please retry again later.",
    { ["Retry-After"] = string.format("%d", secs) })
end

return M
