-- docs/embedding.md's C host, compiled as written (C99, -Wall -Wextra -Werror, against lua5.4)
-- and run against the emulator over HTTPS/h2: it warms up, reads contents in a frame loop with
-- poll(0, { budget }) and prints each title.
local emu = require "support.emulator"

local function c_block(path)
  local f = assert(io.open(path, "r"))
  local text = f:read("*a")
  f:close()
  local code = text:match("\n```c\n(.-)\n```\n")
  assert(code, path .. ": no ```c block")
  return code
end

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("*a")
  local ok, _, code = p:close()
  return out, ok and 0 or code
end

describe("docs/embedding.md", function()
  local dir = "spec/tmp/embedding"

  -- the page's host embeds Lua 5.4 (pkg-config lua5.4): the suite on 5.4 runs it
  if _VERSION ~= "Lua 5.4" or rawget(_G, "jit") then
    pending("its C host embeds Lua 5.4; the suite on Lua 5.4 compiles and runs it")
    return
  end

  it("its C host compiles and runs a frame loop against the emulator", function()
    os.execute("mkdir -p " .. dir)
    local f = assert(io.open(dir .. "/host.c", "w"))
    f:write(c_block("docs/embedding.md"), "\n")
    f:close()
    local out, code = sh("cc -std=c99 -Wall -Wextra -Werror " .. dir .. "/host.c $(pkg-config --cflags --libs lua5.4) -o "
      .. dir .. "/host")
    assert.equals(0, code, out)

    emu.reset()
    local a = emu.APPS.importer
    local env = ("VIVA_GRAPH_URL=%q VIVA_AUTHORITY_URL=%q VIVA_CA_FILE=%q VIVA_TENANT=%q VIVA_CLIENT_ID=%q VIVA_CLIENT_SECRET=%q")
      :format(emu.graph_url, emu.authority_url, emu.ca, emu.TENANT, a.client_id, a.client_secret)
    local ids = {}
    for n = 1, 10 do ids[n] = emu.content(1, n) end
    out, code = sh(("env %s %s/host %s %s"):format(env, dir, emu.PROVIDER, table.concat(ids, " ")))
    assert.equals(0, code, out)
    for _, id in ipairs(ids) do
      assert.matches("content " .. id:gsub("%-", "%%-") .. ": %S", out)
    end
    assert.matches("10 of 10 finished in %d+ frames, 0 failed", out)
    assert.equals(1, emu.counters().token_requests)     -- warmup's, cached for the frames

    -- a bad secret: warmup fails at load time, before any frame
    out, code = sh(("env %s VIVA_CLIENT_SECRET=wrong %s/host %s %s"):format(env, dir, emu.PROVIDER, ids[1]))
    assert.is_not.equals(0, code)
    assert.matches("host: setup: .*auth", out)
  end)
end)
