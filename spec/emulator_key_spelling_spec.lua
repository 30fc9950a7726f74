-- settings.external_id_spelling (graph-api.md §6 #1): "metadata" and "docs" take only their own
-- spelling of the alternate key, in a body, in the key URL, in $select and in a $batch step, and
-- answer the other one as Graph answers an unknown property or an undeclared key; "any" (the
-- default) takes both and writes the metadata one; "both" takes both and writes both.
local emu = require "support.emulator"

local PROV = "/employeeExperience/learningProviders/" .. emu.PROVIDER
local COLL = PROV .. "/learningCourseActivities"
local META, DOCS = "externalcourseActivityId", "externalCourseActivityId"
local MISMATCH = "The key in the request URI is not valid for resource 'microsoft.graph.learningCourseActivity'. "
  .. "Ensure that the names and number of key properties match the declared or alternate key properties for "
  .. "the resource 'microsoft.graph.learningCourseActivity'."

local n = 0
local function ext()
  n = n + 1
  return ("spell-%d-%d"):format(os.time(), n)
end

-- an assignment body with the external id under `name`
local function body(name, e)
  local b = emu.assignment{ externalcourseActivityId = emu.DROP }
  b[name] = e
  return b
end

local function by_key(name, e) return COLL .. "(" .. name .. "='" .. e .. "')" end

describe("emulator: external_id_spelling", function()
  before_each(function() emu.reset() end)
  after_each(function() emu.reset() end)

  it("defaults to any: both spellings taken, the metadata one written", function()
    assert.equal("any", emu.get_settings().external_id_spelling)
    for _, name in ipairs({ META, DOCS }) do
      local e = ext()
      local r = emu.graph("POST", COLL, { json = body(name, e) })
      assert.equal(201, r.status, r.body)
      assert.equal(e, r.json[META])
      assert.is_nil(r.json[DOCS])
      for _, kn in ipairs({ META, DOCS }) do
        assert.equal(200, emu.graph("GET", by_key(kn, e)).status)
      end
    end
  end)

  for _, case in ipairs({ { only = "metadata", ok = META, bad = DOCS }, { only = "docs", ok = DOCS, bad = META } }) do
    describe(case.only, function()
      before_each(function() emu.settings{ external_id_spelling = case.only } end)

      it("creates with " .. case.ok .. " and writes only that spelling", function()
        local e = ext()
        local r = emu.graph("POST", COLL, { json = body(case.ok, e) })
        assert.equal(201, r.status, r.body)
        assert.equal(e, r.json[case.ok])
        assert.is_nil(r.json[case.bad])
        local g = emu.graph("GET", by_key(case.ok, e))
        assert.equal(200, g.status, g.body)
        assert.equal(r.json.id, g.json.id)
        assert.equal(e, g.json[case.ok])
        assert.is_nil(g.json[case.bad])
      end)

      it("answers " .. case.bad .. " in a body as an unknown property: 400, nothing created", function()
        local e = ext()
        local r = emu.graph("POST", COLL, { json = body(case.bad, e) })
        assert.equal(400, r.status, r.body)
        assert.equal("badRequest", r.json.error.code)
        assert.equal("Input field " .. case.bad .. " is invalid", r.json.error.message)
        assert.equal(0, emu.creates(emu.PROVIDER, e))
        assert.equal(404, emu.graph("GET", by_key(case.ok, e)).status)
      end)

      it("answers " .. case.bad .. " in the key URL as OData's key mismatch, for GET, PATCH and DELETE", function()
        local e = ext()
        assert.equal(201, emu.graph("POST", COLL, { json = body(case.ok, e) }).status)
        for _, m in ipairs({ "GET", "PATCH", "DELETE" }) do
          local r = emu.graph(m, by_key(case.bad, e), { json = m == "PATCH" and { status = "completed" } or nil })
          assert.equal(400, r.status, m .. " " .. r.body)
          assert.equal("BadRequest", r.json.error.code)
          assert.equal(MISMATCH, r.json.error.message)
        end
        -- nothing changed, nothing deleted; the right spelling updates and deletes
        assert.equal("notStarted", emu.graph("GET", by_key(case.ok, e)).json.status)
        assert.equal(204, emu.graph("PATCH", by_key(case.ok, e), { json = { status = "completed" } }).status)
        assert.equal(204, emu.graph("DELETE", by_key(case.ok, e)).status)
      end)

      it("answers " .. case.bad .. " in $select as an unknown property", function()
        local e = ext()
        local id = emu.graph("POST", COLL, { json = body(case.ok, e) }).json.id
        local r = emu.graph("GET", "/employeeExperience/learningCourseActivities/" .. id .. "?$select=" .. case.bad)
        assert.equal(400, r.status, r.body)
        assert.matches("Could not find a property named '" .. case.bad .. "'", r.json.error.message, 1, true)
        local ok = emu.graph("GET", "/employeeExperience/learningCourseActivities/" .. id .. "?$select=" .. case.ok)
        assert.equal(200, ok.status, ok.body)
        assert.equal(e, ok.json[case.ok])
      end)

      it("answers " .. case.bad .. " in a $batch step as at the top level", function()
        local e = ext()
        local r = emu.graph("POST", "/$batch", { json = { requests = {
          { id = "1", method = "POST", url = COLL, headers = { ["Content-Type"] = "application/json" }, body = body(case.bad, e) },
          { id = "2", method = "GET", url = by_key(case.bad, "x"), dependsOn = { "1" } },
          { id = "3", method = "POST", url = COLL, headers = { ["Content-Type"] = "application/json" }, body = body(case.ok, e) },
        } } })
        assert.equal(200, r.status, r.body)
        local by = {}
        for _, s in ipairs(r.json.responses) do by[s.id] = s end
        assert.equal(400, by["1"].status)
        assert.equal("Input field " .. case.bad .. " is invalid", by["1"].body.error.message)
        assert.equal(424, by["2"].status)     -- its dependency failed
        assert.equal(201, by["3"].status)
        assert.equal(e, by["3"].body[case.ok])
      end)
    end)
  end

  it("both: takes both spellings and writes both", function()
    emu.settings{ external_id_spelling = "both" }
    local e = ext()
    local r = emu.graph("POST", COLL, { json = body(DOCS, e) })
    assert.equal(201, r.status, r.body)
    assert.equal(e, r.json[META])
    assert.equal(e, r.json[DOCS])
    assert.equal(200, emu.graph("GET", by_key(META, e)).status)
  end)

  it("refuses an unknown setting, naming the values", function()
    local ok, err = pcall(emu.admin, "POST", "settings", { external_id_spelling = "camel" })
    assert.is_false(ok)
    assert.matches("answered 400", err, 1, true)
    assert.matches("external_id_spelling must be any, metadata, docs or both", err, 1, true)
  end)

  it("answers an undeclared key name as OData's key mismatch", function()
    local r = emu.graph("GET", by_key("externalId", "x"))
    assert.equal(400, r.status)
    assert.equal(MISMATCH, r.json.error.message)
  end)
end)
