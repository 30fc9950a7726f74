-- vivalearning.rows: turning input rows into activity fields, and models back into rows.
--
-- Input rows are plain tables keyed by Graph JSON names. Complex fields are either nested
-- tables (JSON Lines, Lua) or dotted column names (CSV): `dueDateTime.dateTime`,
-- `dueDateTime.timeZone`, `notes.content`, `notes.contentType`. The type comes from a column
-- `@odata.type` or `type` (assignment | self_initiated, or the Graph type names), else from the
-- import's `type` option. Empty CSV cells are "not given". No HTTP and no JSON here.
local M = {}

-- Columns written by export (and read back by import), in this order.
M.columns = {
  "type", "externalCourseActivityId", "id", "learnerUserId", "learningContentId",
  "learningProviderId", "status", "completionPercentage", "completedDateTime",
  "assignmentType", "assignedDateTime", "assignerUserId", "dueDateTime.dateTime",
  "dueDateTime.timeZone", "notes.contentType", "notes.content", "startedDateTime",
}

local TYPES = {
  ["assignment"] = "assignment",
  ["learningassignment"] = "assignment",
  ["microsoft.graph.learningassignment"] = "assignment",
  ["#microsoft.graph.learningassignment"] = "assignment",
  ["self_initiated"] = "self_initiated",
  ["self-initiated"] = "self_initiated",
  ["selfinitiated"] = "self_initiated",
  ["selfinitiatedcourse"] = "self_initiated",
  ["learningselfinitiatedcourse"] = "self_initiated",
  ["microsoft.graph.learningselfinitiatedcourse"] = "self_initiated",
  ["#microsoft.graph.learningselfinitiatedcourse"] = "self_initiated",
}

--- "assignment" | "self_initiated" for a type name in any accepted spelling, or nil.
function M.kind(name)
  if type(name) ~= "string" then return nil end
  return TYPES[name:lower()]
end

M.type_names = { assignment = "#microsoft.graph.learningAssignment",
                 self_initiated = "#microsoft.graph.learningSelfInitiatedCourse" }
M.short_names = { assignment = "assignment", self_initiated = "self_initiated" }

-- Integer fields (CSV gives strings; JSON decoders may give integral floats).
local INTEGER = { completionPercentage = true }

local function normalize_number(v)
  if math.type(v) == "float" then
    local i = math.tointeger(v)
    if i then return i end
  end
  return v
end

local function set_path(t, key, v)
  local dot = key:find(".", 1, true)
  if not dot then
    t[key] = v
    return
  end
  local head, rest = key:sub(1, dot - 1), key:sub(dot + 1)
  local sub = t[head]
  if type(sub) ~= "table" then sub = {}; t[head] = sub end
  set_path(sub, rest, v)
end

local function convert(v, key, null)
  if v == null then return M.null end
  local tv = type(v)
  if tv == "number" then return normalize_number(v) end
  if tv == "table" then
    local out = {}
    for k, x in pairs(v) do out[k] = convert(x, k, null) end
    return out
  end
  if tv == "string" and INTEGER[key] then
    local n = v:match("^%s*(%-?%d+)%s*$")
    if n then return math.tointeger(tonumber(n)) end
  end
  return v
end

