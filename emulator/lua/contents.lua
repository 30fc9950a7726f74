-- learningContent operations C1-C4 (+ POST, which only the OpenAPI shows).
local json = require("json")
local util = require("util")
local state = require("state")
local auth = require("auth")
local errors = require("errors")
local validate = require("validate")
local paging = require("paging")

local M = {}

local FIELDS = {}
for k in pairs(validate.TYPES.content) do FIELDS[k] = true end

function M.render(c, select)
  local out = { id = c.id }
  for _, f in ipairs(validate.FIELDS.content) do
    if f ~= "id" and (not select or select[f]) then
      local v = c[f]
      if v == nil then v = json.null end
      out[f] = v
    end
  end
  return out
end

local function context(req, pid, entity)
  return req.base .. "/" .. req.version .. "/$metadata#employeeExperience/learningProviders('" .. pid ..
    "')/learningContents" .. (entity and "/$entity" or "")
end

local function not_found(req)
  return errors.not_found(req, "The requested learning content doesn't exist.")
end

local function provider_for(req, principal, pkey)
  if not pkey or pkey.alt then return nil, errors.unknown_registration(req) end
  local p = state.s.providers[pkey.id]
  if not p or p.tenant ~= principal.tenant then return nil, errors.unknown_registration(req) end
  return p
end

local function check_key(req, ckey)
  if ckey and ckey.alt and ckey.alt ~= "externalId" then
    return errors.graph(req, 400, "BadRequest",
      "The key property '" .. ckey.alt .. "' is not an alternate key of 'microsoft.graph.learningContent'.")
  end
end

local function find(req, p, ckey)
  local s = state.s
  local idx = s.contents_by_provider[p.id]
  local c
  if ckey.alt then
    local id = idx.by_ext[ckey.value]
    c = id and s.contents[id]
  else
    c = s.contents[ckey.id]
    if c and c._provider ~= p.id then c = nil end
  end
  return c
end

local function validation_error(req, ek, field)
  if ek == "required" then return errors.required(req, field) end
  if ek == "empty" then return errors.empty(req, field) end
  return errors.invalid(req, field)
end

function M.list(req, principal, pkey)
  if not auth.allowed(principal, auth.P.content_read) then return errors.forbidden(req) end
  local p, perr = provider_for(req, principal, pkey)
  if not p then return perr end
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
  if not auth.allowed(principal, auth.P.content_read) then return errors.forbidden(req) end
  local p, perr = provider_for(req, principal, pkey)
  if not p then return perr end
  local kerr = check_key(req, ckey)
  if kerr then return kerr end
  local eerr = paging.check_entity_options(req)
  if eerr then return eerr end
  local select, serr = paging.parse_select(req, FIELDS, "learningContent")
  if select == nil then return serr end
  local c = find(req, p, ckey)
  if not c then return not_found(req) end
  local out = M.render(c, select)
  out["@odata.context"] = context(req, p.id, true)
  return { status = 200, json = out }
end

local function body_object(req)
  local body = req.json
  if type(body) ~= "table" or json.is_array(body) then
    return nil, errors.bad_request(req, "The request body must be a JSON object.")
  end
  return body
end

local function store(p, c, existing)
  local s = state.s
  local idx = s.contents_by_provider[p.id]
  for _, k in ipairs({ "additionalTags", "contributors", "skillTags" }) do
    if c[k] == nil or c[k] == json.null then c[k] = json.array({}) end
  end
  if c.isActive == nil or c.isActive == json.null then c.isActive = true end
  if c.isPremium == nil or c.isPremium == json.null then c.isPremium = false end
  if c.isSearchable == nil or c.isSearchable == json.null then c.isSearchable = true end
  c._provider = p.id
  if existing then
    if existing.externalId and idx.by_ext[existing.externalId] == existing.id then idx.by_ext[existing.externalId] = nil end
  else
    idx.list[#idx.list + 1] = c.id
  end
  s.contents[c.id] = c
  idx.by_ext[c.externalId] = c.id
end

-- C3: PATCH .../learningContents/{id} or (externalId='...') = upsert, 202 + entity.
function M.upsert(req, principal, pkey, ckey)
  if not auth.allowed(principal, auth.P.content_write) then return errors.forbidden(req) end
  local p, perr = provider_for(req, principal, pkey)
  if not p then return perr end
  local kerr = check_key(req, ckey)
  if kerr then return kerr end
  local body, berr = body_object(req)
  if not body then return berr end
  local fields, ek, ef = validate.check("content", body, "create",
    { except = ckey.alt and { externalId = true } or nil })
  if not fields then return validation_error(req, ek, ef) end
  if ckey.alt then
    if fields.externalId and fields.externalId ~= ckey.value then return errors.invalid(req, "externalId") end
    fields.externalId = ckey.value
  end
  local existing = find(req, p, ckey)
  if not ckey.alt and not existing and state.s.contents[ckey.id] then
    -- an id of another provider's content
    return errors.provider_content_mismatch(req)
  end
  local clash = state.s.contents_by_provider[p.id].by_ext[fields.externalId]
  if clash and (not existing or clash ~= existing.id) then
    return errors.conflict(req, "A learningContent with externalId '" .. fields.externalId .. "' already exists for this provider.")
  end
  fields.id = existing and existing.id or (ckey.alt and util.uuid() or ckey.id)
  store(p, fields, existing)
  local out = M.render(fields)
  out["@odata.context"] = context(req, p.id, true)
  return { status = 202, json = out }
end

-- POST .../learningContents (OpenAPI only): create, 201; 409 when the externalId exists.
function M.create(req, principal, pkey)
  if not auth.allowed(principal, auth.P.content_write) then return errors.forbidden(req) end
  local p, perr = provider_for(req, principal, pkey)
  if not p then return perr end
  local body, berr = body_object(req)
  if not body then return berr end
  local fields, ek, ef = validate.check("content", body, "create")
  if not fields then return validation_error(req, ek, ef) end
  if state.s.contents_by_provider[p.id].by_ext[fields.externalId] then
    return errors.conflict(req, "A learningContent with externalId '" .. fields.externalId .. "' already exists for this provider.")
  end
  fields.id = util.uuid()
  store(p, fields, nil)
  local out = M.render(fields)
  out["@odata.context"] = context(req, p.id, true)
  return { status = 201, json = out }
end

-- C4: DELETE (with or without /$ref) -> 204
function M.delete(req, principal, pkey, ckey)
  if not auth.allowed(principal, auth.P.content_write) then return errors.forbidden(req) end
  local p, perr = provider_for(req, principal, pkey)
  if not p then return perr end
  local kerr = check_key(req, ckey)
  if kerr then return kerr end
  local c = find(req, p, ckey)
  if not c then return not_found(req) end
  local s = state.s
  local idx = s.contents_by_provider[p.id]
  s.contents[c.id] = nil
  if idx.by_ext[c.externalId] == c.id then idx.by_ext[c.externalId] = nil end
  state.list_remove(idx.list, c.id)
  return { status = 204 }
end

return M
