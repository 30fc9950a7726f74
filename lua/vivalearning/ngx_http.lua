-- One HTTP/1.1 exchange over an ngx_lua cosocket, for the io = "ngx" driver (vivalearning.ngx).
-- It writes the request the engine handed out (method, url, headers, body) and reads the answer
-- under strict limits, and says what happened in the engine's words: a response table, or an
-- outcome (not_sent, maybe_sent, timeout, reset, fatal, too_large) and a detail naming the cause.
-- Every error closes the connection; only a complete, well-framed answer puts it back in the pool.
-- Plain Lua over the cosocket API (connect, sslhandshake, send, receive, receiveany, settimeouts,
-- setkeepalive, close, getreusedtimes): no C, nothing that yields inside a C call.
local M = {}

M.limits = {
  status_line = 8192,    -- bytes of the status line
  header_bytes = 65536,  -- bytes of one header block (status line, fields, trailers)
  header_count = 100,    -- fields in one block
  chunk_line = 4096,     -- bytes of one chunk-size line (size and extensions)
  interim = 8,           -- 1xx answers before the final one
}

local READ = 16384       -- receiveany size while looking for the end of a line or block

-- scheme, host, port, target of an absolute http(s) URL (the engine builds it; this only splits)
function M.split_url(url)
  local scheme, authority, target = url:match("^(https?)://([^/?#]+)(.*)$")
  if not scheme then return nil end
  local host, port = authority:match("^%[([^%]]+)%]:?(%d*)$")
  if not host then host, port = authority:match("^([^:]+):?(%d*)$") end
  if not host then return nil end
  port = tonumber(port) or (scheme == "https" and 443 or 80)
  if target == "" then target = "/" end
  return scheme, host, port, target, authority
end

-- A reader over one socket: a buffer of what came in past the last thing parsed, an absolute
-- deadline for the whole attempt (each read waits only what is left of it).
local Reader = {}
Reader.__index = Reader

local function remaining_ms(self)
  ngx.update_time()
  local left = self.deadline - ngx.now()
  if left <= 0 then return nil end
  return math.max(1, math.floor(left * 1000))
end

-- nil, outcome, detail when the socket failed
function Reader:fail(err, what)
  if err == "timeout" then return nil, "timeout", "timed out reading the " .. what end
  if err == "closed" then return nil, "reset", "connection closed while reading the " .. what end
  return nil, "reset", tostring(err) .. " while reading the " .. what
end

function Reader:more(what)
  local ms = remaining_ms(self)
  if not ms then return self:fail("timeout", what) end
  self.sock:settimeout(ms)
  local data, err = self.sock:receiveany(READ)
  if not data then return self:fail(err, what) end
  self.got = self.got + #data
  if self.pos > 1 then self.buf = self.buf:sub(self.pos) .. data; self.pos = 1
  else self.buf = self.buf .. data end
  return true
end

-- the next line (without CRLF; a bare LF is taken too), at most max bytes
function Reader:line(max, what)
  while true do
    local e = self.buf:find("\n", self.pos, true)
    if e then
      if e - self.pos > max then return nil, "maybe_sent", "the " .. what .. " is over " .. max .. " bytes" end
      local s = self.buf:sub(self.pos, e - 1)
      self.pos = e + 1
      if s:sub(-1) == "\r" then s = s:sub(1, -2) end
      return s
    end
    if #self.buf - self.pos + 1 > max then return nil, "maybe_sent", "the " .. what .. " is over " .. max .. " bytes" end
    local ok, o, d = self:more(what)
    if not ok then return nil, o, d end
  end
end

-- exactly n bytes
function Reader:bytes(n, what)
  local have = #self.buf - self.pos + 1
  if have >= n then
    local s = self.buf:sub(self.pos, self.pos + n - 1)
    self.pos = self.pos + n
    return s
  end
  local head = self.buf:sub(self.pos)
  self.buf, self.pos = "", 1
  local ms = remaining_ms(self)
  if not ms then return nil, "timeout", "timed out reading the " .. what end
  self.sock:settimeout(ms)
  local rest, err, partial = self.sock:receive(n - have)
  if not rest then
    local got = have + #(partial or "")
    local o, d = select(2, self:fail(err, what))
    return nil, o, string.format("%s (%d of %d bytes)", d, got, n)
  end
  return head .. rest
end

