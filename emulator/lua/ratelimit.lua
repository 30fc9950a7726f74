-- Throttling: token buckets like Graph's limit scopes (README "Throttling").
-- A rule: {scope = "app" | "tenant", per_second, burst?, app?, tenant?}.
--   scope "app" (the default, and the only scope of older rules): one bucket per app (client_id);
--   scope "tenant": one bucket per tenant, shared by every app of that tenant.
--   app / tenant: the rule applies to that app / tenant only (it wins over the scope's rule without one).
-- A request takes one token from the bucket of every scope that has a rule for it, or none at all
-- when one of them is empty; each $batch step is a request, the envelope is not.
-- Rules come from POST /_emulator/rate_limit, settings.rate_limit (a rule or a list) and
-- settings.throttle (the profile: {app = {per_second, burst}, tenant = {...}}).
local errors = require("errors")
local json = require("json")

local M = {}
M.rules = {}      -- key ("app|<client_id or *>", "tenant|<tenant or *>") -> rule
M.buckets = {}    -- rule key .. "#" .. subject -> { tokens, last }

local SCOPES = { "app", "tenant" }
local SCOPE_OK = { app = true, tenant = true }
local FIELDS = { scope = true, per_second = true, burst = true, app = true, tenant = true }

function M.reset()
  M.rules = {}
  M.buckets = {}
end

local function finite(v) return type(v) == "number" and v == v and v > -math.huge and v < math.huge end

-- Checks a rule; returns it normalized, or nil and a message naming the field (prefix: where it came from).
function M.check(spec, prefix)
  prefix = prefix or ""
  if type(spec) ~= "table" or json.is_array(spec) then return nil, prefix .. "a rate-limit rule must be an object" end
  for k in pairs(spec) do
    if not FIELDS[k] then return nil, "unknown rate-limit field '" .. prefix .. tostring(k) .. "' (scope, per_second, burst, app, tenant)" end
  end
  local scope = spec.scope == nil and "app" or spec.scope
  if not SCOPE_OK[scope] then return nil, prefix .. "scope must be app or tenant" end
  local ps = spec.per_second
  if not finite(ps) or ps <= 0 then return nil, prefix .. "per_second must be a positive number" end
  local burst = spec.burst
  if burst ~= nil and (not finite(burst) or burst < 1) then return nil, prefix .. "burst must be a number >= 1" end
  if spec.app ~= nil and type(spec.app) ~= "string" then return nil, prefix .. "app must be a client_id string" end
  if spec.tenant ~= nil and type(spec.tenant) ~= "string" then return nil, prefix .. "tenant must be a tenant id string" end
  if scope == "app" and spec.tenant ~= nil then return nil, prefix .. "tenant goes with scope tenant, not app" end
  if scope == "tenant" and spec.app ~= nil then return nil, prefix .. "app goes with scope app, not tenant" end
  return { scope = scope, per_second = ps, burst = burst or math.max(1, ps), app = spec.app, tenant = spec.tenant }
end

local function rule_key(scope, app, tenant)
  if scope == "tenant" then return "tenant|" .. (tenant or "*") end
  return "app|" .. (app or "*")
end

-- Adds (or replaces) a rule; returns true or nil, message.
function M.set(spec, prefix)
  local rule, err = M.check(spec, prefix)
  if not rule then return nil, err end
  local key = rule_key(rule.scope, rule.app, rule.tenant)
  rule.key = key
  M.rules[key] = rule
  -- A new rule starts with full buckets: its own, and for a rule without app/tenant, every bucket
  -- of its scope (as before: a rule for every app refills every app's bucket).
  local prefix = (rule.app or rule.tenant) and (key .. "#") or (rule.scope .. "|")
  for k in pairs(M.buckets) do
    if k:sub(1, #prefix) == prefix then M.buckets[k] = nil end
  end
  return true
end

-- settings.throttle: {app = {per_second, burst?}, tenant = {...}} replaces every rule.
function M.check_profile(p)
  if type(p) ~= "table" or json.is_array(p) then return nil, "setting 'throttle' must be an object {app = {...}, tenant = {...}}" end
  for k, v in pairs(p) do
    if not SCOPE_OK[k] then return nil, "unknown throttle scope 'throttle." .. tostring(k) .. "' (app, tenant)" end
    if type(v) ~= "table" or json.is_array(v) then return nil, "throttle." .. k .. " must be an object {per_second, burst}" end
    if v.scope ~= nil or v.app ~= nil or v.tenant ~= nil then
      return nil, "throttle." .. k .. " takes per_second and burst only"
    end
    local _, err = M.check(v, "throttle." .. k .. ".")
    if err then return nil, err end
  end
  return true
end

function M.set_profile(p)
  local ok, err = M.check_profile(p)
  if not ok then return nil, err end
  M.reset()
  for _, scope in ipairs(SCOPES) do
    local v = p[scope]
    if v then M.set({ scope = scope, per_second = v.per_second, burst = v.burst }) end
  end
  return true
end

function M.list()
  local out = {}
  for _, r in pairs(M.rules) do
    out[#out + 1] = { scope = r.scope, per_second = r.per_second, burst = r.burst, app = r.app, tenant = r.tenant }
  end
  table.sort(out, function(a, b) return (a.scope .. (a.app or a.tenant or "")) < (b.scope .. (b.app or b.tenant or "")) end)
  return out
end

-- nil when the request may go on, else the seconds to wait and the scope that is empty.
-- principal: {client_id, tenant}.  No yield between the checks and the takes.
function M.take(principal)
  if not principal or next(M.rules) == nil then return nil end
  local app, tenant = principal.client_id, principal.tenant
  local now
  local picked, n = {}, 0
  for _, scope in ipairs(SCOPES) do
    local subject = scope == "tenant" and tenant or app
    local rule = subject and (M.rules[rule_key(scope, app, tenant)] or M.rules[scope .. "|*"])
    if rule then
      if not now then ngx.update_time(); now = ngx.now() end
      local bkey = rule.key .. "#" .. subject
      local b = M.buckets[bkey]
      if not b then
        b = { tokens = rule.burst, last = now }
        M.buckets[bkey] = b
      end
      b.tokens = math.min(rule.burst, b.tokens + (now - b.last) * rule.per_second)
      b.last = now
      n = n + 1
      picked[n] = { b, rule }
    end
  end
  local wait, empty
  for i = 1, n do
    local b, rule = picked[i][1], picked[i][2]
    if b.tokens < 1 then
      local w = (1 - b.tokens) / rule.per_second
      if not wait or w > wait then wait, empty = w, rule.scope end
    end
  end
  if wait then return wait, empty end
  for i = 1, n do picked[i][1].tokens = picked[i][1].tokens - 1 end
  return nil
end

-- Graph's 429: Retry-After in whole seconds (rounded up, at least 1).
function M.response(req, wait)
  local secs = math.max(1, math.ceil(wait))
  return errors.graph(req, 429, "TooManyRequests", "Please retry again later.",
    { ["Retry-After"] = string.format("%d", secs) })
end

return M
