-- The token endpoint (POST /{tenant}/oauth2/v2.0/token, Entra-shaped) and bearer-token checks.
local json = require("json")
local util = require("util")
local state = require("state")
local log = require("log")
local errors = require("errors")

local M = {}

local GRAPH_RESOURCE = "https://graph.microsoft.com"
local GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"

-- extra: more body fields (suberror, ...)
local function entra_error(req, status, err, code, text, extra)
  local trace = req.request_id or util.uuid()   -- the same GUID as x-ms-request-id, as Entra does
  local corr = req.headers["client-request-id"] or util.uuid()
  local ts = util.entra_now()
  local r = {
    status = status,
    headers = { ["Cache-Control"] = "no-store, no-cache", Pragma = "no-cache" },
    json = {
      error = err,
      error_description = string.format("AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s",
        code, text, trace, corr, ts),
      error_codes = json.array({ code }),
      timestamp = ts,
      trace_id = trace,
      correlation_id = corr,
      error_uri = "https://login.microsoftonline.com/error?code=" .. code,
    },
    entra = true,
  }
  for k, v in pairs(extra or {}) do r.json[k] = v end
  return r
end
M.entra_error = entra_error

local function missing(req, name)
  return entra_error(req, 400, "invalid_request", 900144,
    "The request body must contain the following parameter: '" .. name .. "'.")
end

local function make_token(claims)
  local header = util.b64url('{"typ":"JWT","alg":"RS256","kid":"viva-emulator"}')
  local payload = util.b64url(json.encode(claims))
  local sig = {}
  for i = 1, 32 do sig[i] = string.char(math.random(0, 255)) end
  return header .. "." .. payload .. "." .. util.b64url(table.concat(sig))
end

