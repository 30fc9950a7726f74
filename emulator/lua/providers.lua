-- learningProvider operations P1-P5 (delegated tokens only, per graph-api.md §1.0).
local json = require("json")
local util = require("util")
local state = require("state")
local auth = require("auth")
local errors = require("errors")
local validate = require("validate")
local paging = require("paging")
local common = require("common")

local M = {}

local FIELDS = common.selectable("provider")
local ADMIN_ROLES = { ["Knowledge Administrator"] = true, ["Global Administrator"] = true }

function M.render(p, select)
  return common.render("provider", p, select)
end

local function context(req, entity)
  return req.base .. "/" .. req.version .. "/$metadata#employeeExperience/learningProviders" .. (entity and "/$entity" or "")
end

local function not_found(req)
  return errors.not_found(req, "The requested learning provider doesn't exist.")
end

local function lookup(req, principal, key)
  if not key or key.alt then return nil, not_found(req) end
  local p = state.s.providers[key.id]
  if not p or p.tenant ~= principal.tenant then return nil, not_found(req) end
  return p
end

function M.list(req, principal)
  if not auth.allowed(principal, auth.P.provider_read) then return errors.forbidden(req) end
  local items = {}
  for _, id in ipairs(state.s.provider_list) do
    local p = state.s.providers[id]
    if p.tenant == principal.tenant then items[#items + 1] = p end
  end
  return paging.collection(req, items, {
    context = context(req, false), allowed = FIELDS, type_name = "learningProvider",
    render = M.render,
  })
end

function M.get(req, principal, key)
  if not auth.allowed(principal, auth.P.provider_read) then return errors.forbidden(req) end
  local eerr = paging.check_entity_options(req)
  if eerr then return eerr end
  local select, serr = paging.parse_select(req, FIELDS, "learningProvider")
  if select == nil then return serr end
  local p, err = lookup(req, principal, key)
  if not p then return err end
  return common.entity(200, M.render(p, select), context(req, true))
end

function M.create(req, principal)
  if not auth.allowed(principal, auth.P.provider_write) then return errors.forbidden(req) end
  local user = state.s.users[principal.user_id]
  if not user or not user.licensed then
    return errors.forbidden(req, "You don't have an adequate service plan for this request.")
  end
  local is_admin = false
  for _, r in ipairs(user.directoryRoles or {}) do if ADMIN_ROLES[r] then is_admin = true end end
  if not is_admin then return errors.forbidden(req) end
  local body, berr = common.body_object(req)
  if not body then return berr end
  local fields, ek, ef = validate.check("provider", body, "create")
  if not fields then return common.validation_error(req, ek, ef) end
  local p = fields
  p.id = util.uuid()
  p.tenant = principal.tenant
  if p.isCourseActivitySyncEnabled == nil or p.isCourseActivitySyncEnabled == json.null then
    p.isCourseActivitySyncEnabled = false
  end
  local s = state.s
  s.providers[p.id] = p
  s.provider_list[#s.provider_list + 1] = p.id
  s.contents_by_provider[p.id] = { list = {}, by_ext = {} }
  s.activities_by_provider[p.id] = { by_ext = {} }
  local headers = {}
  if state.settings.location_header then
    headers.Location = req.base .. "/" .. req.version .. "/employeeExperience/learningProviders/" .. util.pct_encode(p.id)
  end
  return common.entity(201, M.render(p), context(req, true), headers)
end

function M.update(req, principal, key)
  if not auth.allowed(principal, auth.P.provider_write) then return errors.forbidden(req) end
  local p, err = lookup(req, principal, key)
  if not p then return err end
  local body, berr = common.body_object(req)
  if not body then return berr end
  local fields, ek, ef = validate.check("provider", body, "update")
  if not fields then return common.validation_error(req, ek, ef) end
  for k, v in pairs(fields) do
    if v == json.null then p[k] = (k == "isCourseActivitySyncEnabled") and false or nil else p[k] = v end
  end
  return { status = 204 }
end

function M.delete(req, principal, key)
  if not auth.allowed(principal, auth.P.provider_write) then return errors.forbidden(req) end
  local p, err = lookup(req, principal, key)
  if not p then return err end
  local s = state.s
  -- Contained navigations go with it.
  local doomed = {}
  for i = 1, #s.activity_list do
    local a = s.activities[s.activity_list[i]]
    if a and a._provider == p.id then doomed[#doomed + 1] = a end
  end
  for _, a in ipairs(doomed) do state.remove_activity(a) end
  for _, cid in ipairs(s.contents_by_provider[p.id].list) do s.contents[cid] = nil end
  s.contents_by_provider[p.id] = nil
  s.activities_by_provider[p.id] = nil
  s.providers[p.id] = nil
  state.list_remove(s.provider_list, p.id)
  return { status = 204 }
end

return M
