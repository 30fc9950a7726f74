-- vivalearning.token_cache: the delegated sign-in's refresh token on disk, so `vivalearning
-- login` signs in once and later commands (or viva.client{} through the credential chain) run
-- without a prompt.
--
-- One file per tenant, app and user: DIR/<tenant>.<client_id>.<user>.json, mode 0600 from its
-- creation (written under a temporary name, then renamed: never half a file, never readable by
-- others), in a 0700 directory DIR = $VIVA_TOKEN_CACHE, else $XDG_CACHE_HOME/vivalearning, else
-- ~/.cache/vivalearning. DIR/<tenant>.<client_id>.default names the user of the last sign-in,
-- used when no user is given. The file holds the refresh token and the account (from the id
-- token's claims), never an access token. The C core knows nothing of this: it gets the refresh
-- token as an option and hands each new one to the on_refresh_token hook made here.
--
--   local cache = require "vivalearning.token_cache"
--   local opts = cache.client_options{ tenant = T, client_id = A }   -- nil, why when none
--   local c = viva.client(merge(base, opts))                         -- refresh_token + on_refresh_token
local cjson = require "cjson.safe"
local sys = require "vivalearning.sys"

local M = {}

M.ENV = "VIVA_TOKEN_CACHE"

local function getenv(env, k)
  local v
  if env then v = env[k] else v = os.getenv(k) end
  if v == "" then v = nil end
  return v
end

--- The cache directory: o.dir, else $VIVA_TOKEN_CACHE, $XDG_CACHE_HOME/vivalearning,
--- ~/.cache/vivalearning (o.env replaces the environment, for tests). nil, message when none.
function M.dir(o)
  o = o or {}
  local d = o.dir or getenv(o.env, M.ENV)
  if d then return d end
  local xdg = getenv(o.env, "XDG_CACHE_HOME")
  if xdg then return xdg .. "/vivalearning" end
  local home = getenv(o.env, "HOME")
  if home then return home .. "/.cache/vivalearning" end
  return nil, "no token cache directory: set " .. M.ENV .. " (or XDG_CACHE_HOME or HOME)"
end

-- a name part that is safe in a file name whatever the tenant, app or user is
local function part(s)
  return (tostring(s):lower():gsub("[^%w@._-]", function(ch) return ("%%%02X"):format(ch:byte()) end))
end

local function need(o, k)
  if type(o[k]) ~= "string" or o[k] == "" then error(("token_cache: %s is required"):format(k), 3) end
end

local function base(o)
  need(o, "tenant")
  need(o, "client_id")
  local d, err = M.dir(o)
  if not d then return nil, err end
  return d .. "/" .. part(o.tenant) .. "." .. part(o.client_id)
end

--- The file of {tenant, client_id, user} (user: the UPN), whether or not it exists.
function M.path(o)
  need(o, "user")
  local b, err = base(o)
  if not b then return nil, err end
  return b .. "." .. part(o.user) .. ".json"
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

-- mkdir -p with 0700 for the directories it makes
local function mkdirs(d)
  local acc = d:sub(1, 1) == "/" and "" or "."
  for seg in d:gmatch("[^/]+") do
    acc = acc .. "/" .. seg
    local ok, err = sys.mkdir(acc, tonumber("700", 8))
    if not ok then return nil, err end
  end
  return true
end

local function write_atomic(path, data)
  local tmp = ("%s.tmp-%d-%d"):format(path, sys.getpid(), math.random(1, 0x7fffffff))
  local ok, err = sys.write_private(tmp, data)
  if not ok then return nil, err end
  local rok, rerr = os.rename(tmp, path)
  if not rok then os.remove(tmp); return nil, tostring(rerr) end
  return true
end

--- The account in an id token's claims (not verified: it only names the cache file).
local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local function b64url_decode(s)
  s = s:gsub("[+/=]", { ["+"] = "-", ["/"] = "_", ["="] = "" })
  local out, bits, n = {}, 0, 0
  for i = 1, #s do
    local v = B64:find(s:sub(i, i), 1, true)
    if not v then return nil end
    bits = bits * 64 + (v - 1)
    n = n + 6
    if n >= 8 then
      n = n - 8
      local p = 2 ^ n              -- no // or << here: this file parses on 5.1 and LuaJIT
      local byte = math.floor(bits / p)
      out[#out + 1] = string.char(byte)
      bits = bits - byte * p
    end
  end
  return table.concat(out)
end

function M.account_of(id_token)
  if type(id_token) ~= "string" then return nil end
  local payload = id_token:match("^[^.]*%.([^.]*)%.")
  local claims = payload and cjson.decode(b64url_decode(payload) or "")
  if type(claims) ~= "table" then return nil end
  local function s(v) return type(v) == "string" and v or nil end
  local user = s(claims.preferred_username) or s(claims.upn) or s(claims.email) or s(claims.oid)
  if not user then return nil end
  return { username = user, oid = s(claims.oid), tid = s(claims.tid), name = s(claims.name) }
end

--- The cached sign-in of {tenant, client_id, user?}: { refresh_token, account, path, ... }, or
--- nil, why. Without a user: the one of the last sign-in.
function M.load(o)
  local b, err = base(o)
  if not b then return nil, err end
  local user = o.user
  if not user then
    user = read(b .. ".default")
    if not user or user == "" then
      return nil, ("no cached sign-in for tenant %s and app %s: run vivalearning login"):format(o.tenant, o.client_id)
    end
  end
  local path = b .. "." .. part(user) .. ".json"
  local s = read(path)
  if not s then
    return nil, ("no cached sign-in for %s (tenant %s, app %s): run vivalearning login"):format(user, o.tenant, o.client_id)
  end
  local t = cjson.decode(s)
  if type(t) ~= "table" or type(t.refresh_token) ~= "string" or t.refresh_token == "" then
    return nil, ("the token cache %s is damaged: run vivalearning login"):format(path)
  end
  t.path = path
  return t
end

--- Writes the sign-in of {tenant, client_id}: info = what on_refresh_token got ({refresh_token,
--- id_token}); account = the one known when the answer has no id token. Returns the entry.
function M.save(o, info, account)
  local b, err = base(o)
  if not b then return nil, err end
  account = M.account_of(info.id_token) or account
  if not account then return nil, "the sign-in answered no id token: cannot tell whose cache it is" end
  local d = M.dir(o)
  local ok, merr = mkdirs(d)
  if not ok then return nil, "cannot create the token cache directory: " .. merr end
  local entry = { version = 1, tenant = o.tenant, client_id = o.client_id, account = account,
                  refresh_token = info.refresh_token, saved_at = os.time() }
  local path = b .. "." .. part(account.username) .. ".json"
  ok, err = write_atomic(path, assert(cjson.encode(entry)))
  if not ok then return nil, "cannot write the token cache: " .. err end
  ok, err = write_atomic(b .. ".default", account.username)
  if not ok then return nil, "cannot write the token cache: " .. err end
  entry.path = path
  return entry
end

--- The on_refresh_token hook for {tenant, client_id}: saves every new refresh token (raising
--- when it cannot, so a sign-in that would be forgotten fails). hook.entry is the last saved.
function M.hook(o, account)
  local h = { account = account }
  setmetatable(h, { __call = function(self, info)
    local e, err = M.save(o, info, self.account)
    if not e then error(err, 0) end
    self.account, self.entry = e.account, e
  end })
  return function(info) return h(info) end, h
end

--- Removes the cached sign-in of {tenant, client_id, user?} (default: the last one). Returns
--- the removed path, or nil, why.
function M.remove(o)
  local e, err = M.load(o)
  if not e then return nil, err end
  local ok, rerr = os.remove(e.path)
  if not ok then return nil, tostring(rerr) end
  local b = base(o)
  if read(b .. ".default") == e.account.username then os.remove(b .. ".default") end
  return e.path
end

-- the keys of `o` that say where the cache is, not how the client connects
local CACHE_KEYS = { dir = true, user = true, env = true }

--- Options for viva.client from a cached delegated sign-in: o's own client options (tenant,
--- client_id, graph_url, ...) plus refresh_token and on_refresh_token (which keeps each rotated
--- token); o.dir, o.user, o.env only choose the cache entry. Returns them and the entry, or nil,
--- why. The credential chain's last step calls this:
---   local c = viva.client(assert(cache.client_options{ tenant = T, client_id = A, graph_url = G }))
function M.client_options(o)
  local e, err = M.load(o)
  if not e then return nil, err end
  local opts = {}
  for k, v in pairs(o) do if not CACHE_KEYS[k] then opts[k] = v end end
  opts.refresh_token, opts.on_refresh_token = e.refresh_token, (M.hook(o, e.account))
  return opts, e
end

return M
