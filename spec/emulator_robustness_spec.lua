-- Emulator: HTTPS + HTTP/2, h2c, and bad requests that must never crash it.
local emu = require("support.emulator")
local http = require("support.http")

local P = emu.PROVIDER
local COLL = "/employeeExperience/learningProviders/" .. P .. "/learningCourseActivities"

local function still_alive()
  assert.equal(200, emu.health().status)
  assert.equal(200, emu.graph("GET", COLL).status)
end

describe("emulator transport", function()
  before_each(function() emu.reset() end)

  it("speaks HTTP/2 over TLS (ALPN) with the throwaway CA, for localhost and 127.0.0.1", function()
    local tok = emu.token("importer", emu.https)
    local r = http.post(emu.graph_url .. COLL, { cacert = emu.ca, http2 = true, json = emu.assignment(),
      headers = { Authorization = "Bearer " .. tok } })
    assert.equal(201, r.status, r.body)
    assert.equal("2", r.http_version)
    assert.equal(emu.https .. "/v1.0" .. COLL .. "/" .. r.json.id, r.headers.location)
    local port = emu.https:match(":(%d+)$")
    local r2 = http.get("https://127.0.0.1:" .. port .. "/v1.0" .. COLL .. "/" .. r.json.id,
      { cacert = emu.ca, http1 = true, headers = { Authorization = "Bearer " .. tok } })
    assert.equal(200, r2.status, r2.body)
    assert.equal("1.1", r2.http_version)
  end)

  it("refuses to verify without the CA (it is a real TLS check)", function()
    local r = http.get(emu.https .. "/_emulator/health")
    assert.equal(0, r.status)
    assert.equal(60, r.curl_exit)  -- peer certificate cannot be authenticated
  end)

  it("speaks h2c with prior knowledge on its own port", function()
    local r = http.get(emu.h2c .. "/v1.0" .. COLL, { http2 = "prior", headers = { Authorization = "Bearer " .. emu.token() } })
    assert.equal(200, r.status, r.body)
    assert.equal("2", r.http_version)
  end)

  it("a dropped connection over HTTP/2 resets the stream", function()
    emu.fault{ path = "learningCourseActivities", drop = true, count = 1 }
    local r = http.get(emu.h2c .. "/v1.0" .. COLL, { http2 = "prior", headers = { Authorization = "Bearer " .. emu.token() } })
    assert.equal(0, r.status)
    assert.equal(92, r.curl_exit)  -- HTTP/2 stream error
    emu.fault{ path = "learningCourseActivities", drop = true, count = 1 }
    local r2 = http.get(emu.graph_url .. COLL, { cacert = emu.ca, http2 = true, headers = { Authorization = "Bearer " .. emu.token() } })
    assert.equal(92, r2.curl_exit)
  end)

  it("reads a POST body over HTTP/2", function()
    local r = http.post(emu.h2c .. "/v1.0" .. COLL, { http2 = "prior", json = emu.assignment{ externalcourseActivityId = "h2c-1" },
      headers = { Authorization = "Bearer " .. emu.token() } })
    assert.equal(201, r.status, r.body)
    assert.equal(1, emu.creates(P, "h2c-1"))
  end)
end)

