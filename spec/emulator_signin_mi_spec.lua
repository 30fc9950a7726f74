-- Emulator: the managed-identity endpoints on loopback: IMDS (reached through
-- AZURE_POD_IDENTITY_AUTHORITY_HOST = VIVA_EMU_IMDS) and App Service (IDENTITY_ENDPOINT + IDENTITY_HEADER).
local emu = require("support.emulator")
local http = require("support.http")
local signin = require("support.signin")

local GRAPH = "https://graph.microsoft.com"

local function imds(query, headers)
  local h = { Metadata = "true" }
  for k, v in pairs(headers or {}) do h[k] = v end
  -- the SDKs strip a trailing "/" from the override and append the IMDS path
  local base = signin.env.VIVA_EMU_IMDS:gsub("/$", "")
  return http.get(base .. "/metadata/identity/oauth2/token?" .. query, { headers = h })
end

local function appsvc(query, headers)
  local h = { ["X-IDENTITY-HEADER"] = signin.env.VIVA_EMU_IDENTITY_HEADER }
  for k, v in pairs(headers or {}) do h[k] = v end
  return http.get(signin.env.VIVA_EMU_IDENTITY_ENDPOINT .. "?" .. query, { headers = h })
end

local function q(s) return http.form_encode(s) end

local function mi_error(res, status, err, desc)
  assert.equal(status, res.status, res.body)
  assert.equal(err, res.json.error, res.body)
  if desc then assert.equal(desc, res.json.error_description) end
end

local function appsvc_error(res, status, text)
  assert.equal(status, res.status, res.body)
  assert.equal(status, res.json.statusCode, res.body)
  assert.truthy(res.json.message:find(text, 1, true), res.body)
end

