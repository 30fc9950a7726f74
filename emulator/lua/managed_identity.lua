-- The two managed-identity token endpoints, on the emulator's loopback ports:
--   IMDS (VMs):   GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=R   Metadata: true
--                 (a client reaches it with AZURE_POD_IDENTITY_AUTHORITY_HOST=$VIVA_EMU_IMDS)
--   App Service:  GET /msi/token?resource=R&api-version=2019-08-01   X-IDENTITY-HEADER: <secret>
--                 (IDENTITY_ENDPOINT=$VIVA_EMU_IDENTITY_ENDPOINT, IDENTITY_HEADER=$VIVA_EMU_IDENTITY_HEADER)
-- Identities are seed apps with a managed_identity {type, object_id, msi_res_id}; the system-assigned
-- one answers when no selector is given.  Tokens are app-only Graph tokens with the identity's roles.
local state = require("state")
local util = require("util")
local log = require("log")

local M = {}

local GRAPH = { ["https://graph.microsoft.com"] = true, ["https://graph.microsoft.com/"] = true,
                ["00000003-0000-0000-c000-000000000000"] = true }

local identity_header
-- The App Service secret: DIR/identity-header, written by emulator/run.
function M.identity_header()
  if identity_header == nil then
    local f = io.open((rawget(_G, "EMU_DIR") or ".") .. "/identity-header", "rb")
    identity_header = f and (f:read("*a"):gsub("%s+$", "")) or false
    if f then f:close() end
  end
  return identity_header
end

local function first(v) if type(v) == "table" then return v[1] end return v end

local function lifetime() return tonumber(state.settings.managed_identity_token_lifetime) or 86399 end

-- The identity a request selects (selectors: a list of {query name, index}); nil, "unknown" | "several".
local function select(q, names)
  local given = {}
  for _, n in ipairs(names) do
    if q[n[1]] ~= nil and q[n[1]] ~= "" then given[#given + 1] = n end
  end
  if #given > 1 then return nil, "several" end
  local s = state.s
  if #given == 0 then return s.mi_system, s.mi_system and nil or "unknown" end
  local n = given[1]
  local v = q[n[1]]
  local app
  if n[2] == "client_id" then
    app = s.apps[v] or s.apps[v:lower()]
    if app and not app.managed_identity then app = nil end
  elseif n[2] == "object_id" then
    app = s.mi_by_object[v:lower()]
  else
    app = s.mi_by_res[v:lower()]
  end
  if not app then return nil, "unknown" end
  return app
end

local function issue(app)
  local tenant = state.s.tenants[app.tenant]
  local life = lifetime()
  local token, claims = require("auth").issue_app_token(tenant, app, life)
  return token, claims, life
end

local function imds_error(status, err, desc)
  return { status = status, json = { error = err, error_description = desc }, entra = true }
end

function M.imds(req)
  log.counters.token_requests = log.counters.token_requests + 1
  if req.method ~= "GET" then
    return imds_error(405, "invalid_request", "The HTTP method " .. req.method .. " is not allowed: use GET.")
  end
  if first(req.headers["metadata"]) ~= "true" then
    return imds_error(400, "bad_request_102", "Required metadata header not specified")
  end
  local q = req.qmap
  if not q["api-version"] or q["api-version"] == "" then
    return imds_error(400, "invalid_request", "Required query variable 'api-version' is missing")
  end
  if not q.resource or q.resource == "" then
    return imds_error(400, "invalid_request", "Required audience parameter not specified")
  end
  local app, why = select(q, { { "client_id", "client_id" }, { "object_id", "object_id" }, { "msi_res_id", "msi_res_id" } })
  if why == "several" then
    return imds_error(400, "invalid_request", "Only one of client_id, object_id and msi_res_id may be specified")
  end
  if not app then return imds_error(400, "invalid_request", "Identity not found") end
  req.token_client_id = app.client_id
  if not GRAPH[q.resource:lower()] then
    local tenant = state.s.tenants[app.tenant]
    return imds_error(400, "invalid_resource", "AADSTS50001: The application named " .. q.resource ..
      " was not found in the tenant named " .. tostring(tenant and (tenant.domain or tenant.id)) ..
      ". This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.")
  end
  local token, claims, life = issue(app)
  local body = {
    access_token = token, refresh_token = "", expires_in = tostring(life), expires_on = tostring(claims.exp),
    ext_expires_in = tostring(life), not_before = tostring(claims.nbf), resource = q.resource, token_type = "Bearer",
    client_id = app.client_id,
  }
  if q.object_id and q.object_id ~= "" then body.object_id = app.managed_identity.object_id end
  if q.msi_res_id and q.msi_res_id ~= "" then body.msi_res_id = app.managed_identity.msi_res_id end
  return { status = 200, json = body, entra = true }
end

local function appsvc_error(status, message)
  return { status = status, json = { statusCode = status, message = message, correlationId = util.uuid() }, entra = true }
end

function M.app_service(req)
  log.counters.token_requests = log.counters.token_requests + 1
  if req.method ~= "GET" then return appsvc_error(405, "The HTTP method " .. req.method .. " is not allowed: use GET.") end
  local secret = first(req.headers["x-identity-header"])
  if not secret or secret == "" then
    return appsvc_error(400, "The request is missing the X-IDENTITY-HEADER header.")
  end
  local want = M.identity_header()
  if not want or secret ~= want then
    return appsvc_error(401, "The X-IDENTITY-HEADER header does not match IDENTITY_HEADER.")
  end
  local q = req.qmap
  local v = q["api-version"]
  if not v or v == "" then return appsvc_error(400, "The api-version query parameter is required (2019-08-01).") end
  if v < "2019-08-01" then
    return appsvc_error(400, "api-version '" .. v .. "' is not supported here: use 2019-08-01 (X-IDENTITY-HEADER).")
  end
  if not q.resource or q.resource == "" then return appsvc_error(400, "The resource query parameter is required.") end
  local app, why = select(q, { { "client_id", "client_id" }, { "principal_id", "object_id" }, { "object_id", "object_id" },
    { "mi_res_id", "msi_res_id" } })
  if why == "several" then
    return appsvc_error(400, "Only one of client_id, principal_id (object_id) and mi_res_id may be specified.")
  end
  if not app then return appsvc_error(400, "No Managed Identity found for specified ClientId/ResourceId/PrincipalId.") end
  req.token_client_id = app.client_id
  if not GRAPH[q.resource:lower()] then
    return appsvc_error(500, "An unexpected error occured while fetching the AAD Token.")
  end
  local token, claims = issue(app)
  return { status = 200, entra = true, json = {
    access_token = token, expires_on = tostring(claims.exp), resource = q.resource, token_type = "Bearer",
    client_id = app.client_id,
  } }
end

return M
