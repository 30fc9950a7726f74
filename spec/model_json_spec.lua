-- JSON: round trip of every example of graph-api.md §1, decoding rules (cjson safe mode),
-- the encoder (numbers, escapes, UTF-8), preservation of unknown properties and enum members.
local shell = require "support.shell"
local viva = require "vivalearning"
local core = require "vivalearning.core"
local cjson = require "cjson"

local EXAMPLES = {
  { name = "A1 create assignment request", family = "activity", json = [[
{
  "@odata.type": "#microsoft.graph.learningAssignment",
  "assignedDateTime": "2021-05-11T22:57:17+00:00",
  "assignmentType": "required",
  "assignerUserId": "cea1684d-57dc-438d-a9d1-e666ec1a7f3d",
  "completedDateTime": null,
  "completionPercentage": 20,
  "dueDateTime": {
    "dateTime": "2022-09-22T16:05:00.0000000",
    "timeZone": "UTC"
  },
  "externalCourseActivityId": "12a2228a-e020-11ec-9d64-0242ac120002",
  "learningContentId": "57baf9dc-e020-11ec-9d64-0242ac120002",
  "learningProviderId": "01e8f81b-3060-4dec-acf0-0389665a0a38",
  "learnerUserId": "7ba2228a-e020-11ec-9d64-0242ac120002",
  "notes": {
    "contentType": "text",
    "content": "required assignment added for user"
  },
  "status": "notStarted"
}]] },
  { name = "A1 create assignment response", family = "activity", json = [[
{
  "@odata.type": "#microsoft.graph.learningAssignment",
  "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#learningProviders('13727311-e7bb-470d-8b20-6a23d9030d70')/learningCourseActivities('7ba2228a-e020-11ec-9d64-0242ac120002')$entity",
  "assignedDateTime": "2021-05-11T22:57:17+00:00",
  "assignmentType": "required",
  "assignerUserId": "cea1684d-57dc-438d-a9d1-e666ec1a7f3d",
  "completedDateTime": null,
  "completionPercentage": 20,
  "externalCourseActivityId": "12a2228a-e020-11ec-9d64-0242ac120002",
  "id": "7ba2228a-e020-11ec-9d64-0242ac120002:749c8786-99bb-4b3b-8d5d-586428f6aaa3",
  "dueDateTime": {
    "dateTime": "2022-09-22T16:05:00.0000000",
    "timeZone": "UTC"
  },
  "learningContentId": "57baf9dc-e020-11ec-9d64-0242ac120002",
  "learningProviderId": "01e8f81b-3060-4dec-acf0-0389665a0a38",
  "learnerUserId": "7ba2228a-e020-11ec-9d64-0242ac120002",
  "notes": {
    "contentType": "text",
    "content": "required assignment added for user"
  },
  "status": "notStarted"
}]] },
  { name = "A1 create self-initiated request", family = "activity", json = [[
{
  "@odata.type": "#microsoft.graph.learningSelfInitiatedCourse",
  "completedDateTime": null,
  "completionPercentage": 20,
  "externalCourseActivityId": "12a2228a-e020-11ec-9d64-0242ac120002",
  "learningContentId": "57baf9dc-e020-11ec-9d64-0242ac120002",
  "learnerUserId": "7ba2228a-e020-11ec-9d64-0242ac120002",
  "startedDateTime": "2021-05-21T22:57:17+00:00",
  "status": "inProgress"
}]] },
  { name = "A1 create self-initiated response", family = "activity", json = [[
{
  "@odata.type": "#microsoft.graph.learningSelfInitiatedCourse",
  "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#learningProviders('13727311-e7bb-470d-8b20-6a23d9030d70')/learningCourseActivities('be2f4d76-e020-11ec-9d64-0242ac120002')$entity",
  "completedDateTime": null,
  "completionPercentage": 20,
  "externalCourseActivityId": "12a2228a-e020-11ec-9d64-0242ac120002",
  "id": "7ba2228a-e020-11ec-9d64-0242ac120002:749c8786-99bb-4b3b-8d5d-586428f6aaa3",
  "learningContentId": "57baf9dc-e020-11ec-9d64-0242ac120002",
  "learningProviderId": "01e8f81b-3060-4dec-acf0-0389665a0a38",
  "learnerUserId": "7ba2228a-e020-11ec-9d64-0242ac120002",
  "startedDateTime": "2021-05-21T22:57:17+00:00",
  "status": "inProgress"
}]] },
  { name = "A2 get assignment response", family = "activity", json = [[
{
  "@odata.type": "#microsoft.graph.learningAssignment",
  "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#learningProviders('13727311-e7bb-470d-8b20-6a23d9030d70')/learningCourseActivities('7ba2228a-e020-11ec-9d64-0242ac120002')$entity",
  "assignedDateTime": "2021-05-11T22:57:17+00:00",
  "assignmentType": "required",
  "assignerUserId": "cea1684d-57dc-438d-a9d1-e666ec1a7f3d",
  "completedDateTime": null,
  "completionPercentage": null,
  "dueDateTime": {
    "dateTime": "2022-09-22T16:05:00.0000000",
    "timeZone": "UTC"
  },
  "externalCourseActivityId": "12a2228a-e020-11ec-9d64-0242ac120002",
  "id": "8ba2228a-e020-11ec-9d64-0242ac120003",
  "learningContentId": "57baf9dc-e020-11ec-9d64-0242ac120002",
  "learningProviderId": "13727311-e7bb-470d-8b20-6a23d9030d70",
  "learnerUserId": "7ba2228a-e020-11ec-9d64-0242ac120002",
  "notes": {
    "contentType": "text",
    "content": "required assignment added for user"
  },
  "status": "notStarted"
}]] },
  { name = "A5 list response", family = "activity", json = [[
{
  "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#me/employeeExperience/learningCourseActivities$entity",
  "@odata.nextLink": "https://graph.microsoft.com/v1.0/$metadata#me/employeeExperience/learningCourseActivities?$skip=10",
  "value": [
    {
      "@odata.type": "#microsoft.graph.learningAssignment",
      "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#learningProviders('13727311-e7bb-470d-8b20-6a23d9030d70')/learningCourseActivities('8ba2228a-e020-11ec-9d64-0242ac120003')$entity",
      "assignedDateTime": "2021-05-11T22:57:17+00:00",
      "assignmentType": "required",
      "assignerUserId": "cea1684d-57dc-438d-a9d1-e666ec1a7f3d",
      "completedDateTime": null,
      "completionPercentage": null,
      "externalCourseActivityId": "12a2228a-e020-11ec-9d64-0242ac120002",
      "id": "8ba2228a-e020-11ec-9d64-0242ac120003",
      "dueDateTime": {
        "dateTime": "2022-09-22T16:05:00.0000000",
        "timeZone": "UTC"
      },
      "learningContentId": "57baf9dc-e020-11ec-9d64-0242ac120002",
      "learningProviderId": "13727311-e7bb-470d-8b20-6a23d9030d70",
      "learnerUserId": "7ba2228a-e020-11ec-9d64-0242ac120002",
      "notes": {
        "contentType": "text",
        "content": "required assignment added for user"
      },
      "status": "notStarted"
    },
    {
      "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#learningProviders('13727311-e7bb-470d-8b20-6a23d9030d70')/learningCourseActivities('be2f4d76-e020-11ec-9d64-0242ac120002')$entity",
      "@odata.type": "#microsoft.graph.learningSelfInitiatedCourse",
      "completedDateTime": null,
      "completionPercentage": 20,
      "externalCourseActivityId": "12a2228a-e020-11ec-9d64-0242ac120002",
      "id": "be2f4d76-e020-11ec-9d64-0242ac120002",
      "learningContentId": "57baf9dc-e020-11ec-9d64-0242ac120002",
      "learningProviderId": "13727311-e7bb-470d-8b20-6a23d9030d70",
      "learnerUserId": "7ba2228a-e020-11ec-9d64-0242ac120002",
      "startedDateTime": "2021-05-21T22:57:17+00:00",
      "status": "inProgress"
    }
  ]
}]] },
  { name = "P1 create provider request", family = "provider", json = [[
{
    "displayName": "Microsoft",
    "squareLogoWebUrlForDarkTheme": "https://support.content.office.net/en-us/media/4c531d12-4c13-4782-a6e4-4b8f991801a3.png",
    "longLogoWebUrlForDarkTheme": "https://support.content.office.net/en-us/media/4c531d12-4c13-4782-a6e4-4b8f991801a3.png",
    "squareLogoWebUrlForLightTheme": "https://support.content.office.net/en-us/media/4c531d12-4c13-4782-a6e4-4b8f991801a3.png",
    "longLogoWebUrlForLightTheme": "https://support.content.office.net/en-us/media/4c531d12-4c13-4782-a6e4-4b8f991801a3.png",
    "loginWebUrl": "https://www.linkedin.com/learning-login/teams",
    "isCourseActivitySyncEnabled": true
}]] },
  { name = "P1 create provider response", family = "provider", json = [[
{
    "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#learningProviders/$entity",
    "id": "ba9790ef-21d5-4c17-808c-acda55230253",
    "displayName": "Microsoft",
    "squareLogoWebUrlForDarkTheme": "https://support.content.office.net/en-us/media/4c531d12-4c13-4782-a6e4-4b8f991801a3.png",
    "longLogoWebUrlForDarkTheme": "https://support.content.office.net/en-us/media/4c531d12-4c13-4782-a6e4-4b8f991801a3.png",
    "squareLogoWebUrlForLightTheme": "https://support.content.office.net/en-us/media/4c531d12-4c13-4782-a6e4-4b8f991801a3.png",
    "longLogoWebUrlForLightTheme": "https://support.content.office.net/en-us/media/4c531d12-4c13-4782-a6e4-4b8f991801a3.png",
    "loginWebUrl": "https://www.linkedin.com/learning-login/teams",
    "isCourseActivitySyncEnabled": true
}]] },
  { name = "C3 upsert content request", family = "content", json = [[
{
    "title": "Manage classes, resources, assessment, and planning in Microsoft Teams with Beedle",
    "description": "A module to guide users through the various teaching and learning enhancements that Beedle provides within Microsoft Teams, with many examples of everyday application.",
    "contentWebUrl": "https://learn.microsoft.com/learn/modules/manage-classes-resources-assessment-planning-beedle/",
    "sourceName": "MsLearn",
    "thumbnailWebUrl": "https://syndetics.com/index.aspx?isbn=9783319672175/LC.GIF",
    "languageTag": "en-us",
    "numberOfPages": 9,
    "duration": "PT20M",
    "format": "Book",
    "level": "Beginner",
    "createdDateTime": "2018-01-01T00:00:00Z",
    "lastModifiedDateTime": "2021-04-01T04:26:06.1995367Z",
    "contributors": [
      "Lina Wagner",
      "Lisa Richter"
    ],
    "additionalTags": [
        "Create private or public teams",
        "Add members to teams"
    ],
    "skillTags": [
        "Create teams",
        "Teams channels",
        "Teams members"
    ],
    "isActive": true,
    "isPremium": false,
    "isSearchable": true
}]] },
  { name = "C2 get content response", family = "content", json = [[
{
    "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#learningProviders('13727311-e7bb-470d-8b20-6a23d9030d70')/learningContents/$entity",
    "id": "77029588-a660-46b6-ba58-3ce4d21d5678",
    "externalId": "LP4471",
    "title": "Manage classes, resources, assessment, and planning in Microsoft Teams with Beedle",
    "description": "A module to guide users through the various teaching and learning enhancements that Beedle provides within Microsoft Teams, with many examples of everyday application.",
    "contentWebUrl": "https://learn.microsoft.com/learn/modules/manage-classes-resources-assessment-planning-beedle/",
    "sourceName": "MSLibrary",
    "thumbnailWebUrl": "https://syndetics.com/index.aspx?isbn=9783319672175/LC.GIF",
    "languageTag": "en-us",
    "numberOfPages": 10,
    "duration": "PT20M",
    "format": "Book",
    "level": "Beginner",
    "createdDateTime": "2018-01-01T00:00:00",
    "lastModifiedDateTime": "2021-04-01T04:26:06.1995367Z",
    "contributors": [
        "Lina Wagner",
        "Lisa Richter"
    ],
    "additionalTags": [
        "Create private or public teams",
        "Add members to teams"
    ],
    "skillTags": [
        "Create teams",
        "Teams channels",
        "Teams members"
    ],
    "isActive": true,
    "isPremium": false,
    "isSearchable": true
}]] },
  { name = "C1 list contents response (opening)", family = "content", json = [[
{
    "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#learningProviders('13727311-e7bb-470d-8b20-6a23d9030d70')/learningContents",
    "@odata.nextLink": "https://graph.microsoft.com/v1.0/$metadata#learningProviders('13727311-e7bb-470d-8b20-6a23d9030d70')/learningContents?skip=2&top=2",
    "@odata.count": 10,
    "value": [ { "id": "99029577-a660-46b6-ba58-3ce4d21d5f50", "externalId": "LP4771", "...": "...", "duration": "PDT1H", "isSearchable": false } ]
}]] },
}
-- P2 (list providers): graph-api.md §1.2 describes it as provider objects in the P1 shape,
-- the second with displayName LinkedInHub and sync disabled.
EXAMPLES[#EXAMPLES + 1] = { name = "P2 list providers response", family = "provider", json = [[
{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#learningProviders","value":[
 {"id":"ba9790ef-21d5-4c17-808c-acda55230253","displayName":"Microsoft","squareLogoWebUrlForDarkTheme":"https://support.content.office.net/en-us/media/4c531d12-4c13-4782-a6e4-4b8f991801a3.png","longLogoWebUrlForDarkTheme":"https://support.content.office.net/en-us/media/4c531d12-4c13-4782-a6e4-4b8f991801a3.png","squareLogoWebUrlForLightTheme":"https://support.content.office.net/en-us/media/4c531d12-4c13-4782-a6e4-4b8f991801a3.png","longLogoWebUrlForLightTheme":"https://support.content.office.net/en-us/media/4c531d12-4c13-4782-a6e4-4b8f991801a3.png","loginWebUrl":"https://www.linkedin.com/learning-login/teams","isCourseActivitySyncEnabled":true},
 {"id":"13727311-e7bb-470d-8b20-6a23d9030d70","displayName":"LinkedInHub","squareLogoWebUrlForDarkTheme":"https://example.com/s-d.png","longLogoWebUrlForDarkTheme":"https://example.com/l-d.png","squareLogoWebUrlForLightTheme":"https://example.com/s-l.png","longLogoWebUrlForLightTheme":"https://example.com/l-l.png","loginWebUrl":"https://www.linkedin.com/learning-login/teams","isCourseActivitySyncEnabled":false}]}
]] }

