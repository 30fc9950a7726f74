-- Device code flow (RFC 8628 as Entra serves it): POST /{tenant}/oauth2/v2.0/devicecode, then
-- polling the token endpoint with grant_type=urn:ietf:params:oauth:grant-type:device_code.
-- The user is played by the admin API: /_emulator/devicecode/approve {user_code, user},
-- /decline {user_code}, /expire {user_code}, GET /_emulator/devicecode (the codes not redeemed).
-- settings.device_code_interval (5 s) and settings.device_code_lifetime (900 s); the test aid
-- settings.device_code_auto_approve {user, after_polls} (off) approves every code at a poll.
local state = require("state")
local util = require("util")
local log = require("log")

local M = {}

M.VERIFICATION_URI = "https://microsoft.com/devicelogin"

local by_device = {}   -- device_code -> record
local by_user = {}     -- user_code -> record

local function auth() return require("auth") end

local ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
local function user_code()
  while true do
    local b = {}
    for i = 1, 9 do
      local k = math.random(1, #ALPHABET)
      b[i] = ALPHABET:sub(k, k)
    end
    local c = table.concat(b)
    if not by_user[c] then return c end
  end
end

local function device_code()
  local b = {}
  for i = 1, 96 do b[i] = string.char(math.random(0, 255)) end
  return "DAQABIQEAAAB" .. util.b64url(table.concat(b))
end

local function interval() return tonumber(state.settings.device_code_interval) or 5 end

local function forget(rec)
  by_device[rec.device_code] = nil
  if by_user[rec.user_code] == rec then by_user[rec.user_code] = nil end
end

-- POST /{tenant}/oauth2/v2.0/devicecode
function M.endpoint(req, tenant_name)
  log.counters.token_requests = log.counters.token_requests + 1
  local a = auth()
  if req.method ~= "POST" then
    return a.entra_error(req, 400, "invalid_request", 900561,
      "The endpoint only accepts POST, OPTIONS requests. Received a " .. req.method .. " request.")
  end
  local form = a.read_form(req)
  local tenant = state.tenant(tenant_name)
  if not tenant and not a.MULTI_TENANT[tenant_name:lower()] then return a.tenant_not_found(req, tenant_name) end
  local client_id = form.client_id
  if not client_id or client_id == "" then return a.missing(req, "client_id") end
  req.token_client_id = client_id
  local app
  app, tenant = a.find_app(client_id, tenant, tenant_name)
  if not app then return a.app_not_found(req, client_id, tenant) end
  local scope = form.scope
  if not scope or scope == "" then return a.missing(req, "scope") end
  local scp, flags = a.delegated_scopes(req, app, scope)
  if not scp then return flags end
  local now = ngx.now()
  local lifetime = tonumber(state.settings.device_code_lifetime) or 900
  local rec = {
    device_code = device_code(), user_code = user_code(), client_id = client_id, tenant = tenant.id,
    scope = scope, scp = scp, flags = flags, created = now, exp = now + lifetime,
    interval = interval(), status = "pending",
  }
  by_device[rec.device_code] = rec
  by_user[rec.user_code] = rec
  return a.ok({
    user_code = rec.user_code,
    device_code = rec.device_code,
    verification_uri = M.VERIFICATION_URI,
    expires_in = math.floor(lifetime),
    interval = math.ceil(rec.interval),
    message = "To sign in, use a web browser to open the page " .. M.VERIFICATION_URI .. " and enter the code " ..
      rec.user_code .. " to authenticate.",
  })
end

-- The token endpoint's device_code grant (the client is already authenticated or public).
function M.poll(req, form, app, tenant)
  local a = auth()
  local code = form.device_code
  if not code or code == "" then return a.missing(req, "device_code") end
  local rec = by_device[code]
  if not rec or rec.client_id ~= app.client_id or rec.tenant ~= tenant.id then
    return a.entra_error(req, 400, "bad_verification_code", 70000,
      "The provided value for the input parameter 'device_code' is not valid.")
  end
  local now = ngx.now()
  if now >= rec.exp then
    forget(rec)
    return a.entra_error(req, 400, "expired_token", 70020,
      "The provided value for the input parameter 'device_code' is not valid. This device code has expired.")
  end
  local last = rec.last_poll
  rec.last_poll = now
  if last and now - last < rec.interval then
    return a.entra_error(req, 400, "slow_down", 50196,
      "The server terminated an operation because it encountered a client request loop. Please contact your app vendor. Poll at most once every " ..
      tostring(rec.interval) .. " seconds (the interval of the devicecode answer).")
  end
  if rec.status == "declined" then
    forget(rec)
    return a.entra_error(req, 400, "authorization_declined", 65004,
      "User declined to consent to access the app.")
  end
  local auto = state.settings.device_code_auto_approve
  if rec.status == "pending" and type(auto) == "table" then
    -- test aid: the user approves after `after_polls` pending answers
    rec.pending_polls = (rec.pending_polls or 0)
    local user = state.user(auto.user)
    if rec.pending_polls >= (auto.after_polls or 0) and user and user.tenant == rec.tenant then
      rec.status, rec.user_id = "approved", user.id
    end
  end
  if rec.status == "pending" then
    rec.pending_polls = (rec.pending_polls or 0) + 1
    return a.entra_error(req, 400, "authorization_pending", 70016,
      "OAuth 2.0 device flow error. Authorization is pending. Continue polling.")
  end
  forget(rec)   -- redeemed: the code is used up
  local user = state.s.users[rec.user_id]
  return a.user_token_response(req, tenant, app, user, rec.scp, rec.flags, rec.scope)
end

-- Admin ------------------------------------------------------------------------------------------
-- /_emulator/reset: the codes of a flow in progress go (tokens and refresh tokens stay).
function M.reset()
  by_device, by_user = {}, {}
end

local function find(body)
  if type(body.user_code) ~= "string" or body.user_code == "" then return nil, "user_code is required (a string)", 400 end
  local rec = by_user[body.user_code:upper()]
  if not rec then return nil, "user_code: no pending device code '" .. body.user_code .. "'", 404 end
  if rec.status ~= "pending" then return nil, "user_code: the code is already " .. rec.status, 409 end
  return rec
end

function M.approve(body)
  local rec, err, status = find(body)
  if not rec then return nil, err, status end
  if body.user == nil then return nil, "user (id or userPrincipalName) is required", 400 end
  local user = state.user(body.user)
  if not user or user.tenant ~= rec.tenant then
    return nil, "user: no user '" .. tostring(body.user) .. "' in the tenant of the code", 400
  end
  rec.status, rec.user_id = "approved", user.id
  return true
end

function M.decline(body)
  local rec, err, status = find(body)
  if not rec then return nil, err, status end
  rec.status = "declined"
  return true
end

function M.expire(body)
  if type(body.user_code) ~= "string" or body.user_code == "" then return nil, "user_code is required (a string)", 400 end
  local rec = by_user[body.user_code:upper()]
  if not rec then return nil, "user_code: no device code '" .. body.user_code .. "'", 404 end
  rec.exp = ngx.now()
  return true
end

function M.list()
  local out = {}
  for _, rec in pairs(by_user) do
    out[#out + 1] = {
      user_code = rec.user_code, client_id = rec.client_id, scope = rec.scope, status = rec.status,
      expires_on = math.floor(rec.exp), user = rec.user_id,
    }
  end
  table.sort(out, function(x, y) return x.user_code < y.user_code end)
  return out
end

return M
