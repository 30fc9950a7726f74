-- Emulator: learningProvider P1-P5 (delegated) and learningContent C1-C4.
local emu = require("support.emulator")
local cjson = require("cjson")

local PROVS = "/employeeExperience/learningProviders"
local function contents(p) return PROVS .. "/" .. p .. "/learningContents" end

local function provider_body(over)
  local b = {
    displayName = "Northwind Training",
    squareLogoWebUrlForDarkTheme = "https://nw.example/s-d.png",
    longLogoWebUrlForDarkTheme = "https://nw.example/l-d.png",
    squareLogoWebUrlForLightTheme = "https://nw.example/s-l.png",
    longLogoWebUrlForLightTheme = "https://nw.example/l-l.png",
    loginWebUrl = "https://nw.example/login",
  }
  for k, v in pairs(over or {}) do if v == emu.DROP then b[k] = nil else b[k] = v end end
  return b
end

local function content_body(over)
  local b = {
    title = "Intro to widgets", contentWebUrl = "https://nw.example/c/1", languageTag = "en-us",
    externalId = "NW-1", duration = "PT20M", level = "beginner", numberOfPages = 9,
    contributors = { "Lina Wagner" }, skillTags = { "widgets" },
  }
  for k, v in pairs(over or {}) do if v == emu.DROP then b[k] = nil else b[k] = v end end
  return b
end

