-- Graph's error body: {"error":{"code","message","innerError":{"date","request-id","client-request-id"}}}
local util = require("util")

local M = {}

function M.graph(req, status, code, message, headers)
  return {
    status = status,
    headers = headers or {},
    json = {
      error = {
        code = code,
        message = message,
        innerError = {
          date = util.iso_now(),
          ["request-id"] = req.request_id,
          ["client-request-id"] = req.client_request_id,
        },
      },
    },
  }
end

-- The rows of graph-api.md §3 (newest text).
function M.bad_request(req, message)
  return M.graph(req, 400, "badRequest", message)
end
function M.required(req, field)
  return M.graph(req, 400, "badRequest", "Input field " .. field .. " is required")
end
function M.invalid(req, field)
  return M.graph(req, 400, "badRequest", "Input field " .. field .. " is invalid")
end
function M.empty(req, field)
  return M.graph(req, 400, "badRequest", "Input field " .. field .. " shouldn't be empty")
end
function M.not_found(req, message)
  return M.graph(req, 404, "notFound", message or "The requested assignment ID doesn't exist.")
end
function M.method_not_allowed(req)
  return M.graph(req, 405, "methodNotAllowed",
    "This method isn't supported for this entity type. See the Microsoft Graph documentation for the methods applicable to this entity.")
end
function M.forbidden(req, message)
  return M.graph(req, 403, "Forbidden", message or
    "Your account doesn't have access to this report or data. Contact your administrator to request access.")
end
function M.provider_not_enabled(req)
  return M.graph(req, 400, "badRequest", "This provider isn't enabled for the given tenant.")
end
function M.unknown_registration(req)
  return M.graph(req, 400, "badRequest",
    "There was an issue with your request. Make sure the registrationId you entered is valid or registered for your tenant.")
end
function M.provider_content_mismatch(req)
  return M.forbidden(req, "The provider isn't valid to create course activity for the given learning content")
end
function M.unlicensed(req)
  return M.forbidden(req, "The user license is not valid to perform the operation")
end
function M.unauthenticated(req, message)
  return M.graph(req, 401, "InvalidAuthenticationToken", message, {
    ["WWW-Authenticate"] = 'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"',
  })
end
-- A key segment whose names match no key of the type: OData .NET's BadRequest_KeyMismatch (Graph is
-- built on it; the text as Dataverse, on the same library, documents it for an undeclared alternate key).
function M.key_mismatch(req, type_name)
  return M.graph(req, 400, "BadRequest", "The key in the request URI is not valid for resource '" .. type_name ..
    "'. Ensure that the names and number of key properties match the declared or alternate key properties for " ..
    "the resource '" .. type_name .. "'.")
end
function M.conflict(req, message)
  return M.graph(req, 409, "conflict", message)
end
function M.too_large(req, limit)
  return M.graph(req, 413, "RequestEntityTooLarge",
    "The request body exceeds the maximum size of " .. tostring(limit) .. " bytes.")
end

return M
