-- JSON for the emulator: decoding through lua-cjson (strict: no NaN/Infinity/hex, depth-limited),
-- encoding by hand so that keys come out in Graph's order (@odata.* first, then id, then the rest
-- sorted), empty arrays stay arrays, and '/' is not escaped.
local cjson = require("cjson.safe")

local M = {}

local decoder = cjson.new()
decoder.decode_invalid_numbers(false)
decoder.decode_max_depth(64)

M.null = cjson.null
M.ARRAY = { __name = "json.array" }   -- metatable that marks a table as a JSON array (even when empty)

function M.array(t)
  return setmetatable(t or {}, M.ARRAY)
end

function M.is_array(t)
  if type(t) ~= "table" then return false end
  if getmetatable(t) == M.ARRAY then return true end
  local n = 0
  for k in pairs(t) do
    if type(k) ~= "number" then return false end
    n = n + 1
  end
  return n > 0 and n == #t
end

-- Decodes s; returns value or nil, message.  JSON arrays are marked with M.ARRAY.
local function mark(v, depth)
  if type(v) ~= "table" then return v end
  local arr = true
  local n = 0
  for k, x in pairs(v) do
    if type(k) ~= "number" then arr = false end
    n = n + 1
    if type(x) == "table" then mark(x, depth + 1) end
  end
  if arr and n == #v then setmetatable(v, M.ARRAY) end
  return v
end

function M.decode(s)
  local v, err = decoder.decode(s)
  if v == nil and err then return nil, err end
  return mark(v, 0)
end

local escapes = {
  ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f',
  ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t',
}
local function esc(c)
  return escapes[c] or string.format("\\u%04x", c:byte())
end
local find = string.find
local function str(s)
  if not find(s, '[%c"\\]') then return '"' .. s .. '"' end
  return '"' .. s:gsub('[%c"\\]', esc) .. '"'
end
M.quote = str

local priority = {
  ["@odata.context"] = 1, ["@odata.type"] = 2, ["@odata.count"] = 3, ["@odata.nextLink"] = 4,
  ["id"] = 5, ["error"] = 1, ["code"] = 1, ["message"] = 2, ["innerError"] = 9,
  ["date"] = 1, ["request-id"] = 2, ["client-request-id"] = 3,
}
local function keyless(a, b)
  local pa, pb = priority[a] or 6, priority[b] or 6
  if pa ~= pb then return pa < pb end
  if a == "value" then return false elseif b == "value" then return true end
  return a < b
end

local encode
encode = function(v, buf, n)
  local t = type(v)
  if t == "string" then
    n = n + 1; buf[n] = str(v)
  elseif t == "number" then
    n = n + 1
    if v ~= v or v == math.huge or v == -math.huge then
      buf[n] = "null"
    elseif v == math.floor(v) and v > -2^53 and v < 2^53 then
      buf[n] = string.format("%d", v)
    else
      local s = string.format("%.14g", v)
      if tonumber(s) ~= v then s = string.format("%.17g", v) end
      buf[n] = s
    end
  elseif t == "boolean" then
    n = n + 1; buf[n] = v and "true" or "false"
  elseif v == nil or v == cjson.null then
    n = n + 1; buf[n] = "null"
  elseif t == "table" then
    if M.is_array(v) or (next(v) == nil and getmetatable(v) == M.ARRAY) then
      n = n + 1; buf[n] = "["
      for i = 1, #v do
        if i > 1 then n = n + 1; buf[n] = "," end
        n = encode(v[i], buf, n)
      end
      n = n + 1; buf[n] = "]"
    else
      local mt = getmetatable(v)
      local keys = mt and mt.__keys
      if keys then
        -- a known shape: keys in the given order (absent ones skipped)
        n = n + 1; buf[n] = "{"
        local first = true
        for i = 1, #keys do
          local k = keys[i]
          local x = v[k]
          if x ~= nil then
            if not first then n = n + 1; buf[n] = "," end
            first = false
            n = n + 1; buf[n] = str(k) .. ":"
            n = encode(x, buf, n)
          end
        end
        n = n + 1; buf[n] = "}"
        return n
      end
      keys = {}
      for k in pairs(v) do keys[#keys + 1] = tostring(k) end
      table.sort(keys, keyless)
      n = n + 1; buf[n] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then n = n + 1; buf[n] = "," end
        n = n + 1; buf[n] = str(k) .. ":"
        local x = v[k]
        if x == nil then x = v[tonumber(k)] end
        n = encode(x, buf, n)
      end
      n = n + 1; buf[n] = "}"
    end
  else
    n = n + 1; buf[n] = "null"
  end
  return n
end

-- A metatable that makes the encoder write exactly these keys, in this order (for hot shapes).
function M.ordered(keys)
  local list = {}
  for i, k in ipairs(keys) do list[i] = k end
  table.sort(list, keyless)
  return { __keys = list }
end

function M.encode(v)
  local buf = {}
  encode(v, buf, 0)
  return table.concat(buf)
end

return M
