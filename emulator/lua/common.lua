-- Pieces the activity, provider and content handlers share.
local json = require("json")
local state = require("state")
local errors = require("errors")
local validate = require("validate")

local M = {}

-- The 400 for a validation failure (kinds from validate.check).
function M.validation_error(req, ek, field)
  if ek == "required" then return errors.required(req, field) end
  if ek == "empty" then return errors.empty(req, field) end
  return errors.invalid(req, field)
end

-- The request's JSON body when it is an object, else nil and a 400.
function M.body_object(req)
  local body = req.json
  if type(body) ~= "table" or json.is_array(body) then
    return nil, errors.bad_request(req, "The request body must be a JSON object.")
  end
  return body
end

-- The provider named in a provider-scoped path, in the caller's tenant; else nil and the §3 400.
function M.provider_for(req, principal, pkey)
  if not pkey or pkey.alt then return nil, errors.unknown_registration(req) end
  local p = state.s.providers[pkey.id]
  if not p or p.tenant ~= principal.tenant then return nil, errors.unknown_registration(req) end
  return p
end

-- The set of $select-able property names of a type.
function M.selectable(kind)
  local set = {}
  for k in pairs(validate.TYPES[kind]) do set[k] = true end
  return set
end

-- A plain entity (provider, content): id and every property of the type, null when unset.
function M.render(kind, rec, select)
  local out = { id = rec.id }
  for _, f in ipairs(validate.FIELDS[kind]) do
    if f ~= "id" and (not select or select[f]) then
      local v = rec[f]
      if v == nil then v = json.null end
      out[f] = v
    end
  end
  return out
end

-- A response carrying one entity with its @odata.context.
function M.entity(status, body, context, headers)
  body["@odata.context"] = context
  return { status = status, json = body, headers = headers }
end

return M
