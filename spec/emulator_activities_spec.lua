-- Emulator: learningCourseActivity operations A1-A7 over HTTP, validation and the error table.
local emu = require("support.emulator")
local cjson = require("cjson")

local P = emu.PROVIDER
local COLL = "/employeeExperience/learningProviders/" .. P .. "/learningCourseActivities"

local function create(body, o)
  o = o or {}
  o.json = body
  return emu.graph("POST", o.path or COLL, o)
end

local function err_of(res)
  assert.is_table(res.json, res.body)
  return res.json.error
end

describe("emulator activities", function()
  before_each(function() emu.reset() end)

  describe("A1 create", function()
    it("creates an assignment: 201, entity with @odata.context, @odata.type, id, Location", function()
      local body = emu.assignment{ externalcourseActivityId = "a1-1", completionPercentage = 20,
        notes = { contentType = "text", content = "hello" } }
      local res = create(body)
      assert.equal(201, res.status, res.body)
      local j = res.json
      assert.equal("#microsoft.graph.learningAssignment", j["@odata.type"])
      assert.equal(emu.http .. "/v1.0/$metadata#employeeExperience/learningProviders('" .. P .. "')/learningCourseActivities/$entity", j["@odata.context"])
      assert.matches("^%x+%-%x+%-%x+%-%x+%-%x+:%x+%-%x+%-%x+%-%x+%-%x+$", j.id)  -- {guid}:{guid}, as Graph's create examples
      assert.equal("a1-1", j.externalcourseActivityId)
      assert.equal(P, j.learningProviderId)
      assert.equal(20, j.completionPercentage)
      assert.same({ contentType = "text", content = "hello" }, j.notes)
      assert.equal(cjson.null, j.completedDateTime)
      assert.equal(emu.http .. "/v1.0" .. COLL .. "/" .. j.id, res.headers.location)
      assert.truthy(res.headers["request-id"])
      assert.truthy(res.headers["client-request-id"])
    end)

    it("creates a self-initiated course", function()
      local res = create(emu.self_initiated{ externalcourseActivityId = emu.DROP, externalCourseActivityId = "si-1" })
      assert.equal(201, res.status, res.body)
      assert.equal("#microsoft.graph.learningSelfInitiatedCourse", res.json["@odata.type"])
      assert.equal("si-1", res.json.externalcourseActivityId)
      assert.equal("2026-01-05T10:00:00Z", res.json.startedDateTime)
    end)

    it("accepts the learningContentId as the content's externalId of that provider", function()
      local res = create(emu.assignment{ learningContentId = "CA-03" })
      assert.equal(201, res.status, res.body)
    end)

    it("works under /beta too", function()
      local res = create(emu.assignment(), { base = emu.http .. "/beta" })
      assert.equal(201, res.status, res.body)
      assert.matches("/beta/%$metadata#", res.json["@odata.context"])
    end)

    it("answers 409 conflict for a duplicate external id and counts both attempts", function()
      assert.equal(201, create(emu.assignment{ externalcourseActivityId = "dup-1" }).status)
      local res = create(emu.assignment{ externalcourseActivityId = "dup-1" })
      assert.equal(409, res.status)
      assert.equal("conflict", err_of(res).code)
      assert.equal(2, emu.creates(P, "dup-1"))
      assert.equal(1, emu.counters().conflicts)
      -- the same external id under another provider is another activity
      local other = create(emu.assignment{ externalcourseActivityId = "dup-1", learningContentId = emu.content(2, 1) },
        { path = "/employeeExperience/learningProviders/" .. emu.PROVIDER_FABRIKAM .. "/learningCourseActivities" })
      assert.equal(201, other.status, other.body)
    end)

    it("creates through the tenant-wide collection with learningProviderId in the body", function()
      local res = create(emu.assignment{ learningProviderId = P }, { path = "/employeeExperience/learningCourseActivities" })
      assert.equal(201, res.status, res.body)
      local miss = create(emu.assignment(), { path = "/employeeExperience/learningCourseActivities" })
      assert.equal(400, miss.status)
      assert.equal("Input field learningProviderId is required", err_of(miss).message)
    end)
  end)

  describe("validation (400, field named)", function()
    local cases = {
      { "missing learnerUserId", { learnerUserId = emu.DROP }, "Input field learnerUserId is required" },
      { "missing learningContentId", { learningContentId = emu.DROP }, "Input field learningContentId is required" },
      { "missing assignmentType", { assignmentType = emu.DROP }, "Input field assignmentType is required" },
      { "missing @odata.type", { ["@odata.type"] = emu.DROP }, "Input field @odata.type is required" },
      { "base @odata.type", { ["@odata.type"] = "#microsoft.graph.learningCourseActivity" }, "Input field @odata.type is invalid" },
      { "empty learnerUserId", { learnerUserId = "" }, "Input field learnerUserId shouldn't be empty" },
      { "null learningContentId", { learningContentId = cjson.null }, "Input field learningContentId shouldn't be empty" },
      { "null assignmentType", { assignmentType = cjson.null }, "Input field assignmentType shouldn't be empty" },
      { "unknown property", { colour = "blue" }, "Input field colour is invalid" },
      { "self-initiated field on an assignment", { startedDateTime = "2026-01-01T00:00:00Z" }, "Input field startedDateTime is invalid" },
      { "bad enum member", { status = "done" }, "Input field status is invalid" },
      { "unknownFutureValue as input", { assignmentType = "unknownFutureValue" }, "Input field assignmentType is invalid" },
      { "percentage > 100", { completionPercentage = 101 }, "Input field completionPercentage is invalid" },
      { "percentage < 0", { completionPercentage = -1 }, "Input field completionPercentage is invalid" },
      { "percentage not integer", { completionPercentage = 20.5 }, "Input field completionPercentage is invalid" },
      { "percentage as string", { completionPercentage = "20" }, "Input field completionPercentage is invalid" },
      { "DateTimeOffset without offset", { assignedDateTime = "2026-01-01T00:00:00" }, "Input field assignedDateTime is invalid" },
      { "DateTimeOffset garbage", { completedDateTime = "yesterday" }, "Input field completedDateTime is invalid" },
      { "DateTimeOffset month 13", { completedDateTime = "2026-13-01T00:00:00Z" }, "Input field completedDateTime is invalid" },
      { "dueDateTime as a string", { dueDateTime = "2026-01-01T00:00:00Z" }, "Input field dueDateTime is invalid" },
      { "dueDateTime without dateTime", { dueDateTime = { timeZone = "UTC" } }, "Input field dueDateTime.dateTime is required" },
      { "dueDateTime extra key", { dueDateTime = { dateTime = "2026-01-01T00:00:00", zone = "UTC" } }, "Input field dueDateTime.zone is invalid" },
      { "notes as a string", { notes = "hello" }, "Input field notes is invalid" },
      { "notes bad contentType", { notes = { contentType = "markdown", content = "x" } }, "Input field notes.contentType is invalid" },
      { "learnerUserId a number", { learnerUserId = 5 }, "Input field learnerUserId is invalid" },
      { "unknown learner", { learnerUserId = "b0000000-0000-4000-8000-000000000999" }, "Input field learnerUserId is invalid" },
      { "unknown content", { learningContentId = "no-such-content" }, "Input field learningContentId is invalid" },
      { "other provider id in body", { learningProviderId = emu.PROVIDER_FABRIKAM }, "Input field learningProviderId is invalid" },
      { "registrationId (doc table, not in the CSDL)", { registrationId = emu.PROVIDER }, "Input field registrationId is invalid" },
      { "both key spellings, different values", { externalCourseActivityId = "other" }, "Input field externalCourseActivityId is invalid" },
    }
    for _, c in ipairs(cases) do
      it(c[1], function()
        local res = create(emu.assignment(c[2]))
        assert.equal(400, res.status, res.body)
        local e = err_of(res)
        assert.equal("badRequest", e.code)
        assert.equal(c[3], e.message)
        assert.is_string(e.innerError["request-id"])
        assert.is_string(e.innerError.date)
      end)
    end

    it("accepts DateTimeOffset with a numeric offset and fractional seconds", function()
      local res = create(emu.assignment{ assignedDateTime = "2021-05-11T22:57:17.1234567+02:00", completionPercentage = 100 })
      assert.equal(201, res.status, res.body)
    end)

    it("rejects a body that is not a JSON object", function()
      local res = create({ 1, 2, 3 })
      assert.equal(400, res.status)
    end)
  end)

  describe("error table rows", function()
    it("400 when the provider is not enabled", function()
      local res = create(emu.assignment{ learningContentId = emu.content(3, 1) },
        { path = "/employeeExperience/learningProviders/" .. emu.PROVIDER_DORMANT .. "/learningCourseActivities" })
      assert.equal(400, res.status)
      assert.equal("This provider isn't enabled for the given tenant.", err_of(res).message)
    end)

    it("400 for an unknown registration id", function()
      local res = create(emu.assignment(), { path = "/employeeExperience/learningProviders/c0000000-0000-4000-8000-00000000ffff/learningCourseActivities" })
      assert.equal(400, res.status)
      assert.matches("registrationId you entered is valid", err_of(res).message)
    end)

    it("403 for content of another provider", function()
      local res = create(emu.assignment{ learningContentId = emu.content(2, 1) })
      assert.equal(403, res.status)
      assert.equal("Forbidden", err_of(res).code)
      assert.equal("The provider isn't valid to create course activity for the given learning content", err_of(res).message)
    end)

    it("403 for a learner without a license", function()
      local res = create(emu.assignment{ learnerUserId = emu.UNLICENSED })
      assert.equal(403, res.status)
      assert.equal("The user license is not valid to perform the operation", err_of(res).message)
    end)

    it("404 notFound for an unknown activity id", function()
      local res = emu.graph("GET", "/employeeExperience/learningCourseActivities/00000000-0000-4000-8000-000000000000")
      assert.equal(404, res.status)
      assert.equal("notFound", err_of(res).code)
      assert.equal("The requested assignment ID doesn't exist.", err_of(res).message)
    end)

    it("405 methodNotAllowed for PUT and for POST on an entity", function()
      local a = create(emu.assignment()).json
      local put = emu.graph("PUT", COLL .. "/" .. a.id, { json = {} })
      assert.equal(405, put.status)
      assert.equal("methodNotAllowed", err_of(put).code)
      local post = emu.graph("POST", COLL .. "/" .. a.id, { json = {} })
      assert.equal(405, post.status)
      local del = emu.graph("DELETE", COLL)
      assert.equal(405, del.status)
    end)
  end)

  describe("permissions", function()
    it("an app with only LearningAssignedCourse.ReadWrite.All creates assignments but not self-initiated courses", function()
      assert.equal(201, create(emu.assignment(), { app = "assigned" }).status)
      local res = create(emu.self_initiated(), { app = "assigned" })
      assert.equal(403, res.status)
      assert.equal("Forbidden", err_of(res).code)
    end)

    it("a reader app can read but not write", function()
      local a = create(emu.assignment()).json
      assert.equal(200, emu.graph("GET", "/employeeExperience/learningCourseActivities/" .. a.id, { app = "reader" }).status)
      assert.equal(403, create(emu.assignment(), { app = "reader" }).status)
      assert.equal(403, emu.graph("PATCH", COLL .. "/" .. a.id, { app = "reader", json = { status = "completed" } }).status)
      assert.equal(403, emu.graph("DELETE", COLL .. "/" .. a.id, { app = "reader" }).status)
    end)

    it("an app without roles gets 403 everywhere", function()
      local a = create(emu.assignment()).json
      assert.equal(403, emu.graph("GET", "/employeeExperience/learningCourseActivities/" .. a.id, { app = "noperm" }).status)
      assert.equal(403, create(emu.assignment(), { app = "noperm" }).status)
    end)

    it("the assignments-only app cannot read a self-initiated course", function()
      local s = create(emu.self_initiated()).json
      assert.equal(403, emu.graph("GET", "/employeeExperience/learningCourseActivities/" .. s.id, { app = "assigned" }).status)
    end)

    it("delegated tokens cannot create (application only)", function()
      local res = create(emu.assignment(), { app = "user" })
      assert.equal(403, res.status)
    end)
  end)

  describe("A2-A4 get", function()
    local a
    before_each(function()
      a = create(emu.assignment{ externalcourseActivityId = "get-1", learnerUserId = emu.ADELE.id }).json
    end)

    it("by id, tenant-wide and under the provider", function()
      local r1 = emu.graph("GET", "/employeeExperience/learningCourseActivities/" .. a.id)
      assert.equal(200, r1.status)
      assert.equal(a.id, r1.json.id)
      local r2 = emu.graph("GET", COLL .. "/" .. a.id)
      assert.equal(200, r2.status)
      assert.equal(404, emu.graph("GET", "/employeeExperience/learningProviders/" .. emu.PROVIDER_FABRIKAM ..
        "/learningCourseActivities/" .. a.id).status)
    end)

    it("by alternate key in both spellings, quoted and unquoted", function()
      for _, k in ipairs({ "externalcourseActivityId='get-1'", "externalCourseActivityId='get-1'", "externalCourseActivityId=get-1" }) do
        local r = emu.graph("GET", COLL .. "(" .. k .. ")")
        assert.equal(200, r.status, k .. " " .. r.body)
        assert.equal(a.id, r.json.id)
      end
      local pct = emu.graph("GET", COLL .. "(externalcourseActivityId=%27get-1%27)")
      assert.equal(200, pct.status)
      local tw = emu.graph("GET", "/employeeExperience/learningCourseActivities(externalcourseActivityId='get-1')")
      assert.equal(200, tw.status)
      assert.equal(404, emu.graph("GET", COLL .. "(externalcourseActivityId='nope')").status)
    end)

    it("alternate key with a quote: '' inside the literal, percent-encoded or not", function()
      local b = create(emu.assignment{ externalcourseActivityId = "O'Brien/1 a:b" }).json
      local r = emu.graph("GET", COLL .. "(externalcourseActivityId='O''Brien%2F1%20a:b')")
      assert.equal(200, r.status, r.body)
      assert.equal(b.id, r.json.id)
      local r2 = emu.graph("GET", COLL .. "(externalcourseActivityId=%27O%27%27Brien%2F1%20a%3Ab%27)")
      assert.equal(200, r2.status, r2.body)
      -- a lone quote is a syntax error
      local bad = emu.graph("GET", COLL .. "(externalcourseActivityId='O'Brien')")
      assert.equal(400, bad.status)
    end)

    it("for a user and for me", function()
      local r = emu.graph("GET", "/users/" .. emu.ADELE.id .. "/employeeExperience/learningCourseActivities/" .. a.id)
      assert.equal(200, r.status, r.body)
      assert.equal(404, emu.graph("GET", "/users/" .. emu.user(3) .. "/employeeExperience/learningCourseActivities/" .. a.id).status)
      local me = emu.graph("GET", "/me/employeeExperience/learningCourseActivities/" .. a.id, { app = "user" })
      assert.equal(200, me.status, me.body)
      local app_me = emu.graph("GET", "/me/employeeExperience/learningCourseActivities/" .. a.id)
      assert.equal(400, app_me.status)
    end)

    it("$select returns only the chosen properties (plus id and @odata.type)", function()
      local r = emu.graph("GET", COLL .. "/" .. a.id .. "?$select=status,externalCourseActivityId")
      assert.equal(200, r.status, r.body)
      assert.equal("notStarted", r.json.status)
      assert.equal("get-1", r.json.externalcourseActivityId)
      assert.is_nil(r.json.learnerUserId)
      assert.equal(a.id, r.json.id)
      local bad = emu.graph("GET", COLL .. "/" .. a.id .. "?$select=nope")
      assert.equal(400, bad.status)
    end)

    it("peerRecommended reads as unknownFutureValue unless Prefer: include-unknown-enum-members", function()
      local p = create(emu.assignment{ assignmentType = "peerRecommended" }).json
      local r = emu.graph("GET", COLL .. "/" .. p.id)
      assert.equal("unknownFutureValue", r.json.assignmentType)
      local r2 = emu.graph("GET", COLL .. "/" .. p.id, { headers = { Prefer = "include-unknown-enum-members" } })
      assert.equal("peerRecommended", r2.json.assignmentType)
      assert.equal("include-unknown-enum-members", r2.headers["preference-applied"])
    end)

    it("spells the alternate key as settings.external_id_spelling says", function()
      emu.settings{ external_id_spelling = "docs" }
      local r = emu.graph("GET", COLL .. "/" .. a.id)
      assert.equal("get-1", r.json.externalCourseActivityId)
      assert.is_nil(r.json.externalcourseActivityId)
      emu.settings{ external_id_spelling = "both" }
      r = emu.graph("GET", COLL .. "/" .. a.id)
      assert.equal("get-1", r.json.externalCourseActivityId)
      assert.equal("get-1", r.json.externalcourseActivityId)
    end)
  end)

  describe("A6 update", function()
    local a
    before_each(function() a = create(emu.assignment{ externalcourseActivityId = "upd-1" }).json end)

    it("PATCH answers 204 and changes only the given fields", function()
      local r = emu.graph("PATCH", COLL .. "/" .. a.id, { json = { status = "inProgress", completionPercentage = 40 } })
      assert.equal(204, r.status, r.body)
      assert.equal("", r.body)
      local g = emu.graph("GET", COLL .. "/" .. a.id).json
      assert.equal("inProgress", g.status)
      assert.equal(40, g.completionPercentage)
      assert.equal("required", g.assignmentType)
    end)

    it("accepts the full body (unchanged non-updatable fields) and @odata.type", function()
      local body = emu.assignment{ externalcourseActivityId = "upd-1", status = "completed", completionPercentage = 100 }
      local r = emu.graph("PATCH", COLL .. "/" .. a.id, { json = body })
      assert.equal(204, r.status, r.body)
    end)

    it("by alternate key, and tenant-wide", function()
      assert.equal(204, emu.graph("PATCH", COLL .. "(externalcourseActivityId='upd-1')", { json = { status = "completed" } }).status)
      assert.equal(204, emu.graph("PATCH", "/employeeExperience/learningCourseActivities/" .. a.id, { json = { completionPercentage = 5 } }).status)
    end)

    it("null clears a nullable field; non-nullable or changed immutable fields are rejected", function()
      assert.equal(204, emu.graph("PATCH", COLL .. "/" .. a.id, { json = { dueDateTime = cjson.null } }).status)
      assert.equal(cjson.null, emu.graph("GET", COLL .. "/" .. a.id).json.dueDateTime)
      local r = emu.graph("PATCH", COLL .. "/" .. a.id, { json = { assignmentType = cjson.null } })
      assert.equal(400, r.status)
      assert.equal("Input field assignmentType shouldn't be empty", err_of(r).message)
      local r2 = emu.graph("PATCH", COLL .. "/" .. a.id, { json = { learnerUserId = emu.user(7) } })
      assert.equal(400, r2.status)
      assert.equal("Input field learnerUserId is invalid", err_of(r2).message)
      local r3 = emu.graph("PATCH", COLL .. "/" .. a.id, { json = { ["@odata.type"] = "#microsoft.graph.learningSelfInitiatedCourse" } })
      assert.equal(400, r3.status)
      local r4 = emu.graph("PATCH", COLL .. "/" .. a.id, { json = { completionPercentage = 250 } })
      assert.equal("Input field completionPercentage is invalid", err_of(r4).message)
    end)

    it("404 for an unknown id, 400 on a disabled provider", function()
      assert.equal(404, emu.graph("PATCH", COLL .. "/nope", { json = { status = "completed" } }).status)
      assert.equal(404, emu.graph("PATCH", "/employeeExperience/learningProviders/" .. emu.PROVIDER_DORMANT ..
        "/learningCourseActivities/" .. a.id, { json = { status = "completed" } }).status)
      -- switch Contoso's sync off (P4, delegated): its activities can no longer be changed
      assert.equal(204, emu.graph("PATCH", "/employeeExperience/learningProviders/" .. P,
        { app = "user", json = { isCourseActivitySyncEnabled = false } }).status)
      local r = emu.graph("PATCH", COLL .. "/" .. a.id, { json = { status = "completed" } })
      assert.equal(400, r.status)
      assert.equal("This provider isn't enabled for the given tenant.", err_of(r).message)
      assert.equal(400, emu.graph("DELETE", COLL .. "/" .. a.id).status)
    end)
  end)

  describe("A7 delete", function()
    it("answers 204, then 404", function()
      local a = create(emu.assignment{ externalcourseActivityId = "del-1" }).json
      assert.equal(204, emu.graph("DELETE", COLL .. "/" .. a.id).status)
      assert.equal(404, emu.graph("GET", COLL .. "/" .. a.id).status)
      assert.equal(404, emu.graph("DELETE", COLL .. "/" .. a.id).status)
      -- the external id is free again
      assert.equal(201, create(emu.assignment{ externalcourseActivityId = "del-1" }).status)
    end)

    it("by alternate key", function()
      create(emu.assignment{ externalcourseActivityId = "del-2" })
      assert.equal(204, emu.graph("DELETE", COLL .. "(externalCourseActivityId='del-2')").status)
      assert.equal(404, emu.graph("GET", COLL .. "(externalCourseActivityId='del-2')").status)
    end)
  end)
end)