local function split_scopes(s)
  local out = {}
  for w in s:gmatch("%S+") do out[#out + 1] = w end
  return out
end

-- The delegated scopes an app may have for `scope` (space-separated; Graph scopes short or as
-- https://graph.microsoft.com/X, `.default` = every scope of the app; OIDC scopes pass and are
-- reported in flags).  Returns list, flags or nil, error response (AADSTS65001).
function M.delegated_scopes(req, app, scope)
  local allowed = {}
  for _, s in ipairs(app.scopes or {}) do allowed[s:lower()] = s end
  local scp, flags, seen = {}, {}, {}
  local function add(s) if not seen[s] then seen[s] = true; scp[#scp + 1] = s end end
  for _, w in ipairs(split_scopes(scope)) do
    local lw = w:lower()
    local short = lw:gsub("^https://graph%.microsoft%.com/", "")
    if short == ".default" then
      for _, s in ipairs(app.scopes or {}) do add(s) end
    elseif short == "openid" or short == "profile" or short == "offline_access" or short == "email" then
      flags[short] = true   -- OpenID scopes: accepted, not Graph permissions
    elseif allowed[short] then
      add(allowed[short])
    else
      return nil, entra_error(req, 400, "invalid_grant", 65001,
        "The user or administrator has not consented to use the application with ID '" .. app.client_id ..
        "' named '" .. tostring(app.name) .. "'. Send an interactive authorization request for this user and resource.")
    end
  end
  return scp, flags
end

local function perm_set(claims)
  local set = {}
  if claims.roles then for _, r in ipairs(claims.roles) do set[r] = true end end
  if claims.scp then for w in claims.scp:gmatch("%S+") do set[w] = true end end
  return set
end

local function base_claims(tenant, app, lifetime)
  local now = ngx.now()
  return {
    aud = GRAPH_RESOURCE, iss = "https://sts.windows.net/" .. tenant.id .. "/",
    iat = math.floor(now), nbf = math.floor(now), exp = math.floor(now + lifetime),
    appid = app.client_id, app_displayname = app.name, tid = tenant.id, ver = "1.0",
    uti = util.uuid(),
  }
end

-- Records an access token the Graph side will accept.
local function store(token, claims)
  state.tokens[token] = {
    client_id = claims.appid, tenant = claims.tid, exp = claims.exp, gen = state.token_gen,
    kind = claims.idtyp, user_id = claims.idtyp == "user" and claims.oid or nil,
    perms = perm_set(claims),
  }
  log.counters.tokens = log.counters.tokens + 1
end

-- An app-only access token (client credentials, managed identity): token, claims.
function M.issue_app_token(tenant, app, lifetime)
  local claims = base_claims(tenant, app, lifetime)
  claims.idtyp = "app"
  claims.oid = app.managed_identity and app.managed_identity.object_id or util.uuid()
  claims.roles = json.array(util.copy(app.roles or {}))
  local token = make_token(claims)
  store(token, claims)
  return token, claims
end

-- The 200 answer of a delegated grant (password, device code, refresh token): a token for `user`
-- with the scopes `scp`; a refresh token when offline_access was asked for (or always, for the
-- refresh grant: rotation), an id_token when openid was.
function M.user_token_response(req, tenant, app, user, scp, flags, requested_scope, always_refresh)
  local lifetime = tonumber(state.settings.token_lifetime) or 3599
  local claims = base_claims(tenant, app, lifetime)
  claims.idtyp = "user"
  claims.oid = user.id
  claims.upn = user.userPrincipalName
  claims.scp = table.concat(scp, " ")
  local token = make_token(claims)
  store(token, claims)
  local body = {
    token_type = "Bearer", scope = claims.scp, expires_in = lifetime, ext_expires_in = lifetime, access_token = token,
  }
  if flags.offline_access or always_refresh then
    body.refresh_token = require("refresh").issue(app, tenant, user, requested_scope)
  end
  if flags.openid then
    body.id_token = make_token({
      aud = app.client_id, iss = "https://login.microsoftonline.com/" .. tenant.id .. "/v2.0",
      iat = claims.iat, nbf = claims.nbf, exp = claims.exp, oid = user.id, sub = user.id, tid = tenant.id,
      preferred_username = user.userPrincipalName, name = user.displayName or user.userPrincipalName, ver = "2.0",
    })
  end
  return M.ok(body)
end

function M.ok(body)
  return {
    status = 200, json = body, entra = true,
    headers = { ["Cache-Control"] = "no-store, no-cache", Pragma = "no-cache" },
  }
end

-- /organizations and /common: the delegated flows (device code, refresh, ROPC on /organizations)
-- take the tenant of the app (every seeded app is single-tenant).
M.MULTI_TENANT = { organizations = "organizations", common = "common" }

-- The app of client_id in tenant (or, for /organizations and /common, in its own tenant):
-- app, tenant; or nil, the tenant to name in AADSTS700016.
function M.find_app(client_id, tenant, tenant_name)
  local app = state.s.apps[client_id]
  if app and app.managed_identity then app = nil end
  if not tenant then
    if app then return app, state.s.tenants[app.tenant] end
    return nil, { id = tenant_name }
  end
  if not app or app.tenant ~= tenant.id then return nil, tenant end
  return app, tenant
end

local DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
M.DEVICE_CODE_GRANT = DEVICE_CODE_GRANT
local GRANTS = { client_credentials = true, password = true, refresh_token = true, [DEVICE_CODE_GRANT] = true }

-- Client authentication of a token request: nil when the client is authenticated (or is a
-- public client that needs none), else the error response.
local function authenticate_client(req, form, app, tenant, grant, secret)
  if form.client_assertion ~= nil or form.client_assertion_type ~= nil then
    if app.public_client then
      return entra_error(req, 401, "invalid_client", 700025,
        "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.")
    end
    return require("assertion").check(req, form, app, tenant)
  end
  if not secret or secret == "" then
    if app.public_client and grant ~= "client_credentials" then return nil end
    return entra_error(req, 401, "invalid_client", 7000218,
      "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
  end
  if app.public_client then
    return entra_error(req, 401, "invalid_client", 700025,
      "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.")
  end
  if secret ~= app.client_secret then
    return entra_error(req, 401, "invalid_client", 7000215,
      "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '" .. app.client_id .. "'.")
  end
  return nil
end

local function tenant_not_found(req, tenant_name)
  return entra_error(req, 400, "invalid_request", 90002,
    "Tenant '" .. tenant_name .. "' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.")
end
M.tenant_not_found = tenant_not_found

local function app_not_found(req, client_id, tenant)
  return entra_error(req, 400, "unauthorized_client", 700016,
    "Application with identifier '" .. client_id .. "' was not found in the directory '" ..
    (tenant.domain or tenant.id) .. "'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.")
end
M.app_not_found = app_not_found
M.missing = missing

-- Reads a form-encoded body (an empty table for any other content type).
function M.read_form(req)
  local ct = (req.headers["content-type"] or "")
  if type(ct) == "table" then ct = ct[1] end
  if ct:lower():find("^application/x%-www%-form%-urlencoded") then return util.parse_form(req.body) end
  return {}
end

-- POST /{tenant}/oauth2/v2.0/token
function M.token_endpoint(req, tenant_name)
  log.counters.token_requests = log.counters.token_requests + 1
  if req.method ~= "POST" then
    return entra_error(req, 400, "invalid_request", 900561,
      "The endpoint only accepts POST, OPTIONS requests. Received a " .. req.method .. " request.")
  end
  local form = M.read_form(req)
  req.tenant_segment = tenant_name
  local tenant = state.tenant(tenant_name)
  local multi = M.MULTI_TENANT[tenant_name:lower()]
  if not tenant and not multi then return tenant_not_found(req, tenant_name) end
  local grant = form.grant_type
  if not grant or grant == "" then return missing(req, "grant_type") end
  if not GRANTS[grant] then
    return entra_error(req, 400, "unsupported_grant_type", 70003,
      "The app requested an unsupported grant type '" .. grant .. "'.")
  end
  if not tenant and (grant == "client_credentials" or (grant == "password" and multi ~= "organizations")) then
    return entra_error(req, 400, "invalid_request", 9001023,
      "The grant type isn't supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint.")
  end
  local client_id, secret = form.client_id, form.client_secret
  local basic = (req.headers.authorization or ""):match("^[Bb]asic%s+(%S+)")
  if basic then
    local dec = ngx.decode_base64(basic) or ""
    local u, p = dec:match("^([^:]*):(.*)$")
    if u then
      client_id = client_id or util.form_decode(u)
      secret = secret or util.form_decode(p)
    end
  end
  if not client_id or client_id == "" then return missing(req, "client_id") end
  req.token_client_id = client_id
  local app
  app, tenant = M.find_app(client_id, tenant, tenant_name)
  if not app then return app_not_found(req, client_id, tenant) end
  if app.disabled then
    return entra_error(req, 400, "unauthorized_client", 7000112, "Application '" .. client_id .. "' is disabled.")
  end
  local cerr = authenticate_client(req, form, app, tenant, grant, secret)
  if cerr then return cerr end

  if grant == DEVICE_CODE_GRANT then return require("devicecode").poll(req, form, app, tenant) end
  if grant == "refresh_token" then return require("refresh").redeem(req, form, app, tenant) end

  local scope = form.scope
  if not scope or scope == "" then return missing(req, "scope") end
  if grant == "client_credentials" then
    local sl = scope:lower()
    if sl ~= GRAPH_RESOURCE .. "/.default" and sl ~= GRAPH_RESOURCE .. "//.default" and sl ~= GRAPH_APP_ID .. "/.default" then
      return entra_error(req, 400, "invalid_scope", 70011,
        "The provided value for the input parameter 'scope' is not valid. The scope " .. scope .. " is not valid.")
    end
    local lifetime = tonumber(state.settings.token_lifetime) or 3599
    local token = M.issue_app_token(tenant, app, lifetime)
    return M.ok({ token_type = "Bearer", expires_in = lifetime, ext_expires_in = lifetime, access_token = token })
  end
  -- password (ROPC)
  local username, password = form.username, form.password
  if not username or username == "" then return missing(req, "username") end
  if not password or password == "" then return missing(req, "password") end
  local user = state.user(username)
  if not user or user.tenant ~= tenant.id or not user.password or user.password ~= password then
    return entra_error(req, 400, "invalid_grant", 50126,
      "Error validating credentials due to invalid username or password.")
  end
  if user.mfa == "required" then
    return entra_error(req, 400, "invalid_grant", 50076,
      "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '" .. GRAPH_APP_ID .. "'.")
  elseif user.mfa == "registration" then
    return entra_error(req, 400, "invalid_grant", 50079,
      "Due to a configuration change made by your administrator, or because you moved to a new location, you must enroll in multi-factor authentication to access '" .. GRAPH_APP_ID .. "'.")
  end
  local scp, flags = M.delegated_scopes(req, app, scope)
  if not scp then return flags end
  return M.user_token_response(req, tenant, app, user, scp, flags, scope)
end

-- Checks the bearer token: returns a principal, or nil and a 401 response.
function M.authenticate(req)
  local h = req.headers.authorization
  if type(h) == "table" then h = h[1] end
  if not h or h:match("^%s*$") then
    return nil, errors.unauthenticated(req, "Access token is empty.")
  end
  local tok = h:match("^[Bb]earer%s+(%S+)%s*$")
  if not tok then
    return nil, errors.unauthenticated(req, "Access token is empty.")
  end
  if not tok:match("^[%w_%-]+%.[%w_%-]+%.[%w_%-]*$") then
    return nil, errors.unauthenticated(req, "CompactToken parsing failed with error code: 80049217")
  end
  local t = state.tokens[tok]
  if not t or not state.s.apps[t.client_id] then
    return nil, errors.unauthenticated(req, "Access token validation failure. Invalid audience.")
  end
  if t.gen ~= state.token_gen or t.exp <= ngx.now() then
    return nil, errors.unauthenticated(req, "Lifetime validation failed, the token is expired.")
  end
  return t
end

-- Permission sets of graph-api.md §1.0.  `app` and `user` list the roles (application) or scopes
-- (delegated) of which one is enough; nil means "not supported" for that kind of token.
M.P = {
  assignment_read = {
    app = { "LearningAssignedCourse.Read.All", "LearningAssignedCourse.ReadWrite.All" },
    user = { "LearningAssignedCourse.Read", "LearningAssignedCourse.Read.All", "LearningAssignedCourse.ReadWrite.All" },
  },
  self_initiated_read = {
    app = { "LearningSelfInitiatedCourse.Read.All", "LearningSelfInitiatedCourse.ReadWrite.All" },
    user = { "LearningSelfInitiatedCourse.Read", "LearningSelfInitiatedCourse.Read.All", "LearningSelfInitiatedCourse.ReadWrite.All" },
  },
  assignment_write = { app = { "LearningAssignedCourse.ReadWrite.All" } },
  self_initiated_write = { app = { "LearningSelfInitiatedCourse.ReadWrite.All" } },
  provider_read = { user = { "LearningProvider.Read", "LearningProvider.ReadWrite" } },
  provider_write = { user = { "LearningProvider.ReadWrite" } },
  content_read = {
    app = { "LearningContent.Read.All", "LearningContent.ReadWrite.All" },
    user = { "LearningContent.Read.All", "LearningContent.ReadWrite.All" },
  },
  content_write = { app = { "LearningContent.ReadWrite.All" } },
}

function M.allowed(principal, perm)
  local list = perm[principal.kind == "user" and "user" or "app"]
  if not list then return false end
  for _, p in ipairs(list) do
    if principal.perms[p] then return true end
  end
  return false
end

-- True when the principal may read at least one family of activities.
function M.can_read_any_activity(principal)
  return M.allowed(principal, M.P.assignment_read) or M.allowed(principal, M.P.self_initiated_read)
end

function M.can_read_activity(principal, kind)
  return M.allowed(principal, kind == "self_initiated" and M.P.self_initiated_read or M.P.assignment_read)
end

function M.can_write_activity(principal, kind)
  return M.allowed(principal, kind == "self_initiated" and M.P.self_initiated_write or M.P.assignment_write)
end

return M
