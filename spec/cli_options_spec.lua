-- The command's own options: --version, --help (examples that run, the environment of every
-- subcommand, the ps warning), --log / --verbose (never a secret), --max-retries, --timeout,
-- and the summary's plurals.
local shell = require "support.shell"
local sample = require "vivalearning.sample"
local jsonl = require "vivalearning.jsonl"
local emu = require "support.emulator"
local cli = require "support.cli"
local slurp = require("support.lualayer").slurp

local PROVIDER = emu.PROVIDER
local ONE = "/v1.0/employeeExperience/learningCourseActivities/[^/]+$"
local ENV_VARS = { "VIVA_TENANT_ID", "VIVA_CLIENT_ID", "VIVA_CLIENT_SECRET", "VIVA_GRAPH_URL",
                   "VIVA_AUTHORITY_URL", "VIVA_CA_FILE", "VIVA_TOKEN", "VIVA_USERNAME", "VIVA_PASSWORD" }

local function lines_of(s)
  local t = {}
  for l in s:gmatch("[^\n]+") do t[#t + 1] = l end
  return t
end

describe("vivalearning options", function()
  before_each(function() emu.reset() end)
  after_each(function() emu.clear_faults() end)

  it("--version prints require('vivalearning')._VERSION", function()
    local code, out, err = cli.run({ "--version" })
    assert.equal(0, code, err)
    assert.equal(require("vivalearning")._VERSION .. "\n", out)
  end)

  it("--help ends with three examples, and they run", function()
    local code, out = cli.run({ "--help" })
    assert.equal(0, code)
    local l = lines_of(out)
    local examples = {}
    for i = #l - 2, #l do
      local ex = l[i]:match("^%s+vivalearning (.+)$")
      assert.truthy(ex, l[i])
      examples[#examples + 1] = ex
    end
    assert.matches("Examples:", l[#l - 3])
    local dir = os.tmpname()
    os.remove(dir)
    assert(shell.execute("mkdir " .. cli.q(dir)))
    sample.write(dir .. "/activities.csv", 60)
    for _, ex in ipairs(examples) do
      local args = {}
      for w in ex:gmatch("%S+") do args[#args + 1] = w end
      local c, o, e = cli.run(args, nil, nil, { cwd = dir })
      assert.equal(0, c, ex .. "\n" .. o .. e)
    end
    assert.matches("^type,", slurp(dir .. "/learner.csv"))
    assert.matches("^row,", slurp(dir .. "/results.csv"))
    shell.execute("rm -rf " .. cli.q(dir))
  end)

  it("every subcommand's --help shows the environment it reads and the ps warning", function()
    for _, sub in ipairs { "import", "export", "get", "delete", "providers", "contents" } do
      local code, out = cli.run({ sub, "--help" })
      assert.equal(0, code, sub)
      local env = out:match("Environment[^\n]*\n(.*)$")
      assert.truthy(env, sub)
      for _, v in ipairs(ENV_VARS) do assert.matches("\n?%s+" .. v .. "%s", env, 1) end
      local flat = out:gsub("%s+", " ")
      for _, flag in ipairs { "client%-secret", "password", "token" } do
        local help = flat:match("%-%-" .. flag .. " <[%w_]+> (.-%))")
        assert.truthy(help, flag)
        assert.matches("prefer the environment: flags show in ps", help, 1, true)
      end
      assert.matches("Exit codes: 0 ok, 1 ", out)
    end
  end)

  it("--log FILE: one JSON line per attempt with method, path, status, attempt, elapsed, request-id; no secret", function()
    local log = os.tmpname()
    local token = emu.token("importer")
    -- client credentials (secret in a flag), a fixed token, and a delegated password
    local runs = {
      { { "contents", "--provider", PROVIDER, "--client-secret", emu.APPS.importer.client_secret, "--log", log },
        { VIVA_CLIENT_SECRET = false } },
      { { "contents", "--provider", PROVIDER, "--log", log }, { VIVA_TOKEN = token, VIVA_CLIENT_SECRET = false } },
      { { "providers", "--password", emu.ADELE.password, "--log", log },
        { VIVA_CLIENT_ID = emu.APPS.console.client_id, VIVA_CLIENT_SECRET = emu.APPS.console.client_secret,
          VIVA_USERNAME = emu.ADELE.upn } },
    }
    for _, r in ipairs(runs) do
      local code, _, err = cli.run(r[1], r[2])
      assert.equal(0, code, err)
    end
    local text = slurp(log)
    for _, secret in ipairs { emu.APPS.importer.client_secret, emu.APPS.console.client_secret, emu.ADELE.password, token } do
      assert.is_nil(text:find(secret, 1, true))
    end
    assert.is_nil(text:find("Bearer", 1, true))
    assert.is_nil(text:lower():find("authorization", 1, true))
    local graph, tokens = 0, 0
    for _, line in ipairs(lines_of(text)) do
      local ev = assert(jsonl.decode(line))
      assert.truthy(ev.method and ev.path and ev.status and ev.attempt and ev.elapsed, line)
      assert.matches("^/", ev.path)
      if ev.event == "token" then tokens = tokens + 1
      else
        graph = graph + 1
        assert.equal(200, ev.status)
        assert.equal(1, ev.attempt)
        local p = ev.path:match("^[^?]*")
        assert.is_true(p:match("/learningContents$") ~= nil or p:match("/learningProviders$") ~= nil, p)
        assert.truthy(ev.request_id)
      end
    end
    assert.equal(3, graph)
    assert.equal(2, tokens)   -- the fixed token needs none
    os.remove(log)
  end)

  it("--verbose: one line per attempt on stderr", function()
    local code, out, err = cli.run({ "contents", "--provider", PROVIDER, "-v" })
    assert.equal(0, code)
    assert.matches("POST /[%w-]+/oauth2/v2.0/token %-> 200 %(attempt 1", err)
    assert.matches("GET /v1.0/employeeExperience/learningProviders/" .. PROVIDER:gsub("%-", "%%-") ..
      "/learningContents %-> 200 %(attempt 1, [%d.]+ s, request%-id [%x-]+%)", err)
    assert.not_matches(emu.APPS.importer.client_secret, err, 1, true)
    assert.matches("^id\t", out)
  end)

  it("--max-retries and --timeout reach the client", function()
    local c = require("support.lualayer").client()
    local src = os.tmpname() .. ".csv"
    sample.write(src, 1, { prefix = "mr-" })
    assert.equal(0, (cli.run({ "import", src, "--provider", PROVIDER, "-q" })))
    local id = assert(c:get_by_external_id(PROVIDER, "mr-000001")).id
    local log = os.tmpname()
    local function attempts()
      local n = 0
      for _, line in ipairs(lines_of(slurp(log) or "")) do
        if jsonl.decode(line).event == "response" then n = n + 1 end
      end
      os.remove(log)
      return n
    end
    emu.fault({ method = "GET", path = ONE, status = 503, retry_after = "0", count = 2 })
    assert.equal(1, (cli.run({ "get", id, "--max-retries", "0", "--log", log })))
    assert.equal(1, attempts())
    emu.clear_faults()
    emu.fault({ method = "GET", path = ONE, status = 503, retry_after = "0", count = 2 })
    assert.equal(0, (cli.run({ "get", id, "--max-retries", "2", "--log", log })))
    assert.equal(3, attempts())
    local code, _, err = cli.run({ "get", id, "--max-retries", "21" })
    assert.equal(2, code); assert.matches("Error: %-%-max%-retries: '21' is not an integer 0..20", err)
    -- a request slower than --timeout fails (and is not retried past it)
    emu.clear_faults()
    emu.fault({ method = "GET", path = ONE, delay = 30 })
    local c2, _, e2 = cli.run({ "get", id, "--timeout", "1" })
    assert.equal(1, c2)
    assert.matches("[Tt]ime", e2)
    local c3, _, e3 = cli.run({ "get", id, "--timeout", "zero" })
    assert.equal(2, c3); assert.matches("Error: %-%-timeout: 'zero' is not a number of seconds", e3)
    os.remove(src)
  end)

  it("gets its plurals right", function()
    local src = os.tmpname() .. ".csv"
    local f = assert(io.open(src, "w"))
    f:write("type,externalCourseActivityId,learnerUserId,learningContentId,status,assignmentType,completionPercentage\n")
    f:write(("assignment,pl-1,%s,%s,inProgress,required,10\n"):format(emu.user(3), sample.content(1)))
    f:write(("assignment,pl-2,%s,%s,inProgress,required,101\n"):format(emu.user(3), sample.content(2)))
    f:close()
    local code, out = cli.run({ "import", src, "--provider", PROVIDER })
    assert.equal(1, code)
    assert.matches("2 rows read: 1 created, 0 updated, 0 unchanged, 0 deleted, 1 failed", out, 1, true)
    assert.matches("1 of the failed rows was invalid and never sent", out, 1, true)
    assert.matches("\n  1 request in ", out, 1, true)
    local c2, o2 = cli.run({ "import", src, "--provider", PROVIDER, "--mode", "upsert", "--dry-run" })
    assert.equal(1, c2)
    assert.matches("2 rows checked: 1 valid, 1 invalid", o2, 1, true)
    local one = os.tmpname() .. ".csv"
    f = assert(io.open(one, "w"))
    f:write("type,externalCourseActivityId,learnerUserId,learningContentId,status,assignmentType\n")
    f:write(("assignment,pl-3,%s,%s,inProgress,required\n"):format(emu.user(3), sample.content(3)))
    f:close()
    local c3, o3 = cli.run({ "import", one, "--provider", PROVIDER })
    assert.equal(0, c3)
    assert.matches("1 row read: 1 created", o3, 1, true)
    assert.matches("\n  1 request in ", o3, 1, true)
    os.remove(src); os.remove(one)
  end)
end)
