-- Request log and counters (read by tests through /_emulator/log and /_emulator/counters).
-- Secret values never enter the log: Authorization, cookies and secret-bearing headers are redacted,
-- and bodies are recorded only by size.
local M = {}

local MAX_ENTRIES = 20000
M.entries = {}
M.first = 1          -- index of the oldest entry kept
M.seq = 0
M.counters = { creates = {}, requests = 0, tokens = 0, token_requests = 0, conflicts = 0 }

local SECRET = {
  authorization = true, cookie = true, ["set-cookie"] = true, ["proxy-authorization"] = true,
  ["x-client-secret"] = true, ["client_secret"] = true, ["x-api-key"] = true,
  ["x-identity-header"] = true, secret = true,   -- managed identity: App Service (2019) and legacy MSI (2017)
}

function M.reset()
  M.entries = {}
  M.first = 1
  M.counters = { creates = {}, requests = 0, tokens = 0, token_requests = 0, conflicts = 0 }
end

function M.redact_headers(h)
  local r = {}
  for k, v in pairs(h) do
    if type(v) == "table" then v = table.concat(v, ", ") end
    if SECRET[k] then
      local scheme = v:match("^(%a+)%s")
      r[k] = scheme and (scheme .. " <redacted>") or "<redacted>"
    else
      r[k] = v
    end
  end
  return r
end

local SECRET_PARAMS = {
  client_secret = true, password = true, access_token = true, refresh_token = true,
  client_assertion = true, code = true, assertion = true, token = true,
  device_code = true, user_code = true, id_token = true,
}

-- The query string with the values of secret-bearing parameters replaced.
function M.redact_query(q)
  if not q or q == "" then return "" end
  return (q:gsub("([^&=]+)=([^&]*)", function(k, v)
    local name = k:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end):lower()
    if SECRET_PARAMS[name] then return k .. "=<redacted>" end
    return k .. "=" .. v
  end))
end

-- Starts an entry for a request; the router completes it with finish().
function M.start(req)
  M.seq = M.seq + 1
  local e = {
    seq = M.seq,
    method = req.method,
    path = req.path,
    query = M.redact_query(req.raw_query),
    headers = M.redact_headers(req.headers),
    body_bytes = req.body and #req.body or 0,   -- ($batch items with a JSON body: 0, it came with the envelope)
    client_request_id = req.client_request_id,
    request_id = req.request_id,
    time = ngx.now(),
    batch = req.batch_seq,
    batch_item = req.batch_item,
    protocol = req.protocol,
  }
  local n = #M.entries + 1
  M.entries[n] = e
  if n - M.first + 1 > MAX_ENTRIES then
    M.entries[M.first] = false
    M.first = M.first + 1
    if M.first > 4 * MAX_ENTRIES then   -- compact now and then
      local kept = {}
      for i = M.first, #M.entries do kept[#kept + 1] = M.entries[i] end
      M.entries, M.first = kept, 1
    end
  end
  return e
end

function M.finish(e, resp, principal)
  e.status = resp.status
  if resp.drop then e.status = 0; e.dropped = true end
  if resp.fault then e.fault = resp.fault end
  if principal then
    e.app = principal.client_id
    e.user = principal.user_id
  elseif resp.app then
    e.app = resp.app
  end
  e.duration = ngx.now() - e.time
end

function M.since(seq)
  local out = {}
  for i = M.first, #M.entries do
    local e = M.entries[i]
    if e and e.seq > seq then out[#out + 1] = e end
  end
  return out
end

function M.count_create(provider, ext)
  local c = M.counters.creates
  local p = c[provider]
  if not p then p = {}; c[provider] = p end
  local key = ext or "(none)"
  p[key] = (p[key] or 0) + 1
end

return M
