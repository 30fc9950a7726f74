-- Request-body validation per the CSDL (graph-api.md §2).  One schema table per type drives it:
--   field = { t = type, null = nullable?, req = required on create?, upd = updatable? }
-- Types: string, int32, pct (Int32 0..100), bool, dto (DateTimeOffset), duration, dttz (dateTimeTimeZone),
-- itembody, strings (Collection(Edm.String)), enum:<name>.
local json = require("json")
local state = require("state")

local M = {}

M.ENUMS = {
  courseStatus = { notStarted = true, inProgress = true, completed = true },
  assignmentType = { required = true, recommended = true, peerRecommended = true },
  level = { beginner = true, intermediate = true, advanced = true },
  bodyType = { text = true, html = true },
}

local base = {
  id = { t = "string", null = false, readonly = true },
  completedDateTime = { t = "dto", null = true, upd = true },
  completionPercentage = { t = "pct", null = true, upd = true },
  externalcourseActivityId = { t = "string", null = true },
  learnerUserId = { t = "string", null = false, req = true },
  learningContentId = { t = "string", null = false, req = true },
  learningProviderId = { t = "string", null = true },
  status = { t = "enum:courseStatus", null = true, upd = true },
}

local function extend(parent, extra)
  local t = {}
  for k, v in pairs(parent) do t[k] = v end
  for k, v in pairs(extra) do t[k] = v end
  return t
end

M.TYPES = {
  assignment = extend(base, {
    assignedDateTime = { t = "dto", null = true, upd = true },
    assignerUserId = { t = "string", null = true },
    assignmentType = { t = "enum:assignmentType", null = false, req = true },
    dueDateTime = { t = "dttz", null = true, upd = true },
    notes = { t = "itembody", null = true, upd = true },
  }),
  self_initiated = extend(base, {
    startedDateTime = { t = "dto", null = true, upd = true },
  }),
  provider = {
    id = { t = "string", null = false, readonly = true },
    displayName = { t = "string", null = false, req = true, upd = true },
    isCourseActivitySyncEnabled = { t = "bool", null = true, upd = true },
    loginWebUrl = { t = "string", null = true, upd = true },
    longLogoWebUrlForDarkTheme = { t = "string", null = false, req = true, upd = true },
    longLogoWebUrlForLightTheme = { t = "string", null = false, req = true, upd = true },
    squareLogoWebUrlForDarkTheme = { t = "string", null = false, req = true, upd = true },
    squareLogoWebUrlForLightTheme = { t = "string", null = false, req = true, upd = true },
  },
  content = {
    id = { t = "string", null = false, readonly = true },
    additionalTags = { t = "strings", null = true },
    contentWebUrl = { t = "string", null = false, req = true },
    contributors = { t = "strings", null = true },
    createdDateTime = { t = "dto", null = true },
    description = { t = "string", null = true },
    duration = { t = "duration", null = true },
    externalId = { t = "string", null = false, req = true },
    format = { t = "string", null = true },
    isActive = { t = "bool", null = true },
    isPremium = { t = "bool", null = true },
    isSearchable = { t = "bool", null = true },
    languageTag = { t = "string", null = false, req = true },
    lastModifiedDateTime = { t = "dto", null = true },
    level = { t = "enum:level", null = true },
    numberOfPages = { t = "int32", null = true },
    skillTags = { t = "strings", null = true },
    sourceName = { t = "string", null = true },
    thumbnailWebUrl = { t = "string", null = true },
    title = { t = "string", null = false, req = true },
  },
}

M.ODATA_TYPE = {
  assignment = "#microsoft.graph.learningAssignment",
  self_initiated = "#microsoft.graph.learningSelfInitiatedCourse",
}

-- Property names of each type in output order (sorted; the encoder sorts anyway).
M.FIELDS = {}
for name, schema in pairs(M.TYPES) do
  local list = {}
  for k in pairs(schema) do list[#list + 1] = k end
  table.sort(list)
  M.FIELDS[name] = list
end

local DTO = [[^[0-9]{4,}-(0[1-9]|1[012])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]{1,12})?(Z|[+-][0-9][0-9]:[0-9][0-9])$]]
local DURATION = [[^-?P([0-9]+D)?(T([0-9]+H)?([0-9]+M)?([0-9]+([.][0-9]+)?S)?)?$]]
local LOCAL_DT = [[^[0-9]{4}-(0[1-9]|1[012])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9]([.][0-9]{1,7})?)?(Z|[+-][0-9][0-9]:[0-9][0-9])?$]]

-- Nil when every key of the complex value v is allowed (annotations aside), else the dotted field name.
local function unknown_member(v, allowed, field)
  for k in pairs(v) do
    if not allowed[k] and not tostring(k):find("@", 1, true) then return field .. "." .. tostring(k) end
  end
end
local DTTZ_KEYS = { dateTime = true, timeZone = true }
local ITEMBODY_KEYS = { content = true, contentType = true }

local function re_ok(s, pat)
  return ngx.re.find(s, pat, "jo") ~= nil
end

