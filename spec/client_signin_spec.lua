-- Sign-in methods of the client against the emulator: certificate (RS256/PS256, PEM, encrypted
-- key, PFX), workload identity federation (the token file re-read at each fetch), managed
-- identity (IMDS and App Service), the credential chain from the AZURE_* environment, and no
-- secret, key, assertion or token in any error, log line or tostring.
local viva = require "vivalearning"
local core = require "vivalearning.core"
local sys = require "vivalearning.sys"
local cjson = require "cjson"
local emu = require "support.emulator"
local http = require "support.http"
local signin = require "support.signin"

local E = signin.env

local function read(p) local f = assert(io.open(p, "rb")); local s = f:read("*a"); f:close(); return s end
local function write(p, s) local f = assert(io.open(p, "wb")); f:write(s); f:close() end

local function options(over)
  local o = { graph_url = emu.graph_url, authority_url = emu.authority_url, ca_file = emu.ca,
              tenant = emu.TENANT, max_retries = 3, backoff = { base = 0.01, cap = 0.05 } }
  for k, v in pairs(over or {}) do if v == false then o[k] = nil else o[k] = v end end
  return o
end
local function merged(a, b) local o = {}; for k, v in pairs(a) do o[k] = v end; for k, v in pairs(b or {}) do o[k] = v end; return o end
local function cert_client(over)
  return viva.client(options(merged({ client_id = signin.CERT_APP }, over)))
end

local function requests(seq, pattern)
  local n = 0
  for _, e in ipairs(emu.log(seq)) do if e.path:find(pattern) then n = n + 1 end end
  return n
end

