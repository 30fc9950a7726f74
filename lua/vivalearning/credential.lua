-- Sign-in options that need files or the environment, which the C core knows nothing about:
-- certificate files, the federated token file (re-read at each token fetch), managed identity's
-- endpoints from the environment, and the credential chain that viva.client{} uses when no
-- credential is given (the Azure SDKs' AZURE_* variables and DefaultAzureCredential's order).
-- docs/signin.md describes each method.
local M = {}

-- The environment, read through here (spec/helper.lua points the IMDS override at the emulator
-- for the whole process, so nothing here ever needs to be replaced).
M.getenv = os.getenv

-- What the core takes for a credential (exactly one of these is given to it).
local CORE_CREDENTIALS = { "client_secret", "password", "token", "token_provider", "certificate",
                           "client_assertion", "managed_identity", "device_code", "refresh_token" }
-- Handled here and removed before the core sees the options.
local LUA_ONLY = { "certificate_path", "certificate_password", "federated_token_file" }

local function env(name)
  local v = M.getenv(name)
  if v == "" then return nil end
  return v
end

-- A whole file; the error names the option and the file, never its content.
local function read_file(path, what)
  if type(path) ~= "string" or path == "" then
    error(("viva.client: %s must be a file name"):format(what), 0)
  end
  local f, err = io.open(path, "rb")
  if not f then error(("viva.client: %s %s cannot be read: %s"):format(what, path, err:gsub("^[^:]*: ", "")), 0) end
  local data = f:read("*a")
  f:close()
  if not data or data == "" then error(("viva.client: %s %s is empty"):format(what, path), 0) end
  return data
end

-- certificate_path: a PEM file with the certificate and its key, or a PKCS#12 (.pfx) file.
function M.certificate_file(path, password, what)
  local data = read_file(path, what or "certificate_path")
  if data:find("-----BEGIN", 1, true) then return { cert = data, password = password } end
  return { pfx = data, password = password }
end

-- certificate = { path =, key_path = } reads the files; PEM text and pfx bytes pass through.
local function certificate_option(c)
  if type(c) ~= "table" or not (c.path or c.key_path) then return c end
  local out = {}
  for k, v in pairs(c) do if k ~= "path" and k ~= "key_path" then out[k] = v end end
  if c.path then
    for k, v in pairs(M.certificate_file(c.path, c.password, "certificate.path")) do out[k] = v end
  end
  if c.key_path then out.key = read_file(c.key_path, "certificate.key_path") end
  return out
end

-- The federated token (Kubernetes' projected service-account token, GitHub's OIDC token...),
-- read at each token fetch: Kubernetes rotates the file, and a re-read never sends a stale one.
function M.federated_assertion(path)
  if type(path) ~= "string" or path == "" then error("viva.client: federated_token_file must be a file name", 0) end
  return function()
    local f, err = io.open(path, "rb")
    if not f then error(("federated_token_file %s cannot be read: %s"):format(path, err:gsub("^[^:]*: ", "")), 0) end
    local tok = f:read("*a") or ""
    f:close()
    tok = tok:match("^%s*(.-)%s*$")
    if tok == "" then error(("federated_token_file %s is empty"):format(path), 0) end
    return tok
  end
end

-- managed_identity = true | "CLIENT_ID" | { client_id = } as the core takes it: App Service when
-- IDENTITY_ENDPOINT is set (with IDENTITY_HEADER), else IMDS, whose address
-- AZURE_POD_IDENTITY_AUTHORITY_HOST replaces.
function M.managed_identity(mi)
  local t = {}
  if type(mi) == "string" then t.client_id = mi
  elseif type(mi) == "table" then for k, v in pairs(mi) do t[k] = v end
  elseif mi ~= true then
    error("viva.client: managed_identity must be true, a user-assigned identity's client id, or a table", 0)
  end
  if not (t.identity_endpoint or t.imds_host) then
    local ep = env("IDENTITY_ENDPOINT")
    if ep then
      t.identity_endpoint, t.identity_header = ep, t.identity_header or env("IDENTITY_HEADER")
    else
      t.imds_host = env("AZURE_POD_IDENTITY_AUTHORITY_HOST")
    end
  end
  return t
end

local function given(o, k) return o[k] ~= nil and o[k] ~= false end

local function has_credential(o)
  for _, k in ipairs(CORE_CREDENTIALS) do if given(o, k) then return true end end
  for _, k in ipairs(LUA_ONLY) do if given(o, k) then return true end end
  return false
end

-- The credential chain: each source looks at the options and the environment and returns the
-- options to add, or nil. The first that answers wins. Another source (the delegated token
-- cache) is added to this list by name; M.add_source inserts one before a named one.
local function app_env(o)
  local tenant, id = o.tenant or env("AZURE_TENANT_ID"), o.client_id or env("AZURE_CLIENT_ID")
  if tenant and id then return tenant, id end
