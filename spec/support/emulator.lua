-- What every spec needs to talk to the emulator: its URLs, the seed's ids and credentials, and the
-- admin API.  spec/helper.lua makes sure an instance runs (and which one) before any spec loads this.
--   local emu = require "support.emulator"
--   emu.http, emu.h2c, emu.https, emu.ca, emu.graph_url, emu.authority_url, emu.graph_url_http
--   emu.reset() emu.fault{...} emu.settings{...} emu.log(since) emu.counters() emu.rate_limit{...}
--   emu.expire_tokens() emu.token("importer") emu.graph("GET", "/employeeExperience/...", {app=..., json=...})
local http = require("support.http")

local M = {}

M.TENANT = "72f988bf-0000-4000-8000-000000000001"
M.TENANT_DOMAIN = "contoso.onmicrosoft.com"
M.GRAPH_SCOPE = "https://graph.microsoft.com/.default"

M.APPS = {
  importer = { client_id = "a0000000-0000-4000-8000-000000000001", client_secret = "importer-secret-1" },
  reader   = { client_id = "a0000000-0000-4000-8000-000000000002", client_secret = "reader-secret-2" },
  assigned = { client_id = "a0000000-0000-4000-8000-000000000003", client_secret = "assigned-secret-3" },
  noperm   = { client_id = "a0000000-0000-4000-8000-000000000004", client_secret = "noperm-secret-4" },
  console  = { client_id = "a0000000-0000-4000-8000-000000000005", client_secret = "console-secret-5" },
}
M.ADELE = { id = "b0000000-0000-4000-8000-000000000001", upn = "adele@contoso.onmicrosoft.com", password = "adele-password-1" }

-- Licensed users 1..50, unlicensed 901..905.
function M.user(n) return string.format("b0000000-0000-4000-8000-%012d", n) end
M.LEARNER = M.user(2)
M.UNLICENSED = M.user(901)

M.PROVIDER = "c0000000-0000-4000-8000-000000000001"           -- Contoso Academy, sync enabled
M.PROVIDER_FABRIKAM = "c0000000-0000-4000-8000-000000000002"  -- enabled
M.PROVIDER_DORMANT = "c0000000-0000-4000-8000-000000000003"   -- sync disabled
M.PROVIDERS = { M.PROVIDER, M.PROVIDER_FABRIKAM, M.PROVIDER_DORMANT }

-- Content id of provider p (1..3), number n; externalIds CA-01..CA-20, FL-01..FL-10, DL-01..DL-02.
function M.content(p, n) return string.format("d0000000-0000-4000-8000-%06d%06d", p, n) end
function M.content_ext(p, n) return string.format("%s-%02d", ({ "CA", "FL", "DL" })[p], n) end
M.CONTENT = M.content(1, 1)

-- The KEY=value lines of DIR/env as a table (nil when there is none).
function M.read_env(dir)
  local f = io.open(dir .. "/env", "r")
  if not f then return nil end
  local env = {}
  for line in f:lines() do
    local k, v = line:match("^([%w_]+)=(.*)$")
    if k then env[k] = v end
  end
  f:close()
  return env
end

-- Loads the URLs of the instance in dir (default: the one spec/helper.lua chose).
function M.load(dir)
  dir = dir or rawget(_G, "VIVA_EMU_ACTIVE_DIR") or os.getenv("VIVA_EMU_DIR") or "emulator/.run"
  local env = M.read_env(dir)
  if not env then return nil, "no emulator env in " .. dir end
  M.dir = dir
  M.http = env.VIVA_EMU_HTTP
  M.h2c = env.VIVA_EMU_H2C
  M.https = env.VIVA_EMU_HTTPS
  M.ca = env.VIVA_EMU_CA
  M.graph_url = M.https .. "/v1.0"
  M.graph_url_http = M.http .. "/v1.0"
  M.authority_url = M.https
  M.authority_url_http = M.http
  return M
end

-- Admin API ---------------------------------------------------------------------------------
function M.admin(method, path, body)
  local o = { method = method, url = M.http .. "/_emulator/" .. path }
  if body ~= nil then o.json = body end
  local res = http.request(o)
  if res.status >= 400 or res.status == 0 then
    error(string.format("emulator admin %s %s answered %d: %s", method, path, res.status, res.body), 2)
  end
  return res
end

