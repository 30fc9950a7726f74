-- Clients for the emulator seed's apps, shared by the client and Lua layer specs.
local viva = require "vivalearning"
local emu = require "support.emulator"

local M = {}

--- The configuration of a client for one of the seed's apps (default the importer), over
--- HTTPS/h2 with the emulator's CA. Each further table overrides the ones before it; a
--- value of false removes the key (to test a configuration without it).
function M.options(app, ...)
  local a = emu.APPS[app or "importer"]
  local o = {
    graph_url = emu.graph_url, authority_url = emu.authority_url, ca_file = emu.ca,
    tenant = emu.TENANT, client_id = a.client_id, client_secret = a.client_secret,
  }
  for i = 1, select("#", ...) do
    for k, v in pairs(select(i, ...) or {}) do
      if v == false then o[k] = nil else o[k] = v end
    end
  end
  return o
end

--- A client for one of the seed's apps: M.new(app, overrides...).
function M.new(app, ...) return viva.client(M.options(app, ...)) end

--- Adele through the console app (password grant): delegated scopes for /me and providers.
function M.user(...)
  return M.new("console", { username = emu.ADELE.upn, password = emu.ADELE.password }, ...)
end

--- A maker of valid assignment models for the seed, each with a fresh external id
--- "<prefix>-<time>-<n>" (fields can be overridden): local assignment = M.assignments("err").
function M.assignments(prefix)
  local n = 0
  return function(over)
    n = n + 1
    local t = {
      learningContentId = emu.CONTENT, learnerUserId = emu.LEARNER, assignmentType = "required",
      status = "notStarted", externalCourseActivityId = string.format("%s-%d-%d", prefix, os.time(), n),
    }
    for k, v in pairs(over or {}) do t[k] = v end
    return viva.assignment(t)
  end
end

return M
