-- Delegated sign-in policy on the sans-I/O face (io = "external"), against a fake Entra: the
-- device code flow's polling (interval, slow_down adding 5 s, pending past a deadline), the
-- refresh grant when the access token runs out, and the forms the core sends. Deterministic:
-- the clock is the spec's, nothing sleeps.
local viva = require "vivalearning"
local fake_driver = require "support.fake_driver"

local AUTH = "https://login.test"
local GRAPH = "https://graph.test/v1.0"
local TENANT = "72f988bf-0000-4000-8000-000000000001"
local APP = "a0000000-0000-4000-8000-000000000006"
local DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"

local function entra(err, code)
  return { status = 400, headers = { ["Content-Type"] = "application/json" },
           body = ('{"error":"%s","error_description":"AADSTS%d: words.\\r\\nTrace ID: x","error_codes":[%d]}'):format(err, code, code) }
end
local function json(t) return { status = 200, headers = { ["Content-Type"] = "application/json" }, body = t } end
local DEVICE = json('{"device_code":"DEVCODE-SECRET-1","user_code":"ABCD12345","verification_uri":"https://microsoft.com/devicelogin",' ..
  '"expires_in":900,"interval":5,"message":"To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code ABCD12345 to authenticate."}')
local function tokens(n, life)
  return json(('{"token_type":"Bearer","access_token":"AT-%d","expires_in":%d,"refresh_token":"RT-SECRET-%d","id_token":"a.b.c"}')
    :format(n, life or 3599, n))
end
local PAGE = json('{"value":[]}')

local function form(req)
  local t = {}
  for k, v in (req.body or ""):gmatch("([^&=]+)=([^&]*)") do
    t[k] = v:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  end
  return t
end

