-- Entry point: reads the request, runs it through the pipeline (log, faults, auth, rate limit,
-- handler), and writes (or drops) the response.  process() is also what each $batch item goes through.
local json = require("json")
local util = require("util")
local state = require("state")
local log = require("log")
local errors = require("errors")
local faults = require("faults")
local ratelimit = require("ratelimit")
local auth = require("auth")
local admin = require("admin")
local activities = require("activities")
local providers = require("providers")
local contents = require("contents")

local M = {}

local GRAPH_CT = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"

-- Parses an OData key expression: 'literal' | prop='literal' | prop=literal | literal
local function parse_literal(s)
  if s:sub(1, 1) ~= "'" then
    if s == "" or s:find("'", 1, true) then return nil end
    return s
  end
  if #s < 2 or s:sub(-1) ~= "'" then return nil end
  local inner = s:sub(2, -2)
  -- a lone quote inside is an error; '' stands for one quote
  local check = inner:gsub("''", "")
  if check:find("'", 1, true) then return nil end
  return (inner:gsub("''", "'"))
end

local function parse_key(expr)
  local prop, lit = expr:match("^%s*([%a_][%w_]*)%s*=%s*(.-)%s*$")
  if prop then
    local v = parse_literal(lit)
    if not v then return nil end
    return { alt = prop, value = v }
  end
  local v = parse_literal(expr:match("^%s*(.-)%s*$"))
  if not v then return nil end
  return { id = v }
end