local function b64url_decode(s)
  local B = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
  -- six bits a character, written out in binary (no bit operators: this parses on 5.1 and LuaJIT)
  local bits = s:gsub(".", function(ch) local i = B:find(ch, 1, true) - 1; local r = ""
    for j = 5, 0, -1 do r = r .. math.floor(i / 2 ^ j) % 2 end; return r end)
  return (bits:gsub("%d%d%d?%d?%d?%d?%d?%d?", function(b) if #b < 8 then return "" end return string.char(tonumber(b, 2)) end))
end
local function form_decode(body)
  local t = {}
  for k, v in body:gmatch("([^&=]+)=([^&]*)") do
    t[k] = v:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  end
  return t
end
local function form_encode(t)
  local out = {}
  for k, v in pairs(t) do
    out[#out + 1] = k .. "=" .. tostring(v):gsub("[^%w%-%._~]", function(ch) return string.format("%%%02X", ch:byte()) end)
  end
  return table.concat(out, "&")
end

-- A client whose requests go through a Lua driver to the emulator (io = "external"); edit(form)
-- may change a token request's form on the way (a spec playing a bad client assertion).
local function forwarding(over, edit, seen)
  local o = options(merged({ client_id = signin.CERT_APP, io = "external" }, over))
  o.driver = function(c)
    for _, req in ipairs(c:take()) do
      local body = req.body
      if body and req.url:find("/oauth2/v2.0/token", 1, true) then
        local f = form_decode(body)
        if seen then seen[#seen + 1] = f end
        if edit then body = form_encode(edit(f) or f) end
      end
      local res = http.request { method = req.method, url = req.url, headers = req.headers, body = body, cacert = emu.ca }
      c:deliver(req.id, { status = res.status, headers = res.headers, body = res.body })
    end
  end
  return viva.client(o)
end

local function jwt_parts(jwt)
  local h, c = jwt:match("^([^.]+)%.([^.]+)%.[^.]+$")
  return cjson.decode(b64url_decode(h)), cjson.decode(b64url_decode(c))
end

-- Environment for one spec, restored afterwards.
local saved = {}
local function setenv(k, v)
  if saved[k] == nil then saved[k] = { os.getenv(k) } end
  sys.setenv(k, v)
end
local function restore_env()
  for k, v in pairs(saved) do sys.setenv(k, v[1]) end
  saved = {}
end

-- no secret, key, assertion or token in an error, a log line or tostring
local function assert_clean(s, secrets)
  s = tostring(s)
  for _, x in ipairs(secrets) do
    if x and #x > 8 then assert.is_nil(s:find(x, 1, true), "a secret shows in: " .. s) end
  end
end

describe("client sign-in", function()
  before_each(function() emu.reset() end)
  after_each(restore_env)

  describe("certificate", function()
    it("signs in with a PEM certificate and key (RS256 by default)", function()
      local c = cert_client { certificate = { cert = read(E.VIVA_EMU_CERT), key = read(E.VIVA_EMU_KEY) } }
      assert(c:get_content(emu.PROVIDER, emu.CONTENT))
      local cr = c:credential()
      assert.equal("certificate", cr.method)
      assert.equal("RS256", cr.alg)
      assert.equal(signin.thumbprints(E.VIVA_EMU_CERT).hex, cr.thumbprint)
      c:close()
    end)

    it("signs in with PS256, from certificate_path (one PEM file with both)", function()
      local c = cert_client { certificate_path = E.VIVA_EMU_CERT_PEM, certificate = false }
      assert.equal("RS256", c:credential().alg)
      c:close()
      c = cert_client { certificate = { path = E.VIVA_EMU_CERT_PEM, alg = "PS256" } }
      assert.equal("PS256", c:credential().alg)
      assert(c:get_content(emu.PROVIDER, emu.CONTENT))
      c:close()
    end)

    it("reads an encrypted key with its password, and a PFX file", function()
      local pw = E.VIVA_EMU_CERT_PASSWORD
      local c = cert_client { certificate_path = E.VIVA_EMU_CERT_PEM_ENCRYPTED, certificate_password = pw }
      assert(c:get_content(emu.PROVIDER, emu.CONTENT))
      c:close()
      c = cert_client { certificate = { path = E.VIVA_EMU_CERT, key_path = E.VIVA_EMU_KEY_ENCRYPTED, password = pw, alg = "PS256" } }
      assert(c:get_content(emu.PROVIDER, emu.CONTENT))
      c:close()
      c = cert_client { certificate_path = E.VIVA_EMU_CERT_PFX, certificate_password = pw }
      assert(c:get_content(emu.PROVIDER, emu.CONTENT))
      c:close()
    end)

    it("names the problem of a bad certificate at construction, never the password or key", function()
      local pw = E.VIVA_EMU_CERT_PASSWORD
      local key = read(E.VIVA_EMU_KEY)
      local function err(o) local ok, e = pcall(cert_client, o); assert.is_false(ok); assert_clean(e, { pw, key, "wrong-" .. pw }); return e end
      assert.matches("certificate: the private key cannot be read %(a PEM private key expected; wrong or missing password%?%)",
        err { certificate_path = E.VIVA_EMU_CERT_PEM_ENCRYPTED })
      assert.matches("wrong or missing password", err { certificate_path = E.VIVA_EMU_CERT_PEM_ENCRYPTED, certificate_password = "wrong-" .. pw })
      assert.matches("PKCS#12 %(.pfx%) file cannot be opened", err { certificate_path = E.VIVA_EMU_CERT_PFX, certificate_password = "wrong-" .. pw })
      assert.matches("the private key does not belong to the certificate",
        err { certificate = { cert = read(E.VIVA_EMU_CERT), key = read(E.VIVA_EMU_OTHER_KEY) } })
      assert.matches("the certificate cannot be read", err { certificate = { cert = key } })
      assert.equal("viva.client: certificate_path /nonexistent.pem cannot be read: No such file or directory",
        err { certificate_path = "/nonexistent.pem" })
      assert.equal('viva.client: certificate.alg must be "RS256" or "PS256"', err { certificate = { path = E.VIVA_EMU_CERT_PEM, alg = "ES256" } })
      assert.equal("viva.client: certificate needs tenant and client_id", err { certificate_path = E.VIVA_EMU_CERT_PEM, tenant = false })
    end)

    it("sends a jwt-bearer assertion: x5t and x5t#S256, aud = the token URL, iss = sub = client id, a new jti each time", function()
      local seen = {}
      local c = forwarding({ certificate = { path = E.VIVA_EMU_CERT_PEM, alg = "PS256" } }, nil, seen)
      assert(c:get_content(emu.PROVIDER, emu.CONTENT))
      emu.expire_tokens()
      assert(c:get_content(emu.PROVIDER, emu.CONTENT))
      assert.equal(2, #seen)
      local tp = signin.thumbprints(E.VIVA_EMU_CERT)
      local jtis = {}
      for _, f in ipairs(seen) do
        assert.equal(signin.JWT_BEARER, f.client_assertion_type)
        assert.equal("client_credentials", f.grant_type)
        assert.is_nil(f.client_secret)
        local h, cl = jwt_parts(f.client_assertion)
        assert.same({ alg = "PS256", typ = "JWT", x5t = tp.x5t, ["x5t#S256"] = tp.s256 }, h)
        assert.equal(emu.authority_url .. "/" .. emu.TENANT .. "/oauth2/v2.0/token", cl.aud)
        assert.equal(signin.CERT_APP, cl.iss)
        assert.equal(signin.CERT_APP, cl.sub)
        assert.equal(600, cl.exp - cl.nbf)
        assert.truthy(math.abs(cl.nbf - os.time()) < 60)
        assert.matches("^%x+%-%x+%-4%x+%-[89ab]%x+%-%x+$", cl.jti)
        jtis[cl.jti] = true
      end
      assert.equal(2, (function() local n = 0; for _ in pairs(jtis) do n = n + 1 end; return n end)())
      c:close()
    end)

    -- The emulator's answers to assertions the client would never make, delivered to the client:
    -- each becomes an auth error with Entra's code, without the assertion.
    local function failing(edit)
      local sent = {}
      local c = forwarding({ certificate = { path = E.VIVA_EMU_CERT_PEM } }, edit, sent)
      local ok, e = c:get_content(emu.PROVIDER, emu.CONTENT)
      c:close()
      assert.is_nil(ok)
      assert.equal("auth", e.kind)
      for _, f in ipairs(sent) do assert_clean(e, { f.client_assertion }); assert_clean(tostring(e), { f.client_assertion }) end
      return e
    end

    it("reports an unregistered certificate (700027), a wrong audience (50012), an expired assertion (700024)", function()
      local e = failing(function(f)
        f.client_assertion = signin.cert_assertion { alg = "RS256", cert = E.VIVA_EMU_OTHER_CERT, key = E.VIVA_EMU_OTHER_KEY, base = emu.authority_url }
      end)
      assert.equal(401, e.status); assert.equal("invalid_client", e.code); assert.equal(700027, e.aadsts)
      e = failing(function(f) f.client_assertion = signin.cert_assertion { aud = "https://login.microsoftonline.com/x/oauth2/v2.0/token" } end)
      assert.equal(401, e.status); assert.equal(50012, e.aadsts)
      e = failing(function(f)
        f.client_assertion = signin.cert_assertion { base = emu.authority_url, claims = { nbf = os.time() - 7200, iat = os.time() - 7200, exp = os.time() - 3600 } }
      end)
      assert.equal(401, e.status); assert.equal(700024, e.aadsts)
      assert.matches("not within its valid time range", e.message)
    end)

    it("reports a replayed jti (50013): an assertion already used", function()
      local seen = {}
      local c = forwarding({ certificate = { path = E.VIVA_EMU_CERT_PEM } }, nil, seen)
      assert(c:get_content(emu.PROVIDER, emu.CONTENT))
      c:close()
      local used = seen[1].client_assertion
      local e = failing(function(f) f.client_assertion = used end)
      assert.equal(401, e.status); assert.equal("invalid_client", e.code); assert.equal(50013, e.aadsts)
      assert_clean(e, { used })
    end)
  end)
  describe("workload identity federation", function()
    local file
    before_each(function() file = os.tmpname() end)
    after_each(function() os.remove(file) end)
    local function wi_client(over)
      return viva.client(options(merged({ client_id = signin.WORKLOAD_APP, federated_token_file = file }, over)))
    end

    it("signs in with the token in federated_token_file, and re-reads it at each fetch (rotation)", function()
      local good = signin.federated_token()
      write(file, good .. "\n")
      local c = wi_client()
      assert.equal("client_assertion", c:credential().method)
      assert(c:get_content(emu.PROVIDER, emu.CONTENT))
      -- rotated to a token of a subject the app does not trust: the next fetch sends it
      local other = signin.federated_token { subject = "system:serviceaccount:lms:other" }
      write(file, other)
      emu.expire_tokens()
      local ok, e = c:get_content(emu.PROVIDER, emu.CONTENT)
      assert.is_nil(ok)
      assert.equal("auth", e.kind); assert.equal(401, e.status); assert.equal(700213, e.aadsts)
      assert_clean(e, { good, other }); assert_clean(tostring(e), { good, other })
      -- rotated again to a good one: the client recovers without being rebuilt
      write(file, signin.federated_token())
      assert(c:get_content(emu.PROVIDER, emu.CONTENT))
      c:close()
    end)

    it("reports a missing or empty token file and an unknown issuer, never the token", function()
      local c = wi_client { federated_token_file = "/nonexistent/token" }
      local ok, e = c:get_content(emu.PROVIDER, emu.CONTENT)
      assert.is_nil(ok)
      assert.equal("client_assertion_failed", e.code)
      assert.matches("federated_token_file /nonexistent/token cannot be read: No such file or directory", e.message)
      c:close()
      write(file, "  \n")
      c = wi_client()
      ok, e = c:get_content(emu.PROVIDER, emu.CONTENT)
      assert.is_nil(ok)
      assert.matches("federated_token_file .* is empty", e.message)
      c:close()
      -- a token signed by the certificate app's key, claiming another issuer: 700211
      local forged = signin.jwt({ alg = "RS256", typ = "JWT" }, { iss = "https://evil.example", sub = signin.FIC_SUBJECT,
        aud = { signin.FIC_AUDIENCE }, exp = os.time() + 600, nbf = os.time() }, E.VIVA_EMU_KEY)
      write(file, forged)
      c = wi_client()
      ok, e = c:get_content(emu.PROVIDER, emu.CONTENT)
      assert.is_nil(ok)
      assert.equal(700211, e.aadsts)
      assert_clean(e, { forged })
      c:close()
    end)
  end)

  describe("managed identity", function()
    local function mi_requests(seq) return requests(seq, "^/metadata/identity/oauth2/token") end

    it("the default IMDS address is only a string here; every spec points it at the emulator", function()
      local c = core.client { managed_identity = {} }
      assert.equal("http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fgraph.microsoft.com",
        c:credential().url)
      c:close()
      assert.equal(E.VIVA_EMU_IMDS, os.getenv("AZURE_POD_IDENTITY_AUTHORITY_HOST"))
      c = viva.client(options { managed_identity = true, tenant = false })
      assert.equal(E.VIVA_EMU_IMDS .. "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fgraph.microsoft.com",
        c:credential().url)
      assert.equal("imds", c:credential().source)
      c:close()
    end)

    it("IMDS: system-assigned and user-assigned (by client id), Metadata: true", function()
      local seq = emu.last_seq()
      local c = viva.client(options { managed_identity = true, tenant = false })
      assert(c:get_content(emu.PROVIDER, emu.CONTENT))
      c:close()
      local sent
      for _, e in ipairs(emu.log(seq)) do if e.path:find("^/metadata/") then sent = e end end
      assert.equal("GET", sent.method)
      assert.equal("true", sent.headers.metadata)
      c = viva.client(options { managed_identity = signin.MI_USER, tenant = false })
      assert.truthy(c:credential().url:find("&client_id=" .. signin.MI_USER, 1, true))
      -- the user-assigned identity only reads: a read works
      assert(c:get_content(emu.PROVIDER, emu.CONTENT))
      c:close()
    end)

    it("IMDS: retries 410 and 500 (the identity endpoint is updating), fails at once on 400 (identity not found)", function()
      emu.fault { path = "^/metadata/identity/oauth2/token$", status = 410, count = 1 }
      emu.fault { path = "^/metadata/identity/oauth2/token$", status = 500, count = 1 }
      local seq = emu.last_seq()
      local c = viva.client(options { managed_identity = true, tenant = false })
      assert(c:get_content(emu.PROVIDER, emu.CONTENT))
      assert.equal(3, mi_requests(seq))
      c:close()
      emu.clear_faults()
      seq = emu.last_seq()
      c = viva.client(options { managed_identity = "e0000000-0000-4000-8000-00000000dead", tenant = false })
      local ok, e = c:get_content(emu.PROVIDER, emu.CONTENT)
      assert.is_nil(ok)
      assert.equal("auth", e.kind); assert.equal(400, e.status)
      assert.matches("^managed identity token request failed with HTTP 400: Identity not found", e.message)
      assert.equal(1, mi_requests(seq))
      c:close()
    end)

    it("IMDS: refreshes at half-life a token of 2 h or more, ahead of expiry a shorter one", function()
      emu.settings { managed_identity_token_lifetime = 3 }
      local c = viva.client(options { managed_identity = true, tenant = false })
      assert(c:get_content(emu.PROVIDER, emu.CONTENT))
      local seq = emu.last_seq()
      os.execute("sleep 3.3")
      assert(c:get_content(emu.PROVIDER, emu.CONTENT))
      assert.equal(1, mi_requests(seq))
      c:close()
    end)

    it("IMDS: refreshes a token of 2 h or more at half-life (by the client's clock)", function()
      emu.settings { managed_identity_token_lifetime = 7200 }
      local now, fetches = 1000, 0
      local o = options { managed_identity = true, tenant = false, io = "external" }
      o.clock = function() return now end
      o.driver = function(c)
        for _, req in ipairs(c:take()) do
          if req.url:find("/metadata/identity/", 1, true) then fetches = fetches + 1 end
          local res = http.request { method = req.method, url = req.url, headers = req.headers, body = req.body, cacert = emu.ca }
          c:deliver(req.id, { status = res.status, headers = res.headers, body = res.body })
        end
      end
      local c = viva.client(o)
      assert(c:get_content(emu.PROVIDER, emu.CONTENT))
      assert.equal(1, fetches)
      now = now + 3500
      assert(c:get_content(emu.PROVIDER, emu.CONTENT))
      assert.equal(1, fetches)
      now = now + 200      -- past half of the 7200 s
      assert(c:get_content(emu.PROVIDER, emu.CONTENT))
      assert.equal(2, fetches)
      c:close()
    end)

    it("App Service: IDENTITY_ENDPOINT and IDENTITY_HEADER, X-IDENTITY-HEADER never in an error", function()
      setenv("IDENTITY_ENDPOINT", E.VIVA_EMU_IDENTITY_ENDPOINT)
      setenv("IDENTITY_HEADER", E.VIVA_EMU_IDENTITY_HEADER)
      local seq = emu.last_seq()
      local c = viva.client(options { managed_identity = true, tenant = false })
      assert.equal("app_service", c:credential().source)
      assert(c:get_content(emu.PROVIDER, emu.CONTENT))
      assert.equal(1, requests(seq, "^/msi/token"))
      assert_clean(tostring(c), { E.VIVA_EMU_IDENTITY_HEADER })
      assert_clean(cjson.encode(c:credential()), { E.VIVA_EMU_IDENTITY_HEADER })
      c:close()
      -- a wrong header: 401, said without the header
      setenv("IDENTITY_HEADER", "wrong-" .. E.VIVA_EMU_IDENTITY_HEADER)
      c = viva.client(options { managed_identity = true, tenant = false })
      local ok, e = c:get_content(emu.PROVIDER, emu.CONTENT)
      assert.is_nil(ok)
      assert.equal(401, e.status)
      assert_clean(e, { "wrong-" .. E.VIVA_EMU_IDENTITY_HEADER }); assert_clean(tostring(e), { "wrong-" .. E.VIVA_EMU_IDENTITY_HEADER })
      c:close()
      -- IDENTITY_ENDPOINT without IDENTITY_HEADER: said at construction
      setenv("IDENTITY_HEADER", nil)
      assert.has_error(function() viva.client(options { managed_identity = true, tenant = false }) end,
        "viva.client: managed_identity.identity_endpoint needs identity_header (IDENTITY_HEADER is not set)")
    end)
  end)

  it("keeps keys, passwords, assertions, federated tokens, the identity header and tokens out of the log hook", function()
    local file = os.tmpname()
    local fed = signin.federated_token()
    write(file, fed)
    local events, outs = {}, {}
    local function log(e) events[#events + 1] = e end
    local clients = {
      cert_client { certificate_path = E.VIVA_EMU_CERT_PEM_ENCRYPTED, certificate_password = E.VIVA_EMU_CERT_PASSWORD, log = log },
      viva.client(options { client_id = signin.WORKLOAD_APP, federated_token_file = file, log = log }),
      viva.client(options { tenant = false, log = log, managed_identity = { identity_endpoint = E.VIVA_EMU_IDENTITY_ENDPOINT,
        identity_header = E.VIVA_EMU_IDENTITY_HEADER } }),
      viva.client(options { tenant = false, log = log, managed_identity = { identity_endpoint = E.VIVA_EMU_IDENTITY_ENDPOINT,
        identity_header = "wrong-" .. E.VIVA_EMU_IDENTITY_HEADER } }),
    }
    for _, c in ipairs(clients) do
      local _, e1 = c:get_content(emu.PROVIDER, emu.CONTENT)
      local _, e2 = c:get("00000000-0000-4000-8000-000000000001")
      outs[#outs + 1] = tostring(e1) .. tostring(e2) .. tostring(c) .. cjson.encode(c:credential())
      c:close()
    end
    os.remove(file)
    assert.is_true(#events >= 6)
    for _, ev in ipairs(events) do
      local t = {}
      for k, v in pairs(ev) do t[#t + 1] = tostring(k) .. "=" .. tostring(v) end
      outs[#outs + 1] = table.concat(t, " ")
    end
    local key = read(E.VIVA_EMU_KEY):match("\n([^\n]+)\n")    -- a line of the key's base64
    assert_clean(table.concat(outs, "\n"), { E.VIVA_EMU_CERT_PASSWORD, fed, E.VIVA_EMU_IDENTITY_HEADER, key })
    assert.is_nil(table.concat(outs, "\n"):find("eyJ", 1, true))    -- no JWT (assertion or token) at all
  end)

  describe("credential chain", function()
    local function bare() return { graph_url = emu.graph_url, authority_url = emu.authority_url, ca_file = emu.ca } end
    before_each(function()
      for _, k in ipairs { "AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
                           "AZURE_CLIENT_CERTIFICATE_PASSWORD", "AZURE_FEDERATED_TOKEN_FILE", "IDENTITY_ENDPOINT",
                           "IDENTITY_HEADER", "AZURE_TOKEN_CREDENTIALS", "AZURE_AUTHORITY_HOST" } do setenv(k, nil) end
      setenv("AZURE_TENANT_ID", emu.TENANT)
    end)

    it("environment: AZURE_CLIENT_SECRET, then AZURE_CLIENT_CERTIFICATE_PATH (+ password)", function()
      setenv("AZURE_CLIENT_ID", emu.APPS.importer.client_id)
      setenv("AZURE_CLIENT_SECRET", emu.APPS.importer.client_secret)
      setenv("AZURE_CLIENT_CERTIFICATE_PATH", E.VIVA_EMU_CERT_PEM)
      local c = viva.client(bare())
      assert.equal("client_secret", c:credential().method)
      assert(c:get_content(emu.PROVIDER, emu.CONTENT))
      c:close()
      setenv("AZURE_CLIENT_SECRET", nil)
      setenv("AZURE_CLIENT_ID", signin.CERT_APP)
      setenv("AZURE_CLIENT_CERTIFICATE_PATH", E.VIVA_EMU_CERT_PFX)
      setenv("AZURE_CLIENT_CERTIFICATE_PASSWORD", E.VIVA_EMU_CERT_PASSWORD)
      c = viva.client(bare())
      assert.equal("certificate", c:credential().method)
      assert(c:get_content(emu.PROVIDER, emu.CONTENT))
      c:close()
    end)

    it("workload identity: AZURE_FEDERATED_TOKEN_FILE", function()
      local file = os.tmpname()
      write(file, signin.federated_token())
      setenv("AZURE_CLIENT_ID", signin.WORKLOAD_APP)
      setenv("AZURE_FEDERATED_TOKEN_FILE", file)
      local c = viva.client(bare())
      assert.equal("client_assertion", c:credential().method)
      assert(c:get_content(emu.PROVIDER, emu.CONTENT))
      c:close()
      os.remove(file)
    end)

    it("managed identity only when the environment says so (App Service, or AZURE_TOKEN_CREDENTIALS)", function()
      setenv("AZURE_TENANT_ID", nil)
      assert.has_error(function() viva.client(bare()) end)
      setenv("AZURE_TOKEN_CREDENTIALS", "ManagedIdentityCredential")
      local c = viva.client(bare())
      assert.equal("managed_identity", c:credential().method)
      assert.equal("imds", c:credential().source)
      assert(c:get_content(emu.PROVIDER, emu.CONTENT))
      c:close()
      setenv("AZURE_TOKEN_CREDENTIALS", nil)
      setenv("IDENTITY_ENDPOINT", E.VIVA_EMU_IDENTITY_ENDPOINT)
      setenv("IDENTITY_HEADER", E.VIVA_EMU_IDENTITY_HEADER)
      setenv("AZURE_CLIENT_ID", signin.MI_USER)
      c = viva.client(bare())
      assert.equal("app_service", c:credential().source)
      assert.truthy(c:credential().url:find("&client_id=" .. signin.MI_USER, 1, true))
      assert(c:get_content(emu.PROVIDER, emu.CONTENT))
      c:close()
    end)

    it("delegated cache: with nothing else given, the last sign-in kept for this tenant and app", function()
      local dir = os.tmpname()
      os.remove(dir)
      setenv("VIVA_TOKEN_CACHE", dir)
      setenv("AZURE_CLIENT_ID", signin.PUBLIC_APP)
      -- nothing kept yet: the chain has no source left
      assert.has_error(function() viva.client(bare()) end)
      emu.settings { device_code_interval = 0 }
      local cache = require "vivalearning.token_cache"
      local keep = cache.hook { tenant = emu.TENANT, client_id = signin.PUBLIC_APP }
      local first = viva.client(merged(bare(), { tenant = emu.TENANT, client_id = signin.PUBLIC_APP,
        on_refresh_token = keep,
        device_code = function(info)
          local res = http.post(emu.http .. "/_emulator/devicecode/approve",
            { json = { user_code = info.user_code, user = emu.ADELE.upn } })
          assert(res.status < 300, res.body)
        end }))
      assert.is_true(first:sign_in())
      first:close()
      local seq = emu.last_seq()
      local c = viva.client(bare())
      assert(c:providers_page{})                     -- delegated only: it is Adele's token
      local log = emu.log(seq)
      for _, e in ipairs(log) do assert.is_nil(e.path:find("/devicecode$"), "no new prompt") end
      assert.equal(emu.ADELE.id, log[#log].user)
      c:close()
      os.execute("rm -rf '" .. dir .. "'")
    end)

    it("an explicit credential wins over the environment; the chain's sources are named", function()
      setenv("AZURE_CLIENT_ID", signin.CERT_APP)
      setenv("AZURE_CLIENT_CERTIFICATE_PATH", E.VIVA_EMU_CERT_PEM)
      local c = viva.client(merged(bare(), { token = emu.token("importer") }))
      assert.equal("token", c:credential().method)
      c:close()
      local names = {}
      for _, src in ipairs(viva.credential.sources) do names[#names + 1] = src.name end
      assert.same({ "environment", "workload_identity", "managed_identity", "delegated_cache" }, names)
    end)
  end)
end)