-- until the peer closes, at most cap bytes
function Reader:to_close(cap)
  local parts, n = { self.buf:sub(self.pos) }, #self.buf - self.pos + 1
  self.buf, self.pos = "", 1
  while true do
    if n > cap then return nil, "too_large", "body over " .. cap .. " bytes" end
    local ms = remaining_ms(self)
    if not ms then return nil, "timeout", "timed out reading the body (delimited by close)" end
    self.sock:settimeout(ms)
    local data, err = self.sock:receiveany(READ)
    if not data then
      if err == "closed" then return table.concat(parts) end
      return self:fail(err, "body (delimited by close)")
    end
    parts[#parts + 1] = data
    n = n + #data
  end
end

local TOKEN = "^[!#$%%&'*+%-.^_`|~%w]+$"

-- One header block: { name (lower case) = value } (repeats joined with ", "), or nil, outcome, detail.
function Reader:fields(what)
  local h, count, bytes = {}, 0, 0
  local lim = M.limits
  while true do
    local line, o, d = self:line(lim.header_bytes, what)
    if not line then return nil, o, d end
    bytes = bytes + #line + 2
    if bytes > lim.header_bytes then return nil, "maybe_sent", "the " .. what .. " is over " .. lim.header_bytes .. " bytes" end
    if line == "" then return h end
    count = count + 1
    if count > lim.header_count then return nil, "maybe_sent", "the " .. what .. " has over " .. lim.header_count .. " fields" end
    if line:find("^[ \t]") then return nil, "maybe_sent", "obsolete line folding in " .. what end
    local name, value = line:match("^([^:]*):[ \t]*(.-)[ \t]*$")
    if not name or not name:find(TOKEN) then
      return nil, "maybe_sent", "malformed field in " .. what .. ": " .. ("%q"):format(line:sub(1, 60))
    end
    name = name:lower()
    if h[name] then h[name] = h[name] .. ", " .. value else h[name] = value end
  end
end

-- status, version minor, headers of the final answer (1xx skipped), or nil, outcome, detail
function Reader:head()
  local lim = M.limits
  for _ = 0, lim.interim do
    local line, o, d = self:line(lim.status_line, "status line")
    if not line then
      -- nothing at all from a reused connection: the server had closed it while it idled
      if self.got == 0 and o == "reset" then return nil, o, d, true end
      return nil, o, d
    end
    local minor, status = line:match("^HTTP/1%.([01]) (%d%d%d)[ ]?[^\r\n]*$")
    if not minor then
      return nil, "maybe_sent", "not an HTTP/1.x status line: " .. ("%q"):format(line:sub(1, 60))
    end
    status = tonumber(status)
    if status < 100 or status > 599 then return nil, "maybe_sent", "status " .. status .. " is not an HTTP status" end
    local h, o2, d2 = self:fields("header block")
    if not h then return nil, o2, d2 end
    if status >= 200 then return status, tonumber(minor), h end
    if status == 101 then return nil, "maybe_sent", "101 switching protocols was never asked for" end
    -- 100 Continue, 102, 103: an interim answer, the final one follows
  end
  return nil, "maybe_sent", "more than " .. lim.interim .. " interim (1xx) answers"
end

function Reader:chunked(cap)
  local parts, n = {}, 0
  local lim = M.limits
  while true do
    local line, o, d = self:line(lim.chunk_line, "chunk size line")
    if not line then return nil, o, d end
    local hex = line:match("^(%x+)[ \t]*;") or line:match("^(%x+)[ \t]*$")
    if not hex or #hex > 12 then return nil, "maybe_sent", "bad chunk size " .. ("%q"):format(line:sub(1, 40)) end
    local size = tonumber(hex, 16)
    if size == 0 then
      local t, o2, d2 = self:fields("trailer block")
      if not t then return nil, o2, d2 end
      return table.concat(parts)
    end
    n = n + size
    if n > cap then return nil, "too_large", "body over " .. cap .. " bytes" end
    local data, o3, d3 = self:bytes(size, "chunk")
    if not data then return nil, o3, d3 end
    parts[#parts + 1] = data
    local crlf, o4, d4 = self:line(2, "end of a chunk")
    if not crlf then return nil, o4, d4 end
    if crlf ~= "" then return nil, "maybe_sent", "chunk longer than its size" end
  end
end

local function has_token(v, tok)
  if not v then return false end
  for t in v:lower():gmatch("[^,%s]+") do if t == tok then return true end end
  return false
end

-- Reads the answer to a request of method over sock. Returns the response table and whether the
-- connection may be kept; or nil, outcome, detail (and true when a reused connection gave nothing).
function M.read_response(sock, method, deadline, cap, reused)
  local r = setmetatable({ sock = sock, buf = "", pos = 1, deadline = deadline, got = 0 }, Reader)
  local status, minor, h, stale = r:head()
  if not status then return nil, minor, h, stale and reused end
  local keep = has_token(h.connection, "close") == false and (minor == 1 or has_token(h.connection, "keep-alive"))
  local body
  if method == "HEAD" or status == 204 or status == 304 then
    body = ""
  elseif h["transfer-encoding"] then
    if h["content-length"] then
      return nil, "maybe_sent", "both Transfer-Encoding and Content-Length (a smuggling risk)"
    end
    local codings = h["transfer-encoding"]:lower()
    if minor ~= 1 or not codings:match("chunked%s*$") or codings:match(",") then
      return nil, "maybe_sent", "unsupported Transfer-Encoding " .. ("%q"):format(h["transfer-encoding"])
    end
    local o, d
    body, o, d = r:chunked(cap)
    if not body then return nil, o, d end
  elseif h["content-length"] then
    local cl = h["content-length"]
    if not cl:match("^%d+$") or #cl > 15 then return nil, "maybe_sent", "bad Content-Length " .. ("%q"):format(cl:sub(1, 40)) end
    local n = tonumber(cl)
    if n > cap then return nil, "too_large", "Content-Length " .. n .. " over " .. cap .. " bytes" end
    local o, d
    body, o, d = r:bytes(n, "body")
    if not body then return nil, o, d end
  else
    keep = false
    local o, d
    body, o, d = r:to_close(cap)
    if not body then return nil, o, d end
  end
  -- bytes past the framing: the answer is complete, the connection is not
  if r.pos <= #r.buf then keep = false end
  return { status = status, headers = h, body = body }, keep
end

-- The request bytes: the engine's headers (lower case) plus Host and Content-Length.
function M.format_request(req, target, authority)
  local out = { req.method, " ", target, " HTTP/1.1\r\nhost: ", authority, "\r\n" }
  for k, v in pairs(req.headers or {}) do
    if k ~= "host" and k ~= "content-length" and k ~= "connection" and k ~= "transfer-encoding" then
      out[#out + 1] = k; out[#out + 1] = ": "; out[#out + 1] = v; out[#out + 1] = "\r\n"
    end
  end
  if req.body then
    out[#out + 1] = "content-length: " .. #req.body .. "\r\n\r\n"
    out[#out + 1] = req.body
  else
    if req.method == "POST" or req.method == "PATCH" or req.method == "PUT" then
      out[#out + 1] = "content-length: 0\r\n"
    end
    out[#out + 1] = "\r\n"
  end
  return out
end

local function is_cert_error(err)
  return err:find("^%d+: ") or err:find("certificate") or err:find("handshake failed")
end

-- One attempt: connect (pool per scheme, host and port), TLS with verification, the request,
-- the answer. o = { connect_timeout =, max_body =, pool_size = }. Returns a response table, or
-- nil, outcome, detail.
function M.exchange(req, o)
  local scheme, host, port, target, authority = M.split_url(req.url)
  if not scheme then return nil, "fatal", "not an http(s) URL: " .. tostring(req.url) end
  ngx.update_time()
  local deadline = ngx.now() + (req.timeout or 60)
  local pool = "vivalearning:" .. scheme .. "://" .. host .. ":" .. port
  -- nginx's resolver never reads /etc/hosts: localhost is loopback (RFC 6761), the name stays
  -- for SNI and the certificate check
  local addr = host == "localhost" and "127.0.0.1" or host
  for try = 1, 2 do
    local sock = ngx.socket.tcp()
    local left = deadline - ngx.now()
    if left <= 0 then return nil, "timeout", "timed out before connecting" end
    local cms = math.max(1, math.floor(math.min(left, o.connect_timeout or 10) * 1000))
    sock:settimeouts(cms, math.max(1, math.floor(left * 1000)), math.max(1, math.floor(left * 1000)))
    local ok, err = sock:connect(addr, port, { pool = pool, pool_size = o.pool_size })
    if not ok then return nil, "not_sent", "connect " .. host .. ":" .. port .. ": " .. tostring(err) end
    local reused = (sock:getreusedtimes() or 0) > 0
    if scheme == "https" and not reused then
      local sess, serr = sock:sslhandshake(nil, host, true)
      if not sess then
        sock:close()
        serr = tostring(serr)
        if serr ~= "timeout" and is_cert_error(serr) then return nil, "fatal", "TLS with " .. host .. ": " .. serr end
        return nil, "not_sent", "TLS with " .. host .. ": " .. serr
      end
    end
    local sent, serr2 = sock:send(M.format_request(req, target, authority))
    if not sent then
      sock:close()
      if serr2 == "timeout" then return nil, "timeout", "timed out sending the request" end
      return nil, "maybe_sent", "sending the request: " .. tostring(serr2)
    end
    local res, keep, detail, stale = M.read_response(sock, req.method, deadline, o.max_body or 16 * 1024 * 1024, reused)
    if res then
      if keep then sock:setkeepalive() else sock:close() end
      return res
    end
    sock:close()
    -- a pooled connection the server had closed while it idled: nothing of this request was
    -- read, so a GET goes once more on a fresh connection; anything else is the policy's
    if not (stale and try == 1 and req.method == "GET") then return nil, keep, detail end
  end
end

return M