-- Splits the raw path into percent-decoded segments; a segment "name(key)" carries its key.
local function segments(raw_path)
  local out = {}
  for seg in raw_path:gmatch("[^/]+") do
    local d = util.pct_decode(seg)
    local name, inner = d:match("^([%a_$][%w_.$]*)%((.*)%)$")
    if name then
      local key = parse_key(inner)
      out[#out + 1] = { name = name, key = key, bad_key = key == nil, raw = d }
    else
      out[#out + 1] = { name = d, raw = d }
    end
  end
  return out
end
M.segments = segments

-- Fills the parsed fields of a request table (top-level or $batch item).
function M.prepare(req)
  req.path = req.raw_path
  req.qlist, req.qmap = util.parse_query(req.raw_query)
  req.segs = segments(req.raw_path)
  req.request_id = req.request_id or util.uuid()
  local crid = req.headers["client-request-id"]
  if type(crid) == "table" then crid = crid[1] end
  req.client_request_id = crid or req.request_id
  req.unknown_members = activities.prefers_unknown_members(req)
  req.is_token = req.raw_path:match("^/[^/]+/oauth2/v2%.0/token/?$") ~= nil
    or req.raw_path:match("^/[^/]+/oauth2/v2%.0/devicecode/?$") ~= nil
    or req.raw_path:match("^/[^/]+/v2%.0/%.well%-known/openid%-configuration$") ~= nil
    or req.raw_path == "/common/discovery/instance"
  req.is_mi = req.raw_path:match("^/metadata/identity/oauth2/token/?$") ~= nil or req.raw_path:match("^/msi/token/?$") ~= nil
  local s1, s2 = req.segs[1], req.segs[2]
  req.is_batch = s1 ~= nil and (s1.name == "v1.0" or s1.name == "beta") and s2 ~= nil and s2.name == "$batch"
    and req.segs[3] == nil
end

-- Seconds this request waits under settings.latency ({base, jitter}: base ± jitter), or nil.
local function latency()
  local l = state.settings.latency
  if type(l) ~= "table" then return nil end
  local d = (l.base or 0) + (2 * math.random() - 1) * (l.jitter or 0)
  if d <= 0 then return nil end
  return d
end

local function method_not_allowed(req) return errors.method_not_allowed(req) end

-- Graph's answer to a path segment it does not know (also a $batch step URL that keeps /v1.0).
local function unknown_segment(req, seg)
  return errors.graph(req, 400, "BadRequest", "Resource not found for the segment '" .. tostring(seg) .. "'.")
end

local NAV = { learningCourseActivities = true, learningContents = true, ["$ref"] = true, ["$count"] = true }

-- Takes an entity key: from the segment itself "(...)" or from the next plain segment.
local function take_key(segs, i)
  local s = segs[i]
  if s.key then return s.key, i + 1 end
  local n = segs[i + 1]
  if n and not n.key and not NAV[n.name] then return { id = n.name }, i + 2 end
  return nil, i + 1
end

-- Activities under some prefix.  scope: { provider_key = } | { user_seg = } | {}
local function route_activities(req, principal, segs, i, scope)
  local m = req.method
  local akey, j = take_key(segs, i)
  local rest = segs[j]
  if rest then
    if rest.name == "$count" and not akey and not segs[j + 1] then
      if m ~= "GET" then return method_not_allowed(req) end
      return activities.count(req, principal, scope.provider_key, scope.user_seg)
    end
    return unknown_segment(req, rest.raw)
  end
  if not akey then
    if m == "GET" then return activities.list(req, principal, scope.provider_key, scope.user_seg) end
    if m == "POST" and not scope.user_seg then return activities.create(req, principal, scope.provider_key) end
    return method_not_allowed(req)
  end
  if scope.user_seg then
    if m ~= "GET" then return method_not_allowed(req) end
    local user
    if scope.user_seg.me then
      if principal.kind ~= "user" then
        return errors.graph(req, 400, "BadRequest", "/me request is only valid with delegated authentication flow.")
      end
      user = state.s.users[principal.user_id]
    else
      user = state.user(scope.user_seg.id)
      if not user or user.tenant ~= principal.tenant then
        return errors.graph(req, 404, "Request_ResourceNotFound",
          "Resource '" .. scope.user_seg.id .. "' does not exist or one of its queried reference-property objects are not present.")
      end
    end
    return activities.get(req, principal, akey, nil, user)
  end
  if m == "GET" then return activities.get(req, principal, akey, scope.provider_key) end
  if m == "PATCH" then return activities.update(req, principal, akey, scope.provider_key) end
  if m == "DELETE" then return activities.delete(req, principal, akey, scope.provider_key) end
  return method_not_allowed(req)
end

local function route_contents(req, principal, segs, i, pkey)
  local m = req.method
  local ckey, j = take_key(segs, i)
  local rest = segs[j]
  local ref = false
  if rest then
    if rest.name == "$ref" and ckey and not segs[j + 1] then ref = true
    else return unknown_segment(req, rest.raw) end
  end
  if not ckey then
    if m == "GET" then return contents.list(req, principal, pkey) end
    if m == "POST" then return contents.create(req, principal, pkey) end
    return method_not_allowed(req)
  end
  if ref then
    if m == "DELETE" then return contents.delete(req, principal, pkey, ckey) end
    return method_not_allowed(req)
  end
  if m == "GET" then return contents.get(req, principal, pkey, ckey) end
  if m == "PATCH" then return contents.upsert(req, principal, pkey, ckey) end
  if m == "DELETE" then return contents.delete(req, principal, pkey, ckey) end
  return method_not_allowed(req)
end

-- Graph paths after /v1.0 or /beta (segs[2]...).
local function route_graph(req, principal)
  local segs = req.segs
  local m = req.method
  for _, s in ipairs(segs) do
    if s.bad_key then
      return errors.graph(req, 400, "BadRequest", "Bad Request - Error in query syntax: the key in segment '" .. s.raw .. "' is not a valid OData literal.")
    end
  end
  local s1 = segs[2]
  if not s1 then return unknown_segment(req, "") end
  if s1.name == "employeeExperience" and not s1.key then
    local s2 = segs[3]
    if not s2 then return unknown_segment(req, "employeeExperience") end
    if s2.name == "learningProviders" then
      local pkey, j = take_key(segs, 3)
      if not pkey then
        if segs[j] then return unknown_segment(req, segs[j].raw) end
        if m == "GET" then return providers.list(req, principal) end
        if m == "POST" then return providers.create(req, principal) end
        return method_not_allowed(req)
      end
      local rest = segs[j]
      if not rest then
        if m == "GET" then return providers.get(req, principal, pkey) end
        if m == "PATCH" then return providers.update(req, principal, pkey) end
        if m == "DELETE" then return providers.delete(req, principal, pkey) end
        return method_not_allowed(req)
      end
      if rest.name == "$ref" and not rest.key and not segs[j + 1] then
        if m == "DELETE" then return providers.delete(req, principal, pkey) end
        return method_not_allowed(req)
      end
      if rest.name == "learningCourseActivities" then
        return route_activities(req, principal, segs, j, { provider_key = pkey })
      end
      if rest.name == "learningContents" then
        return route_contents(req, principal, segs, j, pkey)
      end
      return unknown_segment(req, rest.raw)
    elseif s2.name == "learningCourseActivities" then
      return route_activities(req, principal, segs, 3, {})
    end
    return unknown_segment(req, s2.raw)
  end
  local user_seg, i
  if s1.name == "me" and not s1.key then
    user_seg, i = { me = true }, 3
  elseif s1.name == "users" then
    local ukey, j = take_key(segs, 2)
    if not ukey or ukey.alt then return unknown_segment(req, s1.raw) end
    user_seg, i = { id = ukey.id }, j
  else
    return unknown_segment(req, s1.raw)
  end
  local e = segs[i]
  if not e or e.name ~= "employeeExperience" or e.key then return unknown_segment(req, e and e.raw or s1.raw) end
  local l = segs[i + 1]
  if not l or l.name ~= "learningCourseActivities" then return unknown_segment(req, l and l.raw or "employeeExperience") end
  return route_activities(req, principal, segs, i + 1, { user_seg = user_seg })
end

local function check_json_body(req)
  local m = req.method
  if m ~= "POST" and m ~= "PATCH" and m ~= "PUT" then return nil end
  local ct = req.headers["content-type"]
  if type(ct) == "table" then ct = ct[1] end
  local b = req.body or ""
  local lct = ct and ct:lower() or ""
  if not (lct:match("^%s*application/json%s*$") or lct:match("^%s*application/json%s*;")) then
    return errors.graph(req, 415, "UnsupportedMediaType",
      "Content-Type '" .. tostring(ct or "") .. "' is not supported; send application/json.")
  end
  if req.prejson ~= nil then
    -- a $batch item whose body came decoded with the (already checked) envelope
    req.json = req.prejson
    return nil
  end
  if not util.valid_utf8(b) then
    return errors.graph(req, 400, "BadRequest", "The request body is not valid UTF-8.")
  end
  if b:match("^%s*$") then
    return errors.graph(req, 400, "BadRequest", "Empty Payload. JSON content expected.")
  end
  local v, err = json.decode(b)
  if v == nil then
    return errors.graph(req, 400, "BadRequest",
      "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.")
  end
  req.json = v
  return nil
end

-- Routes one request; returns response, principal.
function M.dispatch(req)
  if req.too_large then return errors.too_large(req, state.settings.max_body_bytes) end
  local segs = req.segs
  for _, s in ipairs(segs) do
    if not util.valid_utf8(s.raw) then
      return errors.graph(req, 400, "BadRequest", "The request URL is not valid UTF-8.")
    end
  end
  local s1 = segs[1] and segs[1].name
  if #segs == 4 and segs[2].name == "oauth2" and segs[3].name == "v2.0" and segs[4].name == "token" then
    req.is_token = true
    local resp = auth.token_endpoint(req, segs[1].name)
    resp.app = req.token_client_id
    return resp
  end
  if #segs == 4 and segs[2].name == "oauth2" and segs[3].name == "v2.0" and segs[4].name == "devicecode" then
    req.is_token = true
    local resp = require("devicecode").endpoint(req, segs[1].name)
    resp.app = req.token_client_id
    return resp
  end
  if #segs == 4 and segs[2].name == "v2.0" and segs[3].name == ".well-known" and segs[4].name == "openid-configuration" then
    req.is_token = true
    return require("discovery").openid_configuration(req, segs[1].name)
  end
  if #segs == 3 and s1 == "common" and segs[2].name == "discovery" and segs[3].name == "instance" then
    req.is_token = true
    return require("discovery").instance(req)
  end
  if req.is_mi then
    local mi = require("managed_identity")
    local resp = s1 == "msi" and mi.app_service(req) or mi.imds(req)
    resp.app = req.token_client_id
    return resp
  end
  if s1 ~= "v1.0" and s1 ~= "beta" then
    return unknown_segment(req, s1 or "")
  end
  req.version = s1
  if segs[2] and segs[2].name == "$batch" and not segs[3] then
    if req.batch_seq then
      return errors.graph(req, 400, "BadRequest", "A $batch request cannot contain another $batch request.")
    end
    if req.method ~= "POST" then return method_not_allowed(req) end
    local berr = check_json_body(req)
    if berr then return berr end
    return require("batch").run(req)
  end
  local principal, aerr = auth.authenticate(req)
  if not principal then return aerr end
  local wait = ratelimit.take(principal)
  if wait then return ratelimit.response(req, wait), principal end
  local berr = check_json_body(req)
  if berr then return berr, principal end
  return route_graph(req, principal), principal
end

local function finalize(req, resp)
  local h = resp.headers
  if not h then h = {}; resp.headers = h end
  if req.is_token then
    h["x-ms-request-id"] = req.request_id
    h["client-request-id"] = req.client_request_id
  elseif req.is_mi then
    h["x-ms-request-id"] = req.request_id
  else
    h["request-id"] = req.request_id
    h["client-request-id"] = req.client_request_id
    h["x-ms-ags-diagnostic"] = '{"ServerInfo":{"DataCenter":"Emulator","Slice":"E","Ring":"0","ScaleUnit":"000","RoleInstance":"viva-emulator"}}'
  end
  if resp.json and not resp.admin and not resp.entra then h["OData-Version"] = "4.0" end
  h["Cache-Control"] = h["Cache-Control"] or "no-cache"
end

-- The pipeline every Graph/token request (and every $batch item) goes through.
function M.process(req)
  M.prepare(req)
  local entry = log.start(req)
  log.counters.requests = log.counters.requests + 1
  local resp, principal
  -- Latency (settings.latency): every Graph request, not the token endpoint (Entra is another
  -- service, and a client asks it once an hour).  A $batch envelope gets none of its own: its steps
  -- each wait, concurrently, so the batch costs one round trip (see batch.lua).
  local wait = not req.is_token and not req.is_mi and not req.is_batch and latency()
  if wait then
    entry.latency = wait
    local generation = state.generation
    ngx.sleep(wait)
    -- reset while asleep: a straggler must not reach the new state (as with a delay fault below)
    if state.generation ~= generation then resp = { drop = true } end
  end
  local rule = not resp and faults.match(req)
  if rule and not rule.after then
    local generation = state.generation
    if rule.delay then ngx.sleep(rule.delay) end
    -- Reset (or re-seeded) while this request slept: a straggler, typically one whose client
    -- gave up long ago, must not change the new state (rate buckets, creates, counters).
    if rule.drop or state.generation ~= generation then resp = { drop = true }
    elseif rule.truncate or rule.stall then resp = { truncate = true, stall = rule.stall }
    elseif rule.status then resp = faults.response(req, rule) end
    if resp then resp.fault = rule.id end
  end
  if not resp then
    local ok, r, p = xpcall(M.dispatch, debug.traceback, req)
    if ok then
      resp, principal = r, p
    else
      ngx.log(ngx.ERR, "emulator handler error: ", r)
      resp = errors.graph(req, 500, "internalServerError", "Internal server error.")
    end
    if req.is_batch and not req.steps_ran then
      -- a $batch refused before any step ran (400, 405, 415...) still costs its round trip
      local d = latency()
      if d then entry.latency = d; ngx.sleep(d) end
    end
    if rule and rule.after then
      if rule.delay then ngx.sleep(rule.delay) end
      local committed = resp.status
      if rule.drop then resp = { drop = true }
      elseif rule.truncate or rule.stall then resp = { truncate = true, stall = rule.stall }
      elseif rule.status then resp = faults.response(req, rule) end
      resp.fault = rule.id
      resp.committed_status = committed
    end
  end
  finalize(req, resp)
  if rule and not resp.fault then resp.fault = rule.id end
  log.finish(entry, resp, principal)
  if resp.committed_status then entry.committed_status = resp.committed_status end
  return resp
end

function M.json_content_type(resp)
  return (resp.entra or resp.admin) and "application/json; charset=utf-8" or GRAPH_CT
end

function M.body_text(resp)
  if resp.raw then return resp.raw, resp.content_type end
  if resp.json then
    return json.encode(resp.json), (resp.entra or resp.admin) and "application/json; charset=utf-8" or GRAPH_CT
  end
  if resp.text then return resp.text, resp.content_type or "text/plain" end
  return nil
end

function M.send(resp)
  if resp.drop then
    return ngx.exit(444)
  end
  if resp.truncate then
    -- headers promise a body that never comes: the client sees a truncated response
    ngx.status = 200
    ngx.header["Content-Type"] = GRAPH_CT
    ngx.header["Content-Length"] = "1000"
    ngx.print('{"value":[')
    ngx.flush(true)
    if resp.stall then ngx.sleep(resp.stall) end   -- a stall after the headers, then the connection goes
    return ngx.exit(444)
  end
  ngx.status = resp.status
  for k, v in pairs(resp.headers or {}) do ngx.header[k] = v end
  local body, ct = M.body_text(resp)
  if body then
    ngx.header["Content-Type"] = ct
    ngx.header["Content-Length"] = #body
    ngx.print(body)
  end
  return ngx.exit(resp.status)
end

local function read_body(req)
  ngx.req.read_body()
  local b = ngx.req.get_body_data()
  if not b then
    local f = ngx.req.get_body_file()
    if f then
      local fh = io.open(f, "rb")
      if fh then b = fh:read("*a"); fh:close() end
    end
  end
  return b or ""
end

local function is_loopback(addr)
  return addr == "127.0.0.1" or addr == "::1" or (addr or ""):match("^127%.") ~= nil
end

function M.handle()
  local uri = ngx.var.request_uri
  local raw_path, raw_query = uri:match("^([^?]*)%??(.*)$")
  local hmap = ngx.req.get_headers(200)   -- names already lower-case
  local host = ngx.var.http_host or (ngx.var.server_addr .. ":" .. ngx.var.server_port)
  local req = {
    method = ngx.req.get_method(),
    raw_path = raw_path,
    raw_query = raw_query,
    headers = hmap,
    scheme = ngx.var.scheme,
    base = ngx.var.scheme .. "://" .. host,
    protocol = ngx.var.server_protocol,
  }
  local admin_what, admin_rest = raw_path:match("^/_emulator/([%w_]+)/?([^/]*)$")
  if raw_path:find("^/_emulator") then
    if not is_loopback(ngx.var.remote_addr) then
      return M.send({ status = 403, json = { error = { code = "Forbidden", message = "the admin API is loopback only" } }, admin = true })
    end
    req.body = read_body(req)
    req.qlist, req.qmap = util.parse_query(raw_query)
    local ok, resp = xpcall(admin.handle, debug.traceback, req, admin_what, admin_rest ~= "" and admin_rest or nil)
    if not ok then
      ngx.log(ngx.ERR, "emulator admin error: ", resp)
      resp = { status = 500, json = { error = { code = "internalServerError", message = "admin handler failed" } }, admin = true }
    end
    return M.send(resp)
  end
  local limit = tonumber(state.settings.max_body_bytes) or 4194304
  local cl = tonumber(hmap["content-length"] or "")
  if cl and cl > limit then
    ngx.req.discard_body()
    req.too_large = true
    req.body = ""
    ngx.header["Connection"] = "close"
  else
    req.body = read_body(req)
    if #req.body > limit then req.too_large = true end
  end
  return M.send(M.process(req))
end

-- error_page 400 (a request nginx itself refused to parse, e.g. %00 in the path)
function M.bad_request()
  local ok, method = pcall(ngx.req.get_method)
  local req = { method = ok and method or "GET", raw_path = "/", raw_query = "", headers = {}, body = "" }
  M.prepare(req)
  local resp = errors.graph(req, 400, "BadRequest", "The request could not be parsed (malformed request line, URL or headers).")
  finalize(req, resp)
  return M.send(resp)
end

-- error_page 413 (a body past nginx's own 64 MiB cap)
function M.too_large()
  local req = { method = ngx.req.get_method(), raw_path = ngx.var.uri or "/", raw_query = "", headers = {}, body = "" }
  M.prepare(req)
  local resp = errors.too_large(req, state.settings.max_body_bytes)
  finalize(req, resp)
  return M.send(resp)
end

return M
