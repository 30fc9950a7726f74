-- The sign-in parts of a seed: app certificates, federated identity credentials, managed identities,
-- public clients, and the federated (OIDC) issuers whose tokens the emulator trusts.  Each error
-- names the field (apps[3].certificates[1].file: ...).
local json = require("json")
local jwt = require("jwt")

local M = {}

local function str(v) return type(v) == "string" and v ~= "" end
local function list(v) return type(v) == "table" and (next(v) == nil or json.is_array(v)) end

-- A certificate entry: {file = "app-cert.pem"} (relative to the run directory) or {pem = "-----BEGIN..."}.
local function certificate(c, where)
  if type(c) ~= "table" then return nil, where .. " must be an object {file} or {pem}" end
  local pem = c.pem
  if pem == nil then
    if not str(c.file) then return nil, where .. ".file must be a file name (relative to the run directory) or use .pem" end
    local text, err = jwt.run_file(c.file)
    if not text then return nil, where .. ".file: " .. err end
    pem = text
  elseif not str(pem) then
    return nil, where .. ".pem must be a PEM string"
  end
  local cert, err = jwt.load_certificate(pem)
  if not cert then return nil, where .. ": " .. err end
  return cert
end
M.certificate = certificate

function M.app(s, a, where)
  if a.public_client ~= nil and type(a.public_client) ~= "boolean" then
    return nil, where .. ".public_client must be a boolean"
  end
  a._certs = nil
  if a.certificates ~= nil then
    if not list(a.certificates) then return nil, where .. ".certificates must be an array" end
    local certs = { by_x5t = {}, by_s256 = {} }
    for i, c in ipairs(a.certificates) do
      local cert, err = certificate(c, where .. ".certificates[" .. i .. "]")
      if not cert then return nil, err end
      certs.by_x5t[cert.x5t] = cert
      certs.by_s256[cert.x5t_s256] = cert
    end
    a._certs = certs
  end
  if a.federated_credentials ~= nil then
    if not list(a.federated_credentials) then return nil, where .. ".federated_credentials must be an array" end
    if #a.federated_credentials > 20 then return nil, where .. ".federated_credentials: at most 20 per app (Entra's limit)" end
    local seen = {}
    for i, f in ipairs(a.federated_credentials) do
      local w = where .. ".federated_credentials[" .. i .. "]"
      if type(f) ~= "table" then return nil, w .. " must be an object {issuer, subject, audiences}" end
      if not str(f.issuer) then return nil, w .. ".issuer is required (a string)" end
      if #f.issuer > 600 then return nil, w .. ".issuer is longer than 600 characters" end
      if not str(f.subject) then return nil, w .. ".subject is required (a string)" end
      if not list(f.audiences) or #f.audiences ~= 1 or not str(f.audiences[1]) then
        return nil, w .. ".audiences must be an array of exactly one string (api://AzureADTokenExchange)"
      end
      local key = f.issuer .. "\0" .. f.subject
      if seen[key] then return nil, w .. ": (issuer, subject) must be unique per app" end
      seen[key] = true
    end
  end
  local mi = a.managed_identity
  if mi ~= nil then
    local w = where .. ".managed_identity"
    if type(mi) ~= "table" then return nil, w .. " must be an object {type, object_id, msi_res_id}" end
    if mi.type ~= "SystemAssigned" and mi.type ~= "UserAssigned" then
      return nil, w .. ".type must be SystemAssigned or UserAssigned"
    end
    if not str(mi.object_id) then return nil, w .. ".object_id is required (a GUID string)" end
    if not str(mi.msi_res_id) then return nil, w .. ".msi_res_id is required (an Azure resource id)" end
    if mi.type == "SystemAssigned" then
      if s.mi_system then return nil, w .. ": only one SystemAssigned identity per seed" end
      s.mi_system = a
    end
    s.mi_by_object[mi.object_id:lower()] = a
    s.mi_by_res[mi.msi_res_id:lower()] = a
  end
  return true
end

-- federated_issuers: [{issuer, certificate = file | {pem}, key = file (to mint tokens)}]
function M.issuers(s, issuers)
  s.issuers, s.issuer_list = {}, {}
  if issuers == nil then return true end
  if not list(issuers) then return nil, "federated_issuers must be an array" end
  for i, e in ipairs(issuers) do
    local w = "federated_issuers[" .. i .. "]"
    if type(e) ~= "table" then return nil, w .. " must be an object {issuer, certificate, key}" end
    if not str(e.issuer) then return nil, w .. ".issuer is required (a string)" end
    local c = e.certificate
    local cert, err = certificate(type(c) == "string" and { file = c } or c, w .. ".certificate")
    if not cert then return nil, err end
    local rec = { issuer = e.issuer, cert = cert, kid = cert.x5t_s256 }
    if e.key ~= nil then
      local text, kerr = jwt.run_file(e.key)
      if not text then return nil, w .. ".key: " .. kerr end
      local key, perr = jwt.load_private_key(text)
      if not key then return nil, w .. ".key: " .. perr end
      rec.key = key
    end
    s.issuers[e.issuer] = rec
    s.issuer_list[#s.issuer_list + 1] = rec
  end
  return true
end

return M
