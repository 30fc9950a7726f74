-- Models vs lua-cjson on the same documents in the same run (lua5.4 bench/models.lua).
-- Prints ratios: >1 means the model side is faster (throughput) / smaller (memory: <1 is smaller).
-- Targets (issue 3): decode-to-model >= 0.7x cjson.decode; :tojson() >= 1.0x cjson.encode of
-- the equivalent plain table; memory per model <= 0.6x the equivalent decoded table.
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./?.so;" .. package.cpath
local viva = require "vivalearning"
local cjson = require "cjson"

local quick = os.getenv("BENCH_QUICK") ~= nil
local N = quick and 20000 or 100000        -- objects for the memory figure
local TN = quick and 10000 or 20000        -- iterations per timed round
local ROUNDS = quick and 5 or 21           -- short rounds, best of each side: robust to load

-- graph-api.md §1.1 A2 response (an assignment), §1.1 A1 self-initiated response,
-- §1.3 C2 response (a content), §1.2 P1 response (a provider), and the A2 response with unknown
-- properties of every JSON type (kept as their JSON text by the model)
local docs = {
  assignment = [[{"@odata.type":"#microsoft.graph.learningAssignment","@odata.context":"https://graph.microsoft.com/v1.0/$metadata#learningProviders('13727311-e7bb-470d-8b20-6a23d9030d70')/learningCourseActivities('7ba2228a-e020-11ec-9d64-0242ac120002')$entity","assignedDateTime":"2021-05-11T22:57:17+00:00","assignmentType":"required","assignerUserId":"cea1684d-57dc-438d-a9d1-e666ec1a7f3d","completedDateTime":null,"completionPercentage":null,"dueDateTime":{"dateTime":"2022-09-22T16:05:00.0000000","timeZone":"UTC"},"externalCourseActivityId":"12a2228a-e020-11ec-9d64-0242ac120002","id":"8ba2228a-e020-11ec-9d64-0242ac120003","learningContentId":"57baf9dc-e020-11ec-9d64-0242ac120002","learningProviderId":"13727311-e7bb-470d-8b20-6a23d9030d70","learnerUserId":"7ba2228a-e020-11ec-9d64-0242ac120002","notes":{"contentType":"text","content":"required assignment added for user"},"status":"notStarted"}]],
  self_initiated = [[{"@odata.type":"#microsoft.graph.learningSelfInitiatedCourse","completedDateTime":null,"completionPercentage":20,"externalCourseActivityId":"12a2228a-e020-11ec-9d64-0242ac120002","id":"7ba2228a-e020-11ec-9d64-0242ac120002:749c8786-99bb-4b3b-8d5d-586428f6aaa3","learningContentId":"57baf9dc-e020-11ec-9d64-0242ac120002","learningProviderId":"01e8f81b-3060-4dec-acf0-0389665a0a38","learnerUserId":"7ba2228a-e020-11ec-9d64-0242ac120002","startedDateTime":"2021-05-21T22:57:17+00:00","status":"inProgress"}]],
  content = [[{"id":"77029588-a660-46b6-ba58-3ce4d21d5678","externalId":"LP4471","title":"Manage classes, resources, assessment, and planning in Microsoft Teams with Beedle","description":"A module to guide users through the various teaching and learning enhancements that Beedle provides within Microsoft Teams, with many examples of everyday application.","contentWebUrl":"https://learn.microsoft.com/learn/modules/manage-classes-resources-assessment-planning-beedle/","sourceName":"MSLibrary","thumbnailWebUrl":"https://syndetics.com/index.aspx?isbn=9783319672175/LC.GIF","languageTag":"en-us","numberOfPages":10,"duration":"PT20M","format":"Book","level":"Beginner","createdDateTime":"2018-01-01T00:00:00","lastModifiedDateTime":"2021-04-01T04:26:06.1995367Z","contributors":["Lina Wagner","Lisa Richter"],"additionalTags":["Create private or public teams","Add members to teams"],"skillTags":["Create teams","Teams channels","Teams members"],"isActive":true,"isPremium":false,"isSearchable":true}]],
  provider = [[{"id":"ba9790ef-21d5-4c17-808c-acda55230253","displayName":"Microsoft","squareLogoWebUrlForDarkTheme":"https://support.content.office.net/en-us/media/4c531d12-4c13-4782-a6e4-4b8f991801a3.png","longLogoWebUrlForDarkTheme":"https://support.content.office.net/en-us/media/4c531d12-4c13-4782-a6e4-4b8f991801a3.png","squareLogoWebUrlForLightTheme":"https://support.content.office.net/en-us/media/4c531d12-4c13-4782-a6e4-4b8f991801a3.png","longLogoWebUrlForLightTheme":"https://support.content.office.net/en-us/media/4c531d12-4c13-4782-a6e4-4b8f991801a3.png","loginWebUrl":"https://www.linkedin.com/learning-login/teams","isCourseActivitySyncEnabled":true}]],
  -- the A2 assignment with properties our schema does not know, one of each JSON type
  unknown = [[{"@odata.type":"#microsoft.graph.learningAssignment","@odata.context":"https://graph.microsoft.com/v1.0/$metadata#learningProviders('13727311-e7bb-470d-8b20-6a23d9030d70')/learningCourseActivities('7ba2228a-e020-11ec-9d64-0242ac120002')$entity","assignedDateTime":"2021-05-11T22:57:17+00:00","assignmentType":"required","assignerUserId":"cea1684d-57dc-438d-a9d1-e666ec1a7f3d","completedDateTime":null,"completionPercentage":null,"dueDateTime":{"dateTime":"2022-09-22T16:05:00.0000000","timeZone":"UTC"},"externalCourseActivityId":"12a2228a-e020-11ec-9d64-0242ac120002","id":"8ba2228a-e020-11ec-9d64-0242ac120003","learningContentId":"57baf9dc-e020-11ec-9d64-0242ac120002","learningProviderId":"13727311-e7bb-470d-8b20-6a23d9030d70","learnerUserId":"7ba2228a-e020-11ec-9d64-0242ac120002","notes":{"contentType":"text","content":"required assignment added for user"},"status":"notStarted","@odata.etag":"W/\"JzEtRDFBNjk3\"","futureString":"added in a later Graph version","futureNumber":12.5,"futureBoolean":true,"futureNull":null,"futureObject":{"source":"lms","weight":3,"tags":["a","b"]},"futureArray":[{"step":1,"done":false},{"step":2,"done":true}]}]],
}
local order = { "assignment", "self_initiated", "content", "provider", "unknown" }

