-- Sign-in helpers for the emulator specs: the run directory's keys (DIR/env), JWTs signed with the
-- openssl command (RS256, PS256), certificate thumbprints, and the token endpoint URLs.  Nothing here
-- uses the library's own client.
--   local signin = require "support.signin"
--   signin.env.VIVA_EMU_KEY, signin.jwt(header, claims, key_file), signin.cert_assertion{...}
local cjson = require("cjson")
local emu = require("support.emulator")
local http = require("support.http")
local assert = require("luassert")

local M = {}

M.env = emu.read_env(emu.dir)
M.CERT_APP = "a0000000-0000-4000-8000-000000000007"       -- cert-importer (certificate app-cert.pem)
M.WORKLOAD_APP = "a0000000-0000-4000-8000-000000000008"   -- workload-importer (federated credential)
M.PUBLIC_APP = "a0000000-0000-4000-8000-000000000006"     -- device-login (public client)
M.MI_SYSTEM = "e0000000-0000-4000-8000-000000000001"      -- vm-system-identity (importer roles)
M.MI_USER = "e0000000-0000-4000-8000-000000000002"        -- lms-reader-identity (read roles)
M.MI_USER_OBJECT = "f0000000-0000-4000-8000-000000000002"
M.MI_USER_RES = "/subscriptions/00000000-0000-4000-8000-000000000000/resourceGroups/lms/providers/Microsoft.ManagedIdentity/userAssignedIdentities/lms-reader"
M.FIC_SUBJECT = "system:serviceaccount:lms:importer"
M.FIC_AUDIENCE = "api://AzureADTokenExchange"
M.MEGAN = { id = "b0000000-0000-4000-8000-000000000051", upn = "megan@contoso.onmicrosoft.com", password = "megan-password-51" }
M.NESTOR = { id = "b0000000-0000-4000-8000-000000000052", upn = "nestor@contoso.onmicrosoft.com", password = "nestor-password-52" }
M.JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
M.DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"

