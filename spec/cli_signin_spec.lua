-- The command's sign-in flags against the emulator: --certificate (+ --certificate-password),
-- --federated-token-file, --managed-identity [CLIENT_ID], and the AZURE_* chain without flags.
-- The child inherits AZURE_POD_IDENTITY_AUTHORITY_HOST from spec/helper.lua (the emulator's IMDS).
local emu = require "support.emulator"
local cli = require "support.cli"
local signin = require "support.signin"

local E = signin.env
local PROVIDER = emu.PROVIDER
local NO_SECRET = { VIVA_CLIENT_SECRET = false }

local function vl(args, env)
  local e = { VIVA_CLIENT_SECRET = false }
  for k, v in pairs(env or {}) do e[k] = v end
  return cli.run(args, e)
end

describe("vivalearning sign-in flags", function()
  before_each(function() emu.reset() end)

  it("--certificate FILE: a PEM file, an encrypted one with --certificate-password, a PFX", function()
    local code, out, err = vl({ "contents", "--provider", PROVIDER, "--certificate", E.VIVA_EMU_CERT_PEM },
      { VIVA_CLIENT_ID = signin.CERT_APP })
    assert.equal(0, code, err)
    assert.matches(emu.CONTENT, out, 1, true)
    code, _, err = vl({ "contents", "--provider", PROVIDER, "--certificate", E.VIVA_EMU_CERT_PFX },
      { VIVA_CLIENT_ID = signin.CERT_APP, VIVA_CLIENT_CERTIFICATE_PASSWORD = E.VIVA_EMU_CERT_PASSWORD })
    assert.equal(0, code, err)
    code, _, err = vl({ "contents", "--provider", PROVIDER, "--certificate", E.VIVA_EMU_CERT_PEM_ENCRYPTED,
      "--certificate-password", "wrong-password" }, { VIVA_CLIENT_ID = signin.CERT_APP })
    assert.equal(2, code)
    assert.matches("wrong or missing password", err)
    assert.is_nil(err:find("wrong-password", 1, true))
    code, _, err = vl({ "contents", "--provider", PROVIDER, "--certificate-password", "x" })
    assert.equal(2, code)
    assert.matches("%-%-certificate%-password needs %-%-certificate", err)
  end)

  it("--federated-token-file FILE", function()
    local file = os.tmpname()
    local f = assert(io.open(file, "w")); f:write(signin.federated_token()); f:close()
    local code, out, err = vl({ "contents", "--provider", PROVIDER, "--federated-token-file", file },
      { VIVA_CLIENT_ID = signin.WORKLOAD_APP })
    os.remove(file)
    assert.equal(0, code, err)
    assert.matches(emu.CONTENT, out, 1, true)
  end)

  it("--managed-identity [CLIENT_ID]: IMDS (the emulator's, through the override), App Service", function()
    local code, out, err = vl({ "contents", "--provider", PROVIDER, "--managed-identity" }, { VIVA_CLIENT_ID = false, VIVA_TENANT_ID = false })
    assert.equal(0, code, err)
    assert.matches(emu.CONTENT, out, 1, true)
    code, _, err = vl({ "contents", "--provider", PROVIDER, "--managed-identity", "e0000000-0000-4000-8000-00000000dead" })
    assert.equal(2, code)
    assert.matches("managed identity token request failed with HTTP 400: Identity not found", err)
    code, _, err = vl({ "contents", "--provider", PROVIDER, "--managed-identity=" .. signin.MI_USER },
      { IDENTITY_ENDPOINT = E.VIVA_EMU_IDENTITY_ENDPOINT, IDENTITY_HEADER = E.VIVA_EMU_IDENTITY_HEADER })
    assert.equal(0, code, err)
  end)

  it("without credential flags or VIVA_* secrets: the AZURE_* variables; else names every way", function()
    local code, out, err = vl({ "contents", "--provider", PROVIDER },
      { VIVA_TENANT_ID = false, VIVA_CLIENT_ID = false, AZURE_TENANT_ID = emu.TENANT, AZURE_CLIENT_ID = signin.CERT_APP,
        AZURE_CLIENT_CERTIFICATE_PATH = E.VIVA_EMU_CERT_PEM })
    assert.equal(0, code, err)
    assert.matches(emu.CONTENT, out, 1, true)
    code, _, err = vl({ "contents", "--provider", PROVIDER }, NO_SECRET)
    assert.equal(2, code)
    assert.matches("no credentials: .*give %-%-client%-secret .*%-%-certificate, %-%-federated%-token%-file, %-%-managed%-identity", err)
  end)
end)
