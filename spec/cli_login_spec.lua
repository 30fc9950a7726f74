-- `vivalearning login` / `logout` and the token cache (vivalearning.token_cache) against the
-- emulator: the device code sign-in (the emulator plays the user: device_code_auto_approve), the
-- cache file (mode 0600, per tenant/app/user, where it lives), export and providers running from
-- it without a prompt, logout, the 403 of an app token naming the fix, MFA users on the legacy
-- password grant, and no secret in any output.
local emu = require "support.emulator"
local http = require "support.http"
local signin = require "support.signin"
local cli = require "support.cli"
local cache = require "vivalearning.token_cache"
local sys = require "vivalearning.sys"
local cjson = require "cjson"

local APP = signin.PUBLIC_APP
local PUBLIC = { VIVA_CLIENT_ID = APP, VIVA_CLIENT_SECRET = false }

local function slurp(p)
  local f = io.open(p, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function approve_as(user)
  emu.settings { device_code_interval = 0, device_code_auto_approve = { user = user, after_polls = 1 } }
end

local function where(user)
  return { tenant = emu.TENANT, client_id = APP, user = user, dir = cli.TOKEN_CACHE }
end

local function run(args, env)
  local e = {}
  for k, v in pairs(PUBLIC) do e[k] = v end
  for k, v in pairs(env or {}) do e[k] = v end
  return cli.run(args, e)
end

local INSTRUCTION = "^To sign in, use a web browser to open the page https://microsoft%.com/devicelogin and enter the code %w+ to authenticate%.\n"

describe("vivalearning login / logout", function()
  before_each(function()
    emu.reset()
    os.execute("rm -rf '" .. cli.TOKEN_CACHE .. "'")
  end)

  it("login signs in with the device code (Entra's instruction on stderr) and keeps it in a 0600 file per tenant/app/user", function()
    approve_as(emu.ADELE.upn)
    local seq = emu.last_seq()
    local code, out, err = run { "login" }
    assert.equal(0, code, err)
    assert.matches(INSTRUCTION, err)
    assert.matches("signed in as adele@contoso%.onmicrosoft%.com", out)
    local path = cache.path(where(emu.ADELE.upn))
    assert.equal(cli.TOKEN_CACHE .. "/" .. emu.TENANT .. "." .. APP .. ".adele@contoso.onmicrosoft.com.json", path)
    assert.matches(path, out, 1, true)
    assert.equal(tonumber("600", 8), sys.stat(path).mode)
    assert.equal(tonumber("700", 8), sys.stat(cli.TOKEN_CACHE).mode)
    local t = cjson.decode(slurp(path))
    assert.equal(emu.ADELE.upn, t.account.username)
    assert.equal(emu.ADELE.id, t.account.oid)
    assert.is_string(t.refresh_token)
    assert.is_nil(t.access_token)
    assert.is_nil(out:find(t.refresh_token, 1, true))
    local n = 0
    for _, e in ipairs(emu.log(seq)) do if e.path:find("/devicecode$") then n = n + 1 end end
    assert.equal(1, n)
  end)

  it("later commands (export, providers) run from the cache without a prompt; logout removes it", function()
    approve_as(emu.ADELE.upn)
    assert.equal(0, (run { "login", "--device-code" }))
    emu.settings { device_code_auto_approve = cjson.null }   -- nobody would approve a new code now
    local seq = emu.last_seq()
    local code, out, err = run { "providers" }
    assert.equal(0, code, err)
    assert.matches("Contoso Academy", out)
    assert.equal("", err)
    code, out, err = run { "export", "--user", emu.LEARNER }
    assert.equal(0, code, err)
    assert.matches("^type,externalCourseActivityId", out)
    for _, e in ipairs(emu.log(seq)) do
      assert.is_nil(e.path:find("/devicecode$"))
      if e.path:find("learning") then assert.equal(emu.ADELE.id, e.user) end
    end
    code, out = run { "logout" }
    assert.equal(0, code)
    assert.matches("signed out: removed .*adele@contoso%.onmicrosoft%.com%.json", out)
    assert.is_nil(slurp(cache.path(where(emu.ADELE.upn))))
    code, _, err = run { "providers" }
    assert.equal(2, code)
    assert.matches("no credentials: no cached sign%-in .*run vivalearning login", err)
    code, out = run { "logout" }
    assert.equal(0, code)
    assert.matches("not signed in", out)
  end)

  it("keeps one sign-in per user: the last is the default, --username picks another", function()
    approve_as(emu.ADELE.upn)
    assert.equal(0, (run { "login" }))
    approve_as(signin.MEGAN.upn)                          -- an MFA user: the device code works for her
    assert.equal(0, (run { "login" }))
    assert.truthy(slurp(cache.path(where(emu.ADELE.upn))))
    assert.truthy(slurp(cache.path(where(signin.MEGAN.upn))))
    local seq = emu.last_seq()
    assert.equal(0, (run { "providers" }))
    local users = {}
    for _, e in ipairs(emu.log(seq)) do if e.path:find("learningProviders") then users[#users + 1] = e.user end end
    assert.same({ signin.MEGAN.id }, users)
    seq = emu.last_seq()
    assert.equal(0, (run { "providers", "--username", emu.ADELE.upn }))
    users = {}
    for _, e in ipairs(emu.log(seq)) do if e.path:find("learningProviders") then users[#users + 1] = e.user end end
    assert.same({ emu.ADELE.id }, users)
    assert.equal(0, (run { "logout", "--username", emu.ADELE.upn }))
    assert.is_nil(slurp(cache.path(where(emu.ADELE.upn))))
    assert.truthy(slurp(cache.path(where(signin.MEGAN.upn))))
  end)

  it("a revoked sign-in says to sign in again", function()
    approve_as(emu.ADELE.upn)
    assert.equal(0, (run { "login" }))
    assert(http.post(emu.http .. "/_emulator/refresh_tokens/revoke", { json = { user = emu.ADELE.upn } }).status == 200)
    local code, _, err = run { "providers" }
    assert.equal(2, code)
    assert.matches("sign in again %(vivalearning login%)", err)
    assert.matches("AADSTS50173", err)
  end)

  it("a code nobody approves expires: login exits 2 and writes nothing", function()
    emu.settings { device_code_interval = 1, device_code_lifetime = 1 }
    local code, _, err = run { "login" }
    assert.equal(2, code)
    assert.matches("expired", err)
    assert.is_nil(slurp(cli.TOKEN_CACHE .. "/" .. emu.TENANT .. "." .. APP .. ".default"))
  end)

  it("the legacy password grant: login works for a user without MFA and names the device code for MFA users", function()
    local CON = { VIVA_CLIENT_ID = emu.APPS.console.client_id, VIVA_CLIENT_SECRET = emu.APPS.console.client_secret }
    local code, out, err = cli.run({ "login", "--username", emu.ADELE.upn }, { VIVA_CLIENT_ID = CON.VIVA_CLIENT_ID,
      VIVA_CLIENT_SECRET = CON.VIVA_CLIENT_SECRET, VIVA_PASSWORD = emu.ADELE.password })
    assert.equal(0, code, err)
    assert.matches("signed in as adele", out)
    assert.is_nil(out:find(emu.ADELE.password, 1, true))
    for _, u in ipairs { { signin.MEGAN, "AADSTS50076" }, { signin.NESTOR, "AADSTS50079" } } do
      code, out, err = cli.run({ "login", "--username", u[1].upn }, { VIVA_CLIENT_ID = CON.VIVA_CLIENT_ID,
        VIVA_CLIENT_SECRET = CON.VIVA_CLIENT_SECRET, VIVA_PASSWORD = u[1].password })
      assert.equal(2, code)
      assert.matches("needs multi%-factor sign%-in.*use the device code", err)
      assert.matches(u[2], err)
      assert.is_nil((out .. err):find(u[1].password, 1, true))
      assert.is_nil((out .. err):find(CON.VIVA_CLIENT_SECRET, 1, true))
    end
  end)

  it("export --user and providers with an app token: Graph's 403, with the fix named", function()
    local code, _, err = cli.run { "export", "--user", emu.LEARNER }
    assert.equal(1, code)
    assert.matches("403", err)
    assert.matches("listing a learner's activities needs a delegated sign%-in: run vivalearning login", err)
    code, _, err = cli.run { "providers" }
    assert.equal(1, code)
    assert.matches("provider operations need a delegated sign%-in: run vivalearning login", err)
  end)

  it("no refresh token, device code or access token in the output, --verbose or --log", function()
    approve_as(emu.ADELE.upn)
    local log = os.tmpname()
    local code, out, err = run { "login", "--verbose", "--log", log }
    assert.equal(0, code, err)
    local rt = cache.load(where()).refresh_token
    local code2, out2, err2 = run { "export", "--user", emu.LEARNER, "--verbose", "--log", log }
    assert.equal(0, code2, err2)
    local rt2 = cache.load(where()).refresh_token          -- rotated by the export's refresh
    assert.not_equal(rt, rt2)
    local all = table.concat({ out, err, out2, err2, slurp(log) }, "\n")
    assert.matches("/oauth2/v2.0/devicecode", all)        -- the log has the sign-in's requests
    for _, s in ipairs { rt, rt2 } do assert.is_nil(all:find(s, 1, true)) end
    assert.is_nil(all:find("refresh_token", 1, true))
    assert.is_nil(all:find("device_code=", 1, true))
    assert.is_nil(all:find("Bearer ", 1, true))
    os.remove(log)
  end)
end)

describe("vivalearning.token_cache", function()
  it("lives in VIVA_TOKEN_CACHE, else $XDG_CACHE_HOME/vivalearning, else ~/.cache/vivalearning", function()
    assert.equal("/x/c", cache.dir { env = { VIVA_TOKEN_CACHE = "/x/c", XDG_CACHE_HOME = "/x/x", HOME = "/h" } })
    assert.equal("/x/x/vivalearning", cache.dir { env = { XDG_CACHE_HOME = "/x/x", HOME = "/h" } })
    assert.equal("/h/.cache/vivalearning", cache.dir { env = { HOME = "/h" } })
    assert.equal("/o", cache.dir { dir = "/o", env = { VIVA_TOKEN_CACHE = "/x/c" } })
    local d, err = cache.dir { env = {} }
    assert.is_nil(d)
    assert.matches("VIVA_TOKEN_CACHE", err)
  end)

  it("names files so no tenant, app or user can escape the directory", function()
    local p = cache.path { dir = "/c", tenant = "../t", client_id = "a/b", user = "u/../x" }
    assert.equal("/c/..%2Ft.a%2Fb.u%2F..%2Fx.json", p)
    assert.has_error(function() cache.path { dir = "/c", tenant = "t", client_id = "a" } end, "token_cache: user is required")
  end)

  it("writes atomically with mode 0600 from creation, and replaces the file on each rotation", function()
    local dir = os.tmpname() .. "-tc"
    local claims = signin.b64url(cjson.encode { preferred_username = "u@x", oid = "o1" })
    local o = { dir = dir .. "/a/b", tenant = "t", client_id = "c" }
    local e = assert(cache.save(o, { refresh_token = "R1", id_token = "h." .. claims .. ".s" }))
    assert.equal(tonumber("600", 8), sys.stat(e.path).mode)
    assert.equal(tonumber("700", 8), sys.stat(dir .. "/a/b").mode)
    local hook, state = cache.hook(o, e.account)
    hook { refresh_token = "R2" }                          -- a refresh answer without an id token
    assert.equal("R2", cache.load(o).refresh_token)
    assert.equal("u@x", state.entry.account.username)
    assert.equal(tonumber("600", 8), sys.stat(e.path).mode)
    local p = io.popen("ls -a '" .. dir .. "/a/b'")
    local names = p:read("*a")
    p:close()
    assert.is_nil(names:find("tmp", 1, true))              -- no temporary file left behind
    assert.truthy(cache.remove(o))
    assert.is_nil(cache.load(o))
    os.execute("rm -rf '" .. dir .. "'")
  end)
end)