local KINDS = {
  ["A1 create assignment request"] = { "assignment" },
  ["A1 create assignment response"] = { "assignment" },
  ["A1 create self-initiated request"] = { "self_initiated" },
  ["A1 create self-initiated response"] = { "self_initiated" },
  ["A2 get assignment response"] = { "assignment" },
  ["A5 list response"] = { "assignment", "self_initiated" },
  ["P1 create provider request"] = { "provider" },
  ["P1 create provider response"] = { "provider" },
  ["C3 upsert content request"] = { "content" },
  ["C2 get content response"] = { "content" },
  ["C1 list contents response (opening)"] = { "content" },
  ["P2 list providers response"] = { "provider", "provider" },
}

-- What we must send back for a decoded document: the same JSON, except that the alternate
-- key is written with the metadata spelling.
local function wire(t)
  if type(t) ~= "table" then return t end
  local out = {}
  for k, v in pairs(t) do
    if k == "externalCourseActivityId" then k = "externalcourseActivityId" end
    out[k] = wire(v)
  end
  return out
end

local function raises(fn, text)
  local ok, err = pcall(fn)
  assert.is_false(ok)
  assert.is_truthy(tostring(err):find(text, 1, true), tostring(err))
end

describe("model JSON: every example of graph-api.md §1", function()
  for _, ex in ipairs(EXAMPLES) do
    describe(ex.name, function()
      it("decodes to the right model types", function()
        local d = assert(viva.decode(ex.json))
        local kinds = {}
        if type(d) == "table" then
          for i, m in ipairs(d.value) do kinds[i] = m:kind() end
        else
          kinds[1] = d:kind()
        end
        assert.are.same(KINDS[ex.name], kinds)
      end)

      it("round-trips: JSON -> model -> JSON is the same document", function()
        local d = assert(viva.decode(ex.json))
        local text = assert(core.json_encode(d))
        assert.are.same(wire(cjson.decode(ex.json)), cjson.decode(text))
      end)

      it("round-trips through the family hint and through a decoded table as well", function()
        local a = assert(viva.decode(ex.json, ex.family))
        local b = assert(viva.decode(cjson.decode(ex.json)))
        local ta, tb = cjson.decode(core.json_encode(a)), cjson.decode(core.json_encode(b))
        assert.are.same(ta, tb)
      end)

      it("model == decode(model:tojson())", function()
        local d = assert(viva.decode(ex.json))
        local models = type(d) == "table" and d.value or { d }
        for _, m in ipairs(models) do
          local again = assert(viva.decode(m:tojson()))
          assert.is_true(m == again)
          assert.are.equal(m:tojson(), again:tojson())
        end
      end)
    end)
  end
end)

