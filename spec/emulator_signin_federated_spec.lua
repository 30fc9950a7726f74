-- Emulator: workload identity federation (a client assertion from an external OIDC issuer, matched
-- against the app's federated identity credential), and the admin call that mints such tokens.
local emu = require("support.emulator")
local http = require("support.http")
local signin = require("support.signin")

local APP = signin.WORKLOAD_APP
local ISSUER = "https://oidc.viva-emulator.test"

local function post(assertion, client_id)
  return http.post(signin.token_url(), { form = signin.assertion_form(client_id or APP, assertion) })
end

local function mint(body)
  local b = { subject = signin.FIC_SUBJECT }
  for k, v in pairs(body or {}) do b[k] = v end
  return signin.federated_token(b)
end

local function write(path, s)
  local f = assert(io.open(path, "wb")); f:write(s); f:close()
end
local function read(path)
  local f = assert(io.open(path, "rb")); local s = f:read("*a"); f:close(); return s
end

describe("emulator sign-in: federated credential", function()
  before_each(function() emu.reset() end)

  it("a minted token, written to a file as Kubernetes does, gets a token that works on Graph; rotation", function()
    local file = os.tmpname()
    write(file, mint())
    local res = post(read(file))
    assert.equal(200, res.status, res.body)
    assert.is_nil(res.json.refresh_token)
    assert.equal(200, signin.graph_get(res.json.access_token).status)
    -- the same federated token is reused until it rotates (no jti replay check for it)
    assert.equal(200, post(read(file)).status)
    local old = read(file)
    write(file, mint())
    assert.are_not.equal(old, read(file))
    assert.equal(200, post(read(file)).status)
    os.remove(file)
  end)

  it("the minted token is an RS256 JWT of the issuer, aud api://AzureADTokenExchange, the given lifetime", function()
    local r = emu.admin("POST", "federated_token", { subject = signin.FIC_SUBJECT, lifetime = 120 }).json
    assert.equal(ISSUER, r.issuer)
    assert.equal(signin.FIC_AUDIENCE, r.audience)
    local h, p = r.token:match("^([^.]+)%.([^.]+)%.")
    local function dec(s)
      local _, out = http.run("printf '%s' " .. http.shell_quote(s) .. " | tr '_-' '/+' | base64 -d 2>/dev/null; true")
      return out
    end
    -- padding for base64 -d
    local function pad(s) return s .. string.rep("=", (4 - #s % 4) % 4) end
    local header = require("cjson").decode(dec(pad(h)))
    local claims = require("cjson").decode(dec(pad(p)))
    assert.equal("RS256", header.alg)
    assert.equal(ISSUER, claims.iss)
    assert.equal(signin.FIC_SUBJECT, claims.sub)
    assert.same({ signin.FIC_AUDIENCE }, claims.aud)
    assert.equal(120, claims.exp - claims.iat)
    assert.equal(r.expires_on, claims.exp)
  end)

  it("a token signed with the exported issuer key (VIVA_EMU_OIDC_KEY) by the openssl command is accepted", function()
    local now = os.time()
    local t = signin.jwt({ alg = "RS256", typ = "JWT" }, { iss = ISSUER, sub = signin.FIC_SUBJECT, aud = signin.FIC_AUDIENCE,
      iat = now, exp = now + 600 }, signin.env.VIVA_EMU_OIDC_KEY)
    assert.equal(200, post(t).status)
  end)

  describe("errors", function()
    it("an issuer no credential of the app names: 401 invalid_client AADSTS700211", function()
      local now = os.time()
      local t = signin.jwt({ alg = "RS256", typ = "JWT" }, { iss = "https://token.actions.githubusercontent.com",
        sub = signin.FIC_SUBJECT, aud = signin.FIC_AUDIENCE, exp = now + 600 }, signin.env.VIVA_EMU_OTHER_KEY)
      local j = signin.entra_error(post(t), 401, "invalid_client", 700211)
      assert.truthy(j.error_description:find("https://token.actions.githubusercontent.com", 1, true))
      -- a good federated token for an app without any federated credential
      signin.entra_error(post(mint(), signin.CERT_APP), 401, "invalid_client", 700211)
    end)
    it("a signature the issuer's key does not verify: 401 invalid_client AADSTS50027", function()
      local now = os.time()
      local t = signin.jwt({ alg = "RS256", typ = "JWT" }, { iss = ISSUER, sub = signin.FIC_SUBJECT,
        aud = signin.FIC_AUDIENCE, exp = now + 600 }, signin.env.VIVA_EMU_OTHER_KEY)
      signin.entra_error(post(t), 401, "invalid_client", 50027)
      local good = mint()
      signin.entra_error(post(good:sub(1, -5) .. (good:sub(-4) == "AAAA" and "BBBB" or "AAAA")), 401, "invalid_client", 50027)
    end)
    it("an expired token: 401 invalid_client AADSTS700024", function()
      signin.entra_error(post(mint{ lifetime = -600 }), 401, "invalid_client", 700024)
      signin.entra_error(post(mint{ not_before = os.time() + 3600, lifetime = 7200 }), 401, "invalid_client", 700024)
    end)
    it("a subject no credential names, compared case-sensitively: AADSTS700213", function()
      local j = signin.entra_error(post(mint{ subject = "system:serviceaccount:lms:other" }), 401, "invalid_client", 700213)
      assert.truthy(j.error_description:find("system:serviceaccount:lms:other", 1, true))
      signin.entra_error(post(mint{ subject = "System:serviceaccount:lms:importer" }), 401, "invalid_client", 700213)
    end)
    it("another audience: 400 invalid_request AADSTS70021 naming issuer, subject and audience", function()
      local j = signin.entra_error(post(mint{ audience = "api://AzureADTokenExchangeUSGov" }), 400, "invalid_request", 70021)
      assert.truthy(j.error_description:find("Assertion Issuer: '" .. ISSUER .. "'", 1, true))
      assert.truthy(j.error_description:find("Assertion Subject: '" .. signin.FIC_SUBJECT .. "'", 1, true))
      assert.truthy(j.error_description:find("Assertion Audience: 'api://AzureADTokenExchangeUSGov'", 1, true))
    end)
    it("the mint call checks its body, naming the field", function()
      for body, field in pairs({ [{ audience = "a" }] = "subject", [{ subject = 1 }] = "subject", [{ subject = "s", lifetime = "x" }] = "lifetime",
          [{ subject = "s", issuer = "https://nope" }] = "issuer", [{ subject = "s", audience = 3 }] = "audience" }) do
        local res = http.post(emu.http .. "/_emulator/federated_token", { json = body })
        assert.equal(400, res.status, res.body)
        assert.truthy(res.json.error.message:find(field, 1, true), res.body)
      end
    end)
  end)

  it("a seed with a federated credential missing its subject is refused, naming the field", function()
    local res = http.post(emu.http .. "/_emulator/reset", { json = {
      tenants = { { id = emu.TENANT } },
      apps = { { client_id = "x", federated_credentials = { { issuer = ISSUER, audiences = { signin.FIC_AUDIENCE } } } } },
    } })
    assert.equal(400, res.status)
    assert.truthy(res.json.error.message:find("apps[1].federated_credentials[1].subject", 1, true), res.body)
    assert.equal(200, post(mint()).status)   -- the old state stays
  end)
end)
