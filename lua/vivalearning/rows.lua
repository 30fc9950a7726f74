-- vivalearning.rows: turning input rows into activity fields, and models back into rows.
--
-- Input rows are plain tables keyed by Graph JSON names. Complex fields are either nested
-- tables (JSON Lines, Lua) or dotted column names (CSV): `dueDateTime.dateTime`,
-- `dueDateTime.timeZone`, `notes.content`, `notes.contentType`. The type comes from a column
-- `@odata.type` or `type` (assignment | self_initiated, or the Graph type names), else from the
-- import's `type` option. Empty CSV cells are "not given". A field given twice (two spellings,
-- or whole and dotted) and a number that is not an integer where one is expected make the row
-- invalid; check_header refuses such columns (and unknown ones) for a CSV file at its header.
-- No HTTP and no JSON here.
local compat = require "vivalearning.compat"
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
-- itemBody fields: a plain string is shorthand for { contentType = "text", content = s }, as
-- the models read it (so upsert compares it with what Graph holds, not a string with a table).
local ITEM_BODY = { notes = true }
-- Second spellings of a field (graph-api.md §6), and what they stand for.
local SPELLING = { externalcourseActivityId = "externalCourseActivityId" }
-- Keys that name the row type rather than a field.
local TYPE_KEYS = { ["@odata.type"] = true, type = true }
-- Response metadata: dropped.
local DROPPED = { ["@odata.context"] = true, ["@odata.etag"] = true }

local show = tostring

-- Keys { name =, rest = } that give one field (rest: "" for the whole field, ".content" for a
-- part): true when they clash (the whole and a part, or one part twice under two spellings).
local function clash(list)
  if #list < 2 then return false end
  local parts = {}
  for _, c in ipairs(list) do
    if c.rest == "" or parts[c.rest] then return true end
    parts[c.rest] = true
  end
  return false
end

