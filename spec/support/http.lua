-- A small HTTP client for specs, built on the curl command line (so the emulator specs never depend
-- on our own C client).
--   local http = require "support.http"
--   local res = http.request{ method = "POST", url = ..., headers = {...}, body = "..." | json = {...} | form = {...},
--                             cacert = path, http2 = true (ALPN) | "prior" (h2c) , http1 = true, timeout = s }
--   res.status, res.headers (lower-case names; repeated ones joined with ", "), res.body, res.json,
--   res.http_version, res.curl_exit (non-zero when the transfer failed: 52 empty reply, 56 reset, ...)
local cjson = require("cjson")

local shell = require "support.shell"

local M = {}

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.shell_quote = q

-- Shell commands for specs:
--   http.run(cmd) -> exit code, output (stdout + stderr)
--   http.ok(cmd)  -> true when the command exits 0
M.run = shell.run
function M.ok(cmd) return shell.ok("(" .. cmd .. ") >/dev/null 2>&1") end

local function tmpname()
  local n = os.tmpname()
  return n
end

-- The whole content of a file ("" when it cannot be read).
local function read_all(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end
M.read_file = read_all

local function form_encode(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local function enc(s)
      return (tostring(s):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
    end
    parts[#parts + 1] = enc(k) .. "=" .. enc(t[k])
  end
  return table.concat(parts, "&")
end
M.form_encode = form_encode

function M.json_decode(s)
  local ok, v = pcall(cjson.decode, s)
  if ok then return v end
  return nil
end

function M.request(o)
  local method = o.method or "GET"
  local headers = {}
  for k, v in pairs(o.headers or {}) do headers[k] = v end
  local body = o.body
  if o.json ~= nil then
    body = type(o.json) == "string" and o.json or cjson.encode(o.json)
    if headers["Content-Type"] == nil and headers["content-type"] == nil then headers["Content-Type"] = "application/json" end
  elseif o.form then
    body = form_encode(o.form)
    if headers["Content-Type"] == nil then headers["Content-Type"] = "application/x-www-form-urlencoded" end
  end
  local hfile, bfile = tmpname(), tmpname()
  local args = { "curl", "-sS", "-g", "--path-as-is", "-X", q(method), "-D", q(hfile), "-o", q(bfile),
    "-w", q("%{http_code} %{http_version}"), "--max-time", tostring(o.timeout or 30) }
  local infile
  if body ~= nil then
    infile = tmpname()
    local f = assert(io.open(infile, "wb"))
    f:write(body)
    f:close()
    args[#args + 1] = "--data-binary"
    args[#args + 1] = q("@" .. infile)
  end
  for k, v in pairs(headers) do
    if v == false then
      args[#args + 1] = "-H"; args[#args + 1] = q(k .. ":")
    elseif v == "" then
      args[#args + 1] = "-H"; args[#args + 1] = q(k .. ";")
    else
      args[#args + 1] = "-H"; args[#args + 1] = q(k .. ": " .. v)
    end
  end
  if body == nil and headers["Content-Type"] == nil then
    -- no body: keep curl from adding its own content type
  end
  if o.cacert then args[#args + 1] = "--cacert"; args[#args + 1] = q(o.cacert) end
  if o.http2 == "prior" then args[#args + 1] = "--http2-prior-knowledge"
  elseif o.http2 then args[#args + 1] = "--http2"
  elseif o.http1 then args[#args + 1] = "--http1.1" end
  for _, a in ipairs(o.curl_args or {}) do args[#args + 1] = q(a) end
  args[#args + 1] = q(o.url)
  local cmd = table.concat(args, " ") .. " 2>/dev/null"
  local code, out = shell.capture(cmd)
  out = out or ""
  local res = { curl_exit = code or 0 }
  local status, ver = out:match("^(%d+) (%S+)")
  res.status = tonumber(status) or 0
  res.http_version = ver
  res.headers = {}
  res.header_list = {}
  local raw = read_all(hfile)
  -- keep the last header block (after any 100-continue)
  local last = raw
  for block in raw:gmatch("(HTTP/[^\r\n]*\r?\n.-\r?\n\r?\n)") do last = block end
  for line in last:gmatch("[^\r\n]+") do
    local k, v = line:match("^([^:%s]+):%s*(.-)%s*$")
    if k then
      k = k:lower()
      res.header_list[#res.header_list + 1] = { k, v }
      if res.headers[k] then res.headers[k] = res.headers[k] .. ", " .. v else res.headers[k] = v end
    end
  end
  res.body = read_all(bfile)
  os.remove(hfile); os.remove(bfile)
  if infile then os.remove(infile) end
  if res.body ~= "" then
    local ct = res.headers["content-type"] or ""
    if ct:find("json") then res.json = M.json_decode(res.body) end
  end
  return res
end

for _, m in ipairs({ "GET", "POST", "PATCH", "PUT", "DELETE" }) do
  M[m:lower()] = function(url, o)
    o = o or {}
    o.method = m
    o.url = url
    return M.request(o)
  end
end

return M
