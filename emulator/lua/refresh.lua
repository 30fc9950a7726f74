-- Refresh tokens (grant_type=refresh_token).  Issued with delegated tokens when the scope has
-- offline_access (password, device code) and on every refresh (rotation: each answer carries a
-- new refresh token; the one used stays valid, as entra-signin.md §6.2 says of Entra).
-- Lifetime: settings.refresh_token_lifetime (90 days, Entra's default for non-SPA clients).
-- Admin: revoke (AADSTS50173, suberror bad_token) or expire (AADSTS700082) tokens by user or value.
local state = require("state")
local util = require("util")

local M = {}

local seq = 0
local revoked_upto = {}     -- user id -> seq: tokens of that user issued at or before it are revoked

local function auth() return require("auth") end

local function random_token()
  local b = {}
  for i = 1, 48 do b[i] = string.char(math.random(0, 255)) end
  return "1.AQ" .. util.b64url(table.concat(b))
end

-- A new refresh token for (app, user) with the scope asked for (kept for refreshes without scope).
function M.issue(app, tenant, user, scope)
  seq = seq + 1
  local now = ngx.now()
  local token = random_token()
  state.refresh_tokens[token] = {
    client_id = app.client_id, tenant = tenant.id, user_id = user.id, scope = scope, seq = seq,
    issued = now, exp = now + (tonumber(state.settings.refresh_token_lifetime) or 7776000),
  }
  return token
end

local function invalid_grant(req, code, text, extra)
  return auth().entra_error(req, 400, "invalid_grant", code, text, extra)
end

local function malformed(req)
  return invalid_grant(req, 9002313, "Invalid request. Request is malformed or invalid.")
end

function M.redeem(req, form, app, tenant)
  local a = auth()
  local value = form.refresh_token
  if not value or value == "" then return a.missing(req, "refresh_token") end
  local rec = state.refresh_tokens[value]
  -- a token of another app or tenant is no token at all for this one
  if not rec or rec.client_id ~= app.client_id or rec.tenant ~= tenant.id then return malformed(req) end
  local user = state.s.users[rec.user_id]
  if not user then return malformed(req) end
  if rec.revoked or rec.seq <= (revoked_upto[rec.user_id] or 0) then
    return invalid_grant(req, 50173,
      "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '" ..
      os.date("!%Y-%m-%dT%H:%M:%S", math.floor(rec.issued)) .. ".0000000Z' and the TokensValidFrom date (before which tokens are not valid) for this user is '" ..
      os.date("!%Y-%m-%dT%H:%M:%S", math.floor(rec.revoked_at or ngx.now())) .. ".0000000Z'.", { suberror = "bad_token" })
  end
  if rec.expired or ngx.now() >= rec.exp then
    local days = (tonumber(state.settings.refresh_token_lifetime) or 7776000) / 86400
    return invalid_grant(req, 700082, string.format(
      "The refresh token has expired due to inactivity. The token was issued on %s and was inactive for %d.00:00:00.",
      os.date("!%Y-%m-%dT%H:%M:%S", math.floor(rec.issued)) .. ".0000000Z", math.floor(days)))
  end
  local scope = form.scope
  if not scope or scope == "" then scope = rec.scope end
  local scp, flags = a.delegated_scopes(req, app, scope)
  if not scp then return flags end
  return a.user_token_response(req, tenant, app, user, scp, flags, scope, true)
end

-- Selects tokens by body {user (id or UPN)} or {refresh_token}; returns list or nil, message.
local function select(body)
  if body.refresh_token ~= nil then
    if type(body.refresh_token) ~= "string" then return nil, "refresh_token must be a string" end
    local rec = state.refresh_tokens[body.refresh_token]
    if not rec then return nil, "refresh_token: no such refresh token", 404 end
    return { rec }
  end
  if body.user == nil then return nil, "user (id or userPrincipalName) or refresh_token is required" end
  local user = state.user(body.user)
  if not user then return nil, "user: no user '" .. tostring(body.user) .. "' in the seed", 404 end
  local out = {}
  for _, rec in pairs(state.refresh_tokens) do
    if rec.user_id == user.id then out[#out + 1] = rec end
  end
  return out, user
end

-- POST /_emulator/refresh_tokens/revoke: as revokeSignInSessions (by user: every token issued so far).
function M.revoke(body)
  local list, user, status = select(body)
  if not list then return nil, user, status end
  local now = ngx.now()
  for _, rec in ipairs(list) do rec.revoked = true; rec.revoked_at = now end
  if body.refresh_token == nil then revoked_upto[user.id] = seq end
  return #list
end

-- POST /_emulator/refresh_tokens/expire: the tokens answer as if past their lifetime.
function M.expire(body)
  local list, err, status = select(body)
  if not list then return nil, err, status end
  for _, rec in ipairs(list) do rec.expired = true end
  return #list
end

return M
