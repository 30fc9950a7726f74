-- Emulator: the token endpoint (client credentials and password grants), Entra-shaped errors, bearer checks.
local emu = require("support.emulator")
local http = require("support.http")

local function token_url(tenant)
  return emu.http .. "/" .. (tenant or emu.TENANT) .. "/oauth2/v2.0/token"
end

local function cc(over)
  local f = { client_id = emu.APPS.importer.client_id, client_secret = emu.APPS.importer.client_secret,
              grant_type = "client_credentials", scope = emu.GRAPH_SCOPE }
  for k, v in pairs(over or {}) do if v == false then f[k] = nil else f[k] = v end end
  return f
end

local function entra_error(res, status, err, code)
  assert.equal(status, res.status, res.body)
  local j = res.json
  assert.is_table(j, res.body)
  assert.equal(err, j.error)
  assert.same({ code }, j.error_codes)
  assert.matches("^AADSTS" .. code .. ": ", j.error_description)
  assert.matches("Trace ID: ", j.error_description)
  assert.matches("^%x+%-%x+%-%x+%-%x+%-%x+$", j.trace_id)
  assert.matches("^%x+%-%x+%-%x+%-%x+%-%x+$", j.correlation_id)
  assert.matches("^%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%dZ$", j.timestamp)
end

local function activity_get(token)
  return http.get(emu.graph_url_http .. "/employeeExperience/learningProviders/" .. emu.PROVIDER .. "/learningCourseActivities",
    { headers = { Authorization = token and ("Bearer " .. token) or nil } })
end

