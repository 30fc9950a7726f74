-- Small helpers: ids, percent-decoding, query strings, UTF-8 checks, time formats.
local M = {}

local fmt = string.format
local random = math.random

function M.uuid()
  return fmt("%08x-%04x-4%03x-%04x-%04x%08x",
    random(0, 0xffffffff), random(0, 0xffff), random(0, 0xfff),
    0x8000 + random(0, 0x3fff), random(0, 0xffff), random(0, 0xffffffff))
end

function M.is_guid(s)
  return type(s) == "string" and s:match("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$") ~= nil
end

local function hexchar(h) return string.char(tonumber(h, 16)) end

-- Percent-decoding of a path segment ('+' stays '+').
function M.pct_decode(s)
  return (s:gsub("%%(%x%x)", hexchar))
end

-- Form/query decoding ('+' is a space).
function M.form_decode(s)
  return (s:gsub("+", " "):gsub("%%(%x%x)", hexchar))
end

function M.pct_encode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return fmt("%%%02X", c:byte()) end))
end

-- Encoding for one path segment: ':' and '@' are pchars (RFC 3986) and stay as they are.
function M.pct_encode_segment(s)
  return (s:gsub("[^%w%-%._~:@]", function(c) return fmt("%%%02X", c:byte()) end))
end

-- Encoding for a query value that keeps '$', ',' and "'" readable (as Graph's own nextLinks do).
function M.query_encode(s)
  return (s:gsub("[^%w%-%._~%$,'%(%)]", function(c) return fmt("%%%02X", c:byte()) end))
end

-- Parses a query string into an ordered list of {key, value} and a map key -> value (last wins).
function M.parse_query(q)
  local list, map = {}, {}
  if not q or q == "" then return list, map end
  for part in q:gmatch("[^&]+") do
    local k, v = part:match("^([^=]*)=(.*)$")
    if not k then k, v = part, "" end
    k, v = M.form_decode(k), M.form_decode(v)
    list[#list + 1] = { k, v }
    map[k] = v
  end
  return list, map
end

function M.parse_form(body)
  local _, map = M.parse_query(body or "")
  return map
end

-- True when s is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
function M.valid_utf8(s)
  if not s:find("[\128-\255]") then return true end
  local i, n = 1, #s
  local byte = string.byte
  while i <= n do
    local c = byte(s, i)
    if c < 0x80 then
      i = i + 1
    else
      local len, min
      if c >= 0xC2 and c <= 0xDF then len, min = 2, 0x80
      elseif c >= 0xE0 and c <= 0xEF then len, min = 3, 0x800
      elseif c >= 0xF0 and c <= 0xF4 then len, min = 4, 0x10000
      else return false end
      if i + len - 1 > n then return false end
      local cp = c % (2 ^ (7 - len))
      for j = 1, len - 1 do
        local cc = byte(s, i + j)
        if cc < 0x80 or cc > 0xBF then return false end
        cp = cp * 64 + (cc - 0x80)
      end
      if cp < min or cp > 0x10FFFF or (cp >= 0xD800 and cp <= 0xDFFF) then return false end
      i = i + len
    end
  end
  return true
end

-- "2025-02-13T10:17:06" (Graph's innerError date form, UTC)
function M.iso_now()
  return os.date("!%Y-%m-%dT%H:%M:%S", math.floor(ngx.now()))
end

-- "2016-01-09 02:02:12Z" (Entra's timestamp form)
function M.entra_now()
  return os.date("!%Y-%m-%d %H:%M:%SZ", math.floor(ngx.now()))
end

function M.http_date(t)
  return ngx.http_time(math.floor(t))
end

function M.b64url(s)
  return (ngx.encode_base64(s):gsub("+", "-"):gsub("/", "_"):gsub("=", ""))
end

function M.b64url_decode(s)
  s = s:gsub("-", "+"):gsub("_", "/")
  local pad = #s % 4
  if pad == 2 then s = s .. "==" elseif pad == 3 then s = s .. "=" elseif pad == 1 then return nil end
  return ngx.decode_base64(s)
end

-- The values of a table as an array (array order for arrays).
function M.values(t)
  local out = {}
  if #t > 0 then
    for i = 1, #t do out[i] = t[i] end
  else
    for _, v in pairs(t) do out[#out + 1] = v end
  end
  return out
end

function M.copy(t)
  if type(t) ~= "table" then return t end
  local r = {}
  for k, v in pairs(t) do r[k] = M.copy(v) end
  return setmetatable(r, getmetatable(t))
end

return M
