-- Admin API under /_emulator/ (loopback only), JSON in and out.  See README "The emulator".
local json = require("json")
local state = require("state")
local log = require("log")
local faults = require("faults")
local ratelimit = require("ratelimit")

local M = {}

local function reply(status, body)
  return { status = status, json = body, admin = true }
end
local function bad(message)
  return reply(400, { error = { code = "badRequest", message = message } })
end

local function decode_body(req, allow_empty)
  local b = req.body or ""
  if b:match("^%s*$") then
    if allow_empty then return nil end
    return nil, "a JSON body is required"
  end
  local v, err = json.decode(b)
  if v == nil then return nil, "malformed JSON: " .. tostring(err) end
  if type(v) ~= "table" or json.is_array(v) then return nil, "the body must be a JSON object" end
  return v
end

-- A JSON object body where "{}" counts as an (empty) object (json.decode marks empty tables as arrays).
local function decode_object(req)
  if (req.body or ""):match("^%s*{%s*}%s*$") then return {} end
  return decode_body(req)
end

local SETTING_TYPES = {
  page_size = "number", max_top = "number", token_lifetime = "number", max_body_bytes = "number",
  app_can_list_user_activities = "boolean", external_id_spelling = "string",
  batch_throttled_status = "number", location_header = "boolean", rate_limit = "table",
  empty_pages = "number", next_link_loop = "boolean", activity_id_format = "string",
  latency = "table", batch_order = "string", batch_seed = "number", throttle = "table",
  -- sign-in (README "Sign-in")
  device_code_interval = "number", device_code_lifetime = "number", refresh_token_lifetime = "number",
  managed_identity_token_lifetime = "number", assertion_clock_skew = "number", reject_assertion_replay = "boolean",
  device_code_auto_approve = "table",
}
local SIGNIN_NUMBERS = { device_code_interval = 0, device_code_lifetime = 1, refresh_token_lifetime = 1,
  managed_identity_token_lifetime = 0, assertion_clock_skew = 0 }

local function finite(v) return type(v) == "number" and v == v and v > -math.huge and v < math.huge end

-- The throttling rules of the loaded seed (settings.throttle, then settings.rate_limit).
local function apply_seed_throttling()
  ratelimit.reset()
  if state.throttle then ratelimit.set_profile(state.throttle) end
  for _, r in ipairs(state.rate_limits or {}) do ratelimit.set(r) end
end

-- At start (init_by_lua, after state.init): the seed's rules are live from the first request.
function M.init()
  apply_seed_throttling()
end

function M.reset_all(seed)
  local ok, err = state.load(seed or state.default_seed)
  if not ok then return nil, err end
  log.reset()
  faults.reset()
  apply_seed_throttling()
  require("batch").reseed()
  require("devicecode").reset()
  return true
end

