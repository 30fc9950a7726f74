-- Emulator: a seeded random walk of odd requests; none may crash it or answer 5xx / a non-Graph body.
local emu = require("support.emulator")
local http = require("support.http")
local cjson = require("cjson")

local P = emu.PROVIDER
local function pick(t) return t[math.random(#t)] end

local SEGMENTS = { "employeeExperience", "learningProviders", P, "learningCourseActivities", "learningContents",
  "$ref", "$count", "$batch", "me", "users", emu.LEARNER, "x", "%2F", "%25", "..", "(", ")", "('a')",
  "learningCourseActivities(externalcourseActivityId='a''b')", "learningContents(externalId='CA-01')",
  "learningCourseActivities(foo=)", "%E2%82%AC", "%FF", "a%20b", "" }
local VALUES = { 0, -1, 101, 2 ^ 31, 1.5, "", "x", "notStarted", "required", "peerRecommended", true, false,
  cjson.null, {}, { 1, 2 }, { dateTime = "2026-01-01T00:00:00" }, { content = 1 }, "2026-01-01T00:00:00Z",
  string.rep("y", 300), "Zoë" }
local FIELDS = { "@odata.type", "assignmentType", "learnerUserId", "learningContentId", "status",
  "completionPercentage", "dueDateTime", "notes", "externalcourseActivityId", "startedDateTime", "title",
  "externalId", "displayName", "requests", "bogus" }

local function random_body()
  local r = math.random(6)
  if r == 1 then return "" end
  if r == 2 then return string.char(math.random(0, 255), math.random(0, 255), math.random(0, 255)) end
  local t = emu.assignment()
  for _ = 1, math.random(0, 4) do t[pick(FIELDS)] = pick(VALUES) end
  local ok, s = pcall(cjson.encode, t)
  if not ok then return "{}" end
  if r == 3 then return s:sub(1, math.random(#s)) end
  return s
end

describe("emulator under random odd requests", function()
  before_each(function() emu.reset() end)

  it("answers every one with a Graph-shaped body and never a 5xx", function()
    math.randomseed(tonumber(os.getenv("EMU_FUZZ_SEED") or "") or 20261122)
    local token = emu.token()
    for i = 1, 150 do
      local n = math.random(1, 6)
      local segs = {}
      for j = 1, n do segs[j] = pick(SEGMENTS) end
      if math.random(3) > 1 then table.insert(segs, 1, "employeeExperience") end
      local path = "/v1.0/" .. table.concat(segs, "/")
      if math.random(4) == 1 then path = path .. "?" .. pick({ "$top=2", "$skip=-1", "$select=status,x", "$count=true", "%24top=1", "a=%ZZ" }) end
      local method = pick({ "GET", "POST", "PATCH", "DELETE", "PUT" })
      local headers = { Authorization = "Bearer " .. token,
        ["Content-Type"] = pick({ "application/json", "application/json", "text/plain", false }) }
      local body
      if method == "POST" or method == "PATCH" or method == "PUT" then body = random_body() end
      local res = http.request{ method = method, url = emu.http .. path, headers = headers, body = body }
      assert.is_true(res.status >= 200 and res.status < 500, method .. " " .. path .. " -> " .. res.status .. " " .. res.body)
      if res.status >= 400 then
        assert.is_table(res.json, method .. " " .. path .. " " .. res.body)
        assert.is_string(res.json.error.code)
        assert.is_string(res.json.error.message)
      end
      assert.truthy(res.headers["request-id"], path)
    end
    assert.equal(200, emu.health().status)
  end)
end)