local q = http.shell_quote

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
function M.b64url(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local chars = 2 + (b and 1 or 0) + (c and 1 or 0)
    for j = 1, chars do
      local k = math.floor(n / 64 ^ (4 - j)) % 64
      out[#out + 1] = B64:sub(k + 1, k + 1)
    end
  end
  return table.concat(out)
end

local function tmp_write(s)
  local n = os.tmpname()
  local f = assert(io.open(n, "wb"))
  f:write(s)
  f:close()
  return n
end

-- Raw bytes of a shell command's stdout.
local function bytes(cmd)
  local p = assert(io.popen(cmd, "r"))
  local s = p:read("*a")
  p:close()
  return s
end

-- A compact JWS over header/claims (tables or raw JSON strings), signed by key_file with
-- openssl: RS256 (PKCS#1 v1.5) or PS256 (PSS, salt = digest length, or o.saltlen e.g. "max").
function M.jwt(header, claims, key_file, o)
  o = o or {}
  local h = type(header) == "string" and header or cjson.encode(header)
  local c = type(claims) == "string" and claims or cjson.encode(claims)
  local input = M.b64url(h) .. "." .. M.b64url(c)
  local alg = o.alg or (type(header) == "table" and header.alg) or "RS256"
  local f = tmp_write(input)
  local opts = ""
  if alg == "PS256" then
    opts = " -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:" .. (o.saltlen or "digest")
  end
  if o.passin then opts = opts .. " -passin " .. q("pass:" .. o.passin) end
  local sig = bytes("openssl dgst -sha256 -sign " .. q(key_file) .. opts .. " -binary " .. q(f) .. " 2>/dev/null")
  os.remove(f)
  assert(#sig > 0, "openssl could not sign with " .. key_file)
  return input .. "." .. M.b64url(sig)
end

-- x5t (SHA-1) and x5t#S256 of a PEM certificate, base64url without padding; and the SHA-1 in hex.
function M.thumbprints(cert_file)
  local der = "openssl x509 -in " .. q(cert_file) .. " -outform DER 2>/dev/null"
  local sha1 = bytes(der .. " | openssl dgst -sha1 -binary")
  local sha256 = bytes(der .. " | openssl dgst -sha256 -binary")
  local hex = sha1:gsub(".", function(ch) return string.format("%02X", ch:byte()) end)
  return { x5t = M.b64url(sha1), s256 = M.b64url(sha256), hex = hex }
end

function M.token_url(tenant, base)
  return (base or emu.http) .. "/" .. (tenant or emu.TENANT) .. "/oauth2/v2.0/token"
end
function M.devicecode_url(tenant, base)
  return (base or emu.http) .. "/" .. (tenant or emu.TENANT) .. "/oauth2/v2.0/devicecode"
end

local function uuid()
  return string.format("%08x-%04x-4%03x-%04x-%012x", math.random(0, 0xffffffff), math.random(0, 0xffff),
    math.random(0, 0xfff), 0x8000 + math.random(0, 0x3fff), math.random(0, 0xffffffffffff))
end
M.uuid = uuid

-- A certificate assertion of the cert app: o.header / o.claims override (false removes a field),
-- o.key (default the registered key), o.alg ("RS256" with x5t, "PS256" with x5t#S256 by default).
function M.cert_assertion(o)
  o = o or {}
  local alg = o.alg or "PS256"
  local tp = M.thumbprints(o.cert or M.env.VIVA_EMU_CERT)
  local header = { alg = alg, typ = "JWT" }
  if alg == "PS256" then header["x5t#S256"] = tp.s256 else header.x5t = tp.x5t end
  local now = os.time()
  local claims = { aud = o.aud or M.token_url(nil, o.base), iss = M.CERT_APP, sub = M.CERT_APP, jti = uuid(),
                   nbf = now, iat = now, exp = now + 600 }
  for k, v in pairs(o.header or {}) do if v == false then header[k] = nil else header[k] = v end end
  for k, v in pairs(o.claims or {}) do if v == false then claims[k] = nil else claims[k] = v end end
  return M.jwt(header, claims, o.key or M.env.VIVA_EMU_KEY, { alg = alg, saltlen = o.saltlen, passin = o.passin })
end

-- client_credentials form with a client assertion (over: fields to set, false to remove).
function M.assertion_form(client_id, assertion, over)
  local f = { grant_type = "client_credentials", client_id = client_id, scope = emu.GRAPH_SCOPE,
              client_assertion_type = M.JWT_BEARER, client_assertion = assertion }
  for k, v in pairs(over or {}) do if v == false then f[k] = nil else f[k] = v end end
  return f
end

-- Mints a federated (OIDC) token through the admin API.
function M.federated_token(body)
  return emu.admin("POST", "federated_token", body or { subject = M.FIC_SUBJECT }).json.token
end

-- Entra's error shape, with the expected status, `error` and AADSTS code.
function M.entra_error(res, status, err, code)
  assert.equal(status, res.status, res.body)
  local j = res.json
  assert.is_table(j, res.body)
  assert.equal(err, j.error, res.body)
  assert.same({ code }, j.error_codes, res.body)
  assert.matches("^AADSTS" .. code .. ": ", j.error_description)
  assert.matches("\r\nTrace ID: %x+%-", j.error_description)
  assert.matches("^%x+%-%x+%-%x+%-%x+%-%x+$", j.trace_id)
  assert.matches("^%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%dZ$", j.timestamp)
  return j
end

-- GET of a Graph collection with a bearer token (200 when the token is good and has the permission).
function M.graph_get(token, path)
  return http.get(emu.graph_url_http .. (path or ("/employeeExperience/learningProviders/" .. emu.PROVIDER .. "/learningCourseActivities")),
    { headers = { Authorization = "Bearer " .. token } })
end

return M