-- Best rate of each side over ROUNDS rounds, the two sides alternating round by round so
-- that a change of load on this shared machine hits both alike.
local function best_rates(n, fa, fb)
  local best_a, best_b = math.huge, math.huge
  for _ = 1, ROUNDS do
    for side = 1, 2 do
      collectgarbage("collect")
      local t0 = os.clock()
      if side == 1 then fa(n) else fb(n) end
      local dt = os.clock() - t0
      if side == 1 then best_a = math.min(best_a, dt) else best_b = math.min(best_b, dt) end
    end
  end
  return n / best_a, n / best_b
end

local function mem_per_object(n, make)
  local keep = {}
  for i = 1, n do keep[i] = false end          -- the array itself is not counted
  collectgarbage("collect"); collectgarbage("collect")
  local before = collectgarbage("count")
  for i = 1, n do keep[i] = make(i) end
  collectgarbage("collect"); collectgarbage("collect")
  local after = collectgarbage("count")
  local per = (after - before) * 1024 / n
  keep = nil                                    -- luacheck: ignore
  collectgarbage("collect")
  return per
end

local function line(label, ratio, target, cmp, extra)
  local ok = (cmp == ">=" and ratio >= target) or (cmp == "<=" and ratio <= target)
  print(string.format("  %-44s %6.2fx  (target %s %.1fx: %s)%s", label, ratio, cmp, target,
                      ok and "met" or "NOT MET", extra or ""))
  return ok
end

print(string.format("models vs lua-cjson %s, %s: speed best of %d alternating rounds of %d, memory over %d objects",
                    cjson._VERSION, _VERSION, ROUNDS, TN, N))
local all_ok = true
local results = {}
for _, name in ipairs(order) do
  local doc = docs[name]
  local decode, vdecode = cjson.decode, viva.decode
  local r_cj, r_vm = best_rates(TN, function(n) for _ = 1, n do decode(doc) end end,
                                  function(n) for _ = 1, n do vdecode(doc) end end)
  local plain, model = decode(doc), assert(vdecode(doc))
  local encode = cjson.encode
  local e_cj, e_vm = best_rates(TN, function(n) for _ = 1, n do encode(plain) end end,
                                  function(n) for _ = 1, n do model:tojson() end end)
  -- memory: each object gets its own id so nothing is shared that would not be in real data
  local id_doc = doc:gsub('"id":"[^"]*"', '"id":"%%s"')
  local m_cj = mem_per_object(N, function(i) return decode(id_doc:format(i)) end)
  local m_vm = mem_per_object(N, function(i) return vdecode(id_doc:format(i)) end)
  print(name .. string.format(" (%d bytes of JSON)", #doc))
  local ok1 = line("decode to model / cjson.decode", r_vm / r_cj, 0.7, ">=",
                   string.format("  %.0f vs %.0f /s", r_vm, r_cj))
  local ok2 = line(":tojson() / cjson.encode(plain table)", e_vm / e_cj, 1.0, ">=",
                   string.format("  %.0f vs %.0f /s", e_vm, e_cj))
  local ok3 = line("memory per model / decoded table", m_vm / m_cj, 0.6, "<=",
                   string.format("  %.0f vs %.0f bytes", m_vm, m_cj))
  results[name] = { r_vm / r_cj, e_vm / e_cj, m_vm / m_cj }
  all_ok = all_ok and ok1 and ok2 and ok3
end
local head = results.assignment
print(string.format("headline (A2 assignment response): decode %.2fx, tojson %.2fx, memory %.2fx -> %s",
                    head[1], head[2], head[3],
                    (head[1] >= 0.7 and head[2] >= 1.0 and head[3] <= 0.6) and "targets met" or "targets NOT met"))
print(all_ok and "models: all targets met on every document" or
      "models: some figures miss a target on some document (see above)")
