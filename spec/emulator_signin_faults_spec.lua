-- Emulator: injected faults on the sign-in endpoints answer in each service's own shape.
local emu = require("support.emulator")
local http = require("support.http")
local signin = require("support.signin")

local function cc()
  return { grant_type = "client_credentials", client_id = emu.APPS.importer.client_id,
           client_secret = emu.APPS.importer.client_secret, scope = emu.GRAPH_SCOPE }
end

describe("emulator sign-in: faults", function()
  before_each(function() emu.reset() end)

  it("a 429 on the token endpoint is ESTS's plain-text answer with Retry-After; then the token comes", function()
    emu.fault{ path = "/oauth2/v2.0/token$", status = 429, retry_after = "60", count = 1 }
    local res = http.post(signin.token_url(), { form = cc() })
    assert.equal(429, res.status)
    assert.equal("Too Many Requests", res.body)
    assert.matches("^text/plain", res.headers["content-type"])
    assert.equal("60", res.headers["retry-after"])
    assert.equal(200, http.post(signin.token_url(), { form = cc() }).status)
  end)

  it("a 503 stays Entra's JSON temporarily_unavailable (AADSTS90006), on the devicecode endpoint too", function()
    emu.fault{ path = "/oauth2/v2.0/devicecode$", status = 503, retry_after = "5", count = 1 }
    local res = http.post(signin.devicecode_url(), { form = { client_id = signin.PUBLIC_APP, scope = emu.GRAPH_SCOPE } })
    signin.entra_error(res, 503, "temporarily_unavailable", 90006)
    assert.equal("5", res.headers["retry-after"])
    assert.equal(200, http.post(signin.devicecode_url(), { form = { client_id = signin.PUBLIC_APP, scope = emu.GRAPH_SCOPE } }).status)
  end)

  it("an error's trace_id is its x-ms-request-id", function()
    local f = cc()
    f.client_secret = "wrong"
    local res = http.post(signin.token_url(), { form = f })
    signin.entra_error(res, 401, "invalid_client", 7000215)
    assert.equal(res.headers["x-ms-request-id"], res.json.trace_id)
    assert.truthy(res.json.error_description:find("Trace ID: " .. res.json.trace_id, 1, true))
  end)

  it("App Service faults answer JSON too, and the log marks them", function()
    local id = emu.fault{ path = "^/msi/token$", status = 500, count = 1 }
    local seq = emu.last_seq()
    local res = http.get(signin.env.VIVA_EMU_IDENTITY_ENDPOINT .. "?resource=https://graph.microsoft.com&api-version=2019-08-01",
      { headers = { ["X-IDENTITY-HEADER"] = signin.env.VIVA_EMU_IDENTITY_HEADER } })
    assert.equal(500, res.status)
    assert.is_table(res.json)
    assert.equal(id, emu.log(seq)[1].fault)
  end)
end)