describe("emulator robustness", function()
  before_each(function() emu.reset() end)

  it("malformed JSON: 400 in Graph's shape", function()
    for _, b in ipairs({ "{", "{\"a\":}", "[1,2", "nul", "{\"a\":NaN}", "{\"a\":0x10}", "\"\\ud800\"" }) do
      local r = emu.graph("POST", COLL, { body = b, headers = { ["Content-Type"] = "application/json" } })
      assert.equal(400, r.status, b)
      assert.equal("BadRequest", r.json.error.code)
    end
    still_alive()
  end)

  it("deeply nested JSON is rejected, not a crash", function()
    local b = string.rep("[", 5000) .. string.rep("]", 5000)
    local r = emu.graph("POST", COLL, { body = b, headers = { ["Content-Type"] = "application/json" } })
    assert.equal(400, r.status)
    still_alive()
  end)

  it("wrong or missing Content-Type on POST/PATCH: 415", function()
    local body = require("cjson").encode(emu.assignment())
    for _, ct in ipairs({ "text/plain", "application/x-www-form-urlencoded", "application/jsonx" }) do
      local r = emu.graph("POST", COLL, { body = body, headers = { ["Content-Type"] = ct } })
      assert.equal(415, r.status, ct)
      assert.equal("UnsupportedMediaType", r.json.error.code)
    end
    local r = emu.graph("POST", COLL, { body = body, headers = { ["Content-Type"] = "application/json; charset=utf-8" } })
    assert.equal(201, r.status, r.body)
    local none = emu.graph("PATCH", COLL .. "/x", { body = "{}", headers = { ["Content-Type"] = false } })
    assert.equal(415, none.status)
  end)

  it("empty body on POST: 400", function()
    local r = emu.graph("POST", COLL, { body = "", headers = { ["Content-Type"] = "application/json" } })
    assert.equal(400, r.status)
  end)

  it("invalid UTF-8 in the body or the URL: 400 in Graph's shape", function()
    local body = '{"@odata.type":"#microsoft.graph.learningAssignment","assignmentType":"required","learnerUserId":"' ..
      emu.LEARNER .. '","learningContentId":"' .. emu.CONTENT .. '","externalcourseActivityId":"bad\255\254"}'
    local r = emu.graph("POST", COLL, { body = body, headers = { ["Content-Type"] = "application/json" } })
    assert.equal(400, r.status)
    assert.equal("The request body is not valid UTF-8.", r.json.error.message)
    local r2 = emu.graph("GET", COLL .. "(externalcourseActivityId='%C0%AF')")
    assert.equal(400, r2.status)
    -- valid multi-byte text is fine
    local ok = emu.graph("POST", COLL, { json = emu.assignment{ externalcourseActivityId = "Zoë-日本-😀" } })
    assert.equal(201, ok.status, ok.body)
    assert.equal("Zoë-日本-😀", ok.json.externalcourseActivityId)
    local back = emu.graph("GET", COLL .. "(externalcourseActivityId='Zo%C3%AB-%E6%97%A5%E6%9C%AC-%F0%9F%98%80')")
    assert.equal(200, back.status)
  end)

  it("bodies past max_body_bytes: 413 in Graph's shape", function()
    emu.settings{ max_body_bytes = 1024 }
    local big = string.rep("x", 2000)
    local r = emu.graph("POST", COLL, { json = emu.assignment{ externalcourseActivityId = big } })
    assert.equal(413, r.status)
    assert.equal("RequestEntityTooLarge", r.json.error.code)
    emu.settings{ max_body_bytes = 4194304 }
    still_alive()
  end)

  it("a body past nginx's own cap (64 MiB) still gets a Graph-shaped 413", function()
    local f = os.tmpname()
    assert.is_true(http.ok("head -c 70000000 /dev/zero > " .. http.shell_quote(f)))
    local r = http.request{ method = "POST", url = emu.graph_url_http .. COLL,
      headers = { ["Content-Type"] = "application/json", Authorization = "Bearer " .. emu.token() },
      curl_args = { "--data-binary", "@" .. f } }
    os.remove(f)
    assert.equal(413, r.status)
    assert.equal("RequestEntityTooLarge", r.json.error.code)
    still_alive()
  end)

  it("unknown paths: 400 BadRequest in Graph's shape, with request-id headers", function()
    for _, p in ipairs({ "/nope", "/employeeExperience/nope", "/employeeExperience", "/me/nope", "/employeeExperience/learningProviders/x/y" }) do
      local r = emu.graph("GET", p)
      assert.equal(400, r.status, p)
      assert.equal("BadRequest", r.json.error.code)
      assert.matches("^Resource not found for the segment '", r.json.error.message)
      assert.truthy(r.headers["request-id"])
      assert.truthy(r.json.error.innerError["request-id"])
    end
    local r = http.get(emu.http .. "/v2.0/whatever")
    assert.equal(400, r.status)
    assert.equal("BadRequest", r.json.error.code)
  end)

  it("hostile ids stay inside their segment", function()
    for _, id in ipairs({ "..", "%2E%2E", "a%2Fb", "%0D%0AX-Injected:%201", "a%3Fb%23c", string.rep("z", 4096) }) do
      local r = emu.graph("GET", COLL .. "/" .. id)
      assert.equal(404, r.status, id)
      assert.is_nil(r.headers["x-injected"])
    end
    -- nginx itself refuses a NUL in the path; the answer is still Graph-shaped
    local nul = emu.graph("GET", COLL .. "/%00")
    assert.equal(400, nul.status)
    assert.equal("BadRequest", nul.json.error.code)
    still_alive()
  end)

  it("a JSON array, a string or a number as the body: 400", function()
    for _, b in ipairs({ "[]", '"x"', "42", "null" }) do
      local r = emu.graph("POST", COLL, { body = b, headers = { ["Content-Type"] = "application/json" } })
      assert.equal(400, r.status, b)
    end
  end)
end)
