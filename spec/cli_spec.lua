-- The `vivalearning` command (bin/vivalearning): usage errors, --help, exit codes, and each
-- subcommand against the emulator (run as a real child process).
local shell = require "support.shell"
local sample = require "vivalearning.sample"
local results = require "vivalearning.results"
local jsonl = require "vivalearning.jsonl"
local emu = require "support.emulator"

local PROVIDER = emu.PROVIDER

local support = require "support.lualayer"
local q = support.q

local LUA, LUA_ENV = support.LUA, support.LUA_ENV

local slurp = support.slurp

-- run bin/vivalearning with args (array) and an environment (table, false = unset);
-- returns exit code, stdout, stderr
local function vl(args, env, stdin)
  local out, err = os.tmpname(), os.tmpname()
  local e = {
    VIVA_TENANT_ID = emu.TENANT, VIVA_CLIENT_ID = emu.APPS.importer.client_id,
    VIVA_CLIENT_SECRET = emu.APPS.importer.client_secret, VIVA_GRAPH_URL = emu.graph_url,
    VIVA_AUTHORITY_URL = emu.authority_url, VIVA_CA_FILE = emu.ca,
  }
  for k, v in pairs(env or {}) do e[k] = v end
  local parts = { "env" }
  for _, k in ipairs { "VIVA_TENANT_ID", "VIVA_CLIENT_ID", "VIVA_CLIENT_SECRET", "VIVA_GRAPH_URL",
                       "VIVA_AUTHORITY_URL", "VIVA_CA_FILE", "VIVA_TOKEN", "VIVA_USERNAME", "VIVA_PASSWORD" } do
    parts[#parts + 1] = "-u " .. k
  end
  for k, v in pairs(e) do
    if v ~= false then parts[#parts + 1] = q(k .. "=" .. v) end
  end
  parts[#parts + 1] = q("LUA_PATH=" .. package.path)
  parts[#parts + 1] = q("LUA_CPATH=" .. package.cpath)
  parts[#parts + 1] = LUA
  parts[#parts + 1] = "bin/vivalearning"
  for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
  local ok, _, code = shell.execute(table.concat(parts, " ") .. " >" .. out .. " 2>" .. err .. " <" .. q(stdin or "/dev/null"))
  local so, se = slurp(out), slurp(err)
  os.remove(out); os.remove(err)
  return ok and 0 or code, so, se
end

describe("vivalearning command", function()
  before_each(function() emu.reset() end)

  describe("usage", function()
    it("exits 2 with the usage on stderr for no command, an unknown one, or a bad option", function()
      for _, args in ipairs {
        {}, { "frobnicate" }, { "import" }, { "import", "x.csv" }, { "import", "x.csv", "--provider", "p", "--mode", "merge" },
        { "import", "x.csv", "--provider", "p", "--batch", "zero" }, { "export", "--user", "u", "--me" },
        { "delete", "some-id" }, { "contents" }, { "import", "x.csv", "--provider", "p", "--bogus" },
      } do
        local code, out, err = vl(args)
        assert.equal(2, code, table.concat(args, " "))
        assert.equal("", out)
        assert.matches("Usage: vivalearning", err)
        assert.matches("Error: ", err)
      end
    end)

    it("prints help for the command and for every subcommand, exit 0", function()
      local code, out = vl({ "--help" })
      assert.equal(0, code)
      for _, sub in ipairs { "import", "export", "get", "delete", "providers", "contents" } do
        assert.matches(sub, out)
        local c2, o2 = vl({ sub, "--help" })
        assert.equal(0, c2, sub)
        assert.matches("Usage: vivalearning " .. sub, o2)
        assert.matches("VIVA_CLIENT_SECRET", o2)
      end
    end)

    it("exits 2 when credentials are missing, naming what is missing", function()
      local code, _, err = vl({ "contents", "--provider", PROVIDER }, { VIVA_CLIENT_SECRET = false })
      assert.equal(2, code)
      assert.matches("no credentials", err)
      code, _, err = vl({ "contents", "--provider", PROVIDER }, { VIVA_TENANT_ID = false })
      assert.equal(2, code)
      assert.matches("tenant", err)
    end)

    it("flags override the environment", function()
      local code, _, err = vl({ "contents", "--provider", PROVIDER, "--client-secret", "wrong-secret" })
      assert.is_true(code ~= 0)
      assert.not_matches("wrong%-secret", err)   -- never echoes a secret
    end)
  end)

  describe("import", function()
    it("exits 0 when every row went in, with a summary and a results file", function()
      local src, res = os.tmpname() .. ".csv", os.tmpname() .. ".csv"
      sample.write(src, 80, { prefix = "cli-" })
      local code, out = vl({ "import", src, "--provider", PROVIDER, "--results", res })
      assert.equal(0, code)
      assert.matches("80 rows read: 80 created", out)
      local n = 0
      for r in results.read(res) do n = n + 1; assert.equal("created", r.outcome) end
      assert.equal(80, n)
      -- from stdin (-), upsert: all unchanged, still 0
      local c2, o2 = vl({ "import", "-", "--provider", PROVIDER, "--mode", "upsert" }, nil, src)
      assert.equal(0, c2)
      assert.matches("80 unchanged", o2)
      -- upsert of the same file: all unchanged, still 0
      code, out = vl({ "import", src, "--provider", PROVIDER, "--mode", "upsert", "--no-batch" })
      assert.equal(0, code)
      assert.matches("80 unchanged", out)
      os.remove(src); os.remove(res)
    end)

    it("draws the progress bar on a terminal, and nothing on stderr otherwise", function()
      local src = os.tmpname() .. ".csv"
      sample.write(src, 300, { prefix = "tty-" })
      local code, _, err = vl({ "import", src, "--provider", PROVIDER, "-q" })
      assert.equal(0, code)
      assert.equal("", err)                       -- not a terminal: silent
      emu.reset()
      -- under a pseudo-terminal (util-linux script), stderr is a tty: the bar appears
      local out = os.tmpname()
      local inner = ("env " .. LUA_ENV .. " VIVA_TENANT_ID=%s VIVA_CLIENT_ID=%s VIVA_CLIENT_SECRET=%s VIVA_GRAPH_URL=%s " ..
                     "VIVA_AUTHORITY_URL=%s VIVA_CA_FILE=%s %s bin/vivalearning import %s --provider %s -q"):format(
        emu.TENANT, emu.APPS.importer.client_id, emu.APPS.importer.client_secret, emu.graph_url,
        emu.authority_url, emu.ca, LUA, src, PROVIDER)
      local ok = shell.execute("script -qec " .. q(inner) .. " /dev/null >" .. out .. " 2>&1 </dev/null")
      assert.is_true(ok == true)
      local tty = slurp(out)
      assert.matches("\r", tty, 1, true)
      assert.matches("create %[[#.]+%]", tty)
      assert.matches("300/300 100%%", tty)
      assert.matches("rows/s", tty)
      os.remove(out); os.remove(src)
    end)

    it("exits 1 when some rows failed", function()
      local src = os.tmpname() .. ".csv"
      sample.write(src, 40, { prefix = "clibad-", invalid = 3 })
      local code, out = vl({ "import", src, "--provider", PROVIDER, "--concurrency", "2", "--batch", "5" })
      assert.equal(1, code)
      assert.matches("37 created", out)
      assert.matches("3 failed", out)
      os.remove(src)
    end)

    it("--dry-run sends nothing; a missing file or unusable journal is fatal (2)", function()
      local src = os.tmpname() .. ".csv"
      sample.write(src, 20, { invalid = 2 })
      local before = emu.counters().requests
      local code, out = vl({ "import", src, "--provider", PROVIDER, "--dry-run" })
      assert.equal(1, code)
      assert.matches("20 rows checked: 18 valid, 2 invalid", out)
      assert.equal(before, emu.counters().requests)
      local c2, _, err = vl({ "import", "/nonexistent.csv", "--provider", PROVIDER })
      assert.equal(2, c2); assert.matches("cannot read", err)
      local c3, _, err3 = vl({ "import", src, "--provider", PROVIDER, "--journal", "/nonexistent/dir/j" })
      assert.equal(2, c3); assert.matches("journal", err3)
      os.remove(src)
    end)

    it("a wrong secret is fatal (2), not a row failure", function()
      local src = os.tmpname() .. ".csv"
      sample.write(src, 10)
      local code, _, err = vl({ "import", src, "--provider", PROVIDER }, { VIVA_CLIENT_SECRET = "nope" })
      assert.equal(2, code)
      assert.matches("authentication failed", err)
      assert.not_matches("nope", err)
      os.remove(src)
    end)
  end)

  describe("export, get, delete, contents, providers", function()
    local learner = emu.user(9)
    before_each(function()
      local src = os.tmpname() .. ".csv"
      local f = assert(io.open(src, "w"))
      f:write("type,externalCourseActivityId,learnerUserId,learningContentId,status,assignmentType,notes.content,notes.contentType\n")
      for i = 1, 12 do
        f:write(("assignment,ex-%02d,%s,%s,inProgress,required,\"note, %d\",text\n"):format(i, learner, sample.content(i), i))
      end
      f:close()
      local code = vl({ "import", src, "--provider", PROVIDER, "-q" })
      assert.equal(0, code)
      os.remove(src)
    end)

    it("exports a learner's activities as CSV that imports back, and as JSON Lines", function()
      local out = os.tmpname() .. ".csv"
      local code = vl({ "export", "--user", learner, "-o", out })
      assert.equal(0, code)
      local csv = require "vivalearning.csv"
      local r = assert(csv.reader(out))
      local n = 0
      for rec in r:records() do
        n = n + 1
        local t = {}
        for i, k in ipairs(r.columns) do t[k] = rec[i] end
        assert.equal("assignment", t.type)
        assert.matches("^note, %d+$", t["notes.content"])
      end
      r:close()
      assert.equal(12, n)
      -- the export is valid import input: upsert it back, nothing changes
      local c2, o2 = vl({ "import", out, "--provider", PROVIDER, "--mode", "upsert" })
      assert.equal(0, c2)
      assert.matches("12 unchanged", o2)
      local c3, o3 = vl({ "export", "--user", learner, "--format", "jsonl" })
      assert.equal(0, c3)
      local lines = 0
      for l in o3:gmatch("[^\n]+") do lines = lines + 1; assert.truthy(jsonl.decode(l).id) end
      assert.equal(12, lines)
      os.remove(out)
    end)

    it("gets by id and by external id (exit 1 when missing), deletes", function()
      local code, out = vl({ "get", "--provider", PROVIDER, "--external-id", "ex-03" })
      assert.equal(0, code)
      local t = jsonl.decode(out)
      assert.equal(learner, t.learnerUserId)
      local c2, o2 = vl({ "get", t.id })
      assert.equal(0, c2); assert.equal(t.id, jsonl.decode(o2).id)
      local c3, _, e3 = vl({ "get", "--provider", PROVIDER, "--external-id", "nope" })
      assert.equal(1, c3); assert.matches("404", e3)
      local c4, o4 = vl({ "delete", "--provider", PROVIDER, "--external-id", "ex-03" })
      assert.equal(0, c4); assert.matches("deleted", o4)
      local c5 = vl({ "get", t.id })
      assert.equal(1, c5)
      local c6 = vl({ "delete", t.id, "--provider", PROVIDER })
      assert.equal(1, c6)
    end)

    it("lists contents (app) and providers (delegated user)", function()
      local code, out = vl({ "contents", "--provider", PROVIDER })
      assert.equal(0, code)
      local n = 0
      for l in out:gmatch("[^\n]+") do n = n + 1 end
      assert.equal(21, n) -- header + CA-01..CA-20
      assert.matches("CA%-20", out)
      local c2, o2 = vl({ "providers", "--format", "jsonl" }, {
        VIVA_CLIENT_ID = emu.APPS.console.client_id, VIVA_CLIENT_SECRET = emu.APPS.console.client_secret,
        VIVA_USERNAME = emu.ADELE.upn, VIVA_PASSWORD = emu.ADELE.password })
      assert.equal(0, c2)
      assert.matches("Contoso Academy", o2)
      -- providers with an app token: Graph refuses (application permissions not supported)
      local c3 = vl({ "providers" })
      assert.equal(1, c3)
    end)
  end)
end)
