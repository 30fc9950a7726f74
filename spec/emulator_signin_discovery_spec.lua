-- Emulator: the discovery documents MSAL-based clients read first (instance discovery and the
-- tenant's OpenID configuration), pointing at the emulator itself.
local emu = require("support.emulator")
local http = require("support.http")
local signin = require("support.signin")

describe("emulator sign-in: discovery", function()
  it("the OpenID configuration of a tenant (GUID or domain) names this emulator's endpoints", function()
    for _, t in ipairs({ emu.TENANT, emu.TENANT_DOMAIN, "organizations" }) do
      local res = http.get(emu.http .. "/" .. t .. "/v2.0/.well-known/openid-configuration")
      assert.equal(200, res.status, res.body)
      local j = res.json
      assert.equal(signin.token_url(t), j.token_endpoint)
      assert.equal(signin.devicecode_url(t), j.device_authorization_endpoint)
      assert.truthy(j.token_endpoint_auth_methods_supported[2] == "private_key_jwt")
      if t ~= "organizations" then
        assert.equal("https://login.microsoftonline.com/" .. emu.TENANT .. "/v2.0", j.issuer)
      end
    end
    local res = http.get(emu.https .. "/" .. emu.TENANT .. "/v2.0/.well-known/openid-configuration", { cacert = emu.ca })
    assert.equal(signin.token_url(nil, emu.https), res.json.token_endpoint)
  end)

  it("an unknown tenant: 400 invalid_tenant AADSTS90002", function()
    signin.entra_error(http.get(emu.http .. "/nosuch.onmicrosoft.com/v2.0/.well-known/openid-configuration"), 400, "invalid_tenant", 90002)
  end)

  it("instance discovery points at the tenant of the authority asked about", function()
    local ae = http.form_encode({ authorization_endpoint = emu.http .. "/" .. emu.TENANT .. "/oauth2/v2.0/authorize" })
    local res = http.get(emu.http .. "/common/discovery/instance?api-version=1.1&" .. ae)
    assert.equal(200, res.status, res.body)
    assert.equal(emu.http .. "/" .. emu.TENANT .. "/v2.0/.well-known/openid-configuration", res.json.tenant_discovery_endpoint)
    assert.equal("1.1", res.json["api-version"])
    assert.equal(emu.http:gsub("^http://", ""), res.json.metadata[1].preferred_network)
  end)
end)
