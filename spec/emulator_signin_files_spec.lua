-- Emulator: the sign-in files emulator/run makes at start and names in DIR/env.
local http = require("support.http")
local signin = require("support.signin")

local q = http.shell_quote
local env = signin.env

describe("emulator sign-in files (DIR/env)", function()
  it("every file exists in the run directory; the key files are private (0600)", function()
    for _, k in ipairs({ "VIVA_EMU_CERT", "VIVA_EMU_KEY", "VIVA_EMU_CERT_PEM", "VIVA_EMU_KEY_ENCRYPTED",
        "VIVA_EMU_CERT_PEM_ENCRYPTED", "VIVA_EMU_CERT_PFX", "VIVA_EMU_OTHER_CERT", "VIVA_EMU_OTHER_KEY",
        "VIVA_EMU_OIDC_CERT", "VIVA_EMU_OIDC_KEY" }) do
      assert.is_string(env[k], k)
      assert.equal(env.VIVA_EMU_DIR, env[k]:match("^(.*)/[^/]+$"), k)
      assert.is_true(http.ok("test -s " .. q(env[k])), k)
    end
    for _, k in ipairs({ "VIVA_EMU_KEY", "VIVA_EMU_CERT_PEM", "VIVA_EMU_KEY_ENCRYPTED", "VIVA_EMU_CERT_PEM_ENCRYPTED",
        "VIVA_EMU_CERT_PFX", "VIVA_EMU_OTHER_KEY", "VIVA_EMU_OIDC_KEY" }) do
      local _, mode = http.run("stat -c %a " .. q(env[k]))
      assert.equal("600\n", mode, k)
    end
  end)

  it("the combined PEM holds the certificate and its key; the encrypted key and the PFX need the password", function()
    local tp = signin.thumbprints(env.VIVA_EMU_CERT)
    assert.equal(tp.hex, signin.thumbprints(env.VIVA_EMU_CERT_PEM).hex)
    local function pub(cmd) local _, out = http.run(cmd .. " | openssl pkey -pubin -pubout 2>/dev/null"); return out end
    local want = pub("openssl x509 -in " .. q(env.VIVA_EMU_CERT) .. " -noout -pubkey")
    assert.truthy(want:find("BEGIN PUBLIC KEY", 1, true))
    assert.equal(want, pub("openssl pkey -in " .. q(env.VIVA_EMU_CERT_PEM) .. " -pubout"))
    assert.is_false(http.ok("openssl pkey -in " .. q(env.VIVA_EMU_KEY_ENCRYPTED) .. " -passin pass:wrong -noout"))
    assert.equal(want, pub("openssl pkey -in " .. q(env.VIVA_EMU_KEY_ENCRYPTED) .. " -passin " .. q("pass:" .. env.VIVA_EMU_CERT_PASSWORD) .. " -pubout"))
    assert.is_true(http.ok("openssl pkcs12 -in " .. q(env.VIVA_EMU_CERT_PFX) .. " -passin " .. q("pass:" .. env.VIVA_EMU_CERT_PASSWORD) .. " -nokeys -noout"))
    assert.is_false(http.ok("openssl pkcs12 -in " .. q(env.VIVA_EMU_CERT_PFX) .. " -passin pass:wrong -nokeys -noout"))
  end)

  it("the unregistered and the issuer certificates are other keys than the app's", function()
    local a = signin.thumbprints(env.VIVA_EMU_CERT).hex
    assert.are_not.equal(a, signin.thumbprints(env.VIVA_EMU_OTHER_CERT).hex)
    assert.are_not.equal(a, signin.thumbprints(env.VIVA_EMU_OIDC_CERT).hex)
    assert.equal("https://oidc.viva-emulator.test", env.VIVA_EMU_OIDC_ISSUER)
  end)
end)
