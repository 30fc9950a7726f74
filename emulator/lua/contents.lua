-- learningContent operations C1-C4 (+ POST, which only the OpenAPI shows).
local json = require("json")
local util = require("util")
local state = require("state")
local auth = require("auth")
local errors = require("errors")
local validate = require("validate")
local paging = require("paging")
local common = require("common")

local M = {}

local FIELDS = common.selectable("content")

function M.render(c, select)
  return common.render("content", c, select)
end

local function context(req, pid, entity)
  return req.base .. "/" .. req.version .. "/$metadata#employeeExperience/learningProviders('" .. pid ..
    "')/learningContents" .. (entity and "/$entity" or "")
end

local function not_found(req)
  return errors.not_found(req, "The requested learning content doesn't exist.")
end

local function conflict(req, ext)
  return errors.conflict(req, "A learningContent with externalId '" .. ext .. "' already exists for this provider.")
end

-- Permission, provider and key checks every content operation starts with.
-- perm: auth.P.content_read or content_write; ckey may be nil (collection).
local function prelude(req, principal, perm, pkey, ckey)
  if not auth.allowed(principal, perm) then return nil, errors.forbidden(req) end
  local p, perr = common.provider_for(req, principal, pkey)
  if not p then return nil, perr end
  if ckey and ckey.alt and ckey.alt ~= "externalId" then
    return nil, errors.key_mismatch(req, "microsoft.graph.learningContent")
  end
  return p
end

local function find(p, ckey)
  local s = state.s
  if ckey.alt then
    local id = s.contents_by_provider[p.id].by_ext[ckey.value]
    return id and s.contents[id]
  end
  local c = s.contents[ckey.id]
  if c and c._provider ~= p.id then c = nil end
  return c
end

function M.list(req, principal, pkey)
  local p, err = prelude(req, principal, auth.P.content_read, pkey)
  if not p then return err end
  local items = {}
  for _, id in ipairs(state.s.contents_by_provider[p.id].list) do
    items[#items + 1] = state.s.contents[id]
  end
  return paging.collection(req, items, {
    context = context(req, p.id, false), allowed = FIELDS, type_name = "learningContent",
    render = M.render,
  })
end

function M.get(req, principal, pkey, ckey)
  local p, err = prelude(req, principal, auth.P.content_read, pkey, ckey)
  if not p then return err end
  local eerr = paging.check_entity_options(req)
  if eerr then return eerr end
  local select, serr = paging.parse_select(req, FIELDS, "learningContent")
  if select == nil then return serr end
  local c = find(p, ckey)
  if not c then return not_found(req) end
  return common.entity(200, M.render(c, select), context(req, p.id, true))
end

-- Stores c (validated fields) as provider p's content, replacing `existing` when given.
local function store(p, c, existing)
  local s = state.s
  local idx = s.contents_by_provider[p.id]
  for _, k in ipairs({ "additionalTags", "contributors", "skillTags" }) do
    if c[k] == nil or c[k] == json.null then c[k] = json.array({}) end
  end
  for k, default in pairs({ isActive = true, isPremium = false, isSearchable = true }) do
    if c[k] == nil or c[k] == json.null then c[k] = default end
  end
  c._provider = p.id
  if existing then
    if existing.externalId and idx.by_ext[existing.externalId] == existing.id then idx.by_ext[existing.externalId] = nil end
  else
    idx.list[#idx.list + 1] = c.id
  end
  s.contents[c.id] = c
  idx.by_ext[c.externalId] = c.id
end

-- Validated fields of a full content body (upsert replaces, so the required fields are always needed).
local function fields_of(req, except)
  local body, berr = common.body_object(req)
  if not body then return nil, berr end
  local fields, ek, ef = validate.check("content", body, "create", { except = except })
  if not fields then return nil, common.validation_error(req, ek, ef) end
  return fields
end

-- C3: PATCH .../learningContents/{id} or (externalId='...') = upsert, 202 + entity.
function M.upsert(req, principal, pkey, ckey)
  local p, err = prelude(req, principal, auth.P.content_write, pkey, ckey)
  if not p then return err end
  local fields, ferr = fields_of(req, ckey.alt and { externalId = true } or nil)
  if not fields then return ferr end
  if ckey.alt then
    if fields.externalId and fields.externalId ~= ckey.value then return errors.invalid(req, "externalId") end
    fields.externalId = ckey.value
  end
  local existing = find(p, ckey)
  if not ckey.alt and not existing and state.s.contents[ckey.id] then
    -- an id of another provider's content
    return errors.provider_content_mismatch(req)
  end
  local clash = state.s.contents_by_provider[p.id].by_ext[fields.externalId]
  if clash and (not existing or clash ~= existing.id) then return conflict(req, fields.externalId) end
  fields.id = existing and existing.id or (ckey.alt and util.uuid() or ckey.id)
  store(p, fields, existing)
  return common.entity(202, M.render(fields), context(req, p.id, true))
end

-- POST .../learningContents (OpenAPI only): create, 201; 409 when the externalId exists.
function M.create(req, principal, pkey)
  local p, err = prelude(req, principal, auth.P.content_write, pkey)
  if not p then return err end
  local fields, ferr = fields_of(req)
  if not fields then return ferr end
  if state.s.contents_by_provider[p.id].by_ext[fields.externalId] then return conflict(req, fields.externalId) end
  fields.id = util.uuid()
  store(p, fields, nil)
  return common.entity(201, M.render(fields), context(req, p.id, true))
end

-- C4: DELETE (with or without /$ref) -> 204
function M.delete(req, principal, pkey, ckey)
  local p, err = prelude(req, principal, auth.P.content_write, pkey, ckey)
  if not p then return err end
  local c = find(p, ckey)
  if not c then return not_found(req) end
  local s = state.s
  local idx = s.contents_by_provider[p.id]
  s.contents[c.id] = nil
  if idx.by_ext[c.externalId] == c.id then idx.by_ext[c.externalId] = nil end
  state.list_remove(idx.list, c.id)
  return { status = 204 }
end

return M
