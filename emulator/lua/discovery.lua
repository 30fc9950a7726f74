-- The two discovery documents MSAL-based clients fetch before their first token call
-- (entra-signin.md §1.1, AZJS-REC): GET /{tenant}/v2.0/.well-known/openid-configuration and
-- GET /common/discovery/instance.  URLs point at this emulator (the request's scheme and host).
local state = require("state")

local M = {}

local function ok(body)
  return { status = 200, json = body, entra = true, headers = { ["Cache-Control"] = "max-age=86400, private" } }
end

function M.openid_configuration(req, tenant_name)
  local auth = require("auth")
  if req.method ~= "GET" then
    return auth.entra_error(req, 400, "invalid_request", 900561,
      "The endpoint only accepts GET, OPTIONS requests. Received a " .. req.method .. " request.")
  end
  local tenant = state.tenant(tenant_name)
  local multi = auth.MULTI_TENANT[tenant_name:lower()]
  if not tenant and not multi then
    local r = auth.tenant_not_found(req, tenant_name)
    r.json.error = "invalid_tenant"
    return r
  end
  local seg = tenant_name
  local b = req.base .. "/" .. seg
  local issuer_tenant = tenant and tenant.id or "{tenantid}"
  return ok({
    token_endpoint = b .. "/oauth2/v2.0/token",
    token_endpoint_auth_methods_supported = { "client_secret_post", "private_key_jwt", "client_secret_basic" },
    jwks_uri = b .. "/discovery/v2.0/keys",
    response_modes_supported = { "query", "fragment", "form_post" },
    subject_types_supported = { "pairwise" },
    id_token_signing_alg_values_supported = { "RS256" },
    response_types_supported = { "code", "id_token", "code id_token", "id_token token" },
    scopes_supported = { "openid", "profile", "email", "offline_access" },
    issuer = "https://login.microsoftonline.com/" .. issuer_tenant .. "/v2.0",
    request_uri_parameter_supported = false,
    userinfo_endpoint = "https://graph.microsoft.com/oidc/userinfo",
    authorization_endpoint = b .. "/oauth2/v2.0/authorize",
    device_authorization_endpoint = b .. "/oauth2/v2.0/devicecode",
    http_logout_supported = true,
    frontchannel_logout_supported = true,
    end_session_endpoint = b .. "/oauth2/v2.0/logout",
    claims_supported = { "sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name",
      "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver",
      "at_hash", "c_hash", "email" },
    tenant_region_scope = tenant and "EU" or nil,
    cloud_instance_name = "microsoftonline.com",
    cloud_graph_host_name = "graph.windows.net",
    msgraph_host = "graph.microsoft.com",
    rbac_url = "https://pas.windows.net",
  })
end

function M.instance(req)
  local host = req.base:gsub("^%a+://", "")
  -- the tenant of the authority MSAL names in authorization_endpoint (…/{tenant}/oauth2/v2.0/authorize)
  local ae = req.qmap and req.qmap.authorization_endpoint or ""
  local tenant = ae:match("^https?://[^/]+/([^/?]+)/") or "common"
  return ok({
    tenant_discovery_endpoint = req.base .. "/" .. tenant .. "/v2.0/.well-known/openid-configuration",
    ["api-version"] = "1.1",
    metadata = { { preferred_network = host, preferred_cache = host, aliases = { host } } },
  })
end

return M