describe("model JSON: encoding", function()
  it("writes @odata.type on derived types, first, and never on the others", function()
    local a = viva.assignment { learnerUserId = "u" }
    assert.are.equal('{"@odata.type":"#microsoft.graph.learningAssignment","learnerUserId":"u"}', a:tojson())
    local s = viva.self_initiated { learnerUserId = "u" }
    assert.are.equal('{"@odata.type":"#microsoft.graph.learningSelfInitiatedCourse","learnerUserId":"u"}', s:tojson())
    assert.are.equal('{"displayName":"d"}', viva.provider { displayName = "d" }:tojson())
    assert.are.equal('{"title":"t"}', viva.content { title = "t" }:tojson())
  end)

  it("always serializes subtype fields (the Kiota TS SDK drops them, peer-clients.md §9)", function()
    local a = viva.assignment {
      learnerUserId = "u", learningContentId = "c", status = "notStarted", assignmentType = "required",
      assignedDateTime = "2021-05-11T22:57:17+00:00", assignerUserId = "boss",
      dueDateTime = { dateTime = "2022-09-22T16:05:00.0000000", timeZone = "UTC" },
      notes = { contentType = "text", content = "n" },
    }
    local t = cjson.decode(a:tojson())
    for _, k in ipairs { "assignedDateTime", "assignerUserId", "assignmentType", "dueDateTime", "notes" } do
      assert.is_not_nil(t[k], k)
    end
    local s = viva.self_initiated { learnerUserId = "u", startedDateTime = "2021-05-21T22:57:17+00:00" }
    assert.are.equal("2021-05-21T22:57:17+00:00", cjson.decode(s:tojson()).startedDateTime)
  end)

  it("sends the alternate key with the metadata spelling externalcourseActivityId", function()
    local a = viva.assignment { externalCourseActivityId = "lms-42" }
    local t = cjson.decode(a:tojson())
    assert.are.equal("lms-42", t.externalcourseActivityId)
    assert.is_nil(t.externalCourseActivityId)
    assert.are.equal("lms-42", a:totable().externalCourseActivityId)
  end)

  it("writes fields in schema order, explicit nulls as null, unset fields not at all", function()
    local a = viva.assignment { status = "completed", completedDateTime = viva.null, id = "x",
                                completionPercentage = 100 }
    assert.are.equal('{"@odata.type":"#microsoft.graph.learningAssignment","id":"x","completedDateTime":null,' ..
                     '"completionPercentage":100,"status":"completed"}', a:tojson())
  end)

  it("escapes strings the JSON way and keeps UTF-8 as is", function()
    local c = viva.content { title = 'q"b\\s/n\n\r\t\b\f\1\31 ü€😀' }
    assert.are.equal('{"title":"q\\"b\\\\s/n\\n\\r\\t\\b\\f\\u0001\\u001f ü€😀"}', c:tojson())
    assert.are.equal(c.title, cjson.decode(c:tojson()).title)
  end)

  it("writes collections as arrays, also when empty", function()
    local c = viva.content { contributors = {}, skillTags = { "a", "b" } }
    assert.are.equal('{"contributors":[],"skillTags":["a","b"]}', c:tojson())
  end)

  it("writes itemBody and dateTimeTimeZone objects, string shorthand for notes", function()
    local a = viva.assignment { notes = "hello", dueDateTime = { dateTime = "2022-09-22T16:05:00" } }
    assert.are.equal('{"@odata.type":"#microsoft.graph.learningAssignment",' ..
                     '"dueDateTime":{"dateTime":"2022-09-22T16:05:00"},' ..
                     '"notes":{"contentType":"text","content":"hello"}}', a:tojson())
    a.dueDateTime = { dateTime = "2022-09-22T16:05:00", timeZone = viva.null }
    assert.is_truthy(a:tojson():find('"dueDateTime":{"dateTime":"2022-09-22T16:05:00","timeZone":null}', 1, true))
  end)

  it("json_encode: numbers without the locale, integers as integers", function()
    assert.are.equal("[1,-2,20,0.1,1.5,1e+300,-9223372036854775808,9007199254740993]",
                     core.json_encode { 1, -2, 20.0, 0.1, 1.5, 1e300, math.mininteger, 9007199254740993 })
    assert.are.equal(0.1 + 0.2, cjson.decode(core.json_encode { 0.1 + 0.2 })[1])
    local v, err = core.json_encode { 0 / 0 }
    assert.is_nil(v)
    assert.matches("NaN", err)
    v, err = core.json_encode { 1 / 0 }
    assert.is_nil(v)
    assert.matches("Infinity", err)
  end)

  it("json_encode: plain tables, models inside, viva.null, errors returned not raised", function()
    local body = { requests = { { id = "1", method = "POST", body = viva.assignment { learnerUserId = "u" } } } }
    local text = assert(core.json_encode(body))
    local t = cjson.decode(text)
    assert.are.equal("u", t.requests[1].body.learnerUserId)
    assert.are.equal("#microsoft.graph.learningAssignment", t.requests[1].body["@odata.type"])
    assert.are.equal('{"a":null}', core.json_encode { a = viva.null })
    assert.are.equal("{}", core.json_encode {})
    assert.are.same({ ["1"] = "a", ["3"] = "c" }, cjson.decode(core.json_encode { [1] = "a", [3] = "c" }))
    assert.are.equal('{"1.5":true}', core.json_encode { [1.5] = true })
    local cyc = {}
    cyc.self = cyc
    local v, err = core.json_encode(cyc)
    assert.is_nil(v)
    assert.matches("nesting deeper than", err)
    v, err = core.json_encode { f = print }
    assert.is_nil(v)
    assert.matches("cannot encode a value of type function", err)
    v, err = core.json_encode { s = "\xff" }
    assert.is_nil(v)
    assert.matches("invalid UTF%-8", err)
    v, err = core.json_encode { [true] = 1 }
    assert.is_nil(v)
    assert.matches("table key of type boolean", err)
  end)

  it("json_encode: numbers are written the same under a comma-decimal locale", function()
    -- a de_DE locale (LC_NUMERIC uses ',') generated into a temporary directory; a child
    -- process (same interpreter, same cpath) finds it through LOCPATH and switches to it
    local dir = os.tmpname()
    os.remove(dir)
    local built = shell.execute("mkdir -p " .. dir .. " && localedef -i de_DE -f UTF-8 " .. dir ..
                             "/de_DE.UTF-8 >/dev/null 2>&1")
    if not built then
      shell.execute("rm -rf " .. dir)
      pending("localedef could not build de_DE.UTF-8 here")
      return
    end
    local function q(x) return "'" .. x:gsub("'", "'\\''") .. "'" end
    local script = string.format([[package.cpath = %q
      assert(os.setlocale("de_DE.UTF-8", "numeric"), "setlocale failed")
      assert(string.format("%%.1f", 1.5) == "1,5", "locale not in effect")
      local core = require "vivalearning.core"
      local c = core.decode('{"title":"t","extra":0.25}')
      io.write(core.json_encode { 1.5, 0.1, -2.25e-7 }, " ", c:tojson())]], package.cpath)
    -- the same interpreter (lua5.4, or make check's sanitizer host, which takes a script file)
    local interpreter = (arg and arg[-1]) or "lua5.4"
    local f = assert(io.open(dir .. "/child.lua", "w"))
    f:write(script)
    f:close()
    -- (setlocale with LOCPATH keeps 32 bytes in glibc for good: not a leak of ours)
    local p = io.popen("LOCPATH=" .. q(dir) .. ' ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" ' ..
                       q(interpreter) .. " " .. q(dir .. "/child.lua") .. " 2>&1")
    local out = p:read("*a")
    p:close()
    shell.execute("rm -rf " .. dir)
    assert.are.equal('[1.5,0.1,-2.25e-07] {"title":"t","extra":0.25}', out)
  end)
end)

describe("model JSON: decoding", function()
  it("uses cjson in safe mode: NaN, Infinity and hex numbers are rejected with nil, msg", function()
    for _, doc in ipairs { '{"completionPercentage": NaN}', '{"completionPercentage": Infinity}',
                           '{"completionPercentage": -Infinity}', '{"completionPercentage": 0x10}' } do
      local v, err = viva.decode(doc, "activity")
      assert.is_nil(v, doc)
      assert.is_string(err)
      v, err = core.json_decode(doc)
      assert.is_nil(v, doc)
      assert.is_string(err)
    end
  end)

  it("limits nesting depth", function()
    local deep = '{"learnerUserId":"u","x":' .. string.rep("[", 200) .. string.rep("]", 200) .. "}"
    local v, err = viva.decode(deep)
    assert.is_nil(v)
    assert.matches("nested", err)
    local ok_depth = '{"learnerUserId":"u","x":' .. string.rep("[", 30) .. string.rep("]", 30) .. "}"
    assert.is_not_nil(viva.decode(ok_depth))
  end)

  it("returns nil, msg for broken JSON and for non-objects", function()
    for _, doc in ipairs { "", "{", "[1,2]", "42", '"x"', "null", '{"a":1,}', "{'a':1}" } do
      local v, err = viva.decode(doc)
      assert.is_nil(v, doc)
      assert.is_string(err, doc)
    end
  end)

  it("returns nil, msg naming the field for wrong JSON types", function()
    local cases = {
      { '{"@odata.type":"#microsoft.graph.learningAssignment","completionPercentage":"20"}', "completionPercentage" },
      { '{"@odata.type":"#microsoft.graph.learningAssignment","completionPercentage":20.5}', "completionPercentage" },
      { '{"@odata.type":"#microsoft.graph.learningAssignment","completionPercentage":4294967296}', "completionPercentage" },
      { '{"@odata.type":"#microsoft.graph.learningAssignment","learnerUserId":7}', "learnerUserId" },
      { '{"@odata.type":"#microsoft.graph.learningAssignment","dueDateTime":"2022-09-22"}', "dueDateTime" },
      { '{"@odata.type":"#microsoft.graph.learningAssignment","notes":{"content":5}}', "notes.content" },
      { '{"title":"t","isActive":"yes"}', "isActive" },
      { '{"title":"t","skillTags":"a,b"}', "skillTags" },
      { '{"title":"t","skillTags":[1]}', "skillTags[1]" },
    }
    for _, c in ipairs(cases) do
      local v, err = viva.decode(c[1])
      assert.is_nil(v, c[1])
      assert.is_truthy(err:find(c[2], 1, true), err)
    end
  end)

  it("rejects non-string keys in complex values, also from a Lua table", function()
    local v, err = viva.decode({ ["@odata.type"] = "#microsoft.graph.learningAssignment",
                                 dueDateTime = { dateTime = "2022-09-22T16:05:00", [1] = "x" } })
    assert.is_nil(v)
    assert.matches("dueDateTime: table with string keys expected", err)
    local ok = viva.decode({ title = "t", extra = { [1] = "a", [3] = "c" } })
    assert.are.same({ ["1"] = "a", ["3"] = "c" }, cjson.decode(ok:tojson()).extra)
  end)

  it("rejects invalid UTF-8 in server data (fields, unknown properties, keys)", function()
    for _, doc in ipairs { '{"title":"\xff"}', '{"title":"t","x":"\xc0\xaf"}', '{"title":"t","\xed\xa0\x80":1}',
                           '{"title":"t","x":{"y":["\xf5"]}}' } do
      local v, err = viva.decode(doc)
      assert.is_nil(v, doc)
      assert.matches("UTF%-8", err)
    end
  end)

  it("is lenient with server data: odd formats, ranges, nulls and unknown enum members are kept", function()
    local d = assert(viva.decode([[{"@odata.type":"#microsoft.graph.learningAssignment",
      "completionPercentage":101,"status":"someFutureStatus","assignmentType":"peerRecommended",
      "assignedDateTime":"2021-05-11T22:57:17","learnerUserId":null,"assignmentTypeX":1,
      "dueDateTime":{"dateTime":"soon","timeZone":"UTC","@odata.type":"#microsoft.graph.dateTimeTimeZone"}}]]))
    assert.are.equal(101, d.completionPercentage)
    assert.are.equal("someFutureStatus", d.status)
    assert.are.equal("peerRecommended", d.assignmentType)
    assert.are.equal("2021-05-11T22:57:17", d.assignedDateTime)
    assert.are.equal(viva.null, d.learnerUserId)
    assert.are.equal(1, d.assignmentTypeX)
    assert.are.same({ dateTime = "soon", timeZone = "UTC", ["@odata.type"] = "#microsoft.graph.dateTimeTimeZone" },
                    d.dueDateTime)
    local t = cjson.decode(d:tojson())
    assert.are.equal("someFutureStatus", t.status)
    assert.are.equal("peerRecommended", t.assignmentType)
    assert.are.equal("#microsoft.graph.dateTimeTimeZone", t.dueDateTime["@odata.type"])
    -- but a user cannot set them
    raises(function() d.status = "someFutureStatus" end, "status: one of notStarted")
  end)

  it("keeps level casing from the docs (Beginner) and the invalid duration PDT1H as given", function()
    local c = assert(viva.decode('{"externalId":"x","level":"Beginner","duration":"PDT1H"}'))
    assert.are.equal("Beginner", c.level)
    assert.are.equal("PDT1H", c.duration)
    assert.are.equal('{"externalId":"x","duration":"PDT1H","level":"Beginner"}', c:tojson())
  end)

  it("keeps unknown properties: readable, in pairs and totable, round-tripped", function()
    local d = assert(viva.decode([[{"@odata.type":"#microsoft.graph.learningSelfInitiatedCourse",
      "learnerUserId":"u","futureProp":{"a":[1,2.5,"x",null,true]},"@odata.etag":"W/\"1\"","count":3}]]))
    assert.are.same({ a = { 1, 2.5, "x", viva.null, true } }, d.futureProp)
    assert.are.equal(3, d.count)
    assert.are.equal("integer", math.type(d.count))
    assert.are.equal('W/"1"', d["@odata.etag"])
    d.futureProp.a[1] = 99                       -- reads are copies
    assert.are.equal(1, d.futureProp.a[1])
    local seen = {}
    for k in pairs(d) do seen[#seen + 1] = k end
    assert.are.equal("learnerUserId", seen[1])   -- schema fields first
    table.sort(seen)
    assert.are.same({ "@odata.etag", "count", "futureProp", "learnerUserId" }, seen)
    local t = d:totable()
    assert.are.same({ a = { 1, 2.5, "x", viva.null, true } }, t.futureProp)
    local back = cjson.decode(d:tojson())
    assert.are.same({ a = { 1, 2.5, "x", cjson.null, true } }, back.futureProp)
    assert.are.equal('W/"1"', back["@odata.etag"])
    assert.is_nil(d["@odata.nothing"])           -- absent annotations read nil
  end)

  it("re-emits unknown properties as they came: [] stays [], {} stays {}, numbers as written", function()
    local doc = '{"title":"t","emptyList":[],"emptyObject":{},"nested":{"a":[],"b":[{}]},' ..
                '"n":1.50,"e":2E3,"s":"x\\u00e9\\n","yes":true,"no":false,"nothing":null}'
    local c = assert(viva.decode(doc))
    local out = c:tojson()
    for _, part in ipairs { '"emptyList":[]', '"emptyObject":{}', '"nested":{"a":[],"b":[{}]}', '"n":1.50',
                            '"e":2E3', '"s":"x\\u00e9\\n"', '"yes":true', '"no":false', '"nothing":null' } do
      assert.is_truthy(out:find(part, 1, true), part .. " in " .. out)
    end
    -- and still read as Lua values, in pairs and totable
    assert.are.same({}, c.emptyList)
    assert.are.same({ a = {}, b = { {} } }, c.nested)
    assert.are.equal(1.5, c.n)
    assert.are.equal(2000, c.e)
    assert.are.equal("integer", math.type(c.e))
    assert.are.equal("x\u{e9}\n", c.s)
    assert.are.equal(true, c.yes)
    assert.are.equal(false, c.no)
    assert.are.equal(viva.null, c.nothing)
    local seen = {}
    for k, v in pairs(c) do seen[k] = v end
    assert.are.same({ title = "t", emptyList = {}, emptyObject = {}, nested = { a = {}, b = { {} } }, n = 1.5,
                      e = 2000, s = "x\u{e9}\n", yes = true, no = false, nothing = viva.null }, seen)
    assert.are.same(seen, c:totable())
    assert.are.equal(c, viva.decode(out))
    assert.are.equal(out, viva.decode(out):tojson())
    -- the items of a collection alike
    local page = assert(viva.decode('{"@odata.count":1,"value":[{"id":"1","title":"t","k":[]}]}'))
    assert.are.equal('{"id":"1","title":"t","k":[]}', page.value[1]:tojson())
  end)

  it("decodes straight from the text to the model the cjson table gives, or fails alike", function()
    local A = '"@odata.type":"#microsoft.graph.learningAssignment",'
    local docs = {
      '{' .. A .. '"notes":{"contentType":"html","content":"a \\"q\\" \\\\ \\/ \\b\\f\\n\\r\\t \\u00e9\\u20ac \\ud83d\\ude00"}}',
      '{' .. A .. '"notes":{"content":"a\\u0000b","contentType":"text"}}',
      '{' .. A .. '"notes":{"contentType":"text","content":"x","@odata.type":"#microsoft.graph.itemBody"}}',
      '{' .. A .. '"notes":{}}',
      '{' .. A .. '"dueDateTime":{"dateTime":null,"timeZone":"UTC"},"notes":null}',
      '{' .. A .. '"dueDateTime":"2022-09-22"}',
      '{' .. A .. '"completionPercentage":20.0}',
      '{' .. A .. '"completionPercentage":-0}',
      '{' .. A .. '"completionPercentage":2147483648}',
      '{' .. A .. '"completionPercentage":1e2}',
      '{' .. A .. '"status":"notStarted","status":"completed"}',
      '{' .. A .. '"externalCourseActivityId":"a","externalcourseActivityId":"b"}',
      '{' .. A .. '"x":1,"x":2}',
      '{' .. A .. '"\\u0078":1}',
      '{' .. A .. '"big":1e400}',
      '{' .. A .. '"small":1e-400,"neg":-12.5e+3,"z":0}',
      '{' .. A .. '"lone":"\\ud800"}',
      '{' .. A .. '"ctl":"a\tb"}',
      '{' .. A .. '"title":"not a field of assignments"}',
      ' { "learnerUserId" : "u" , "status" : "completed" , "futureProp" : { "a" : [ 1 , 2 ] } } ',
      '{"displayName":"p","title":"t"}',
      '{"@odata.context":"https://g/v1.0/$metadata#learningProviders/$entity","id":"x","k":[]}',
      '{"@odata.type":"#microsoft.graph.learningProvider","id":"x"}',
      '{"@odata.type":"#microsoft.graph.learningPeerCourse","learnerUserId":"u"}',
      '{"@odata.type":"#microsoft.graph.learningOther","id":"x"}',
      '{"@odata.type":5,"learnerUserId":"u"}',
      '{"title":"t","skillTags":["a","b\\u0000c",""]}',
      '{"title":"t","skillTags":[],"contributors":["\\u00e9"],"numberOfPages":7,"isActive":false}',
      '{"title":"t","skillTags":[1]}',
      '{"id":"x","value":[1]}',
      '{"value":[{"id":"1","title":"t"}]}',
      '{"title":"t","deep":' .. string.rep("[", 59) .. string.rep("]", 59) .. '}',
      '{"title":"t","deep":' .. string.rep("[", 63) .. string.rep("]", 63) .. '}',
      '{"title":"t"} x',
      '{"title":"\xe9"}',
      '{"@odata.context":"https://g/v1.0/$metadata#learningProviders(\'p\')/learningContents",' ..
        '"@odata.nextLink":"https://g/next","@odata.count":10,"x":{"y":[2.0]},' ..
        '"value":[{"id":"1","k":[]},{"id":"2","level":"advanced"}]}',
      '{"value":[{"id":"1","value":[1],"title":"t"}]}',
      '{"value":[],"@odata.count":0}',
      '{"value":[1]}',
      '{"value":{}}',
      '{"value":[{"id":"1","title":3}]}',
      '{"value":[{"id":"1","title":"t"}],"value":[]}',
    }
    for _, doc in ipairs(docs) do
      for _, fam in ipairs { false, "activity", "content" } do
        local from_text, err1 = viva.decode(doc, fam or nil)
        local t = core.json_decode(doc)
        local from_table, err2 = nil, "not JSON"
        if type(t) == "table" then from_table, err2 = viva.decode(t, fam or nil) end
        if from_text == nil then
          assert.is_nil(from_table, doc)
          assert.are.equal(err2 ~= "not JSON" and err2 or err1, err1, doc)
        elseif type(from_text) == "table" then          -- a collection
          assert.are.equal(#from_table.value, #from_text.value, doc)
          for i, m in ipairs(from_text.value) do assert.are.equal(from_table.value[i], m, doc) end
          from_text.value, from_table.value = nil, nil
          assert.are.same(from_table, from_text, doc)
        else
          assert.are.equal(from_table, from_text, doc)
          assert.are.same(cjson.decode(from_table:tojson()), cjson.decode(from_text:tojson()), doc)
          assert.are.same(from_table:totable(), from_text:totable(), doc)
        end
      end
    end
  end)

  it("keeps unknown properties of a Lua table given to decode (there is no JSON text)", function()
    local t = { title = "t", extra = { 1, { x = "y" } }, flag = false }
    local c = assert(viva.decode(t))
    assert.are.same({ 1, { x = "y" } }, c.extra)
    assert.are.equal(false, c.flag)
    t.extra[1] = 2                                 -- a copy was kept
    assert.are.same({ 1, { x = "y" } }, c.extra)
    assert.are.same({ 1, { x = "y" } }, cjson.decode(c:tojson()).extra)
    assert.are.equal(c, viva.decode(c:tojson()))
  end)

  it("keeps an unknown @odata.type as a base learningCourseActivity, with its subtype fields", function()
    local doc = [[{"@odata.type":"#microsoft.graph.learningPeerCourse","id":"p1","learnerUserId":"u",
      "learningContentId":"c","status":"inProgress","peerUserId":"u2","startedDateTime":"2021-05-21T22:57:17+00:00"}]]
    local d = assert(viva.decode(doc))
    assert.are.equal("activity", d:kind())
    assert.are.equal("learningCourseActivity(p1)", tostring(d))
    assert.are.equal("#microsoft.graph.learningPeerCourse", d["@odata.type"])
    assert.are.equal("u2", d.peerUserId)
    assert.are.same(cjson.decode(doc), cjson.decode(d:tojson()))
    local base = assert(viva.decode('{"learnerUserId":"u","status":"completed"}'))
    assert.are.equal("activity", base:kind())
    assert.are.equal('{"learnerUserId":"u","status":"completed"}', base:tojson())
  end)

  it("picks the family from the hint, @odata.context, or the properties", function()
    assert.are.equal("provider", viva.decode('{"id":"x"}', "provider"):kind())
    assert.are.equal("content", viva.decode('{"id":"x"}', "content"):kind())
    assert.are.equal("activity", viva.decode('{"id":"x"}', "activity"):kind())
    assert.are.equal("content", viva.decode(
      '{"@odata.context":"https://g/v1.0/$metadata#learningProviders(\'p\')/learningContents/$entity","id":"x"}'):kind())
    assert.are.equal("provider", viva.decode(
      '{"@odata.context":"https://g/v1.0/$metadata#learningProviders/$entity","id":"x"}'):kind())
    assert.are.equal("provider", viva.decode('{"displayName":"x"}'):kind())
    assert.are.equal("content", viva.decode('{"contentWebUrl":"x"}'):kind())
    local v, err = viva.decode('{"id":"x"}')
    assert.is_nil(v)
    assert.matches("cannot tell the model type", err)
    v, err = viva.decode('{"@odata.type":"#microsoft.graph.learningProvider"}', "activity")
    assert.is_nil(v)
    assert.matches("where a activity was expected", err)
    assert.has_error(function() viva.decode("{}", "course") end)
    assert.has_error(function() viva.decode(42) end)
  end)

  it("decodes collections per item and keeps the other keys", function()
    local d = assert(viva.decode([[{"@odata.context":"https://g/v1.0/$metadata#learningProviders('p')/learningContents",
      "@odata.nextLink":"https://g/v1.0/next?$skip=2","@odata.count":10,"value":[{"id":"1"},{"id":"2","level":"advanced"}]}]]))
    assert.are.equal(2, #d.value)
    assert.are.equal("content", d.value[1]:kind())
    assert.are.equal("advanced", d.value[2].level)
    assert.are.equal("https://g/v1.0/next?$skip=2", d["@odata.nextLink"])
    assert.are.equal(10, d["@odata.count"])
    assert.are.equal("integer", math.type(d["@odata.count"]))
    local mixed = assert(viva.decode([[{"value":[
      {"@odata.type":"#microsoft.graph.learningAssignment","id":"a"},
      {"@odata.type":"#microsoft.graph.learningSelfInitiatedCourse","id":"s"},
      {"@odata.type":"#microsoft.graph.learningNewThing","id":"n"}]}]], "activity"))
    assert.are.same({ "assignment", "self_initiated", "activity" },
                    { mixed.value[1]:kind(), mixed.value[2]:kind(), mixed.value[3]:kind() })
    local empty = assert(viva.decode('{"value":[]}'))
    assert.are.same({}, empty.value)
    local v, err = viva.decode('{"value":[{"id":"1","title":"t"},{"id":"2","title":3}]}')
    assert.is_nil(v)
    assert.matches("value%[2%]: title", err)
  end)

  it("keeps NUL bytes of server data and escapes them; a user cannot set them", function()
    local c = assert(viva.decode('{"title":"a\\u0000b"}'))
    assert.are.equal("a\0b", c.title)
    assert.are.equal('{"title":"a\\u0000b"}', c:tojson())
    raises(function() c.title = "a\0b" end, "title: string without NUL bytes expected")
  end)

  it("handles huge strings both ways", function()
    local big = string.rep("äbc", 2 * 1024 * 1024)          -- 8 MiB
    local c = assert(viva.decode(cjson.encode { description = big, title = "t" }))
    assert.are.equal(big, c.description)
    local again = cjson.decode(c:tojson())
    assert.are.equal(big, again.description)
    local built = viva.content { description = big }
    assert.are.equal(c.description, built.description)
    local esc = string.rep('"\n', 300000)
    local e = viva.content { description = esc }
    assert.are.equal(esc, cjson.decode(e:tojson()).description)
  end)

  it("json_decode wraps the safe cjson instance", function()
    assert.are.same({ a = { 1, 2 } }, core.json_decode('{"a":[1,2]}'))
    assert.are.equal(viva.null, core.json_decode('{"a":null}').a)
    local v, err = core.json_decode('{"a":')
    assert.is_nil(v)
    assert.is_string(err)
  end)
end)
