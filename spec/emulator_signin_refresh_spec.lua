-- Emulator: refresh tokens (rotation, scopes, revocation, expiry, errors) and MFA users for the
-- password grant.
local emu = require("support.emulator")
local http = require("support.http")
local signin = require("support.signin")

local CONSOLE = emu.APPS.console

local function password(user, over)
  local f = { grant_type = "password", client_id = CONSOLE.client_id, client_secret = CONSOLE.client_secret,
              username = user.upn, password = user.password,
              scope = "https://graph.microsoft.com/LearningProvider.ReadWrite offline_access" }
  for k, v in pairs(over or {}) do if v == false then f[k] = nil else f[k] = v end end
  return http.post(signin.token_url(), { form = f })
end

local function refresh(rt, over)
  local f = { grant_type = "refresh_token", client_id = CONSOLE.client_id, client_secret = CONSOLE.client_secret, refresh_token = rt }
  for k, v in pairs(over or {}) do if v == false then f[k] = nil else f[k] = v end end
  return http.post(signin.token_url(), { form = f })
end

local function admin(what, body)
  return http.post(emu.http .. "/_emulator/refresh_tokens/" .. what, { json = body })
end

describe("emulator sign-in: refresh tokens", function()
  before_each(function() emu.reset() end)

  it("the password grant gives one with offline_access (none without)", function()
    assert.is_string(password(emu.ADELE).json.refresh_token)
    assert.is_nil(password(emu.ADELE, { scope = "https://graph.microsoft.com/LearningProvider.ReadWrite" }).json.refresh_token)
  end)

  it("every refresh answers a new access token and a new refresh token; the used one stays valid", function()
    local rt1 = password(emu.ADELE).json.refresh_token
    local res = refresh(rt1)
    assert.equal(200, res.status, res.body)
    local j = res.json
    assert.equal("Bearer", j.token_type)
    assert.equal("LearningProvider.ReadWrite", j.scope)
    assert.is_string(j.refresh_token)
    assert.are_not.equal(rt1, j.refresh_token)
    local seq = emu.last_seq()
    assert.equal(200, http.get(emu.graph_url_http .. "/employeeExperience/learningProviders",
      { headers = { Authorization = "Bearer " .. j.access_token } }).status)
    assert.equal(emu.ADELE.id, emu.log(seq)[1].user)
    local rt2 = j.refresh_token
    assert.equal(200, refresh(rt2).status)
    assert.equal(200, refresh(rt1).status)
  end)

  it("a scope other than the first one, within the app's consent; others: AADSTS65001", function()
    local rt = password(emu.ADELE).json.refresh_token
    local res = refresh(rt, { scope = "https://graph.microsoft.com/LearningContent.Read.All offline_access" })
    assert.equal(200, res.status, res.body)
    assert.equal("LearningContent.Read.All", res.json.scope)
    signin.entra_error(refresh(rt, { scope = "https://graph.microsoft.com/User.ReadWrite.All" }), 400, "invalid_grant", 65001)
  end)

  it("a public client refreshes without a secret; a confidential one needs it (AADSTS7000218)", function()
    emu.settings{ device_code_interval = 0 }
    local dc = http.post(signin.devicecode_url(), { form = { client_id = signin.PUBLIC_APP,
      scope = "https://graph.microsoft.com/.default offline_access" } }).json
    emu.admin("POST", "devicecode/approve", { user_code = dc.user_code, user = emu.ADELE.upn })
    local rt = http.post(signin.token_url(), { form = { grant_type = signin.DEVICE_GRANT, client_id = signin.PUBLIC_APP,
      device_code = dc.device_code } }).json.refresh_token
    local res = refresh(rt, { client_id = signin.PUBLIC_APP, client_secret = false })
    assert.equal(200, res.status, res.body)
    local crt = password(emu.ADELE).json.refresh_token
    signin.entra_error(refresh(crt, { client_secret = false }), 401, "invalid_client", 7000218)
    signin.entra_error(refresh(crt, { client_secret = "wrong" }), 401, "invalid_client", 7000215)
  end)

  it("revoked by user (as revokeSignInSessions): AADSTS50173 with suberror bad_token, old and rotated ones; a new sign-in works", function()
    local rt1 = password(emu.ADELE).json.refresh_token
    local rt2 = refresh(rt1).json.refresh_token
    local res = admin("revoke", { user = emu.ADELE.upn })
    assert.equal(200, res.status, res.body)
    assert.is_true(res.json.revoked >= 2)   -- refresh tokens survive resets: earlier specs may have left some
    for _, rt in ipairs({ rt1, rt2 }) do
      local j = signin.entra_error(refresh(rt), 400, "invalid_grant", 50173)
      assert.equal("bad_token", j.suberror)
    end
    local rt3 = password(emu.ADELE).json.refresh_token
    assert.equal(200, refresh(rt3).status)
  end)

  it("revoked or expired one by one", function()
    local a = password(emu.ADELE).json.refresh_token
    local b = password(emu.ADELE).json.refresh_token
    assert.equal(1, admin("revoke", { refresh_token = a }).json.revoked)
    signin.entra_error(refresh(a), 400, "invalid_grant", 50173)
    assert.equal(200, refresh(b).status)
    assert.equal(1, admin("expire", { refresh_token = b }).json.expired)
    local j = signin.entra_error(refresh(b), 400, "invalid_grant", 700082)
    assert.truthy(j.error_description:find("inactive for 90.00:00:00", 1, true), j.error_description)
  end)

  it("expired by its lifetime (refresh_token_lifetime)", function()
    emu.settings{ refresh_token_lifetime = 1 }
    local rt = password(emu.ADELE).json.refresh_token
    -- the token lives one second: wait for it to pass (a state, not a timing assertion)
    local deadline = os.time() + 5
    local res
    repeat
      http.run("sleep 0.3")
      res = refresh(rt)
    until res.status ~= 200 or os.time() > deadline
    signin.entra_error(res, 400, "invalid_grant", 700082)
  end)

  it("unknown, malformed, another app's, missing: AADSTS9002313 / 900144", function()
    signin.entra_error(refresh("1.AQnope"), 400, "invalid_grant", 9002313)
    local rt = password(emu.ADELE).json.refresh_token
    signin.entra_error(refresh(rt, { client_id = signin.PUBLIC_APP, client_secret = false }), 400, "invalid_grant", 9002313)
    local res = refresh(nil, { refresh_token = false })
    signin.entra_error(res, 400, "invalid_request", 900144)
    assert.truthy(res.json.error_description:find("'refresh_token'", 1, true))
  end)

  it("refresh tokens survive a reset (as access tokens do) and never reach the request log", function()
    local seq = emu.last_seq()
    local rt = password(emu.ADELE).json.refresh_token
    emu.reset()
    local res = refresh(rt)
    assert.equal(200, res.status, res.body)
    local text = require("cjson").encode(emu.log(0)) .. require("cjson").encode(emu.log(seq))
    assert.is_nil(text:find(rt, 1, true))
    assert.is_nil(text:find(res.json.refresh_token, 1, true))
  end)

  it("the admin calls check their body", function()
    local res = admin("revoke", {})
    assert.equal(400, res.status); assert.truthy(res.json.error.message:find("user", 1, true))
    res = admin("revoke", { user = "nobody@contoso.onmicrosoft.com" })
    assert.equal(404, res.status); assert.truthy(res.json.error.message:find("user", 1, true))
    res = admin("expire", { refresh_token = 42 })
    assert.equal(400, res.status); assert.truthy(res.json.error.message:find("refresh_token", 1, true))
  end)
end)

