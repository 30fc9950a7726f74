-- Emulator: the device code flow (devicecode endpoint, polling, the admin calls that play the user).
local emu = require("support.emulator")
local http = require("support.http")
local signin = require("support.signin")

local APP = signin.PUBLIC_APP
local SCOPE = "https://graph.microsoft.com/LearningProvider.ReadWrite offline_access openid profile"

local function start(o)
  o = o or {}
  return http.post(signin.devicecode_url(o.tenant), { form = { client_id = o.client_id or APP, scope = o.scope or SCOPE } })
end

local function poll(device_code, over)
  local f = { grant_type = signin.DEVICE_GRANT, client_id = APP, device_code = device_code }
  for k, v in pairs(over or {}) do if v == false then f[k] = nil else f[k] = v end end
  return http.post(signin.token_url(), { form = f })
end

local function admin(what, body)
  return http.post(emu.http .. "/_emulator/devicecode/" .. what, { json = body })
end

describe("emulator sign-in: device code", function()
  before_each(function()
    emu.reset()
    emu.settings{ device_code_interval = 0 }   -- poll freely, except where a spec says otherwise
  end)

  it("answers Entra's fields and words (interval 5 and expires_in 900 by default)", function()
    emu.settings{ device_code_interval = 5 }
    local res = start()
    assert.equal(200, res.status, res.body)
    local j = res.json
    assert.matches("^[%u%d]+$", j.user_code)
    assert.equal(9, #j.user_code)
    assert.is_string(j.device_code)
    assert.truthy(#j.device_code > 40)
    assert.equal("https://microsoft.com/devicelogin", j.verification_uri)
    assert.equal(900, j.expires_in)
    assert.equal(5, j.interval)
    assert.equal("To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code " ..
      j.user_code .. " to authenticate.", j.message)
    assert.is_nil(j.verification_uri_complete)
    emu.settings{ device_code_lifetime = 60, device_code_interval = 1 }
    j = start().json
    assert.equal(60, j.expires_in)
    assert.equal(1, j.interval)
  end)

  it("pending until the user approves; then tokens for that user (refresh and id tokens as asked); the code is then used up", function()
    local dc = start().json
    signin.entra_error(poll(dc.device_code), 400, "authorization_pending", 70016)
    signin.entra_error(poll(dc.device_code), 400, "authorization_pending", 70016)
    local list = emu.admin("GET", "devicecode").json.value
    assert.equal(1, #list)
    assert.equal(dc.user_code, list[1].user_code)
    assert.equal("pending", list[1].status)
    assert.equal(204, admin("approve", { user_code = dc.user_code, user = emu.ADELE.upn }).status)
    local res = poll(dc.device_code)
    assert.equal(200, res.status, res.body)
    local j = res.json
    assert.equal("Bearer", j.token_type)
    assert.equal("LearningProvider.ReadWrite", j.scope)
    assert.is_string(j.refresh_token)
    assert.is_string(j.id_token)
    -- a delegated token for Adele: provider reads need a user
    local seq = emu.last_seq()
    local pr = http.get(emu.graph_url_http .. "/employeeExperience/learningProviders", { headers = { Authorization = "Bearer " .. j.access_token } })
    assert.equal(200, pr.status, pr.body)
    assert.equal(emu.ADELE.id, emu.log(seq)[1].user)
    signin.entra_error(poll(dc.device_code), 400, "bad_verification_code", 70000)
  end)

  it("no refresh token without offline_access, no id_token without openid", function()
    local dc = start{ scope = "https://graph.microsoft.com/.default" }.json
    admin("approve", { user_code = dc.user_code, user = emu.ADELE.id })
    local j = poll(dc.device_code).json
    assert.is_string(j.access_token)
    assert.is_nil(j.refresh_token)
    assert.is_nil(j.id_token)
  end)

  it("slow_down when polled within the interval (AADSTS50196); the first poll may come at once", function()
    emu.settings{ device_code_interval = 5 }
    local dc = start().json
    signin.entra_error(poll(dc.device_code), 400, "authorization_pending", 70016)
    signin.entra_error(poll(dc.device_code), 400, "slow_down", 50196)
  end)

  it("declined: authorization_declined (AADSTS65004), then the code is gone", function()
    local dc = start().json
    assert.equal(204, admin("decline", { user_code = dc.user_code }).status)
    signin.entra_error(poll(dc.device_code), 400, "authorization_declined", 65004)
    signin.entra_error(poll(dc.device_code), 400, "bad_verification_code", 70000)
  end)

  it("expired: expired_token (AADSTS70020), approved or not", function()
    local dc = start().json
    assert.equal(204, admin("expire", { user_code = dc.user_code }).status)
    local j = signin.entra_error(poll(dc.device_code), 400, "expired_token", 70020)
    assert.truthy(j.error_description:find("This device code has expired.", 1, true))
    local dc2 = start().json
    admin("approve", { user_code = dc2.user_code, user = emu.ADELE.upn })
    admin("expire", { user_code = dc2.user_code })
    signin.entra_error(poll(dc2.device_code), 400, "expired_token", 70020)
  end)

  it("an unknown device code (or one of another app): bad_verification_code; none: AADSTS900144", function()
    signin.entra_error(poll("DAQABIQEAAABnope"), 400, "bad_verification_code", 70000)
    local dc = start{ client_id = emu.APPS.console.client_id }.json
    signin.entra_error(poll(dc.device_code), 400, "bad_verification_code", 70000)
    local res = poll(nil, { device_code = false })
    signin.entra_error(res, 400, "invalid_request", 900144)
    assert.truthy(res.json.error_description:find("'device_code'", 1, true))
  end)

  it("a confidential app polls with its secret (AADSTS7000218 without)", function()
    local dc = start{ client_id = emu.APPS.console.client_id }.json
    admin("approve", { user_code = dc.user_code, user = emu.ADELE.upn })
    signin.entra_error(poll(dc.device_code, { client_id = emu.APPS.console.client_id }), 401, "invalid_client", 7000218)
    local res = poll(dc.device_code, { client_id = emu.APPS.console.client_id, client_secret = emu.APPS.console.client_secret })
    assert.equal(200, res.status, res.body)
  end)

  it("works on /organizations and /common as on the tenant (the app's tenant); client credentials there: AADSTS9001023", function()
    for _, t in ipairs({ "organizations", "common" }) do
      local dc = start{ tenant = t }.json
      assert.is_string(dc.device_code)
      admin("approve", { user_code = dc.user_code, user = emu.ADELE.upn })
      local res = http.post(signin.token_url(t), { form = { grant_type = signin.DEVICE_GRANT, client_id = APP, device_code = dc.device_code } })
      assert.equal(200, res.status, res.body)
      res = http.post(signin.token_url(t), { form = { grant_type = "refresh_token", client_id = APP, refresh_token = res.json.refresh_token } })
      assert.equal(200, res.status, res.body)
      signin.entra_error(start{ tenant = t, client_id = "a0000000-0000-4000-8000-0000000000ff" }, 400, "unauthorized_client", 700016)
    end
    local cc = { grant_type = "client_credentials", client_id = emu.APPS.importer.client_id,
                 client_secret = emu.APPS.importer.client_secret, scope = emu.GRAPH_SCOPE }
    signin.entra_error(http.post(signin.token_url("common"), { form = cc }), 400, "invalid_request", 9001023)
    signin.entra_error(http.post(signin.token_url("organizations"), { form = cc }), 400, "invalid_request", 9001023)
    local pw = { grant_type = "password", client_id = emu.APPS.console.client_id, client_secret = emu.APPS.console.client_secret,
                 username = emu.ADELE.upn, password = emu.ADELE.password, scope = emu.GRAPH_SCOPE }
    assert.equal(200, http.post(signin.token_url("organizations"), { form = pw }).status)
    signin.entra_error(http.post(signin.token_url("common"), { form = pw }), 400, "invalid_request", 9001023)
    signin.entra_error(start{ tenant = "consumers" }, 400, "invalid_request", 90002)
  end)

  it("devicecode endpoint errors", function()
    signin.entra_error(start{ tenant = "nosuch.onmicrosoft.com" }, 400, "invalid_request", 90002)
    signin.entra_error(start{ client_id = "a0000000-0000-4000-8000-0000000000ff" }, 400, "unauthorized_client", 700016)
    signin.entra_error(start{ scope = "https://graph.microsoft.com/User.ReadWrite.All" }, 400, "invalid_grant", 65001)
    for _, p in ipairs({ "client_id", "scope" }) do
      local f = { client_id = APP, scope = SCOPE }
      f[p] = nil
      local res = http.post(signin.devicecode_url(), { form = f })
      signin.entra_error(res, 400, "invalid_request", 900144)
      assert.truthy(res.json.error_description:find("'" .. p .. "'", 1, true))
    end
    signin.entra_error(http.get(signin.devicecode_url()), 400, "invalid_request", 900561)
  end)

  it("device_code_auto_approve (a test aid, off by default) approves as the user after N pending polls", function()
    emu.settings{ device_code_auto_approve = { user = emu.ADELE.upn, after_polls = 2 } }
    local dc = start().json
    signin.entra_error(poll(dc.device_code), 400, "authorization_pending", 70016)
    signin.entra_error(poll(dc.device_code), 400, "authorization_pending", 70016)
    local res = poll(dc.device_code)
    assert.equal(200, res.status, res.body)
    emu.settings{ device_code_auto_approve = { user = emu.ADELE.id } }
    assert.equal(200, poll(start().json.device_code).status)
    for body, field in pairs({ [{ user = "nobody" }] = "device_code_auto_approve.user",
        [{ user = emu.ADELE.upn, after_polls = -1 }] = "after_polls", [{ user = emu.ADELE.upn, when = 1 }] = "when" }) do
      local r = http.post(emu.http .. "/_emulator/settings", { json = { device_code_auto_approve = body } })
      assert.equal(400, r.status)
      assert.truthy(r.json.error.message:find(field, 1, true), r.body)
    end
    emu.reset()
    emu.settings{ device_code_interval = 0 }
    signin.entra_error(poll(start().json.device_code), 400, "authorization_pending", 70016)
  end)

  it("the admin calls check their body, naming the field", function()
    local dc = start().json
    local res = admin("approve", { user_code = dc.user_code })
    assert.equal(400, res.status); assert.truthy(res.json.error.message:find("user", 1, true))
    res = admin("approve", { user_code = dc.user_code, user = "nobody@contoso.onmicrosoft.com" })
    assert.equal(400, res.status); assert.truthy(res.json.error.message:find("user", 1, true))
    res = admin("approve", { user = emu.ADELE.upn })
    assert.equal(400, res.status); assert.truthy(res.json.error.message:find("user_code", 1, true))
    assert.equal(404, admin("approve", { user_code = "ZZZZZZZZZ", user = emu.ADELE.upn }).status)
    assert.equal(204, admin("approve", { user_code = dc.user_code:lower(), user = emu.ADELE.upn }).status)
    assert.equal(409, admin("decline", { user_code = dc.user_code }).status)
  end)

  it("the device code never reaches the request log", function()
    local seq = emu.last_seq()
    local dc = start().json
    poll(dc.device_code)
    local text = require("cjson").encode(emu.log(seq))
    assert.is_nil(text:find(dc.device_code, 1, true))
    assert.equal(2, #emu.log(seq))
  end)
end)
