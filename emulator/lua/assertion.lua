-- Client assertions (client_assertion_type = urn:ietf:params:oauth:client-assertion-type:jwt-bearer):
--   * a certificate credential: a JWT the app signs itself (iss = sub = client_id), RS256 or PS256,
--     with the x5t / x5t#S256 thumbprint of a certificate registered on the app;
--   * a federated credential (workload identity federation): a JWT from an external OIDC issuer
--     (iss != client_id) that matches one of the app's federated_credentials {issuer, subject, audiences}.
-- Every failure answers as Entra does (emulator/README.md "Sign-in" lists the codes and their sources).
local state = require("state")
local jwt = require("jwt")
local util = require("util")

local M = {}

M.JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

local used_jti = {}      -- "client_id\0jti" -> expiry (kept until the assertion expires; survives reset)
local used_count = 0

local function auth() return require("auth") end
local function invalid_client(req, code, text)
  return auth().entra_error(req, 401, "invalid_client", code, text)
end

local function skew() return tonumber(state.settings.assertion_clock_skew) or 300 end

local function num(v) return type(v) == "number" and v == v and v > -math.huge and v < math.huge end

local function entra_time(t)
  if not num(t) or t < 0 then t = 0 elseif t > 253402300799 then t = 253402300799 end   -- os.date's range
  return os.date("!%Y-%m-%dT%H:%M:%S", math.floor(t)) .. ".0000000Z"
end

-- exp (required) and nbf (optional) with the clock skew allowance: nil or the 700024 answer.
local function check_time(req, claims)
  local now = ngx.now()
  local exp, nbf = claims.exp, claims.nbf
  if (exp ~= nil and not num(exp)) or (nbf ~= nil and not num(nbf)) then
    return invalid_client(req, 50027, "JWT token is invalid or malformed: 'exp' and 'nbf' must be NumericDate numbers.")
  end
  if exp == nil then
    return invalid_client(req, 50027, "JWT token is invalid or malformed: the assertion has no 'exp' claim.")
  end
  if now > exp + skew() or (nbf and nbf > now + skew()) then
    return invalid_client(req, 700024, "Client assertion is not within its valid time range. Current time: " ..
      entra_time(now) .. ", assertion valid from " .. entra_time(nbf or claims.iat or 0) ..
      ", expiry time of assertion " .. entra_time(exp) ..
      ". Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/active-directory-certificate-credentials .")
  end
  return nil
end

