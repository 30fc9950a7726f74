-- Delegated sign-in against the emulator: the device code flow (the spec plays the user through the
-- admin API from inside the device_code callback), refresh tokens (expiry, a 401 forcing a refresh,
-- revoked and expired refresh tokens), the legacy password grant for MFA users, and no secret in
-- any error, log event or tostring.
local emu = require "support.emulator"
local http = require "support.http"
local signin = require "support.signin"
local clients = require "support.client"
local viva = require "vivalearning"

local APP = signin.PUBLIC_APP

local function admin(what, body)
  local res = http.post(emu.http .. "/_emulator/" .. what, { json = body })
  assert(res.status < 300, res.body)
  return res
end

local function count(seq, pat)
  local n = 0
  for _, e in ipairs(emu.log(seq)) do if e.path:find(pat) then n = n + 1 end end
  return n
end

-- A device-code client; `act(info)` plays the user (default: Adele approves at once).
local function device_client(act, over)
  local seen = { prompts = {}, rts = {}, events = {} }
  local o = clients.options("importer", {
    client_id = APP, client_secret = false,
    device_code = function(info)
      seen.prompts[#seen.prompts + 1] = info
      if act ~= false then (act or function(i) admin("devicecode/approve", { user_code = i.user_code, user = emu.ADELE.upn }) end)(info) end
    end,
    on_refresh_token = function(t) seen.rts[#seen.rts + 1] = t end,
    log = function(ev) seen.events[#seen.events + 1] = ev end,
  }, over)
  return viva.client(o), seen
end

-- Every string the user or a log could see must be free of these.
local function assert_no_secret(secrets, texts)
  for _, t in ipairs(texts) do
    for _, s in ipairs(secrets) do
      if s and #s > 0 then assert.is_nil(tostring(t):find(s, 1, true), "a secret in: " .. tostring(t)) end
    end
  end
end

local function event_texts(seen)
  local out = {}
  for _, ev in ipairs(seen.events) do
    for k, v in pairs(ev) do out[#out + 1] = k .. "=" .. tostring(v) end
  end
  return out
end

describe("delegated sign-in (emulator)", function()
  before_each(function()
    emu.reset()
    emu.settings { device_code_interval = 0 }
  end)

  it("device code: Entra's instruction to the callback, the user approves, a delegated call works as that user", function()
    local c, seen = device_client()
    local seq = emu.last_seq()
    assert.is_true(c:sign_in())
    assert.equal(1, #seen.prompts)
    local p = seen.prompts[1]
    assert.equal("To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code " ..
      p.user_code .. " to authenticate.", p.message)
    assert.equal("https://microsoft.com/devicelogin", p.verification_uri)
    assert.equal(900, p.expires_in)
    assert.equal(1, #seen.rts)
    assert.is_string(seen.rts[1].id_token)
    -- providers are delegated only: the token is Adele's
    local seq2 = emu.last_seq()
    local page = assert(c:providers_page{})
    assert.truthy(#page.value >= 1)
    assert.equal(emu.ADELE.id, emu.log(seq2)[1].user)
    assert.equal(1, count(seq, "/oauth2/v2.0/devicecode$"))
    c:close()
  end)

  it("polls through authorization_pending until the user signs in", function()
    emu.settings { device_code_auto_approve = { user = emu.ADELE.upn, after_polls = 2 } }
    local c, seen = device_client(false)
    local seq = emu.last_seq()
    assert.is_true(c:sign_in())
    local statuses = {}
    for _, e in ipairs(emu.log(seq)) do
      if e.path:find("/oauth2/v2.0/token$") then statuses[#statuses + 1] = math.floor(e.status) end
    end
    assert.same({ 400, 400, 200 }, statuses)
    assert.equal(1, #seen.prompts)
    c:close()
  end)

  it("slow_down from the service makes the client poll slower (interval + 5 s), then it signs in", function()
    -- the emulator answers slow_down to a poll that comes sooner than its interval; the client's
    -- first poll waits one interval, so a fault plays the service's slow_down once
    emu.fault { path = "/oauth2/v2.0/token$", status = 400, count = 1,
                body = '{"error":"slow_down","error_description":"AADSTS50196: loop.","error_codes":[50196]}',
                headers = { ["Content-Type"] = "application/json" } }
    local c = device_client()
    local seq = emu.last_seq()
    assert.is_true(c:sign_in())
    local polls = {}
    for _, e in ipairs(emu.log(seq)) do
      if e.path:find("/oauth2/v2.0/token$") then polls[#polls + 1] = e end
    end
    assert.equal(2, #polls)                          -- the wait itself is timed in client_devicecode_policy_spec
    assert.equal(400, polls[1].status)
    assert.equal(200, polls[2].status)
    c:close()
  end)

  it("a declined sign-in is an authorization_declined error that says so", function()
    local c = device_client(function(i) admin("devicecode/decline", { user_code = i.user_code }) end)
    local ok, err = c:sign_in()
    assert.is_nil(ok)
    assert.equal("auth", err.kind)
    assert.equal("authorization_declined", err.code)
    assert.matches("declined", err.message)
    assert.equal(65004, err.aadsts)
    c:close()
  end)

  it("an expired code is an expired_token error that says to sign in again", function()
    local c = device_client(function(i) admin("devicecode/expire", { user_code = i.user_code }) end)
    local ok, err = c:sign_in()
    assert.is_nil(ok)
    assert.equal("expired_token", err.code)
    assert.matches("expired.*sign in again", err.message)
    c:close()
  end)

  it("a 401 (the access token revoked early) forces a refresh with the refresh token, no new prompt", function()
    local c, seen = device_client()
    assert(c:sign_in())
    assert(c:providers_page{})
    emu.expire_tokens()
    local seq = emu.last_seq()
    assert(c:providers_page{})
    local st = {}
    for _, e in ipairs(emu.log(seq)) do st[#st + 1] = (e.path:find("oauth2") and "token" or "graph") .. ":" .. math.floor(e.status) end
    assert.same({ "graph:401", "token:200", "graph:200" }, st)
    assert.equal(1, #seen.prompts)
    assert.equal(2, #seen.rts)                      -- rotated
    assert.not_equal(seen.rts[1].refresh_token, seen.rts[2].refresh_token)
    c:close()
  end)

  it("a refresh token alone signs in; revoked or expired it is invalid_grant telling the user to sign in again", function()
    local c0, seen = device_client()
    assert(c0:sign_in())
    c0:close()
    local rt = seen.rts[1].refresh_token
    for _, how in ipairs { "revoke", "expire" } do
      local events = {}
      local c = viva.client(clients.options("importer", { client_id = APP, client_secret = false, refresh_token = rt,
        log = function(ev) events[#events + 1] = ev end }))
      assert(c:providers_page{})
      admin("refresh_tokens/" .. how, { user = emu.ADELE.upn })
      emu.expire_tokens()
      local ok, err = c:providers_page{}
      assert.is_nil(ok)
      assert.equal("invalid_grant", err.code)
      assert.equal(how == "revoke" and 50173 or 700082, err.aadsts)
      assert.matches("sign in again %(vivalearning login%)", err.message)
      assert_no_secret({ rt }, { tostring(err), err.message, tostring(c), table.concat(event_texts{ events = events }, "\n") })
      c:close()
      -- sign in again for the next round
      c0, seen = device_client()
      assert(c0:sign_in())
      c0:close()
      rt = seen.rts[1].refresh_token
    end
  end)

  it("the password grant (legacy) asks for offline_access and refreshes with it; MFA users are told to use the device code", function()
    local rts = {}
    local c = clients.user { on_refresh_token = function(t) rts[#rts + 1] = t.refresh_token end }
    assert(c:providers_page{})
    assert.equal(1, #rts)
    emu.expire_tokens()
    local seq = emu.last_seq()
    assert(c:providers_page{})
    assert.equal(1, count(seq, "/oauth2/v2.0/token$"))
    assert.equal(2, #rts)
    c:close()
    for _, u in ipairs { { signin.MEGAN, 50076 }, { signin.NESTOR, 50079 } } do
      local m = clients.new("console", { username = u[1].upn, password = u[1].password })
      local ok, err = m:providers_page{}
      assert.is_nil(ok)
      assert.equal("auth", err.kind)
      assert.equal(u[2], err.aadsts)
      assert.matches("needs multi%-factor sign%-in.*use the device code", err.message)
      assert_no_secret({ u[1].password, emu.APPS.console.client_secret }, { tostring(err), err.message, tostring(m) })
      m:close()
    end
  end)

  it("no refresh token, device code or access token in errors, log events or tostring", function()
    local c, seen = device_client()
    assert(c:sign_in())
    assert(c:providers_page{})
    local ok, err = c:get(emu.content(1, 1))          -- a 404, for an error object
    assert.is_nil(ok)
    local rt = seen.rts[1].refresh_token
    assert_no_secret({ rt, seen.rts[1].id_token }, { tostring(err), err.message, tostring(c), table.concat(event_texts(seen), "\n") })
    for _, ev in ipairs(seen.events) do assert.is_nil(ev.body) end
    c:close()
  end)
end)
