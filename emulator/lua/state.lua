-- In-memory state of the emulator (one nginx worker, so plain module tables are the store).
-- Everything here is rebuilt from a seed by load(); tokens survive a reset (see README).
local json = require("json")
local util = require("util")

local M = {}

-- The alternate key's two spellings: the metadata's (the emulator's own field name) and the docs'.
M.EXT_METADATA, M.EXT_DOCS = "externalcourseActivityId", "externalCourseActivityId"

-- The emulator's field name for a request's property or key name under settings.external_id_spelling:
-- either spelling of the alternate key gives M.EXT_METADATA when the setting takes it, false when it
-- does not (Graph sees an unknown property then); nil for every other name.
function M.ext_key(name)
  if name ~= M.EXT_METADATA and name ~= M.EXT_DOCS then return nil end
  local only = M.settings.external_id_spelling
  if (only == "metadata" and name ~= M.EXT_METADATA) or (only == "docs" and name ~= M.EXT_DOCS) then return false end
  return M.EXT_METADATA
end

M.DEFAULT_SETTINGS = {
  page_size = 50,                      -- server-side page size of every collection
  max_top = 999,                       -- $top above this is clamped
  token_lifetime = 3599,               -- seconds (expires_in of the token endpoint)
  max_body_bytes = 4194304,            -- 413 past this (nginx's own hard cap is 64 MiB)
  app_can_list_user_activities = false, -- graph-api.md §1.0, §8.5: A5 is delegated only (403 for app tokens); true = the lenient variant
  external_id_spelling = "any",        -- the alternate key's spelling (graph-api.md §6 #1): "any" takes both, writes
                                       -- externalcourseActivityId; "metadata" / "docs" take and write only
                                       -- externalcourseActivityId / externalCourseActivityId; "both" takes both, writes both
  batch_throttled_status = 200,        -- envelope status when a $batch item is throttled (200 or 424, §6 #22)
  location_header = true,              -- Location header on 201 responses (OData 4.0 §11.4.2)
  activity_id_format = "graph",        -- "graph": "{learnerUserId}:{guid}" as in Graph's examples; "guid": plain GUIDs
  latency = nil,                       -- {base, jitter} seconds: every Graph request waits base ± jitter (non-blocking)
  batch_order = "shuffled",            -- "shuffled": $batch steps in a random topological order, concurrent; "request": in order, one by one
  batch_seed = nil,                    -- a number: the shuffle is repeatable (restarted each time it is set, and on reset)
  empty_pages = 0,                     -- test aid: N empty pages (with a nextLink) before a collection's data
  next_link_loop = false,              -- test aid: every nextLink points at the request's own URL
  -- sign-in (README "Sign-in")
  device_code_interval = 5,            -- s between polls of a device code (Entra's interval); faster polls: slow_down
  device_code_lifetime = 900,          -- s (expires_in of the devicecode answer)
  refresh_token_lifetime = 7776000,    -- s (90 days, Entra's default outside SPAs)
  managed_identity_token_lifetime = 86399, -- s (managed-identity tokens last about 24 h)
  assertion_clock_skew = 300,          -- s allowed on a client assertion's exp/nbf
  reject_assertion_replay = true,      -- a certificate assertion's jti is accepted once
  device_code_auto_approve = nil,      -- test aid {user, after_polls}: codes approved as user after N pending polls
}

local function finite(v) return type(v) == "number" and v == v and v > -math.huge and v < math.huge end

-- settings.latency: {base, jitter?} seconds, each 0..60; returns the stored table or nil, message.
function M.check_latency(v)
  if type(v) ~= "table" or json.is_array(v) then return nil, "setting 'latency' must be an object {base, jitter}" end
  for k in pairs(v) do
    if k ~= "base" and k ~= "jitter" then return nil, "unknown latency field '" .. tostring(k) .. "' (base, jitter)" end
  end
  if not finite(v.base) or v.base < 0 or v.base > 60 then return nil, "latency.base must be a number of seconds, 0..60" end
  local jitter = v.jitter == nil and 0 or v.jitter
  if not finite(jitter) or jitter < 0 or jitter > 60 then return nil, "latency.jitter must be a number of seconds, 0..60" end
  return { base = v.base, jitter = jitter }
end

M.tokens = {}          -- access token -> claims table (survives reset)
M.refresh_tokens = {}  -- refresh token -> record (survives reset, as access tokens do; see refresh.lua)
M.token_gen = 1        -- expire_tokens bumps this; tokens of older generations answer 401

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s = f:read("*a")
  f:close()
  return s
end

function M.init(seed_file)
  M.seed_file = seed_file
  local text, err = read_file(seed_file)
  if not text then error("cannot read seed " .. tostring(seed_file) .. ": " .. tostring(err)) end
  local seed, jerr = json.decode(text)
  if type(seed) ~= "table" then error("seed " .. seed_file .. " is not valid JSON: " .. tostring(jerr)) end
  M.default_seed = seed
  local ok, lerr = M.load(seed)
  if not ok then error("seed " .. seed_file .. ": " .. lerr) end
end

local function list_remove(list, value)
  for i = 1, #list do
    if list[i] == value then table.remove(list, i) return end
  end
end
M.list_remove = list_remove

-- Ordered id lists with O(1) removal (a removed id leaves `false` behind; compacted now and then),
-- so that deleting many of 50,000 activities stays cheap.  Readers skip false entries.
local function olist()
  return { pos = {}, holes = 0 }
end
local function oadd(l, id)
  local n = #l + 1
  l[n] = id
  l.pos[id] = n
end
local function oremove(l, id)
  local i = l.pos[id]
  if not i then return end
  l[i] = false
  l.pos[id] = nil
  l.holes = l.holes + 1
  if l.holes > 64 and l.holes * 2 > #l then
    local n = 0
    local total = #l
    for j = 1, total do
      local v = l[j]
      if v then n = n + 1; l[n] = v; l.pos[v] = n end
    end
    for j = total, n + 1, -1 do l[j] = nil end
    l.holes = 0
  end
end

-- Loads a seed table; returns true or nil, message.  The previous state is kept on error.
function M.load(seed)
  if type(seed) ~= "table" then return nil, "seed must be a JSON object" end
  local s = {
    tenants = {}, tenant_by_domain = {}, apps = {}, users = {}, user_by_upn = {},
    providers = {}, provider_list = {},
    contents = {}, contents_by_provider = {},      -- provider id -> { list = {ids}, by_ext = {ext -> id} }
    activities = {}, activity_list = olist(),
    activities_by_provider = {},                   -- provider id -> { by_ext = {ext -> id} }
    activities_by_user = {},                       -- user id -> { ids }
  }
  for _, t in ipairs(seed.tenants or {}) do
    if type(t) ~= "table" or type(t.id) ~= "string" then return nil, "tenant without id" end
    s.tenants[t.id] = t
    if type(t.domain) == "string" then s.tenant_by_domain[t.domain:lower()] = t end
  end
  local default_tenant = seed.tenants and seed.tenants[1] and seed.tenants[1].id
  s.mi_by_object, s.mi_by_res = {}, {}
  for i, a in ipairs(seed.apps or {}) do
    if type(a) ~= "table" or type(a.client_id) ~= "string" then return nil, "app without client_id" end
    a.tenant = a.tenant or default_tenant
    local ok, err = require("signin_seed").app(s, a, "apps[" .. i .. "]")
    if not ok then return nil, err end
    s.apps[a.client_id] = a
  end
  do
    local ok, err = require("signin_seed").issuers(s, seed.federated_issuers)
    if not ok then return nil, err end
  end
  for i, u in ipairs(seed.users or {}) do
    if type(u) ~= "table" or type(u.id) ~= "string" then return nil, "user without id" end
    u.tenant = u.tenant or default_tenant
    if u.mfa ~= nil and u.mfa ~= "required" and u.mfa ~= "registration" then
      return nil, "users[" .. i .. "].mfa must be \"required\" (AADSTS50076) or \"registration\" (AADSTS50079)"
    end
    s.users[u.id] = u
    if type(u.userPrincipalName) == "string" then s.user_by_upn[u.userPrincipalName:lower()] = u end
  end
  for _, p in ipairs(seed.providers or {}) do
    if type(p) ~= "table" or type(p.id) ~= "string" then return nil, "provider without id" end
    local rec = util.copy(p)
    rec.tenant = rec.tenant or default_tenant
    if rec.isCourseActivitySyncEnabled == nil then rec.isCourseActivitySyncEnabled = false end
    s.providers[rec.id] = rec
    s.provider_list[#s.provider_list + 1] = rec.id
    s.contents_by_provider[rec.id] = { list = {}, by_ext = {} }
    s.activities_by_provider[rec.id] = { by_ext = {} }
  end
  for _, c in ipairs(seed.contents or {}) do
    if type(c) ~= "table" or type(c.id) ~= "string" or type(c.provider) ~= "string" then
      return nil, "content without id or provider"
    end
    local idx = s.contents_by_provider[c.provider]
    if not idx then return nil, "content " .. c.id .. " names an unknown provider" end
    local rec = util.copy(c)
    rec.provider = nil
    rec._provider = c.provider
    for _, k in ipairs({ "additionalTags", "contributors", "skillTags" }) do
      rec[k] = json.array(rec[k] or {})
    end
    if rec.isActive == nil then rec.isActive = true end
    if rec.isPremium == nil then rec.isPremium = false end
    if rec.isSearchable == nil then rec.isSearchable = true end
    s.contents[rec.id] = rec
    idx.list[#idx.list + 1] = rec.id
    if rec.externalId then idx.by_ext[rec.externalId] = rec.id end
  end
  local settings = util.copy(M.DEFAULT_SETTINGS)
  for k, v in pairs(seed.settings or {}) do
    if v ~= json.null then settings[k] = v end
  end
  if settings.latency ~= nil then
    local l, lerr = M.check_latency(settings.latency)
    if not l then return nil, "settings: " .. lerr end
    settings.latency = l
  end
  s.settings = settings
  local old_s, old_settings = M.s, M.settings
  M.s = s
  M.settings = settings
  for _, sa in ipairs(seed.activities or {}) do
    if type(sa) ~= "table" or type(sa.id) ~= "string" or not s.providers[sa.learningProviderId or ""] then
      M.s, M.settings = old_s, old_settings
      return nil, "activity without id or with an unknown learningProviderId"
    end
    local a = util.copy(sa)   -- the seed table itself stays as it was, for the next reset
    a._kind = (tostring(a["@odata.type"] or "")):find("SelfInitiated") and "self_initiated" or "assignment"
    a["@odata.type"] = nil
    if a.externalCourseActivityId ~= nil and a.externalcourseActivityId == nil then
      a.externalcourseActivityId = a.externalCourseActivityId
    end
    a.externalCourseActivityId = nil
    a._provider = a.learningProviderId
    M.add_activity(a)
  end
  -- Throttling settings in the seed (applied by admin.reset_all): the profile, then rules.
  M.throttle = type(settings.throttle) == "table" and settings.throttle or nil
  M.rate_limits = {}
  if type(settings.rate_limit) == "table" then
    if json.is_array(settings.rate_limit) then
      for _, r in ipairs(settings.rate_limit) do M.rate_limits[#M.rate_limits + 1] = r end
    else
      M.rate_limits[1] = settings.rate_limit
    end
  end
  settings.rate_limit, settings.throttle = nil, nil   -- the live rules: GET /_emulator/rate_limit
  -- Each load starts a new generation of state: a request still sleeping on a delay fault from
  -- before it must not reach the new state (router.process drops it when it wakes).
  M.generation = (M.generation or 0) + 1
  return true
end

function M.add_activity(a)
  local s = M.s
  s.activities[a.id] = a
  oadd(s.activity_list, a.id)
  local pidx = s.activities_by_provider[a._provider]
  if pidx and a.externalcourseActivityId then pidx.by_ext[a.externalcourseActivityId] = a.id end
  local uid = a.learnerUserId
  if uid then
    local ul = s.activities_by_user[uid]
    if not ul then ul = olist(); s.activities_by_user[uid] = ul end
    oadd(ul, a.id)
  end
end

function M.remove_activity(a)
  local s = M.s
  s.activities[a.id] = nil
  oremove(s.activity_list, a.id)
  local pidx = s.activities_by_provider[a._provider]
  if pidx and a.externalcourseActivityId and pidx.by_ext[a.externalcourseActivityId] == a.id then
    pidx.by_ext[a.externalcourseActivityId] = nil
  end
  local ul = a.learnerUserId and s.activities_by_user[a.learnerUserId]
  if ul then oremove(ul, a.id) end
end

-- Finds a tenant by GUID or domain name.
function M.tenant(name)
  if type(name) ~= "string" then return nil end
  return M.s.tenants[name] or M.s.tenant_by_domain[name:lower()]
end

function M.user(id_or_upn)
  if type(id_or_upn) ~= "string" then return nil end
  return M.s.users[id_or_upn] or M.s.user_by_upn[id_or_upn:lower()]
end

return M
