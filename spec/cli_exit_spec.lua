-- Exit codes, the same for every subcommand: 0 all good, 1 some rows or the one operation
-- failed, 2 usage or fatal (authentication failures included). One block per subcommand.
local sample = require "vivalearning.sample"
local emu = require "support.emulator"
local cli = require "support.cli"

local PROVIDER = emu.PROVIDER
local NO_PROVIDER = "c0000000-0000-4000-8000-000000000099"
local BAD_SECRET = { VIVA_CLIENT_SECRET = "not-the-secret" }
local delegated = cli.delegated

-- code, and the stdout/stderr when it is not the one expected
local function expect(code, args, env)
  local c, out, err = cli.run(args, env)
  assert.equal(code, c, table.concat(args, " ") .. "\nstdout: " .. out .. "\nstderr: " .. err)
  return out, err
end

describe("vivalearning exit codes", function()
  local learner = emu.user(9)
  local id  -- an activity that exists

  before_each(function()
    emu.reset()
    local src = os.tmpname() .. ".csv"
    sample.write(src, 6, { prefix = "exit-" })
    expect(0, { "import", src, "--provider", PROVIDER, "-q" })
    os.remove(src)
    local c = require("support.lualayer").client()
    id = assert(c:get_by_external_id(PROVIDER, "exit-000001")).id
  end)

  it("import: 0 all in, 1 some rows failed, 2 usage, unreadable file or wrong secret", function()
    local good, bad = os.tmpname() .. ".csv", os.tmpname() .. ".csv"
    sample.write(good, 5, { prefix = "ok-" })
    sample.write(bad, 5, { prefix = "bad-", invalid = 1 })
    expect(0, { "import", good, "--provider", PROVIDER, "-q" })
    expect(1, { "import", bad, "--provider", PROVIDER, "-q" })
    expect(1, { "import", bad, "--provider", PROVIDER, "-q", "--dry-run" })
    expect(2, { "import", good, "--provider", PROVIDER, "--bogus" })
    expect(2, { "import", "/nonexistent.csv", "--provider", PROVIDER })
    local _, err = expect(2, { "import", good, "--provider", PROVIDER, "--mode", "upsert" }, BAD_SECRET)
    assert.matches("authentication failed", err)
    os.remove(good); os.remove(bad)
  end)

  it("export: 0 written, 1 the request failed, 2 usage or wrong secret", function()
    -- listing a learner's activities is delegated only (graph-api.md §1.0)
    expect(0, { "export", "--user", learner }, delegated())
    expect(1, { "export", "--user", "b0000000-0000-4000-8000-000000009999" }, delegated())
    expect(1, { "export", "--user", learner })             -- an app token: Graph's 403
    expect(2, { "export" }, delegated())
    expect(2, { "export", "--user", learner, "--format", "xml" }, delegated())
    expect(2, { "export", "--user", learner, "-o", "/nonexistent/dir/x.csv" }, delegated())
    expect(2, { "export", "--user", learner }, delegated(BAD_SECRET))
    expect(2, { "export", "--user", learner }, BAD_SECRET)
  end)

  it("get: 0 found, 1 not found, 2 usage, wrong secret or a refused token", function()
    expect(0, { "get", id })
    expect(0, { "get", "--provider", PROVIDER, "--external-id", "exit-000002" })
    expect(1, { "get", "00000000-0000-4000-8000-000000000000" })
    expect(1, { "get", "--provider", PROVIDER, "--external-id", "nope" })
    expect(2, { "get" })
    expect(2, { "get", "--external-id", "x" })
    expect(2, { "get", id }, BAD_SECRET)
    expect(2, { "get", id }, { VIVA_TOKEN = "not-a-token" })
  end)

  it("delete: 0 deleted, 1 not there, 2 usage or wrong secret", function()
    expect(2, { "delete", id, "--provider", PROVIDER }, BAD_SECRET)
    expect(0, { "delete", id, "--provider", PROVIDER })
    expect(1, { "delete", id, "--provider", PROVIDER })
    expect(1, { "delete", "--provider", PROVIDER, "--external-id", "exit-000001" })
    expect(2, { "delete", id })
    expect(2, { "delete", "--provider", PROVIDER })
    expect(2, { "delete", "--provider", PROVIDER, "--external-id", "exit-000002" }, BAD_SECRET)
  end)

  it("contents: 0 listed, 1 the request failed, 2 usage or wrong secret", function()
    expect(0, { "contents", "--provider", PROVIDER })
    expect(1, { "contents", "--provider", NO_PROVIDER })
    expect(2, { "contents" })
    expect(2, { "contents", "--provider", PROVIDER }, BAD_SECRET)
  end)

  it("providers: 0 listed (delegated), 1 refused for an app token, 2 wrong password or usage", function()
    expect(0, { "providers" }, delegated())
    expect(1, { "providers" })
    expect(2, { "providers", "--format", "xml" }, delegated())
    expect(2, { "providers" }, delegated({ VIVA_PASSWORD = "wrong-password" }))
  end)
end)
