-- The alternate key's respell through io = "external" (a fake Graph behind a fake driver, no
-- emulator): what exactly goes on the wire for each refusal, in the create body, its lookup URL
-- after an ambiguous failure, and the key URL of a GET; and what is not a refusal.
local viva = require "vivalearning"
local fake_driver = require "support.fake_driver"

local GRAPH = "https://graph.test/v1.0"
local PROVIDER = "c0000000-0000-4000-8000-000000000001"
local LEARNER = "b0000000-0000-4000-8000-000000000002"
local CONTENT = "d0000000-0000-4000-8000-000001000001"
local META, DOCS = "externalcourseActivityId", "externalCourseActivityId"

local function entity(ext, name)
  return string.format('{"@odata.type":"#microsoft.graph.learningAssignment","id":"x:1","learningContentId":"%s",' ..
    '"learnerUserId":"%s","assignmentType":"required","status":"notStarted","%s":"%s"}', CONTENT, LEARNER, name, ext)
end

local function err400(msg)
  return { status = 400, headers = { ["content-type"] = "application/json" },
           body = '{"error":{"code":"badRequest","message":"' .. msg .. '"}}' }
end

local function world(script)
  local w = { now = 1000, log = {}, script = script }
  -- the client's spelling when each request went out
  w.on_request = function(c, req) req.key = c:stats().external_id_key end
  w.c = viva.client {
    graph_url = GRAPH, token = "tok", io = "external", clock = function() return w.now end,
    driver = fake_driver.driver(w),
  }
  return w
end

local function assignment(ext)
  return viva.assignment { learningContentId = CONTENT, learnerUserId = LEARNER, assignmentType = "required",
                           status = "notStarted", externalCourseActivityId = ext }
end

describe("the alternate key's respell, byte for byte", function()
  it("re-sends a refused create body in the other spelling, the rest of the body unchanged", function()
    local w = world { err400("Input field " .. META .. " is invalid"), { status = 201, body = entity("e1", DOCS) } }
    local m = assert(w.c:create(PROVIDER, assignment("e1")))
    assert.equal("x:1", m.id)
    assert.equal(2, #w.log)
    assert.equal("POST", w.log[2].method)
    assert.matches('"' .. META .. '":"e1"', w.log[1].body, 1, true)
    assert.equal((w.log[1].body:gsub(META, DOCS)), w.log[2].body)
    assert.equal(DOCS, w.c:stats().external_id_key)
    -- the next create is built in the spelling that worked
    w.script = { { status = 201, body = entity("e2", DOCS) } }
    assert(w.c:create(PROVIDER, assignment("e2")))
    assert.matches('"' .. DOCS .. '":"e2"', w.log[3].body, 1, true)
  end)

  it("respells the lookup after an ambiguous create, and the create it sends again", function()
    local w = world {
      { outcome = "reset" },                                         -- the POST may have gone through
      { status = 400, body = '{"error":{"code":"BadRequest","message":"The key in the request URI is not valid ' ..
        "for resource 'microsoft.graph.learningCourseActivity'.\"}}" },  -- the lookup's key URL refused
      { status = 404, body = '{"error":{"code":"notFound","message":"nope"}}' },  -- the other spelling: not there
      { status = 201, body = entity("e3", DOCS) },                   -- so the create goes again
    }
    assert(w.c:create(PROVIDER, assignment("e3")))
    assert.equal(4, #w.log)
    assert.same({ "POST", "GET", "GET", "POST" }, { w.log[1].method, w.log[2].method, w.log[3].method, w.log[4].method })
    assert.matches("(" .. META .. "='e3')", w.log[2].url, 1, true)
    assert.matches("(" .. DOCS .. "='e3')", w.log[3].url, 1, true)
    assert.matches('"' .. DOCS .. '":"e3"', w.log[4].body, 1, true)
    assert.equal(DOCS, w.c:stats().external_id_key)               -- the 404 understood the key
  end)

  it("does not respell a 400 that names the other spelling, or a 404, or a throttled answer", function()
    local w = world { err400("Input field " .. DOCS .. " is invalid") }
    local none, err = w.c:create(PROVIDER, assignment("e4"))
    assert.is_nil(none); assert.equal(400, err.status); assert.equal(1, #w.log)
    w.script = { { status = 404, body = '{"error":{"code":"notFound","message":"' .. META .. ' not found"}}' } }
    none, err = w.c:get_by_external_id(PROVIDER, "e5")
    assert.is_nil(none); assert.equal(404, err.status); assert.equal(2, #w.log)
    assert.equal(META, w.c:stats().external_id_key)
  end)

  it("a request without the key is never respelled", function()
    local w = world { err400("Input field " .. META .. " is invalid") }
    local ok, err = w.c:update(PROVIDER, "x:1", { status = "completed" })
    assert.is_nil(ok); assert.equal(400, err.status); assert.equal(1, #w.log)
  end)

  it("keeps its spelling when a throttled respelled attempt says nothing, then learns from its retry", function()
    local w = world {
      err400("The property '" .. META .. "' does not exist on type 'microsoft.graph.learningAssignment'."),
      { status = 429, headers = { ["retry-after"] = "1" }, body = "" },
      { status = 201, body = entity("e6", DOCS) },
    }
    assert(w.c:create(PROVIDER, assignment("e6")))
    assert.equal(3, #w.log)
    assert.same({ META, META, META }, { w.log[1].key, w.log[2].key, w.log[3].key })
    assert.matches(DOCS, w.log[3].body, 1, true)
    assert.equal(DOCS, w.c:stats().external_id_key)
  end)
end)