local function audiences(aud)
  if type(aud) == "string" then return { aud } end
  if type(aud) == "table" then
    local out = {}
    for _, a in ipairs(aud) do if type(a) == "string" then out[#out + 1] = a end end
    return out
  end
  return {}
end

local function strip_pad(s) return type(s) == "string" and (s:gsub("=+$", "")) or nil end

local function purge_jti(now)
  used_count = 0
  for k, exp in pairs(used_jti) do
    if exp < now then used_jti[k] = nil else used_count = used_count + 1 end
  end
end

local function certificate(req, app, tenant, tok)
  local h, c = tok.header, tok.claims
  local certs = app._certs
  local x5t_s256, x5t = strip_pad(h["x5t#S256"]), strip_pad(h.x5t)
  local cert, shown
  if certs then
    if x5t_s256 then cert = certs.by_s256[x5t_s256] end
    if not cert and x5t then cert = certs.by_x5t[x5t] end
  end
  if not cert then
    local raw = util.b64url_decode(x5t_s256 or x5t or "") or ""
    shown = jwt.hex(raw)
    return invalid_client(req, 700027,
      "Client assertion failed signature validation. [Reason - The key was not found., Thumbprint of key used by client: '" ..
      shown .. "', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '" ..
      app.client_id .. "'. Review the documentation at https://docs.microsoft.com/en-us/graph/deployments to determine the corresponding service endpoint and https://docs.microsoft.com/en-us/graph/api/application-get?view=graph-rest-1.0&tabs=http to build a query request URL, such as 'https://graph.microsoft.com/beta/applications/" ..
      app.client_id .. "'].")
  end
  if h.alg ~= "RS256" and h.alg ~= "PS256" then
    return invalid_client(req, 700027, "Client assertion failed signature validation. [Reason - The signature algorithm '" ..
      tostring(h.alg) .. "' is not supported: use PS256 or RS256.]")
  end
  if not jwt.verify(cert.pkey, h.alg, tok.signing_input, tok.signature) then
    return invalid_client(req, 700027, "Client assertion failed signature validation.")
  end
  if c.sub ~= c.iss then
    return invalid_client(req, 50048, "Subject mismatches Issuer claim in the client assertion. Contact the tenant admin.")
  end
  local want = req.base .. "/" .. req.tenant_segment .. "/oauth2/v2.0/token"
  local aud_ok = false
  for _, a in ipairs(audiences(c.aud)) do if a == want then aud_ok = true end end
  if not aud_ok then
    return invalid_client(req, 50012, "Client assertion audience claim does not match Realm issuer. Expected audience: '" ..
      want .. "', the token endpoint URL.")
  end
  local terr = check_time(req, c)
  if terr then return terr end
  if type(c.jti) ~= "string" or c.jti == "" then
    return invalid_client(req, 50027, "JWT token is invalid or malformed: the assertion has no 'jti' claim.")
  end
  if state.settings.reject_assertion_replay ~= false then
    local now = ngx.now()
    local key = app.client_id .. "\0" .. c.jti
    local seen = used_jti[key]
    if seen and seen >= now then
      return invalid_client(req, 50013, "Assertion is invalid: the client assertion with jti '" .. c.jti ..
        "' was already used. Make a new assertion (a new jti) for every request.")
    end
    used_jti[key] = c.exp + skew()
    used_count = used_count + 1
    if used_count > 10000 then purge_jti(now) end
  end
  return nil
end

local function federated(req, app, tenant, tok)
  local h, c = tok.header, tok.claims
  local iss, sub = c.iss, c.sub
  local fics = {}
  for _, f in ipairs(app.federated_credentials or {}) do
    if f.issuer == iss then fics[#fics + 1] = f end
  end
  if #fics == 0 then
    return invalid_client(req, 700211, "No matching federated identity record found for presented assertion issuer '" ..
      tostring(iss) .. "'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation")
  end
  local issuer = state.s.issuers[iss]
  local ok = issuer and (h.kid == nil or h.kid == issuer.kid)
    and jwt.verify(issuer.cert.pkey, h.alg, tok.signing_input, tok.signature)
  if not ok then
    return invalid_client(req, 50027, "Invalid JWT token. The token from the federated issuer '" .. tostring(iss) ..
      "' failed signature verification (no signing key of the issuer verifies it).")
  end
  local terr = check_time(req, c)
  if terr then return terr end
  local by_sub
  for _, f in ipairs(fics) do if f.subject == sub then by_sub = f end end
  if not by_sub then
    return invalid_client(req, 700213, "No matching federated identity record found for presented assertion subject '" ..
      tostring(sub) .. "'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation")
  end
  local aud_ok = false
  local auds = audiences(c.aud)
  for _, a in ipairs(auds) do if a == by_sub.audiences[1] then aud_ok = true end end
  if not aud_ok then
    return auth().entra_error(req, 400, "invalid_request", 70021,
      "No matching federated identity record found for presented assertion. Assertion Issuer: '" .. tostring(iss) ..
      "'. Assertion Subject: '" .. tostring(sub) .. "'. Assertion Audience: '" .. table.concat(auds, ",") ..
      "'. https://docs.microsoft.com/en-us/azure/active-directory/develop/workload-identity-federation")
  end
  return nil
end

-- nil when the assertion authenticates `app`, else the error response.
function M.check(req, form, app, tenant)
  local a = auth()
  local atype, assertion = form.client_assertion_type, form.client_assertion
  if not atype or atype == "" then return a.missing(req, "client_assertion_type") end
  if not assertion or assertion == "" then return a.missing(req, "client_assertion") end
  if atype ~= M.JWT_BEARER then
    return invalid_client(req, 70002, "Error validating credentials. The 'client_assertion_type' value '" .. atype ..
      "' is not supported: use '" .. M.JWT_BEARER .. "'.")
  end
  local tok, why = jwt.decode(assertion)
  if not tok then
    return invalid_client(req, 50027, "JWT token is invalid or malformed (" .. why .. ").")
  end
  if type(tok.claims.iss) ~= "string" then
    return invalid_client(req, 50027, "JWT token is invalid or malformed: the assertion has no 'iss' claim.")
  end
  if tok.claims.iss == app.client_id then return certificate(req, app, tenant, tok) end
  return federated(req, app, tenant, tok)
end

-- Admin: mints a token of a federated issuer (as Kubernetes projects a service-account token).
-- body: {subject (required), audience = "api://AzureADTokenExchange", lifetime = 3600 (s; negative: already
-- expired), issuer = the seed's first federated issuer, not_before = now (s since epoch)}.
function M.mint(body)
  if type(body.subject) ~= "string" or body.subject == "" then return nil, "subject is required (a string)" end
  local aud = body.audience == nil and "api://AzureADTokenExchange" or body.audience
  if type(aud) ~= "string" or aud == "" then return nil, "audience must be a string" end
  local lifetime = body.lifetime == nil and 3600 or body.lifetime
  if not num(lifetime) then return nil, "lifetime must be a number of seconds" end
  local issuer
  if body.issuer ~= nil then
    if type(body.issuer) ~= "string" then return nil, "issuer must be a string" end
    issuer = state.s.issuers[body.issuer]
    if not issuer then return nil, "issuer '" .. body.issuer .. "' is not a federated issuer of the seed (federated_issuers)" end
  else
    issuer = state.s.issuer_list[1]
    if not issuer then return nil, "the seed has no federated_issuers" end
  end
  if not issuer.key then return nil, "issuer '" .. issuer.issuer .. "' has no key in the seed: it cannot mint" end
  local now = math.floor(ngx.now())
  local nbf = body.not_before == nil and now or body.not_before
  if not num(nbf) then return nil, "not_before must be a number (seconds since the epoch)" end
  local claims = {
    iss = issuer.issuer, sub = body.subject, aud = { aud }, iat = now, nbf = math.floor(nbf),
    exp = math.floor(now + lifetime), jti = util.uuid(),
  }
  local token = jwt.encode({ alg = "RS256", typ = "JWT", kid = issuer.kid }, claims, issuer.key)
  if not token then return nil, "signing failed" end
  return { token = token, expires_on = claims.exp, issuer = issuer.issuer, subject = claims.sub, audience = aud }
end

return M