--- Normalize one input row.
-- rec: table (flat with dotted keys, or nested). opts.type: default kind. opts.json_null: the
-- decoder's null sentinel (mapped to viva.null).
-- Returns { kind =, fields =, ext =, id = } ; kind may be nil when no type is given anywhere,
-- and `type_error` is set when a type column has an unknown value.
function M.normalize(rec, opts)
  opts = opts or {}
  local fields = {}
  local out = { fields = fields }
  local tname
  for k, v in pairs(rec) do
    if type(k) == "string" then
      local skip = (v == "" and opts.empty_is_unset ~= false)
      if k == "@odata.type" or k == "type" then
        if v ~= "" then tname = v end
      elseif k == "@odata.context" or k == "@odata.etag" then -- dropped
      elseif not skip then
        local key = k
        if key == "externalcourseActivityId" then key = "externalCourseActivityId" end
        local last = key:match("([^.]+)$")
        set_path(fields, key, convert(v, last, opts.json_null))
      end
    end
  end
  if tname ~= nil then
    out.kind = M.kind(tname)
    if not out.kind then
      out.type_error = ("unknown type %q (assignment or self_initiated expected)"):format(tostring(tname))
    end
  else
    out.kind = opts.type and M.kind(opts.type)
  end
  out.ext = fields.externalCourseActivityId
  if out.ext == M.null then out.ext = nil end
  out.id = fields.id
  return out
end

--- Flatten a nested table (a model's totable()) into dotted keys.
function M.flatten(t, prefix, out)
  out = out or {}
  for k, v in pairs(t) do
    local key = prefix and (prefix .. "." .. k) or k
    if type(v) == "table" and next(v) ~= nil and v ~= M.null then
      M.flatten(v, key, out)
    else
      out[key] = v
    end
  end
  return out
end

--- Export form of a model: a flat table for the columns above (type as the short name).
function M.from_model(m)
  local t = m:totable()
  local flat = M.flatten(t)
  local kind = M.kind(flat["@odata.type"])
  flat["@odata.type"] = nil
  flat.type = kind and M.short_names[kind] or nil
  if flat.externalcourseActivityId and not flat.externalCourseActivityId then
    flat.externalCourseActivityId = flat.externalcourseActivityId
  end
  flat.externalcourseActivityId = nil
  return flat
end

-- Date-times compare by the instant they name, so a service that echoes
-- "2026-01-01T00:00:00Z" as "2026-01-01T00:00:00.0000000+00:00" does not make a row "changed".
local function days_from_civil(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

local function instant(v)
  if type(v) ~= "string" then return nil end
  local Y, M, D, h, mi, sec, frac, zone =
    v:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)(%.?%d*)(.*)$")
  if not Y then return nil end
  local off = 0
  if zone ~= "" and zone ~= "Z" and zone ~= "z" then
    local sign, oh, om = zone:match("^([+-])(%d%d):?(%d%d)$")
    if not sign then return nil end
    off = (tonumber(oh) * 60 + tonumber(om)) * 60 * (sign == "-" and -1 or 1)
  end
  local t = days_from_civil(tonumber(Y), tonumber(M), tonumber(D)) * 86400
    + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(sec) - off
  frac = frac:gsub("^%.", ""):gsub("0+$", "")
  return t .. "." .. frac
end
M.instant = instant

local function same(a, b, key)
  if a == b then return true end
  if type(key) == "string" and (key:match("DateTime$") or key == "dateTime") then
    local ia, ib = instant(a), instant(b)
    return ia ~= nil and ia == ib
  end
  return false
end
M.same = same

--- Compare the fields of an input row with an existing model's table form.
-- Returns a table of the top-level fields that differ (complex fields merged: the existing
-- value with the row's sub-fields laid over it), or nil when nothing differs.
function M.diff(fields, existing)
  local changes
  for k, v in pairs(fields) do
    if k ~= "id" and k ~= "externalCourseActivityId" then
      local old = existing[k]
      if type(v) == "table" and v ~= M.null then
        local merged, differs = {}, type(old) ~= "table"
        if type(old) == "table" then
          for sk, sv in pairs(old) do merged[sk] = sv end
        end
        for sk, sv in pairs(v) do
          if not same(merged[sk], sv, sk) then differs = true end
          merged[sk] = sv
        end
        if differs then changes = changes or {}; changes[k] = merged end
      elseif v == M.null then
        if old ~= nil and old ~= M.null then changes = changes or {}; changes[k] = v end
      elseif not same(old, v, k) then
        changes = changes or {}; changes[k] = v
      end
    end
  end
  return changes
end

return M
