-- vivalearning.results: the per-row outcome file of an import, CSV or JSON Lines.
-- Columns: row, external_id, id, outcome, status, code, message, request_id, retry_after
-- (seconds the service asked to wait, for rows that failed throttled).
local compat = require "vivalearning.compat"
local csv = require "vivalearning.csv"
local jsonl = require "vivalearning.jsonl"

local M = {}

M.columns = { "row", "external_id", "id", "outcome", "status", "code", "message", "request_id", "retry_after" }
local NUMERIC = { row = true, status = true, retry_after = true }

--- "csv" or "jsonl" from an explicit format or the file name (.jsonl/.ndjson/.json -> jsonl).
function M.format_for(path, format)
  if format then return format end
  if type(path) == "string" and (path:match("%.jsonl$") or path:match("%.ndjson$") or path:match("%.json$")) then
    return "jsonl"
  end
  return "csv"
end

local Writer = {}
Writer.__index = Writer

--- Open a results writer on a path (truncated) or a file handle.
function M.open(path, format)
  format = M.format_for(path, format)
  local w, err
  if format == "jsonl" then
    w, err = jsonl.writer(path)
  elseif format == "csv" then
    w, err = csv.writer(path, { eol = "\n" })
  else
    return nil, "unknown results format: " .. tostring(format)
  end
  if not w then return nil, err end
  local self = setmetatable({ w = w, format = format, count = 0 }, Writer)
  if format == "csv" then w:write(M.columns) end
  return self
end

--- Write one outcome record {row=, external_id=, id=, outcome=, status=, code=, message=,
-- request_id=, retry_after=}.
function Writer:write(r)
  self.count = self.count + 1
  if self.format == "jsonl" then
    local t = {}
    for _, k in ipairs(M.columns) do t[k] = r[k] end
    return self.w:write(t)
  end
  local row = {}
  for i, k in ipairs(M.columns) do
    local v = r[k]
    if v == jsonl.null then v = nil end
    if compat.type(v) == "float" and v == math.floor(v) and v > -2^53 and v < 2^53 then v = compat.tointeger(v) end
    row[i] = v ~= nil and tostring(v) or ""
  end
  return self.w:write(row, #M.columns)
end

function Writer:flush() return self.w:flush() end
function Writer:close() self.w:close() end

--- Read a results file back (CSV or JSONL): iterator over records with the columns above
-- (row and status as numbers). For tests and for tools that post-process results.
function M.read(path, format)
  format = M.format_for(path, format)
  if format == "jsonl" then
    local r = assert(jsonl.reader(path))
    return function()
      local v, err = r:read()
      if v == nil then r:close(); return nil end
      if v == false then error(err) end
      return v
    end
  end
  local r = assert(csv.reader(path))
  local cols = r.columns
  return function()
    local rec, err = r:read()
    if not rec then
      r:close()
      if err then error(err) end
      return nil
    end
    local t = {}
    for i, k in ipairs(cols) do
      local v = rec[i]
      if v ~= "" then t[k] = NUMERIC[k] and tonumber(v) or v end
    end
    return t
  end
end

return M