function M.reset(seed) M.admin("POST", "reset", seed) end
function M.settings(t) M.admin("POST", "settings", t) end
function M.get_settings() return M.admin("GET", "settings").json end
function M.fault(spec) return M.admin("POST", "faults", spec).json.id end
function M.faults() return M.admin("GET", "faults").json.value end
function M.clear_faults() M.admin("DELETE", "faults") end
function M.rate_limit(spec) M.admin("POST", "rate_limit", spec) end
function M.clear_rate_limit() M.admin("DELETE", "rate_limit") end
function M.log(since) return M.admin("GET", "log" .. (since and ("?since=" .. since) or "")).json.value end
function M.last_seq() return M.admin("GET", "log?since=999999999").json.last_seq end
function M.clear_log() M.admin("DELETE", "log") end
function M.counters() return M.admin("GET", "counters").json end
function M.expire_tokens() M.admin("POST", "expire_tokens") end
function M.health() return http.get(M.http .. "/_emulator/health") end

-- Number of creates the emulator saw for (provider, externalId) (0 when none).
function M.creates(provider, ext)
  local c = M.counters().creates
  return (c[provider] or {})[ext] or 0
end

-- Tokens --------------------------------------------------------------------------------------
-- app: a key of M.APPS or {client_id=, client_secret=}.  Returns the access token (raises on failure).
function M.token(app, base)
  local a = type(app) == "table" and app or M.APPS[app or "importer"]
  base = base or M.http
  local res = http.post(base .. "/" .. M.TENANT .. "/oauth2/v2.0/token", {
    cacert = base:find("^https:") and M.ca or nil,
    form = { client_id = a.client_id, client_secret = a.client_secret, grant_type = "client_credentials", scope = M.GRAPH_SCOPE },
  })
  if res.status ~= 200 then error("token request failed: " .. res.status .. " " .. res.body, 2) end
  return res.json.access_token
end

-- Delegated token for adele through the console app (grant_type=password).
function M.user_token(scope)
  local a = M.APPS.console
  local res = http.post(M.http .. "/" .. M.TENANT .. "/oauth2/v2.0/token", {
    form = { client_id = a.client_id, client_secret = a.client_secret, grant_type = "password",
             username = M.ADELE.upn, password = M.ADELE.password, scope = scope or M.GRAPH_SCOPE },
  })
  if res.status ~= 200 then error("token request failed: " .. res.status .. " " .. res.body, 2) end
  return res.json.access_token
end

local token_cache = {}
-- Graph request over plain HTTP/1.1: path relative to /v1.0; o.app (default "importer") or o.token;
-- o.json / o.body / o.headers as for http.request; o.base overrides the base URL.
function M.graph(method, path, o)
  o = o or {}
  local tok = o.token
  if tok == nil then
    local app = o.app or "importer"
    if app == "user" then
      tok = token_cache.user or M.user_token()
      token_cache.user = tok
    else
      tok = token_cache[app] or M.token(app)
      token_cache[app] = tok
    end
  end
  local headers = {}
  for k, v in pairs(o.headers or {}) do headers[k] = v end
  if tok ~= false and headers.Authorization == nil then headers.Authorization = "Bearer " .. tok end
  return http.request{
    method = method, url = (o.base or M.graph_url_http) .. path, headers = headers, json = o.json, body = o.body,
    cacert = o.cacert, http2 = o.http2, curl_args = o.curl_args,
  }
end

-- Forget cached tokens (after expire_tokens or a token_lifetime change).
function M.forget_tokens() token_cache = {} end

M.DROP = setmetatable({}, { __name = "emu.DROP" })   -- in assignment{...} overrides: leave the field out

-- A valid assignment body for the seed (fields can be overridden).
function M.assignment(over)
  local b = {
    ["@odata.type"] = "#microsoft.graph.learningAssignment",
    assignmentType = "required",
    learnerUserId = M.LEARNER,
    learningContentId = M.CONTENT,
    status = "notStarted",
    externalcourseActivityId = "ext-" .. tostring(math.random(1, 1e9)),
    dueDateTime = { dateTime = "2026-12-01T00:00:00", timeZone = "UTC" },
  }
  for k, v in pairs(over or {}) do
    if v == M.DROP then b[k] = nil else b[k] = v end
  end
  return b
end

function M.self_initiated(over)
  local b = {
    ["@odata.type"] = "#microsoft.graph.learningSelfInitiatedCourse",
    learnerUserId = M.LEARNER,
    learningContentId = M.CONTENT,
    status = "inProgress",
    externalcourseActivityId = "ext-" .. tostring(math.random(1, 1e9)),
    startedDateTime = "2026-01-05T10:00:00Z",
  }
  for k, v in pairs(over or {}) do
    if v == M.DROP then b[k] = nil else b[k] = v end
  end
  return b
end

M.load()
return M