describe("emulator token endpoint", function()
  before_each(function() emu.reset() end)

  it("issues a client-credentials token (tenant GUID or domain)", function()
    for _, t in ipairs({ emu.TENANT, emu.TENANT_DOMAIN }) do
      local res = http.post(token_url(t), { form = cc() })
      assert.equal(200, res.status, res.body)
      assert.equal("Bearer", res.json.token_type)
      assert.equal(3599, res.json.expires_in)
      assert.equal(3599, res.json.ext_expires_in)
      assert.matches("^[%w_-]+%.[%w_-]+%.[%w_-]+$", res.json.access_token)
      assert.equal("no-store, no-cache", res.headers["cache-control"])
    end
    assert.equal(2, emu.counters().tokens)
  end)

  it("accepts the client credentials as HTTP Basic auth", function()
    local _, b64 = http.run("printf '%s' '" .. emu.APPS.importer.client_id .. ":" .. emu.APPS.importer.client_secret .. "' | base64 -w0")
    local res = http.post(token_url(), { form = { grant_type = "client_credentials", scope = emu.GRAPH_SCOPE },
      headers = { Authorization = "Basic " .. b64 } })
    assert.equal(200, res.status, res.body)
  end)

  it("uses settings.token_lifetime", function()
    emu.settings{ token_lifetime = 120 }
    local res = http.post(token_url(), { form = cc() })
    assert.equal(120, res.json.expires_in)
  end)

  it("echoes client-request-id as the correlation id", function()
    local res = http.post(token_url(), { form = cc{ client_secret = "wrong" }, headers = { ["client-request-id"] = "11111111-2222-4333-8444-555555555555" } })
    assert.equal("11111111-2222-4333-8444-555555555555", res.json.correlation_id)
  end)

  describe("errors", function()
    it("unknown tenant: 400 invalid_request AADSTS90002", function()
      entra_error(http.post(token_url("nosuch.onmicrosoft.com"), { form = cc() }), 400, "invalid_request", 90002)
      entra_error(http.post(token_url("00000000-0000-4000-8000-000000000000"), { form = cc() }), 400, "invalid_request", 90002)
    end)
    it("missing grant_type, client_id, scope: AADSTS900144 naming the parameter", function()
      for _, p in ipairs({ "grant_type", "client_id", "scope" }) do
        local res = http.post(token_url(), { form = cc{ [p] = false } })
        entra_error(res, 400, "invalid_request", 900144)
        assert.matches("'" .. p .. "'", res.json.error_description)
      end
    end)
    it("unsupported grant type", function()
      entra_error(http.post(token_url(), { form = cc{ grant_type = "authorization_code" } }), 400, "unsupported_grant_type", 70003)
    end)
    it("unknown client_id: 400 unauthorized_client AADSTS700016", function()
      entra_error(http.post(token_url(), { form = cc{ client_id = "a0000000-0000-4000-8000-0000000000ff" } }), 400, "unauthorized_client", 700016)
    end)
    it("missing secret: 401 invalid_client AADSTS7000218; wrong secret: 401 AADSTS7000215", function()
      entra_error(http.post(token_url(), { form = cc{ client_secret = false } }), 401, "invalid_client", 7000218)
      local res = http.post(token_url(), { form = cc{ client_secret = "guess" } })
      entra_error(res, 401, "invalid_client", 7000215)
      assert.is_nil(res.body:find("importer-secret-1", 1, true))
    end)
    it("invalid scope: 400 invalid_scope AADSTS70011", function()
      entra_error(http.post(token_url(), { form = cc{ scope = "https://foo.microsoft.com/.default" } }), 400, "invalid_scope", 70011)
    end)
    it("GET: 400 AADSTS900561", function()
      entra_error(http.get(token_url()), 400, "invalid_request", 900561)
    end)
    it("a JSON body is not a form", function()
      entra_error(http.post(token_url(), { json = cc() }), 400, "invalid_request", 900144)
    end)
  end)

  describe("password grant (delegated)", function()
    local function pw(over)
      local f = { client_id = emu.APPS.console.client_id, client_secret = emu.APPS.console.client_secret, grant_type = "password",
                  username = emu.ADELE.upn, password = emu.ADELE.password, scope = emu.GRAPH_SCOPE }
      for k, v in pairs(over or {}) do if v == false then f[k] = nil else f[k] = v end end
      return f
    end
    it("issues a delegated token with the app's scopes", function()
      local res = http.post(token_url(), { form = pw() })
      assert.equal(200, res.status, res.body)
      assert.matches("LearningProvider.ReadWrite", res.json.scope, 1, true)
      local list = http.get(emu.graph_url_http .. "/employeeExperience/learningProviders",
        { headers = { Authorization = "Bearer " .. res.json.access_token } })
      assert.equal(200, list.status, list.body)
    end)
    it("accepts named scopes the app has and rejects others", function()
      local ok = http.post(token_url(), { form = pw{ scope = "https://graph.microsoft.com/LearningProvider.ReadWrite offline_access" } })
      assert.equal(200, ok.status, ok.body)
      assert.equal("LearningProvider.ReadWrite", ok.json.scope)
      entra_error(http.post(token_url(), { form = pw{ scope = "https://graph.microsoft.com/User.ReadWrite.All" } }), 400, "invalid_grant", 65001)
    end)
    it("wrong password: 400 invalid_grant AADSTS50126", function()
      entra_error(http.post(token_url(), { form = pw{ password = "nope" } }), 400, "invalid_grant", 50126)
      entra_error(http.post(token_url(), { form = pw{ username = "learner02@contoso.onmicrosoft.com", password = "x" } }), 400, "invalid_grant", 50126)
      entra_error(http.post(token_url(), { form = pw{ username = false } }), 400, "invalid_request", 900144)
    end)
  end)

  describe("bearer checks on Graph (401 InvalidAuthenticationToken)", function()
    local function is_401(res, message)
      assert.equal(401, res.status, res.body)
      assert.equal("InvalidAuthenticationToken", res.json.error.code)
      if message then assert.equal(message, res.json.error.message) end
      assert.truthy(res.headers["www-authenticate"])
    end
    it("no token, malformed token, unknown token", function()
      is_401(activity_get(nil), "Access token is empty.")
      is_401(activity_get("not-a-jwt"), "CompactToken parsing failed with error code: 80049217")
      is_401(activity_get("eyJhbGciOiJub25lIn0.eyJ4IjoxfQ.c2ln"))
      local r = http.get(emu.graph_url_http .. "/employeeExperience/learningCourseActivities/x", { headers = { Authorization = "Basic Zm9vOmJhcg==" } })
      is_401(r)
    end)
    it("an expired token (lifetime) and expire_tokens", function()
      emu.settings{ token_lifetime = 0 }
      local t0 = http.post(token_url(), { form = cc() }).json.access_token
      is_401(activity_get(t0), "Lifetime validation failed, the token is expired.")
      emu.settings{ token_lifetime = 3599 }
      local t = http.post(token_url(), { form = cc() }).json.access_token
      assert.equal(200, activity_get(t).status)
      emu.expire_tokens()
      is_401(activity_get(t), "Lifetime validation failed, the token is expired.")
      local t2 = http.post(token_url(), { form = cc() }).json.access_token
      assert.equal(200, activity_get(t2).status)
      emu.forget_tokens()
    end)
    it("tokens survive a reset", function()
      local t = http.post(token_url(), { form = cc() }).json.access_token
      emu.reset()
      assert.equal(200, activity_get(t).status)
    end)
  end)
end)