describe("emulator sign-in: managed identity", function()
  before_each(function() emu.reset() end)

  it("DIR/env names the endpoints and the App Service secret", function()
    assert.equal(emu.http, signin.env.VIVA_EMU_IMDS)
    assert.equal(emu.http .. "/msi/token", signin.env.VIVA_EMU_IDENTITY_ENDPOINT)
    assert.matches("^%x+%-%x+%-%x+%-%x+%-%x+$", signin.env.VIVA_EMU_IDENTITY_HEADER)
  end)

  describe("IMDS", function()
    it("system-assigned: every field a string, expires_on in epoch seconds; the token works on Graph", function()
      local res = imds(q{ ["api-version"] = "2018-02-01", resource = GRAPH })
      assert.equal(200, res.status, res.body)
      local j = res.json
      for _, k in ipairs({ "access_token", "refresh_token", "expires_in", "expires_on", "ext_expires_in", "not_before", "resource", "token_type", "client_id" }) do
        assert.equal("string", type(j[k]), k)
      end
      assert.equal("", j.refresh_token)
      assert.equal("Bearer", j.token_type)
      assert.equal(GRAPH, j.resource)
      assert.equal(signin.MI_SYSTEM, j.client_id)
      assert.equal("86399", j.expires_in)
      assert.equal(tonumber(j.expires_in), tonumber(j.expires_on) - tonumber(j.not_before))
      -- importer roles: it can create
      local cr = emu.graph("POST", "/employeeExperience/learningProviders/" .. emu.PROVIDER .. "/learningCourseActivities",
        { token = j.access_token, json = emu.assignment() })
      assert.equal(201, cr.status, cr.body)
    end)
    it("user-assigned by client_id, object_id or msi_res_id; its roles are its own", function()
      for _, sel in ipairs({ { client_id = signin.MI_USER }, { object_id = signin.MI_USER_OBJECT }, { msi_res_id = signin.MI_USER_RES } }) do
        sel["api-version"] = "2018-02-01"; sel.resource = GRAPH
        local res = imds(q(sel))
        assert.equal(200, res.status, res.body)
        assert.equal(signin.MI_USER, res.json.client_id)
        assert.equal(200, signin.graph_get(res.json.access_token).status)
        local cr = emu.graph("POST", "/employeeExperience/learningProviders/" .. emu.PROVIDER .. "/learningCourseActivities",
          { token = res.json.access_token, json = emu.assignment() })
        assert.equal(403, cr.status, cr.body)
      end
    end)
    it("managed_identity_token_lifetime", function()
      emu.settings{ managed_identity_token_lifetime = 7200 }
      assert.equal("7200", imds(q{ ["api-version"] = "2018-02-01", resource = GRAPH .. "/" }).json.expires_in)
    end)
    it("no Metadata: true header: 400 bad_request_102", function()
      mi_error(imds(q{ ["api-version"] = "2018-02-01", resource = GRAPH }, { Metadata = false }), 400, "bad_request_102",
        "Required metadata header not specified")
      mi_error(imds(q{ ["api-version"] = "2018-02-01", resource = GRAPH }, { Metadata = "True" }), 400, "bad_request_102")
    end)
    it("missing resource or api-version, unknown or several identities, unknown resource", function()
      mi_error(imds(q{ ["api-version"] = "2018-02-01" }), 400, "invalid_request", "Required audience parameter not specified")
      mi_error(imds(q{ resource = GRAPH }), 400, "invalid_request")
      mi_error(imds(q{ ["api-version"] = "2018-02-01", resource = GRAPH, client_id = emu.APPS.importer.client_id }), 400,
        "invalid_request", "Identity not found")
      mi_error(imds(q{ ["api-version"] = "2018-02-01", resource = GRAPH, client_id = signin.MI_USER, object_id = signin.MI_USER_OBJECT }),
        400, "invalid_request")
      local res = imds(q{ ["api-version"] = "2018-02-01", resource = "https://vault.azure.net" })
      mi_error(res, 400, "invalid_resource")
      assert.matches("^AADSTS50001: ", res.json.error_description)
    end)
    it("injected faults answer in IMDS's shape (retry specs)", function()
      emu.fault{ path = "^/metadata/identity/oauth2/token$", status = 410, count = 1 }
      local res = imds(q{ ["api-version"] = "2018-02-01", resource = GRAPH })
      assert.equal(410, res.status)
      assert.is_string(res.json.error)
      assert.equal(200, imds(q{ ["api-version"] = "2018-02-01", resource = GRAPH }).status)
    end)
  end)

  describe("App Service", function()
    it("answers the documented fields only, expires_on a string of epoch seconds; the token works on Graph", function()
      local res = appsvc(q{ resource = GRAPH, ["api-version"] = "2019-08-01" })
      assert.equal(200, res.status, res.body)
      local keys = {}
      for k in pairs(res.json) do keys[#keys + 1] = k end
      table.sort(keys)
      assert.same({ "access_token", "client_id", "expires_on", "resource", "token_type" }, keys)
      assert.matches("^%d+$", res.json.expires_on)
      assert.equal(signin.MI_SYSTEM, res.json.client_id)
      assert.equal(200, signin.graph_get(res.json.access_token).status)
    end)
    it("user-assigned by client_id, principal_id or mi_res_id", function()
      for _, sel in ipairs({ { client_id = signin.MI_USER }, { principal_id = signin.MI_USER_OBJECT }, { mi_res_id = signin.MI_USER_RES } }) do
        sel["api-version"] = "2019-08-01"; sel.resource = GRAPH
        local res = appsvc(q(sel))
        assert.equal(200, res.status, res.body)
        assert.equal(signin.MI_USER, res.json.client_id)
      end
    end)
    it("a missing or wrong X-IDENTITY-HEADER", function()
      appsvc_error(appsvc(q{ resource = GRAPH, ["api-version"] = "2019-08-01" }, { ["X-IDENTITY-HEADER"] = false }), 400, "X-IDENTITY-HEADER")
      appsvc_error(appsvc(q{ resource = GRAPH, ["api-version"] = "2019-08-01" }, { ["X-IDENTITY-HEADER"] = signin.uuid() }), 401, "X-IDENTITY-HEADER")
    end)
    it("api-version, resource, identity and resource errors", function()
      appsvc_error(appsvc(q{ resource = GRAPH }), 400, "api-version")
      appsvc_error(appsvc(q{ resource = GRAPH, ["api-version"] = "2017-09-01" }), 400, "2017-09-01")
      appsvc_error(appsvc(q{ ["api-version"] = "2019-08-01" }), 400, "resource")
      appsvc_error(appsvc(q{ resource = GRAPH, ["api-version"] = "2019-08-01", client_id = signin.uuid() }), 400,
        "No Managed Identity found for specified ClientId/ResourceId/PrincipalId.")
      appsvc_error(appsvc(q{ resource = "https://vault.azure.net", ["api-version"] = "2019-08-01" }), 500, "unexpected error")
    end)
    it("the secret header is redacted in the request log", function()
      local seq = emu.last_seq()
      appsvc(q{ resource = GRAPH, ["api-version"] = "2019-08-01" })
      local e = emu.log(seq)[1]
      assert.equal("/msi/token", e.path)
      assert.equal("<redacted>", e.headers["x-identity-header"])
      assert.equal(signin.MI_SYSTEM, e.app)
    end)
  end)

  it("a managed identity cannot use the token endpoint (AADSTS700016)", function()
    local res = http.post(signin.token_url(), { form = { grant_type = "client_credentials", client_id = signin.MI_SYSTEM,
      client_secret = "x", scope = emu.GRAPH_SCOPE } })
    signin.entra_error(res, 400, "unauthorized_client", 700016)
  end)
end)