end

M.sources = {
  { name = "environment", resolve = function(o)
      local tenant, id = app_env(o)
      if not tenant then return nil end
      local secret = env("AZURE_CLIENT_SECRET")
      if secret then return { tenant = tenant, client_id = id, client_secret = secret } end
      local path = env("AZURE_CLIENT_CERTIFICATE_PATH")
      if path then
        return { tenant = tenant, client_id = id,
                 certificate = M.certificate_file(path, env("AZURE_CLIENT_CERTIFICATE_PASSWORD"), "AZURE_CLIENT_CERTIFICATE_PATH") }
      end
    end },
  { name = "workload_identity", resolve = function(o)
      local tenant, id = app_env(o)
      local file = env("AZURE_FEDERATED_TOKEN_FILE")
      if tenant and file then return { tenant = tenant, client_id = id, client_assertion = M.federated_assertion(file) } end
    end },
  -- Only when the environment says it runs with one: App Service sets IDENTITY_ENDPOINT; a VM
  -- says nothing, so AZURE_TOKEN_CREDENTIALS (the SDKs' narrowing variable) = prod or
  -- ManagedIdentityCredential turns IMDS on. The real IMDS address is never probed.
  { name = "managed_identity", resolve = function(o)
      local narrow = env("AZURE_TOKEN_CREDENTIALS")
      if env("IDENTITY_ENDPOINT") or narrow == "prod" or narrow == "ManagedIdentityCredential" then
        return { managed_identity = M.managed_identity(o.client_id or env("AZURE_CLIENT_ID") or true) }
      end
    end },
  -- The delegated sign-in that `vivalearning login` kept (vivalearning.token_cache): the last
  -- user's of this tenant and app, unless o.username picks one. Loaded lazily: the cache module
  -- is needed only when the chain gets this far.
  { name = "delegated_cache", resolve = function(o)
      local tenant, id = app_env(o)
      if not tenant then return nil end
      local cache = require "vivalearning.token_cache"
      local e = cache.load { tenant = tenant, client_id = id, user = o.username }
      if not e then return nil end
      return { tenant = tenant, client_id = id, refresh_token = e.refresh_token,
               on_refresh_token = (cache.hook({ tenant = tenant, client_id = id }, e.account)) }
    end },
}

function M.add_source(src, before)
  for i, s in ipairs(M.sources) do
    if s.name == src.name then M.sources[i] = src; return end
  end
  for i, s in ipairs(M.sources) do
    if s.name == before then table.insert(M.sources, i, src); return end
  end
  M.sources[#M.sources + 1] = src
end

-- The chain's answer for options without a credential: the source's name and the options it
-- adds, or nil when no source has one.
function M.find(opts)
  if has_credential(opts) then return nil end
  for _, src in ipairs(M.sources) do
    local add = src.resolve(opts)
    if add then return src.name, add end
  end
end
M.has_credential = has_credential

-- The options for the core: files read, environment applied, the chain run when no credential
-- is given. The caller's table is never changed.
function M.resolve(opts)
  if type(opts) ~= "table" then return opts end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  if not has_credential(o) then
    local _, add = M.find(o)
    for k, v in pairs(add or {}) do o[k] = v end
    if o.authority_url == nil and env("AZURE_AUTHORITY_HOST") and not o.managed_identity and not o.token then
      o.authority_url = env("AZURE_AUTHORITY_HOST"):gsub("/+$", "")
    end
  end
  if given(o, "certificate_path") then
    if given(o, "certificate") then error("viva.client: give certificate or certificate_path, not both", 0) end
    o.certificate = M.certificate_file(o.certificate_path, o.certificate_password)
  elseif given(o, "certificate_password") then
    if type(o.certificate) ~= "table" then error("viva.client: certificate_password needs certificate_path", 0) end
    o.certificate = certificate_option(o.certificate)
    o.certificate.password = o.certificate.password or o.certificate_password
  elseif given(o, "certificate") then
    o.certificate = certificate_option(o.certificate)
  end
  if given(o, "federated_token_file") then
    if given(o, "client_assertion") then error("viva.client: give client_assertion or federated_token_file, not both", 0) end
    o.client_assertion = M.federated_assertion(o.federated_token_file)
  end
  if given(o, "managed_identity") then
    o.managed_identity = M.managed_identity(o.managed_identity)
  elseif o.managed_identity == false then
    o.managed_identity = nil
  end
  for _, k in ipairs(LUA_ONLY) do o[k] = nil end
  return o
end

return M
