-- Emulator: emulator/run and emulator/stop (separate instances in temporary directories).
local shell = require "support.shell"
local emu = require("support.emulator")
local http = require("support.http")
local q = http.shell_quote

local run = http.run

local read_env = emu.read_env

local function pid_alive(pid)
  return http.ok("kill -0 " .. pid)
end

describe("emulator/run and emulator/stop", function()
  local dir
  before_each(function()
    dir = os.tmpname()
    os.remove(dir)
  end)
  after_each(function()
    run("./emulator/stop --dir " .. q(dir) .. " --quiet")
    http.ok("rm -rf " .. q(dir))
  end)

  it("starts, prints and writes the env, answers --status, stops, and leaves no nginx behind", function()
    local code, out = run("./emulator/run --dir " .. q(dir))
    assert.equal(0, code, out)
    local env = read_env(dir)
    assert.matches("^http://127%.0%.0%.1:%d+$", env.VIVA_EMU_HTTP)
    assert.matches("^http://127%.0%.0%.1:%d+$", env.VIVA_EMU_H2C)
    assert.matches("^https://localhost:%d+$", env.VIVA_EMU_HTTPS)
    assert.equal(dir .. "/ca.pem", env.VIVA_EMU_CA)
    assert.truthy(out:find("VIVA_EMU_HTTP=" .. env.VIVA_EMU_HTTP, 1, true))
    assert.equal(0, (run("./emulator/run --dir " .. q(dir) .. " --status")))
    assert.equal(200, http.get(env.VIVA_EMU_HTTPS .. "/_emulator/health", { cacert = env.VIVA_EMU_CA }).status)
    local pid = io.open(dir .. "/nginx.pid"):read("*l")
    assert.is_true(pid_alive(pid))
    local scode, sout = run("./emulator/stop --dir " .. q(dir))
    assert.equal(0, scode, sout)
    assert.is_false(pid_alive(pid))
    -- neither the master nor any worker (they share its process group) is left
    assert.equal("", select(2, run("ps -eo pgid=,pid= | awk '$1 == " .. pid .. "'")))
    assert.are_not.equal(0, (run("./emulator/run --dir " .. q(dir) .. " --status")))
  end)

  -- A second run on the same directory reuses the running instance: it prints that one's env
  -- and exits 0, so `emulator/run --dir D && . D/env` works whether or not one was running.
  -- (This used to exit 1 with "already running".)
  it("starting twice on one directory exits 0, prints the running one's env and says it reused it", function()
    assert.equal(0, (run("./emulator/run --dir " .. q(dir) .. " --quiet")))
    local pid = io.open(dir .. "/nginx.pid"):read("*l")
    local env = read_env(dir)
    local code, out = shell.capture("./emulator/run --dir " .. q(dir) .. " 2>" .. q(dir .. "/second.err"))
    assert.equal(0, code, out)
    assert.truthy(out:find("VIVA_EMU_HTTPS=" .. env.VIVA_EMU_HTTPS, 1, true), out)
    assert.matches("already running", io.open(dir .. "/second.err"):read("*a"))
    assert.equal(pid, io.open(dir .. "/nginx.pid"):read("*l"))
    assert.same(env, read_env(dir))
    assert.equal(0, (run("./emulator/run --dir " .. q(dir) .. " --quiet")))
  end)

  it("`emulator/run --dir D && . D/env` exports the variables to child processes, on the first and the second run", function()
    for _ = 1, 2 do
      local code, out = run("./emulator/run --dir " .. q(dir) .. " >/dev/null 2>&1 && . " .. q(dir .. "/env") ..
        " && sh -c 'echo \"$VIVA_EMU_HTTPS|$VIVA_EMU_CA\"'")
      assert.equal(0, code, out)
      local env = read_env(dir)
      assert.equal(env.VIVA_EMU_HTTPS .. "|" .. env.VIVA_EMU_CA .. "\n", out)
    end
  end)

  it("a second run asking for another port or seed than the running one's fails and names the option", function()
    assert.equal(0, (run("./emulator/run --dir " .. q(dir) .. " --quiet")))
    local port = tonumber(read_env(dir).VIVA_EMU_HTTP:match(":(%d+)$"))
    local other = port == 65535 and port - 1 or port + 1
    local code, out = run("./emulator/run --dir " .. q(dir) .. " --port " .. other)
    assert.equal(1, code, out)
    assert.matches("%-%-port " .. other, out)
    assert.matches("already running", out)
    code, out = run("./emulator/run --dir " .. q(dir) .. " --port " .. port .. " --quiet")
    assert.equal(0, code, out)
    code, out = run("./emulator/run --dir " .. q(dir) .. " --seed spec/../emulator/seed.json --quiet")
    assert.equal(0, code, out)
    local seed = dir .. "-other-seed.json"
    local f = io.open(seed, "w"); f:write(io.open("emulator/seed.json"):read("*a")); f:close()
    code, out = run("./emulator/run --dir " .. q(dir) .. " --seed " .. q(seed))
    os.remove(seed)
    assert.equal(1, code, out)
    assert.matches("%-%-seed", out)
  end)

  it("stopping a stopped one says so", function()
    local code, out = run("./emulator/stop --dir " .. q(dir))
    assert.are_not.equal(0, code)
    assert.matches("no emulator is running", out)
  end)

  it("a port in use is named in a clear message", function()
    local port = emu.http:match(":(%d+)$")
    local code, out = run("./emulator/run --dir " .. q(dir) .. " --port " .. port)
    assert.are_not.equal(0, code)
    assert.matches("port " .. port .. " is already in use", out)
  end)

  it("--port picks the HTTP/1.1 port; --seed loads another seed", function()
    -- find a free port by starting and stopping an instance
    assert.equal(0, (run("./emulator/run --dir " .. q(dir) .. " --quiet")))
    local port = read_env(dir).VIVA_EMU_HTTP:match(":(%d+)$")
    run("./emulator/stop --dir " .. q(dir) .. " --quiet")
    local seed = dir .. "-seed.json"
    local f = io.open(seed, "w")
    f:write('{"tenants":[{"id":"' .. emu.TENANT .. '"}],"apps":[],"users":[],"providers":[],"contents":[]}')
    f:close()
    local code, out = run("./emulator/run --dir " .. q(dir) .. " --port " .. port .. " --seed " .. q(seed))
    os.remove(seed)
    assert.equal(0, code, out)
    assert.equal("http://127.0.0.1:" .. port, read_env(dir).VIVA_EMU_HTTP)
    local h = http.get("http://127.0.0.1:" .. port .. "/_emulator/health")
    assert.equal(seed, h.json.seed)
  end)

  it("bad arguments and a missing seed fail with a message", function()
    local code, out = run("./emulator/run --dir " .. q(dir) .. " --bogus")
    assert.are_not.equal(0, code)
    assert.matches("unknown argument", out)
    code, out = run("./emulator/run --dir " .. q(dir) .. " --seed /nonexistent.json")
    assert.are_not.equal(0, code)
    assert.matches("not readable", out)
    code, out = run("./emulator/run --dir " .. q(dir) .. " --port 99999")
    assert.are_not.equal(0, code)
  end)

  it("refuses a seed that is not valid JSON, with a message", function()
    local seed = dir .. "-bad.json"
    local f = io.open(seed, "w"); f:write("{nope"); f:close()
    local code, out = run("./emulator/run --dir " .. q(dir) .. " --seed " .. q(seed))
    os.remove(seed)
    assert.are_not.equal(0, code)
    assert.matches("not valid JSON", out)
  end)
end)
