-- learningCourseActivity operations A1-A7 (+ the tenant-wide, me/users and $count forms of §1.5).
local json = require("json")
local util = require("util")
local state = require("state")
local log = require("log")
local auth = require("auth")
local errors = require("errors")
local validate = require("validate")
local paging = require("paging")
local common = require("common")

local M = {}

local ALL_FIELDS = {}
for _, kind in ipairs({ "assignment", "self_initiated" }) do
  for k in pairs(validate.TYPES[kind]) do ALL_FIELDS[k] = true end
end

local function deep_equal(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  for k, v in pairs(a) do if not deep_equal(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

local function prefers_unknown_members(req)
  local p = req.headers.prefer
  if type(p) == "table" then p = table.concat(p, ",") end
  return p and p:lower():find("include%-unknown%-enum%-members") ~= nil
end

local SHAPES = {}
for _, kind in ipairs({ "assignment", "self_initiated" }) do
  local keys = { "@odata.context", "@odata.type", "externalCourseActivityId" }
  for _, f in ipairs(validate.FIELDS[kind]) do keys[#keys + 1] = f end
  SHAPES[kind] = json.ordered(keys)
end

function M.render(req, a, select)
  local kind = a._kind
  local out = setmetatable({ ["@odata.type"] = validate.ODATA_TYPE[kind], id = a.id }, SHAPES[kind])
  local spelling = state.settings.external_id_spelling
  for _, f in ipairs(validate.FIELDS[kind]) do
    if f ~= "id" and (not select or select[f]) then
      local v = a[f]
      if v == nil then v = json.null end
      if f == "assignmentType" and v == "peerRecommended" and not req.unknown_members then
        v = "unknownFutureValue"
      end
      if f == "externalcourseActivityId" then
        if spelling == "docs" then
          out.externalCourseActivityId = v
        elseif spelling == "both" then
          out.externalCourseActivityId = v
          out.externalcourseActivityId = v
        else
          out.externalcourseActivityId = v
        end
      else
        out[f] = v
      end
    end
  end
  return out
end

local GUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

-- A new activity id.  Graph's create examples show "{learnerUserId}:{guid}" (graph-api.md §6 #16);
-- settings.activity_id_format = "guid" gives plain GUIDs instead.
function M.new_id(a)
  if state.settings.activity_id_format == "guid" then return util.uuid() end
  local learner = type(a.learnerUserId) == "string" and a.learnerUserId:match(GUID) and a.learnerUserId:lower()
  return (learner or util.uuid()) .. ":" .. util.uuid()
end

local function entity_context(req, a)
  return req.base .. "/" .. req.version .. "/$metadata#employeeExperience/learningProviders('" ..
    a._provider .. "')/learningCourseActivities/$entity"
end

local function reply_entity(req, a, status, select)
  local body = M.render(req, a, select)
  body["@odata.context"] = entity_context(req, a)
  local headers = {}
  if req.unknown_members then headers["Preference-Applied"] = "include-unknown-enum-members" end
  if status == 201 and state.settings.location_header then
    headers.Location = req.base .. "/" .. req.version .. "/employeeExperience/learningProviders/" ..
      util.pct_encode(a._provider) .. "/learningCourseActivities/" .. util.pct_encode_segment(a.id)
  end
  return { status = status, json = body, headers = headers }
end

local provider_for = common.provider_for

-- Finds the activity named by akey ({id=} or {alt=, value=}) within scope.
local function find(req, principal, akey, provider)
  local s = state.s
  local a
  if akey.alt then
    if not state.ext_key(akey.alt) then
      -- a key name the type does not declare (or a spelling the setting does not take): OData .NET's
      -- BadRequest_KeyMismatch, which names no property
      return nil, errors.key_mismatch(req, "microsoft.graph.learningCourseActivity")
    end
    if provider then
      local id = s.activities_by_provider[provider.id].by_ext[akey.value]
      a = id and s.activities[id]
    else
      for _, pid in ipairs(s.provider_list) do
        local p = s.providers[pid]
        if p.tenant == principal.tenant then
          local id = s.activities_by_provider[pid].by_ext[akey.value]
          if id then a = s.activities[id]; break end
        end
      end
    end
  else
    a = s.activities[akey.id]
    if a and provider and a._provider ~= provider.id then a = nil end
  end
  if a then
    local p = s.providers[a._provider]
    if not p or p.tenant ~= principal.tenant then a = nil end
  end
  if not a then return nil, errors.not_found(req) end
  return a
end

-- A1: POST .../learningProviders/{id}/learningCourseActivities (and the tenant-wide form).
function M.create(req, principal, pkey)
  if principal.kind == "user" or not (auth.can_write_activity(principal, "assignment") or
      auth.can_write_activity(principal, "self_initiated")) then
    return errors.forbidden(req)
  end
  local body, berr = common.body_object(req)
  if not body then return berr end
  if not pkey then
    -- tenant-wide POST /employeeExperience/learningCourseActivities: the provider comes from the body
    local pid = body.learningProviderId
    if type(pid) ~= "string" or pid == "" then
      return pid == nil and errors.required(req, "learningProviderId") or errors.invalid(req, "learningProviderId")
    end
    pkey = { id = pid }
  end
  local provider, perr = provider_for(req, principal, pkey)
  if not provider then return perr end
  local otype = body["@odata.type"]
  if otype == nil then return errors.required(req, "@odata.type") end
  local kind = validate.activity_kind(otype)
  if kind == "base" or not kind then return errors.invalid(req, "@odata.type") end
  if not auth.can_write_activity(principal, kind) then return errors.forbidden(req) end
  if not provider.isCourseActivitySyncEnabled then return errors.provider_not_enabled(req) end
  local fields, ek, ef = validate.check(kind, body, "create")
  if not fields then return common.validation_error(req, ek, ef) end
  if fields.learningProviderId and fields.learningProviderId ~= json.null and fields.learningProviderId ~= provider.id then
    return errors.invalid(req, "learningProviderId")
  end
  local s = state.s
  local user = s.users[fields.learnerUserId]
  if not user or user.tenant ~= principal.tenant then return errors.invalid(req, "learnerUserId") end
  if not user.licensed then return errors.unlicensed(req) end
  local content = s.contents[fields.learningContentId]
  if not content then
    local cid = s.contents_by_provider[provider.id].by_ext[fields.learningContentId]
    content = cid and s.contents[cid]
  end
  if not content then return errors.invalid(req, "learningContentId") end
  if content._provider ~= provider.id then return errors.provider_content_mismatch(req) end

  local ext = fields.externalcourseActivityId
  if ext == json.null then ext = nil; fields.externalcourseActivityId = nil end
  log.count_create(provider.id, ext)
  if ext then
    local existing = s.activities_by_provider[provider.id].by_ext[ext]
    if existing then
      log.counters.conflicts = log.counters.conflicts + 1
      return errors.conflict(req, "A learningCourseActivity with externalcourseActivityId '" .. ext ..
        "' already exists for this provider (id " .. existing .. ").")
    end
  end
  local a = fields
  a.id = M.new_id(a)
  a._kind = kind
  a._provider = provider.id
  a.learningProviderId = provider.id
  state.add_activity(a)
  return reply_entity(req, a, 201)
end

-- A2/A3/A4: GET one activity.
function M.get(req, principal, akey, provider_key, user)
  if not auth.can_read_any_activity(principal) then return errors.forbidden(req) end
  local provider
  if provider_key then
    local perr
    provider, perr = provider_for(req, principal, provider_key)
    if not provider then return perr end
  end
  local eerr = paging.check_entity_options(req)
  if eerr then return eerr end
  local select, serr = paging.parse_select(req, ALL_FIELDS, "learningCourseActivity")
  if select == nil then return serr end
  local a, err = find(req, principal, akey, provider)
  if not a then return err end
  if user and a.learnerUserId ~= user.id then return errors.not_found(req) end
  if not auth.can_read_activity(principal, a._kind) then return errors.forbidden(req) end
  return reply_entity(req, a, 200, select)
end

local function writable(req, principal, akey, provider_key)
  if principal.kind == "user" then return nil, errors.forbidden(req) end
  if not (auth.can_write_activity(principal, "assignment") or auth.can_write_activity(principal, "self_initiated")) then
    return nil, errors.forbidden(req)
  end
  local provider
  if provider_key then
    local perr
    provider, perr = provider_for(req, principal, provider_key)
    if not provider then return nil, perr end
  end
  local a, err = find(req, principal, akey, provider)
  if not a then return nil, err end
  if not auth.can_write_activity(principal, a._kind) then return nil, errors.forbidden(req) end
  provider = provider or state.s.providers[a._provider]
  if not provider.isCourseActivitySyncEnabled then return nil, errors.provider_not_enabled(req) end
  return a
end

-- A6: PATCH -> 204
function M.update(req, principal, akey, provider_key)
  local a, err = writable(req, principal, akey, provider_key)
  if not a then return err end
  local body, berr = common.body_object(req)
  if not body then return berr end
  local otype = body["@odata.type"]
  if otype ~= nil and validate.activity_kind(otype) ~= a._kind then return errors.invalid(req, "@odata.type") end
  local fields, ek, ef = validate.check(a._kind, body, "update")
  if not fields then return common.validation_error(req, ek, ef) end
  local schema = validate.TYPES[a._kind]
  local names = {}
  for k in pairs(fields) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do
    local v = fields[k]
    if not schema[k].upd then
      local cur = a[k]
      if cur == nil then cur = json.null end
      if not deep_equal(cur, v) then
        return errors.invalid(req, k == "externalcourseActivityId" and
          (body.externalCourseActivityId ~= nil and "externalCourseActivityId" or k) or k)
      end
    end
  end
  for k, v in pairs(fields) do
    if v == json.null then a[k] = nil else a[k] = v end
  end
  return { status = 204 }
end

-- A7: DELETE -> 204
function M.delete(req, principal, akey, provider_key)
  local a, err = writable(req, principal, akey, provider_key)
  if not a then return err end
  state.remove_activity(a)
  return { status = 204 }
end

-- Lists: scope = { provider = p } | { user = u, me = bool } | { all = true }
local function items_for(principal, scope)
  local s = state.s
  local ids
  if scope.user then
    ids = s.activities_by_user[scope.user.id] or {}
  else
    ids = s.activity_list
  end
  local can_a = auth.can_read_activity(principal, "assignment")
  local can_s = auth.can_read_activity(principal, "self_initiated")
  local items = {}
  for i = 1, #ids do
    local a = s.activities[ids[i]]
    if a and ((a._kind == "assignment" and can_a) or (a._kind == "self_initiated" and can_s)) then
      local p = s.providers[a._provider]
      if p and p.tenant == principal.tenant and (not scope.provider or a._provider == scope.provider.id) then
        items[#items + 1] = a
      end
    end
  end
  return items
end

local function list_scope(req, principal, provider_key, user_seg)
  if not auth.can_read_any_activity(principal) then return nil, errors.forbidden(req) end
  local scope, context = {}, nil
  local root = req.base .. "/" .. req.version .. "/$metadata#"
  if provider_key then
    local p, perr = provider_for(req, principal, provider_key)
    if not p then return nil, perr end
    scope.provider = p
    context = root .. "employeeExperience/learningProviders('" .. p.id .. "')/learningCourseActivities"
  elseif user_seg then
    if user_seg.me then
      if principal.kind ~= "user" then
        return nil, errors.graph(req, 400, "BadRequest", "/me request is only valid with delegated authentication flow.")
      end
      scope.user = state.s.users[principal.user_id]
      context = root .. "me/employeeExperience/learningCourseActivities"
    else
      local u = state.user(user_seg.id)
      if not u or u.tenant ~= principal.tenant then
        return nil, errors.graph(req, 404, "Request_ResourceNotFound",
          "Resource '" .. user_seg.id .. "' does not exist or one of its queried reference-property objects are not present.")
      end
      scope.user = u
      context = root .. "users('" .. u.id .. "')/employeeExperience/learningCourseActivities"
    end
    if principal.kind ~= "user" and not state.settings.app_can_list_user_activities then
      return nil, errors.forbidden(req)
    end
  else
    scope.all = true
    context = root .. "employeeExperience/learningCourseActivities"
  end
  return scope, context
end

-- A5 and the other collection GETs.
function M.list(req, principal, provider_key, user_seg)
  local scope, context = list_scope(req, principal, provider_key, user_seg)
  if not scope then return context end
  local items = items_for(principal, scope)
  local resp = paging.collection(req, items, {
    context = context, allowed = ALL_FIELDS, type_name = "learningCourseActivity",
    render = function(a, select) return M.render(req, a, select) end,
  })
  if req.unknown_members and resp.status == 200 then
    resp.headers = { ["Preference-Applied"] = "include-unknown-enum-members" }
  end
  return resp
end

-- .../learningCourseActivities/$count -> text/plain
function M.count(req, principal, provider_key, user_seg)
  local scope, context = list_scope(req, principal, provider_key, user_seg)
  if not scope then return context end
  return { status = 200, text = tostring(#items_for(principal, scope)), content_type = "text/plain" }
end

M.prefers_unknown_members = prefers_unknown_members

return M