describe("emulator sign-in: MFA users and the password grant", function()
  before_each(function() emu.reset() end)

  it("a user who must use MFA: 400 invalid_grant AADSTS50076 (the password is checked first)", function()
    local j = signin.entra_error(password(signin.MEGAN), 400, "invalid_grant", 50076)
    assert.truthy(j.error_description:find("you must use multi-factor authentication to access '00000003-0000-0000-c000-000000000000'", 1, true))
    signin.entra_error(password(signin.MEGAN, { password = "wrong" }), 400, "invalid_grant", 50126)
  end)

  it("a user who must register for MFA: AADSTS50079", function()
    local j = signin.entra_error(password(signin.NESTOR), 400, "invalid_grant", 50079)
    assert.truthy(j.error_description:find("enroll in multi-factor authentication", 1, true))
  end)

  it("the device code flow signs an MFA user in (MFA happens in the browser)", function()
    emu.settings{ device_code_interval = 0 }
    local dc = http.post(signin.devicecode_url(), { form = { client_id = signin.PUBLIC_APP, scope = "https://graph.microsoft.com/.default" } }).json
    emu.admin("POST", "devicecode/approve", { user_code = dc.user_code, user = signin.MEGAN.upn })
    local res = http.post(signin.token_url(), { form = { grant_type = signin.DEVICE_GRANT, client_id = signin.PUBLIC_APP, device_code = dc.device_code } })
    assert.equal(200, res.status, res.body)
  end)

  it("a seed user with an unknown mfa value is refused, naming the field", function()
    local res = http.post(emu.http .. "/_emulator/reset", { json = { tenants = { { id = emu.TENANT } },
      users = { { id = "u1", mfa = "sometimes" } } } })
    assert.equal(400, res.status)
    assert.truthy(res.json.error.message:find("users[1].mfa", 1, true), res.body)
  end)

  it("a seed certificate that cannot be read is refused, naming the field", function()
    local res = http.post(emu.http .. "/_emulator/reset", { json = { tenants = { { id = emu.TENANT } },
      apps = { { client_id = "x" }, { client_id = "y", certificates = { { file = "no-such-cert.pem" } } } } } })
    assert.equal(400, res.status)
    assert.truthy(res.json.error.message:find("apps[2].certificates[1].file", 1, true), res.body)
    res = http.post(emu.http .. "/_emulator/reset", { json = { tenants = { { id = emu.TENANT } },
      apps = { { client_id = "y", certificates = { { pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n" } } } } } })
    assert.equal(400, res.status)
    assert.truthy(res.json.error.message:find("apps[1].certificates[1]", 1, true), res.body)
  end)
end)
