-- c:warmup([opts]): the token fetch, DNS lookup, TLS handshake and CA loading a client's first
-- request would pay, done ahead (at load time, outside a frame loop). It sends one small read
-- (the first page of learning providers, $top=1) through the client's ordinary path: the token
-- is fetched and cached, the connection stays open in the client's pool, and libcurl keeps the
-- parsed CA store (CURLOPT_CA_CACHE_TIMEOUT) for every later connection. Whatever HTTP status
-- the read gets (403 for an app without provider access, say) the work is done: only an auth
-- or transport error makes warmup fail. See docs/embedding.md.
--   c:warmup()                  blocks; true, or nil and the error
--   c:warmup{ wait = false }    returns the read's handle at once; poll drives it like any other
local M = {}

local FAILS = { auth = true, transport = true }

local function options(opts)
  local wait = true
  if opts == nil then return wait end
  if type(opts) ~= "table" then
    error(("bad argument #1 to 'warmup' (table or nil expected, got %s)"):format(type(opts)), 3)
  end
  for k, v in pairs(opts) do
    if k ~= "wait" then
      error(("bad argument #1 to 'warmup' (unknown option '%s'; warmup takes { wait = boolean })"):format(tostring(k)), 3)
    end
    if type(v) ~= "boolean" then
      error(("bad argument #1 to 'warmup' (wait must be a boolean, got %s)"):format(type(v)), 3)
    end
    wait = v
  end
  return wait
end

local function warmup(c, opts)
  if not options(opts) then return c:submit("providers_page", { top = 1 }) end
  local page, err = c:providers_page { top = 1 }
  if page or not FAILS[err.kind] then return true end
  return nil, err
end

function M.install(methods) methods.warmup = warmup end

return M