function M.handle(req, what, rest)
  local m = req.method
  if what == "health" and m == "GET" then
    return reply(200, { ok = true, pid = ngx.worker.pid(), seed = state.seed_file })
  elseif what == "reset" and m == "POST" then
    local seed, err = decode_body(req, true)
    if err then return bad(err) end
    local ok, lerr = M.reset_all(seed)
    if not ok then return bad("invalid seed: " .. lerr) end
    return reply(204)
  elseif what == "settings" and m == "GET" then
    return reply(200, state.settings)
  elseif what == "settings" and m == "POST" then
    local body, err = decode_body(req)
    if not body then return bad(err) end
    for k, v in pairs(body) do
      local t = SETTING_TYPES[k]
      if not t then return bad("unknown setting '" .. tostring(k) .. "'") end
      if v ~= json.null and type(v) ~= t then return bad("setting '" .. k .. "' must be a " .. t) end
    end
    for k, min in pairs(SIGNIN_NUMBERS) do
      local v = body[k]
      if v ~= nil and v ~= json.null and (not finite(v) or v < min) then
        return bad(k .. " must be a number of seconds >= " .. min)
      end
    end
    local auto = body.device_code_auto_approve
    if type(auto) == "table" then
      for k in pairs(auto) do
        if k ~= "user" and k ~= "after_polls" then
          return bad("unknown device_code_auto_approve field '" .. tostring(k) .. "' (user, after_polls)")
        end
      end
      local u = type(auto.user) == "string" and state.user(auto.user)
      if not u then return bad("device_code_auto_approve.user must name a seed user (id or userPrincipalName)") end
      if auto.after_polls ~= nil and (not finite(auto.after_polls) or auto.after_polls < 0 or auto.after_polls % 1 ~= 0) then
        return bad("device_code_auto_approve.after_polls must be an integer >= 0")
      end
    end
    if body.page_size and (body.page_size < 1 or body.page_size % 1 ~= 0) then return bad("page_size must be a positive integer") end
    if body.max_body_bytes and (body.max_body_bytes < 1 or body.max_body_bytes > 64 * 1024 * 1024) then
      return bad("max_body_bytes must be 1..67108864 (nginx's own cap)")
    end
    if body.external_id_spelling and not ({ any = 1, metadata = 1, docs = 1, both = 1 })[body.external_id_spelling] then
      return bad("external_id_spelling must be any, metadata, docs or both")
    end
    if body.latency and body.latency ~= json.null then
      local l, lerr = state.check_latency(body.latency)
      if not l then return bad(lerr) end
      body.latency = l
    end
    -- throttling: checked whole before anything is applied
    if body.throttle and body.throttle ~= json.null then
      local ok, terr = ratelimit.check_profile(body.throttle)
      if not ok then return bad(terr) end
    end
    if body.rate_limit and body.rate_limit ~= json.null then
      local list = json.is_array(body.rate_limit) and body.rate_limit or { body.rate_limit }
      for i, r in ipairs(list) do
        local _, rerr = ratelimit.check(r, #list > 1 and ("rate_limit[" .. i .. "].") or "rate_limit.")
        if rerr then return bad(rerr) end
      end
    end
    if body.batch_order and not ({ shuffled = 1, request = 1 })[body.batch_order] then
      return bad("batch_order must be shuffled or request")
    end
    if body.batch_seed and body.batch_seed ~= json.null and (not finite(body.batch_seed) or body.batch_seed % 1 ~= 0) then
      return bad("batch_seed must be an integer")
    end
    if body.activity_id_format and not ({ graph = 1, guid = 1 })[body.activity_id_format] then
      return bad("activity_id_format must be graph ({guid}:{guid}) or guid")
    end
    for k, v in pairs(body) do
      if k == "rate_limit" or k == "throttle" then
        -- not stored in settings: the live rules are GET /_emulator/rate_limit
      elseif v == json.null then
        state.settings[k] = state.DEFAULT_SETTINGS[k]
      else
        state.settings[k] = v
      end
    end
    -- the profile replaces every rule, then rate_limit rules add to it
    if body.throttle == json.null or body.rate_limit == json.null then ratelimit.reset() end
    if type(body.throttle) == "table" then ratelimit.set_profile(body.throttle) end
    if type(body.rate_limit) == "table" then
      for _, r in ipairs(json.is_array(body.rate_limit) and body.rate_limit or { body.rate_limit }) do ratelimit.set(r) end
    end
    if body.batch_seed ~= nil then require("batch").reseed() end
    return reply(204)
  elseif what == "faults" then
    if m == "POST" and not rest then
      local body, err = decode_body(req)
      if not body then return bad(err) end
      local r, ferr = faults.add(body)
      if not r then return bad(ferr) end
      return reply(201, { id = r.id })
    elseif m == "GET" and not rest then
      return reply(200, { value = faults.list() })
    elseif m == "DELETE" and not rest then
      faults.reset()
      return reply(204)
    elseif m == "DELETE" and rest then
      if faults.remove(tonumber(rest)) then return reply(204) end
      return reply(404, { error = { code = "notFound", message = "no fault rule " .. rest } })
    end
  elseif what == "rate_limit" then
    if m == "POST" then
      local body, err = decode_body(req)
      if not body then return bad(err) end
      local ok, rerr = ratelimit.set(body)
      if not ok then return bad(rerr) end
      return reply(204)
    elseif m == "DELETE" then
      ratelimit.reset()
      return reply(204)
    elseif m == "GET" then
      return reply(200, { value = json.array(ratelimit.list()) })
    end
  elseif what == "log" then
    if m == "GET" then
      local since = tonumber(req.qmap.since or "0") or 0
      return reply(200, { value = json.array(log.since(since)), last_seq = log.seq })
    elseif m == "DELETE" then
      log.entries, log.first = {}, 1
      return reply(204)
    end
  elseif what == "counters" then
    if m == "GET" then
      return reply(200, log.counters)
    elseif m == "DELETE" then
      log.counters = { creates = {}, requests = 0, tokens = 0, token_requests = 0, conflicts = 0 }
      return reply(204)
    end
  elseif what == "expire_tokens" and m == "POST" then
    state.token_gen = state.token_gen + 1
    return reply(204)
  elseif what == "devicecode" and (m == "GET" and not rest) then
    return reply(200, { value = json.array(require("devicecode").list()) })
  elseif what == "devicecode" and m == "POST" and (rest == "approve" or rest == "decline" or rest == "expire") then
    local body, err = decode_object(req)
    if not body then return bad(err) end
    local ok, derr, status = require("devicecode")[rest](body)
    if not ok then return reply(status or 400, { error = { code = status == 404 and "notFound" or (status == 409 and "conflict" or "badRequest"), message = derr } }) end
    return reply(204)
  elseif what == "refresh_tokens" and m == "POST" and (rest == "revoke" or rest == "expire") then
    local body, err = decode_object(req)
    if not body then return bad(err) end
    local n, rerr, status = require("refresh")[rest](body)
    if not n then return reply(status or 400, { error = { code = status == 404 and "notFound" or "badRequest", message = rerr } }) end
    return reply(200, { [rest == "revoke" and "revoked" or "expired"] = n })
  elseif what == "federated_token" and m == "POST" then
    local body, err = decode_object(req)
    if not body then return bad(err) end
    local r, merr = require("assertion").mint(body)
    if not r then return bad(merr) end
    return reply(200, r)
  elseif what == "state" and m == "GET" then
    local s = state.s
    local n = 0
    for _ in pairs(s.activities) do n = n + 1 end
    return reply(200, { activities = n, providers = #s.provider_list })
  else
    local known = { health = 1, reset = 1, settings = 1, faults = 1, rate_limit = 1, log = 1, counters = 1, expire_tokens = 1, state = 1,
      devicecode = 1, refresh_tokens = 1, federated_token = 1 }
    if known[what] then
      return reply(405, { error = { code = "methodNotAllowed", message = m .. " is not supported on /_emulator/" .. what } })
    end
  end
  return reply(404, { error = { code = "notFound", message = "unknown admin endpoint /_emulator/" .. tostring(what) } })
end

return M