local function quoted_list(names, q)
  local out = {}
  for i, n in ipairs(names) do out[i] = q .. n .. q end
  table.sort(out)
  if #out == 2 then return out[1] .. " and " .. out[2] end
  return table.concat(out, ", ", 1, #out - 1) .. " and " .. out[#out]
end

-- An integer field's value: integer, or nil and the problem. Strings that are not numbers are
-- left to the model check (which names the field); numbers must be integers in range.
local function to_integer(v)
  if type(v) == "string" then
    local t = v:match("^%s*(.-)%s*$")
    local n = not t:find("[xX]") and tonumber(t) or nil   -- decimal only, not 0x10
    if n == nil then return v end
    local i = compat.tointeger(n)
    if i then return i end
    if n == math.floor(n) and n == n and n ~= math.huge and n ~= -math.huge then
      return nil, ("integer expected, got %s (out of range)"):format(t)
    end
    return nil, ("integer expected, got %s"):format(t)
  elseif compat.type(v) == "float" then
    local i = compat.tointeger(v)
    if i then return i end
    if v == math.floor(v) then return nil, ("integer expected, got %s (out of range)"):format(show(v)) end
    return nil, ("integer expected, got %s"):format(show(v))
  end
  return v
end

local function normalize_number(v)
  if compat.type(v) == "float" then
    local i = compat.tointeger(v)
    if i then return i end
  end
  return v
end

-- Sets fields[path] (a dotted key nests); `path` has no empty segment.
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

-- Converts one value; problems go to errs as { field =, message = } (field: the dotted path).
local function convert(v, path, null, errs)
  if v == null then return M.null end
  local last = path:match("([^.]+)$")
  if INTEGER[last] then
    local i, why = to_integer(v)
    if why then errs[#errs + 1] = { field = path, message = why }; return v end
    return i
  end
  local tv = type(v)
  if tv == "number" then return normalize_number(v) end
  if tv == "table" then
    local out = {}
    for k, x in pairs(v) do
      if type(k) == "string" then out[k] = convert(x, path .. "." .. k, null, errs) else out[k] = x end
    end
    return out
  end
  return v
end

local function by_field(a, b) return a.field < b.field end

--- Normalize one input row.
-- rec: table (flat with dotted keys, or nested). opts.type: default kind. opts.json_null: the
-- decoder's null sentinel (mapped to viva.null).
-- Returns { kind =, fields =, ext =, id =, errors = }; kind may be nil when no type is given
-- anywhere, and `type_error` is set when a type column has an unknown value. `errors` (a list
-- of { field =, message = }, or nil) names values that cannot be read (an integer out of range,
-- a fraction) and keys that give one field twice (both spellings of the external id, `notes`
-- and `notes.content`, `type` and `@odata.type`): such a row is refused, never resolved by
-- the order pairs() happens to visit the keys in.
function M.normalize(rec, opts)
  opts = opts or {}
  local fields = {}
  local out = { fields = fields }
  local errs = {}
  local tname, tkey
  local given = {}          -- top-level field -> sorted list of the keys that give it
  local keys = {}
  for k in pairs(rec) do
    if type(k) == "string" then keys[#keys + 1] = k end
  end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = rec[k]
    local skip = (v == "" and opts.empty_is_unset ~= false)
    if TYPE_KEYS[k] then
      if v ~= "" then
        if tname ~= nil then
          errs[#errs + 1] = { field = "type", message = ("%s and %s are both given (one type key only)"):format(tkey, k) }
        end
        tname, tkey = v, k
      end
    elseif DROPPED[k] then -- dropped
    elseif not skip then
      local key = k
      local head, rest = key:match("^([^.]*)(.*)$")
      head = SPELLING[head] or head
      key = head .. rest
      given[head] = given[head] or {}
      table.insert(given[head], { name = k, rest = rest })
      if ITEM_BODY[head] and rest == "" and type(v) == "string" then
        v = { contentType = "text", content = v }
      end
      set_path(fields, key, convert(v, key, opts.json_null, errs))
    end
  end
  for head, list in pairs(given) do
    if clash(list) then
      local names = {}
      for i, c in ipairs(list) do names[i] = c.name end
      errs[#errs + 1] = { field = head, message = ("%s each give %s (give it once)"):format(
        quoted_list(names, ""), head), key = (head == "externalCourseActivityId" or head == "id") }
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
  if #errs > 0 then
    table.sort(errs, by_field)
    out.errors = errs
  end
  out.ext = fields.externalCourseActivityId
  if out.ext == M.null then out.ext = nil end
  out.id = fields.id
  return out
end

--- Check the header of a CSV source before any row is read: true, or nil and a message.
-- Refused: a duplicated column, two columns for one field (both spellings of the external id,
-- `notes` and `notes.content`, `type` and `@odata.type`), and a column that is no field of the
-- row types the import can have (with the nearest field name when one is close). An unknown
-- column is fatal: every row carrying it would fail anyway, and this names it once.
-- opts.type: the import's default type; opts.check: viva.check.
function M.check_header(cols, opts)
  opts = opts or {}
  local problems = {}
  local seen, given, tcols = {}, {}, {}
  for i, name in ipairs(cols) do
    if name ~= "" then
      if seen[name] then
        problems[#problems + 1] = ("columns %d and %d are both named '%s'"):format(seen[name], i, name)
      else
        seen[name] = i
        if TYPE_KEYS[name] then
          tcols[#tcols + 1] = name
        elseif not DROPPED[name] then
          local head, rest = name:match("^([^.]*)(.*)$")
          local field = SPELLING[head] or head
          given[field] = given[field] or {}
          table.insert(given[field], { name = name, rest = rest })
        end
      end
    end
  end
  if #tcols > 1 then
    problems[#problems + 1] = "columns 'type' and '@odata.type' both give the row type (keep one)"
  end
  local fieldnames = {}
  for f in pairs(given) do fieldnames[#fieldnames + 1] = f end
  table.sort(fieldnames)
  for _, f in ipairs(fieldnames) do
    if clash(given[f]) then
      local names = {}
      for i, c in ipairs(given[f]) do names[i] = c.name end
      problems[#problems + 1] = ("columns %s each give %s (keep one)"):format(quoted_list(names, "'"), f)
    end
  end
  if #problems == 0 and opts.check then
    -- unknown columns: not a field of any row type this import can have
    local kinds
    if #tcols == 0 and opts.type and M.kind(opts.type) then kinds = { M.kind(opts.type) }
    else kinds = { "assignment", "self_initiated" } end
    local probe = {}
    for _, f in ipairs(fieldnames) do
      if f ~= "id" then probe[f] = (given[f][1].rest == "") and "x" or {} end
    end
    local unknown = {}       -- per kind: field -> { type name, suggestion }
    for i, kind in ipairs(kinds) do
      unknown[i] = {}
      local ok, errs = opts.check(kind, probe)
      if not ok and type(errs) == "table" then
        for _, e in ipairs(errs) do
          local msg = type(e) == "table" and tostring(e.problem or e.message or "") or ""
          local tn = msg:match("^unknown field of (%S+)")
          if tn and type(e.field) == "string" and given[e.field] then
            unknown[i][e.field] = { tn, msg:match("did you mean ([^?%s]+)%?") }
          end
        end
      end
    end
    for _, f in ipairs(fieldnames) do
      local types, suggestion = {}, nil
      for i = 1, #kinds do
        local u = unknown[i][f]
        if u then types[#types + 1] = u[1]; suggestion = suggestion or u[2] end
      end
      if #types == #kinds then
        for _, c in ipairs(given[f]) do
          local m = ("column '%s' is not a field of %s"):format(c.name, table.concat(types, " or "))
          if suggestion then m = m .. ("; did you mean '%s'?"):format(suggestion .. c.rest) end
          problems[#problems + 1] = m
        end
      end
    end
  end
  if #problems > 0 then return nil, table.concat(problems, "; ") end
  return true
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
  local era = compat.idiv(y >= 0 and y or y - 399, 400)
  local yoe = y - era * 400
  local doy = compat.idiv(153 * (m + (m > 2 and -3 or 9)) + 2, 5) + d - 1
  local doe = yoe * 365 + compat.idiv(yoe, 4) - compat.idiv(yoe, 100) + doy
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