describe("emulator providers", function()
  before_each(function() emu.reset() end)

  it("P2 lists the tenant's providers (delegated)", function()
    local r = emu.graph("GET", PROVS, { app = "user" })
    assert.equal(200, r.status, r.body)
    assert.equal(emu.http .. "/v1.0/$metadata#employeeExperience/learningProviders", r.json["@odata.context"])
    assert.equal(3, #r.json.value)
    assert.equal("Contoso Academy", r.json.value[1].displayName)
    assert.is_true(r.json.value[1].isCourseActivitySyncEnabled)
    assert.is_false(r.json.value[3].isCourseActivitySyncEnabled)
  end)

  it("P3 gets one; 404 for an unknown id", function()
    local r = emu.graph("GET", PROVS .. "/" .. emu.PROVIDER_FABRIKAM, { app = "user" })
    assert.equal(200, r.status)
    assert.equal("Fabrikam Learning", r.json.displayName)
    assert.equal(emu.http .. "/v1.0/$metadata#employeeExperience/learningProviders/$entity", r.json["@odata.context"])
    local nf = emu.graph("GET", PROVS .. "/c0000000-0000-4000-8000-0000000000ff", { app = "user" })
    assert.equal(404, nf.status)
    assert.equal("notFound", nf.json.error.code)
  end)

  it("provider operations are delegated only: an app token gets 403", function()
    assert.equal(403, emu.graph("GET", PROVS).status)
    assert.equal(403, emu.graph("POST", PROVS, { json = provider_body() }).status)
  end)

  it("P1 creates (201, isCourseActivitySyncEnabled defaults to false, Location)", function()
    local r = emu.graph("POST", PROVS, { app = "user", json = provider_body() })
    assert.equal(201, r.status, r.body)
    assert.equal("Northwind Training", r.json.displayName)
    assert.is_false(r.json.isCourseActivitySyncEnabled)
    assert.truthy(r.json.id)
    assert.equal(emu.http .. "/v1.0" .. PROVS .. "/" .. r.json.id, r.headers.location)
    assert.equal(200, emu.graph("GET", PROVS .. "/" .. r.json.id, { app = "user" }).status)
  end)

  it("P1 validation names the field", function()
    local r = emu.graph("POST", PROVS, { app = "user", json = provider_body{ longLogoWebUrlForDarkTheme = emu.DROP } })
    assert.equal(400, r.status)
    assert.equal("Input field longLogoWebUrlForDarkTheme is required", r.json.error.message)
    r = emu.graph("POST", PROVS, { app = "user", json = provider_body{ displayName = "" } })
    assert.equal("Input field displayName shouldn't be empty", r.json.error.message)
    r = emu.graph("POST", PROVS, { app = "user", json = provider_body{ isCourseActivitySyncEnabled = "yes" } })
    assert.equal("Input field isCourseActivitySyncEnabled is invalid", r.json.error.message)
    r = emu.graph("POST", PROVS, { app = "user", json = provider_body{ vendor = "x" } })
    assert.equal("Input field vendor is invalid", r.json.error.message)
  end)

  it("P4 updates (204) and P5 deletes with and without /$ref (204), with its contents and activities", function()
    local p = emu.graph("POST", PROVS, { app = "user", json = provider_body() }).json
    assert.equal(204, emu.graph("PATCH", PROVS .. "/" .. p.id, { app = "user", json = { displayName = "NW", isCourseActivitySyncEnabled = true } }).status)
    local g = emu.graph("GET", PROVS .. "/" .. p.id, { app = "user" }).json
    assert.equal("NW", g.displayName)
    assert.is_true(g.isCourseActivitySyncEnabled)
    assert.equal(400, emu.graph("PATCH", PROVS .. "/" .. p.id, { app = "user", json = { displayName = cjson.null } }).status)
    assert.equal(204, emu.graph("DELETE", PROVS .. "/" .. p.id .. "/$ref", { app = "user" }).status)
    assert.equal(404, emu.graph("GET", PROVS .. "/" .. p.id, { app = "user" }).status)
    local a = emu.graph("POST", PROVS .. "/" .. emu.PROVIDER_FABRIKAM .. "/learningCourseActivities",
      { json = emu.assignment{ learningContentId = emu.content(2, 2) } }).json
    assert.equal(204, emu.graph("DELETE", PROVS .. "/" .. emu.PROVIDER_FABRIKAM, { app = "user" }).status)
    assert.equal(404, emu.graph("GET", "/employeeExperience/learningCourseActivities/" .. a.id).status)
    assert.equal(400, emu.graph("GET", contents(emu.PROVIDER_FABRIKAM)).status)
  end)
end)

describe("emulator contents", function()
  before_each(function() emu.reset() end)

  it("C1 lists a provider's contents", function()
    local r = emu.graph("GET", contents(emu.PROVIDER_FABRIKAM))
    assert.equal(200, r.status, r.body)
    assert.equal(10, #r.json.value)
    assert.equal("FL-01", r.json.value[1].externalId)
    assert.equal(emu.http .. "/v1.0/$metadata#employeeExperience/learningProviders('" .. emu.PROVIDER_FABRIKAM .. "')/learningContents",
      r.json["@odata.context"])
    assert.equal(200, emu.graph("GET", contents(emu.PROVIDER), { app = "reader" }).status)
    assert.equal(200, emu.graph("GET", contents(emu.PROVIDER), { app = "user" }).status)
    assert.equal(403, emu.graph("GET", contents(emu.PROVIDER), { app = "assigned" }).status)
    assert.equal(400, emu.graph("GET", contents("c0000000-0000-4000-8000-0000000000ff")).status)
  end)

  it("C2 gets by id and by externalId; 404 otherwise", function()
    local r = emu.graph("GET", contents(emu.PROVIDER) .. "/" .. emu.content(1, 3))
    assert.equal(200, r.status)
    assert.equal("CA-03", r.json.externalId)
    local r2 = emu.graph("GET", contents(emu.PROVIDER) .. "(externalId='CA-03')")
    assert.equal(200, r2.status)
    assert.equal(emu.content(1, 3), r2.json.id)
    assert.equal(404, emu.graph("GET", contents(emu.PROVIDER) .. "(externalId='CA-99')").status)
    assert.equal(404, emu.graph("GET", contents(emu.PROVIDER) .. "/" .. emu.content(2, 1)).status)
    assert.equal(400, emu.graph("GET", contents(emu.PROVIDER) .. "(title='x')").status)
  end)

  it("C3 upserts by externalId: 202 + entity, creates then replaces", function()
    local path = contents(emu.PROVIDER) .. "(externalId='NW-1')"
    local r = emu.graph("PATCH", path, { json = content_body{ externalId = emu.DROP } })
    assert.equal(202, r.status, r.body)
    assert.equal("NW-1", r.json.externalId)
    assert.is_true(r.json.isActive)
    assert.is_false(r.json.isPremium)
    assert.same({ "Lina Wagner" }, r.json.contributors)
    assert.same({}, r.json.additionalTags)
    assert.matches('"additionalTags":%[%]', r.body)
    local id = r.json.id
    local r2 = emu.graph("PATCH", path, { json = content_body{ title = "Widgets 2", numberOfPages = emu.DROP } })
    assert.equal(202, r2.status, r2.body)
    assert.equal(id, r2.json.id)
    assert.equal("Widgets 2", r2.json.title)
    assert.equal(cjson.null, r2.json.numberOfPages)   -- replaced, not merged
    assert.equal(21, #emu.graph("GET", contents(emu.PROVIDER)).json.value)
  end)

  it("C3 upserts by id", function()
    local r = emu.graph("PATCH", contents(emu.PROVIDER) .. "/" .. emu.content(1, 2), { json = content_body{ externalId = "CA-02", title = "New title" } })
    assert.equal(202, r.status, r.body)
    assert.equal("New title", emu.graph("GET", contents(emu.PROVIDER) .. "/" .. emu.content(1, 2)).json.title)
  end)

  it("C3 validation", function()
    local path = contents(emu.PROVIDER) .. "(externalId='NW-2')"
    local cases = {
      { { title = emu.DROP }, "Input field title is required" },
      { { languageTag = "" }, "Input field languageTag shouldn't be empty" },
      { { duration = "20 minutes" }, "Input field duration is invalid" },
      { { duration = "PDT1H" }, "Input field duration is invalid" },
      { { level = "expert" }, "Input field level is invalid" },
      { { numberOfPages = 2 ^ 31 }, "Input field numberOfPages is invalid" },
      { { contributors = "Lina" }, "Input field contributors is invalid" },
      { { skillTags = { 1, 2 } }, "Input field skillTags is invalid" },
      { { createdDateTime = "2018-01-01T00:00:00" }, "Input field createdDateTime is invalid" },
      { { externalId = "OTHER" }, "Input field externalId is invalid" },
    }
    for _, c in ipairs(cases) do
      local r = emu.graph("PATCH", path, { json = content_body(c[1]) })
      assert.equal(400, r.status, r.body)
      assert.equal(c[2], r.json.error.message)
    end
    assert.equal(403, emu.graph("PATCH", path, { app = "reader", json = content_body() }).status)
    assert.equal(403, emu.graph("PATCH", path, { app = "user", json = content_body() }).status)
  end)

  it("accepts the docs' capitalised level and stores the CSDL member", function()
    local r = emu.graph("PATCH", contents(emu.PROVIDER) .. "(externalId='NW-3')", { json = content_body{ externalId = "NW-3", level = "Beginner" } })
    assert.equal(202, r.status, r.body)
    assert.equal("beginner", r.json.level)
  end)

  it("POST creates (201) and answers 409 for an existing externalId", function()
    local r = emu.graph("POST", contents(emu.PROVIDER), { json = content_body{ externalId = "NW-9" } })
    assert.equal(201, r.status, r.body)
    assert.equal(409, emu.graph("POST", contents(emu.PROVIDER), { json = content_body{ externalId = "NW-9" } }).status)
  end)

  it("C4 deletes with and without /$ref, by id or externalId", function()
    assert.equal(204, emu.graph("DELETE", contents(emu.PROVIDER) .. "(externalId='CA-04')/$ref").status)
    assert.equal(404, emu.graph("GET", contents(emu.PROVIDER) .. "(externalId='CA-04')").status)
    assert.equal(204, emu.graph("DELETE", contents(emu.PROVIDER) .. "/" .. emu.content(1, 5)).status)
    assert.equal(204, emu.graph("DELETE", contents(emu.PROVIDER) .. "/" .. emu.content(1, 6) .. "/$ref").status)
    assert.equal(204, emu.graph("DELETE", contents(emu.PROVIDER) .. "(externalId='CA-07')").status)
    assert.equal(404, emu.graph("DELETE", contents(emu.PROVIDER) .. "/" .. emu.content(1, 5)).status)
    assert.equal(16, #emu.graph("GET", contents(emu.PROVIDER)).json.value)
    assert.equal(405, emu.graph("GET", contents(emu.PROVIDER) .. "/" .. emu.content(1, 8) .. "/$ref").status)
  end)
end)