-- Maps an @odata.type value to an activity kind.
function M.activity_kind(t)
  if type(t) ~= "string" then return nil end
  local name = t:gsub("^#", ""):gsub("^microsoft%.graph%.", "")
  if name == "learningAssignment" then return "assignment" end
  if name == "learningSelfInitiatedCourse" then return "self_initiated" end
  if name == "learningCourseActivity" then return "base" end
  return false
end

-- Checks one value; returns the normalised value, or nil and an error kind ("invalid"|"empty") and field.
local function check_value(spec, v, field)
  local t = spec.t
  if v == json.null then
    if spec.null then return json.null end
    return nil, "empty", field
  end
  if t == "string" then
    if type(v) ~= "string" then return nil, "invalid", field end
    if v == "" and not spec.null then return nil, "empty", field end
    return v
  elseif t == "int32" or t == "pct" then
    if type(v) ~= "number" or v ~= math.floor(v) then return nil, "invalid", field end
    if v < -2147483648 or v > 2147483647 then return nil, "invalid", field end
    if t == "pct" and (v < 0 or v > 100) then return nil, "invalid", field end
    return v
  elseif t == "bool" then
    if type(v) ~= "boolean" then return nil, "invalid", field end
    return v
  elseif t == "dto" then
    if type(v) ~= "string" or not re_ok(v, DTO) then return nil, "invalid", field end
    return v
  elseif t == "duration" then
    if type(v) ~= "string" or v == "P" or v == "-P" or v:sub(-1) == "T" or not re_ok(v, DURATION) then
      return nil, "invalid", field
    end
    return v
  elseif t == "strings" then
    if type(v) ~= "table" or not (json.is_array(v) or next(v) == nil) then return nil, "invalid", field end
    for _, s in ipairs(v) do
      if type(s) ~= "string" then return nil, "invalid", field end
    end
    return json.array(v)
  elseif t == "dttz" then
    if type(v) ~= "table" or json.is_array(v) then return nil, "invalid", field end
    local bad = unknown_member(v, DTTZ_KEYS, field)
    if bad then return nil, "invalid", bad end
    local dt = v.dateTime
    if dt == nil then return nil, "required", field .. ".dateTime" end
    if dt == json.null or dt == "" then return nil, "empty", field .. ".dateTime" end
    if type(dt) ~= "string" or not re_ok(dt, LOCAL_DT) then return nil, "invalid", field .. ".dateTime" end
    local tz = v.timeZone
    if tz ~= nil and tz ~= json.null and type(tz) ~= "string" then return nil, "invalid", field .. ".timeZone" end
    return { dateTime = dt, timeZone = tz == nil and json.null or tz }
  elseif t == "itembody" then
    if type(v) ~= "table" or json.is_array(v) then return nil, "invalid", field end
    local bad = unknown_member(v, ITEMBODY_KEYS, field)
    if bad then return nil, "invalid", bad end
    local c, ct = v.content, v.contentType
    if c ~= nil and c ~= json.null and type(c) ~= "string" then return nil, "invalid", field .. ".content" end
    if ct ~= nil and ct ~= json.null and not (type(ct) == "string" and M.ENUMS.bodyType[ct]) then
      return nil, "invalid", field .. ".contentType"
    end
    return { content = c == nil and json.null or c, contentType = ct == nil and json.null or ct }
  else
    local enum = t:match("^enum:(.+)$")
    if enum then
      if type(v) ~= "string" then return nil, "invalid", field end
      local members = M.ENUMS[enum]
      if members[v] then return v end
      if enum == "level" and members[v:lower()] then return v:lower() end
      return nil, "invalid", field
    end
  end
  return nil, "invalid", field
end
M.check_value = check_value

-- Validates body (a decoded JSON object) against the type `kind`.
--   mode = "create": required fields must be present; "update": only the given fields.
-- Returns a table of normalised fields, or nil, kind_of_error, field.
function M.check(kind, body, mode, opts)
  opts = opts or {}
  local schema = M.TYPES[kind]
  local out = {}
  -- keys in sorted order, so that with several bad fields the same one is always named
  local keys = {}
  for k in pairs(body) do
    if type(k) ~= "string" then return nil, "invalid", tostring(k) end
    keys[#keys + 1] = k
  end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = body[k]
    if k:find("@", 1, true) then
      -- instance and property annotations (@odata.type, @odata.context, x@odata.type) are not data
    else
      local name = k
      if schema.externalcourseActivityId then
        -- the alternate key in a spelling the setting does not take is an unknown property
        local ext = state.ext_key(k)
        if ext == false then return nil, "invalid", k end
        name = ext or k
      end
      local spec = schema[name]
      if not spec then return nil, "invalid", k end
      if not spec.readonly then
        local nv, ek, ef = check_value(spec, v, k)
        if nv == nil then return nil, ek, ef end
        if out[name] ~= nil and out[name] ~= nv then
          -- both spellings of the alternate key with different values: name one, always the same
          return nil, "invalid", name == "externalcourseActivityId" and "externalCourseActivityId" or k
        end
        out[name] = nv
      end
    end
  end
  if mode == "create" then
    -- Fields in a stable order, so the first missing one is always the same.
    for _, name in ipairs(M.FIELDS[kind]) do
      local spec = schema[name]
      if spec.req and not (opts.except and opts.except[name]) and out[name] == nil then
        return nil, "required", name
      end
    end
  end
  return out
end

return M
