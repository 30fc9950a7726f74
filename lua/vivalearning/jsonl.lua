-- vivalearning.jsonl: JSON Lines (one JSON value per line) reader and writer, streamed.
-- Decoding and encoding go through lua-cjson (safe mode); blank lines are skipped.
local compat = require "vivalearning.compat"
local cjson = require "cjson.safe"
local stream = require "vivalearning.stream"

local M = {}

local codec = cjson.new()
codec.decode_max_depth(64)
codec.encode_max_depth(64)
codec.encode_invalid_numbers(false)
codec.decode_invalid_numbers(false)
M.null = codec.null

local Reader = stream.methods({})
Reader.__index = Reader

--- Reader on a path or open file handle. Lines end at LF, CRLF or a lone CR.
-- opts.chunk: read size in bytes.
function M.reader(src, opts)
  local r, err = stream.new(Reader, src, "rb", { line = 0 })
  if not r then return nil, err end
  r.next_line = stream.lines(r.fh, opts and opts.chunk)
  return r
end

--- Next value: value; nil at end of file; false, err for a line that is not valid JSON
-- (the caller decides whether to go on: reading continues with the next line).
function Reader:read()
  while true do
    local l = self.next_line()
    if not l then return nil end
    self.line = self.line + 1
    if self.line == 1 and l:sub(1, 3) == "\239\187\191" then l = l:sub(4) end
    if l:find("%S") then
      local v, err = M.decode(l)
      if v == nil then
        return false, ("line %d: invalid JSON: %s"):format(self.line, tostring(err))
      end
      return v
    end
  end
end

local Writer = stream.methods({})
Writer.__index = Writer

function M.writer(dst, opts)
  opts = opts or {}
  return stream.new(Writer, dst, opts.append and "ab" or "wb")
end

--- Encode one plain Lua value on its own line.
function M.encode(v)
  return codec.encode(v)
end

-- lua-cjson (Debian's 2.1.0) decodes every number as a float; integral ones become integers
-- again here, so a row number reads back as 5, not 5.0.
local function integers(v)
  if type(v) == "number" then
    return compat.tointeger(v) or v
  elseif type(v) == "table" then
    for k, x in pairs(v) do
      if type(x) == "number" or type(x) == "table" then v[k] = integers(x) end
    end
  end
  return v
end

function M.decode(s)
  local v, err = codec.decode(s)
  if v == nil then return nil, err end
  return integers(v)
end

function Writer:write(v)
  local s, err = codec.encode(v)
  if not s then return nil, err end
  local ok, werr = self.fh:write(s, "\n")
  if not ok then return nil, werr end
  return true
end

return M