-- The fake Graph of spec/support/fake_driver.lua, with the callbacks' calls recorded.
local function world(opts, script)
  local w = { now = 1000, log = {}, script = script, prompts = {}, rts = {} }
  local o = { graph_url = GRAPH, authority_url = AUTH, tenant = TENANT, client_id = APP, io = "external",
              clock = function() return w.now end,
              device_code = function(info) w.prompts[#w.prompts + 1] = info end,
              on_refresh_token = function(t) w.rts[#w.rts + 1] = t.refresh_token end }
  for k, v in pairs(opts or {}) do if v == false then o[k] = nil else o[k] = v end end
  o.driver = fake_driver.driver(w)
  w.c = viva.client(o)
  return w
end

describe("delegated sign-in policy (io = 'external')", function()
  it("device code: the instruction goes to the callback, polls wait the interval, slow_down adds 5 s", function()
    local w = world(nil, { DEVICE, entra("authorization_pending", 70016), entra("slow_down", 50196),
                           entra("authorization_pending", 70016), tokens(1), PAGE })
    assert(w.c:sign_in())
    assert.equal(1, #w.prompts)
    local p = w.prompts[1]
    assert.equal("To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code ABCD12345 to authenticate.", p.message)
    assert.equal("ABCD12345", p.user_code)
    assert.equal("https://microsoft.com/devicelogin", p.verification_uri)
    assert.equal(900, p.expires_in)
    assert.is_nil(p.device_code)                    -- the secret half stays in the core
    local l = w.log
    assert.equal(AUTH .. "/" .. TENANT .. "/oauth2/v2.0/devicecode", l[1].url)
    local f1 = form(l[1])
    assert.equal(APP, f1.client_id)
    assert.matches("offline_access", f1.scope)
    assert.matches("openid", f1.scope)
    assert.equal(AUTH .. "/" .. TENANT .. "/oauth2/v2.0/token", l[2].url)
    assert.same({ client_id = APP, scope = f1.scope, grant_type = DEVICE_GRANT, device_code = "DEVCODE-SECRET-1" }, form(l[2]))
    assert.equal(5, l[2].at - l[1].at)              -- one interval before the first poll
    assert.equal(5, l[3].at - l[2].at)
    assert.equal(10, l[4].at - l[3].at)             -- slow_down: interval 5 + 5
    assert.equal(10, l[5].at - l[4].at)             -- and it stays slower
    assert.same({ "RT-SECRET-1" }, w.rts)
    -- signed in: a Graph call goes out with the token, no new prompt
    assert(w.c:providers_page{})
    assert.equal("Bearer AT-1", l[6].headers.authorization)
    assert.equal(1, #w.prompts)
  end)

  it("the refresh grant renews an expired access token (no prompt), and rotates the refresh token", function()
    local w = world(nil, { DEVICE, tokens(1, 600), PAGE, tokens(2, 600), PAGE })
    assert(w.c:sign_in())
    assert(w.c:providers_page{})
    w.now = w.now + 1000                            -- past the token's lifetime
    assert(w.c:providers_page{})
    local rf = form(w.log[4])
    assert.equal("refresh_token", rf.grant_type)
    assert.equal("RT-SECRET-1", rf.refresh_token)
    assert.equal("Bearer AT-2", w.log[5].headers.authorization)
    assert.same({ "RT-SECRET-1", "RT-SECRET-2" }, w.rts)
    assert.equal(1, #w.prompts)
  end)

  it("a refresh token alone (the cache) signs in without a prompt; invalid_grant says to sign in again", function()
    local w = world({ device_code = false, refresh_token = "RT-CACHED-SECRET" },
      { tokens(3), entra("invalid_grant", 50173) })
    assert(w.c:sign_in())
    assert.equal("RT-CACHED-SECRET", form(w.log[1]).refresh_token)
    assert.equal("refresh_token", form(w.log[1]).grant_type)
    -- the next refresh (a 401 would force it; here the token ran out) is refused
    w.now = w.now + 4000
    local ok, err = w.c:providers_page{}
    assert.is_nil(ok)
    assert.equal("auth", err.kind)
    assert.equal("invalid_grant", err.code)
    assert.equal(50173, err.aadsts)
    assert.matches("sign in again %(vivalearning login%)", err.message)
    for _, s in ipairs { tostring(err), err.message, tostring(w.c) } do
      assert.not_matches("RT%-", s)
    end
    -- nothing left to sign in with: the next call says so without a request
    local n = #w.log
    ok, err = w.c:providers_page{}
    assert.is_nil(ok)
    assert.equal("signin_required", err.code)
    assert.equal(n, #w.log, w.log[#w.log].url .. " " .. tostring(w.log[#w.log].body))
  end)

  it("a request whose deadline passes while the user has not signed in fails with authorization_pending", function()
    local script = { DEVICE }
    for i = 2, 40 do script[i] = entra("authorization_pending", 70016) end
    local w = world({ timeouts = { deadline = 60 } }, script)
    local ok, err = w.c:sign_in()
    assert.is_nil(ok)
    assert.equal("authorization_pending", err.code)
    assert.matches("still pending", err.message)
    assert.truthy(w.now - 1000 <= 60)
  end)

  it("a device code past its expires_in ends polling with expired_token, even if the service keeps saying pending", function()
    local dev = json('{"device_code":"D","user_code":"U","verification_uri":"https://microsoft.com/devicelogin","expires_in":20,"interval":5,"message":"m"}')
    local script = { dev }
    for i = 2, 10 do script[i] = entra("authorization_pending", 70016) end
    local w = world(nil, script)
    local ok, err = w.c:sign_in()
    assert.is_nil(ok)
    assert.equal("expired_token", err.code)
    assert.matches("expired", err.message)
    assert.truthy(#w.log <= 5)
  end)

  it("a device_code callback that raises fails the sign-in with its message", function()
    local w = world({ device_code = function() error("no terminal", 0) end }, { DEVICE })
    local ok, err = w.c:sign_in()
    assert.is_nil(ok)
    assert.equal("device_code_callback_error", err.code)
    assert.matches("no terminal", err.message)
  end)

  it("an on_refresh_token that raises fails the call (the cache was not written), never echoing the token", function()
    local w = world({ on_refresh_token = function(t) error("cannot write " .. t.refresh_token, 0) end },
      { DEVICE, tokens(1) })
    local ok, err = w.c:sign_in()
    assert.is_nil(ok)
    assert.equal("on_refresh_token_error", err.code)
    assert.matches("cannot write <redacted>", err.message)
  end)

  it("checks its options", function()
    local base = { tenant = TENANT, client_id = APP, io = "external" }
    local function new(t)
      local o = {}
      for k, v in pairs(base) do o[k] = v end
      for k, v in pairs(t) do if v == false then o[k] = nil else o[k] = v end end
      return pcall(viva.client, o)
    end
    local ok, err = new { device_code = "yes" }
    assert.is_false(ok)
    assert.matches("device_code must be a function", err)
    ok, err = new { device_code = function() end, username = "u", password = "p" }
    assert.is_false(ok)
    assert.matches("not both", err)
    ok, err = new { refresh_token = "a b" }
    assert.is_false(ok)
    assert.matches("refresh_token contains whitespace", err)
    ok, err = new { device_code = function() end, tenant = false }
    assert.is_false(ok)
    assert.matches("needs tenant and client_id", err)
    ok, err = new { on_refresh_token = function() end, client_secret = "s" }
    assert.is_false(ok)
    assert.matches("on_refresh_token needs a delegated sign%-in", err)
    ok, err = new { refresh_token = "RT", token = "x" }
    assert.is_false(ok)
    assert.matches("do not go with a delegated sign%-in", err)
  end)
end)
