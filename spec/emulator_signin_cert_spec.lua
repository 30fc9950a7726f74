-- Emulator: client_credentials with a certificate credential (a client assertion the app signs,
-- RS256 or PS256, verified against the certificate registered in the seed).
local emu = require("support.emulator")
local http = require("support.http")
local signin = require("support.signin")

local APP = signin.CERT_APP

local function post(assertion, over, base)
  return http.post(signin.token_url(nil, base), { form = signin.assertion_form(APP, assertion, over),
    cacert = base and base:find("^https:") and emu.ca or nil })
end

local function now() return os.time() end

describe("emulator sign-in: certificate credential", function()
  before_each(function() emu.reset() end)

  it("PS256 with x5t#S256: a token that works on Graph", function()
    local res = post(signin.cert_assertion())
    assert.equal(200, res.status, res.body)
    assert.equal("Bearer", res.json.token_type)
    assert.equal(3599, res.json.expires_in)
    assert.is_nil(res.json.refresh_token)
    assert.equal(200, signin.graph_get(res.json.access_token).status)
  end)

  it("RS256 with x5t (padded or not), and over HTTPS with the HTTPS token URL as aud", function()
    local res = post(signin.cert_assertion{ alg = "RS256" })
    assert.equal(200, res.status, res.body)
    local tp = signin.thumbprints(signin.env.VIVA_EMU_CERT)
    res = post(signin.cert_assertion{ alg = "RS256", header = { x5t = tp.x5t .. "=" } })
    assert.equal(200, res.status, res.body)
    res = post(signin.cert_assertion{ base = emu.https }, nil, emu.https)
    assert.equal(200, res.status, res.body)
    res = http.post(signin.token_url(nil, emu.h2c), { http2 = "prior",
      form = signin.assertion_form(APP, signin.cert_assertion{ base = emu.h2c }) })
    assert.equal(200, res.status, res.body)
    assert.equal("2", res.http_version)
  end)

  it("the combined PEM and the password-protected key sign as the plain key does", function()
    assert.equal(200, post(signin.cert_assertion{ key = signin.env.VIVA_EMU_CERT_PEM }).status)
    assert.equal(200, post(signin.cert_assertion{ key = signin.env.VIVA_EMU_KEY_ENCRYPTED,
      passin = signin.env.VIVA_EMU_CERT_PASSWORD }).status)
    assert.equal(200, post(signin.cert_assertion{ key = signin.env.VIVA_EMU_CERT_PEM_ENCRYPTED,
      passin = signin.env.VIVA_EMU_CERT_PASSWORD }).status)
  end)

  describe("signature and certificate (401 invalid_client AADSTS700027)", function()
    it("a signature by another key under the registered thumbprint", function()
      signin.entra_error(post(signin.cert_assertion{ key = signin.env.VIVA_EMU_OTHER_KEY }), 401, "invalid_client", 700027)
      signin.entra_error(post(signin.cert_assertion{ alg = "RS256", key = signin.env.VIVA_EMU_OTHER_KEY }), 401, "invalid_client", 700027)
    end)
    it("a tampered payload", function()
      local a = signin.cert_assertion()
      local h, _, s = a:match("^([^.]+)%.([^.]+)%.([^.]+)$")
      local forged = signin.b64url('{"aud":"' .. signin.token_url() .. '","iss":"' .. APP .. '","sub":"' .. APP ..
        '","jti":"x","exp":' .. (now() + 600) .. '}')
      signin.entra_error(post(h .. "." .. forged .. "." .. s), 401, "invalid_client", 700027)
    end)
    it("PSS with a salt longer than the digest (Entra wants salt = 32 bytes)", function()
      signin.entra_error(post(signin.cert_assertion{ saltlen = "max" }), 401, "invalid_client", 700027)
    end)
    it("a certificate not registered on the app names its thumbprint", function()
      local tp = signin.thumbprints(signin.env.VIVA_EMU_OTHER_CERT)
      local res = post(signin.cert_assertion{ alg = "RS256", cert = signin.env.VIVA_EMU_OTHER_CERT, key = signin.env.VIVA_EMU_OTHER_KEY })
      local j = signin.entra_error(res, 401, "invalid_client", 700027)
      assert.truthy(j.error_description:find("The key was not found", 1, true))
      assert.truthy(j.error_description:find(tp.hex, 1, true), j.error_description)
      -- an app with no certificate at all
      res = http.post(signin.token_url(), { form = signin.assertion_form(emu.APPS.importer.client_id,
        signin.cert_assertion{ claims = { iss = emu.APPS.importer.client_id, sub = emu.APPS.importer.client_id } }) })
      signin.entra_error(res, 401, "invalid_client", 700027)
    end)
    it("no thumbprint, or an unsupported alg", function()
      signin.entra_error(post(signin.cert_assertion{ header = { ["x5t#S256"] = false } }), 401, "invalid_client", 700027)
      local tp = signin.thumbprints(signin.env.VIVA_EMU_CERT)
      local a = signin.jwt({ alg = "HS256", typ = "JWT", x5t = tp.x5t }, { iss = APP, sub = APP, aud = signin.token_url(),
        jti = signin.uuid(), exp = now() + 600 }, signin.env.VIVA_EMU_KEY, { alg = "RS256" })
      signin.entra_error(post(a), 401, "invalid_client", 700027)
    end)
  end)

  describe("claims", function()
    it("aud must be this token endpoint's URL (AADSTS50012)", function()
      for _, aud in ipairs({ "https://login.microsoftonline.com/" .. emu.TENANT .. "/oauth2/v2.0/token",
                             signin.token_url(emu.TENANT_DOMAIN), emu.http .. "/" .. emu.TENANT .. "/v2.0" }) do
        signin.entra_error(post(signin.cert_assertion{ aud = aud }), 401, "invalid_client", 50012)
      end
      -- the tenant segment as used in the request: by domain
      local res = http.post(signin.token_url(emu.TENANT_DOMAIN), { form = signin.assertion_form(APP,
        signin.cert_assertion{ aud = signin.token_url(emu.TENANT_DOMAIN) }) })
      assert.equal(200, res.status, res.body)
    end)
    it("sub must equal iss (AADSTS50048)", function()
      signin.entra_error(post(signin.cert_assertion{ claims = { sub = "someone-else" } }), 401, "invalid_client", 50048)
    end)
    it("exp and nbf, with 5 minutes of clock skew (AADSTS700024)", function()
      local j = signin.entra_error(post(signin.cert_assertion{ claims = { exp = now() - 400, nbf = now() - 1000 } }),
        401, "invalid_client", 700024)
      assert.truthy(j.error_description:find("Client assertion is not within its valid time range", 1, true))
      signin.entra_error(post(signin.cert_assertion{ claims = { nbf = now() + 400, exp = now() + 900 } }), 401, "invalid_client", 700024)
      assert.equal(200, post(signin.cert_assertion{ claims = { exp = now() - 100 } }).status)
      assert.equal(200, post(signin.cert_assertion{ claims = { nbf = now() + 100 } }).status)
      emu.settings{ assertion_clock_skew = 0 }
      signin.entra_error(post(signin.cert_assertion{ claims = { exp = now() - 100 } }), 401, "invalid_client", 700024)
    end)
    it("odd claim values are refused, never a 500", function()
      signin.entra_error(post(signin.cert_assertion{ claims = { nbf = false, iat = "yesterday", exp = now() - 1000 } }), 401, "invalid_client", 700024)
      signin.entra_error(post(signin.cert_assertion{ claims = { nbf = now() + 1000, exp = 1e300 } }), 401, "invalid_client", 700024)
      signin.entra_error(post(signin.cert_assertion{ claims = { exp = "soon" } }), 401, "invalid_client", 50027)
      signin.entra_error(post(signin.cert_assertion{ claims = { aud = { 1, 2 } } }), 401, "invalid_client", 50012)
      local res = post(signin.cert_assertion{ claims = { aud = { "https://other", signin.token_url() } } })
      assert.equal(200, res.status, res.body)
    end)
    it("nbf and iat are optional (as MSAL and the C++ SDK send), exp and jti are not (AADSTS50027)", function()
      assert.equal(200, post(signin.cert_assertion{ claims = { nbf = false, iat = false } }).status)
      signin.entra_error(post(signin.cert_assertion{ claims = { exp = false } }), 401, "invalid_client", 50027)
      signin.entra_error(post(signin.cert_assertion{ claims = { jti = false } }), 401, "invalid_client", 50027)
    end)
    it("a jti is accepted once (AADSTS50013), unless reject_assertion_replay is false", function()
      local a = signin.cert_assertion()
      assert.equal(200, post(a).status)
      local j = signin.entra_error(post(a), 401, "invalid_client", 50013)
      assert.truthy(j.error_description:find("already used", 1, true))
      assert.equal(200, post(signin.cert_assertion()).status)   -- a new jti
      emu.settings{ reject_assertion_replay = false }
      local b = signin.cert_assertion()
      assert.equal(200, post(b).status)
      assert.equal(200, post(b).status)
    end)
    it("a failed assertion does not use up its jti", function()
      local jti = signin.uuid()
      signin.entra_error(post(signin.cert_assertion{ claims = { jti = jti, sub = "x" } }), 401, "invalid_client", 50048)
      assert.equal(200, post(signin.cert_assertion{ claims = { jti = jti } }).status)
    end)
  end)

  describe("request errors", function()
    it("malformed assertions: AADSTS50027", function()
      for _, a in ipairs({ "not-a-jwt", "a.b", "eyJ4Ijox.eyJ4Ijox.c2ln!", signin.b64url("[1]") .. "." .. signin.b64url("{}") .. ".c2ln" }) do
        signin.entra_error(post(a), 401, "invalid_client", 50027)
      end
    end)
    it("client_assertion_type missing (AADSTS900144 naming it) or wrong (AADSTS70002)", function()
      local res = post(signin.cert_assertion(), { client_assertion_type = false })
      signin.entra_error(res, 400, "invalid_request", 900144)
      assert.truthy(res.json.error_description:find("'client_assertion_type'", 1, true))
      res = post(nil, { client_assertion = false })
      signin.entra_error(res, 400, "invalid_request", 900144)
      assert.truthy(res.json.error_description:find("'client_assertion'", 1, true))
      signin.entra_error(post(signin.cert_assertion(), { client_assertion_type = "urn:ietf:params:oauth:client-assertion-type:saml2-bearer" }),
        401, "invalid_client", 70002)
    end)
    it("a public client may not present an assertion (AADSTS700025)", function()
      local res = http.post(signin.token_url(), { form = signin.assertion_form(signin.PUBLIC_APP, signin.cert_assertion()) })
      signin.entra_error(res, 401, "invalid_client", 700025)
    end)
    it("the assertion never reaches the request log", function()
      local seq = emu.last_seq()
      local a = signin.cert_assertion()
      assert.equal(200, post(a).status)
      http.post(signin.token_url() .. "?client_assertion=" .. a, { form = signin.assertion_form(APP, signin.cert_assertion()) })
      local entries = emu.log(seq)
      assert.equal(2, #entries)
      local text = require("cjson").encode(entries)
      assert.is_nil(text:find(a:match("[^.]+$"), 1, true))
      assert.truthy(entries[2].query:find("client_assertion=<redacted>", 1, true))
    end)
  end)
end)
