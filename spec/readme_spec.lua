-- README.md: every fenced ```sh and ```lua block runs as written, in order, against one emulator.
--
-- How a block is run:
--   * In a temporary working directory that holds links to the repository's bin/, lua/ and
--     vivalearning/ (the built modules), and an emulator/ whose scripts are the repository's and
--     whose state directory emulator/.run is this spec's emulator: `emulator/run` there finds it
--     running and prints its env, `. emulator/.run/env` loads it. Files a block writes stay in
--     that directory for the blocks after it; it is removed at the end.
--   * `sh` blocks run under `sh -e`, with PATH (a `lua5.4` that is this spec's interpreter first,
--     for bin/vivalearning), HOME, LUA_PATH and LUA_CPATH (this spec's module paths, made
--     absolute) and no VIVA_* variable: a block that needs the emulator sources its env.
--   * `lua` blocks run in this spec's Lua interpreter with the same module paths and the
--     emulator's environment (VIVA_EMU_HTTP, VIVA_EMU_HTTPS, VIVA_EMU_CA, ...), as after the
--     quick start's `. emulator/.run/env`.
--   * A failure names the block's line in README.md (a Lua error also names its own line).
--
-- Markers, on the line right before the opening fence:
--   <!-- readme-spec: skip (REASON) -->   the block is not run; REASON is required and says why
--                                         (real Graph, installs system-wide, runs make, ...)
-- Continuations: a block whose prose (the text since the previous fence) says "continues the
-- example above" continues the nearest earlier block of the same language. The blocks of such a
-- chain run together as one script (one Lua chunk, or one sh -e script), once, where the chain's
-- last block is. Any other block runs on its own: it may not use a variable or a local of an
-- earlier block.
--
-- A runnable block may not run emulator/stop (the examples share the spec's emulator). The
-- other checks: README.md under 450 lines, its newcomer's sections in order, and no document
-- named (README, docs/, CHANGELOG) that is not in the repository. docs/internals.md, "How the
-- README's examples are checked", says the same for readers of the docs.
--
-- Adding an example: write it as a fenced ```sh or ```lua block that runs from the repository
-- root against the emulator (after `. emulator/.run/env`); say "continues the example above" in
-- the prose before it when it needs an earlier block; put a skip marker before it when it cannot
-- run here. Other fences (```text, no language) are not run; ```bash, ```shell, ```zsh and
-- ```console are refused (use ```sh to run a block, ```text to show one).
local emu = require "support.emulator"
local layer = require "support.lualayer"
local http = require "support.http"
local q = layer.q

local README = "README.md"
local MAX_LINES = 450

local function read(path)
  local f = assert(io.open(path, "r"), path .. ": cannot open")
  local s = f:read("*a")
  f:close()
  return s
end

local function lines_of(text)
  local t = {}
  for l in (text .. (text:sub(-1) == "\n" and "" or "\n")):gmatch("([^\n]*)\n") do t[#t + 1] = l end
  return t
end

--- The fenced blocks of a markdown text: { lang, first (line of the opening fence), body_first,
--- body_last, code, skip (reason or nil), continues (bool), marker_error }.
local function blocks_of(lines, name)
  local blocks, problems = {}, {}
  local prose_since = 1
  local i = 1
  while i <= #lines do
    local fence, lang = lines[i]:match("^(```+)%s*([%w_-]*)%s*$")
    if fence then
      local b = { lang = lang, first = i, body_first = i + 1 }
      local prev = lines[i - 1] or ""
      local marker = prev:match("^%s*<!%-%-%s*readme%-spec:(.-)%-%->%s*$")
      if marker then
        local reason = marker:match("^%s*skip%s*%((.+)%)%s*$")
        if reason then b.skip = reason
        else problems[#problems + 1] = ("%s:%d: unknown readme-spec marker %q (expected: skip (REASON))"):format(name, i - 1, prev) end
      elseif prev:find("readme-spec", 1, true) then
        problems[#problems + 1] = ("%s:%d: malformed readme-spec marker %q"):format(name, i - 1, prev)
      end
      if lang == "bash" or lang == "shell" or lang == "zsh" or lang == "console" then
        problems[#problems + 1] = ("%s:%d: a ```%s block is neither run nor marked: use ```sh (run under sh -e) or ```text (not run)")
          :format(name, i, lang)
      end
      local prose = table.concat(lines, "\n", prose_since, i - 1):lower()
      b.continues = prose:find("continues the example above", 1, true) ~= nil
      local j = i + 1
      while j <= #lines and not lines[j]:match("^" .. fence .. "%s*$") do j = j + 1 end
      if j > #lines then
        problems[#problems + 1] = ("%s:%d: unclosed ``` fence"):format(name, i)
      end
      b.body_last = j - 1
      b.code = table.concat(lines, "\n", b.body_first, b.body_last)
      if lang == "sh" and not b.skip and b.code:find("emulator/stop", 1, true) then
        problems[#problems + 1] = ("%s:%d: this sh block runs emulator/stop, which would stop the emulator the examples share: mark it with <!-- readme-spec: skip (stops the emulator) -->")
          :format(name, i)
        b.refused = true
      end
      blocks[#blocks + 1] = b
      prose_since = j + 1
      i = j + 1
    else
      i = i + 1
    end
  end
  return blocks, problems
end

--- Chains: runnable sh/lua blocks grouped by continuation; each chain runs at its last block.
local function chains_of(blocks, name)
  local chains, problems, last_chain = {}, {}, {}
  for _, b in ipairs(blocks) do
    if (b.lang == "sh" or b.lang == "lua") and not b.skip and not b.refused then
      if b.continues then
        local c = last_chain[b.lang]
        if not c then
          problems[#problems + 1] = ("%s:%d: says it continues the example above, but no %s block runs before it")
            :format(name, b.first, b.lang)
        else
          c.blocks[#c.blocks + 1] = b
        end
      else
        local c = { lang = b.lang, blocks = { b } }
        chains[#chains + 1] = c
        last_chain[b.lang] = c
      end
    end
  end
  -- run order: by the line of each chain's last block
  table.sort(chains, function(a, b) return a.blocks[#a.blocks].first < b.blocks[#b.blocks].first end)
  return chains, problems
end

local function describe_chain(c)
  local parts = {}
  for _, b in ipairs(c.blocks) do parts[#parts + 1] = tostring(b.first) end
  local s = ("%s:%s (%s)"):format(README, table.concat(parts, "+"), c.lang)
  return s
end

local lines = lines_of(read(README))
local blocks, block_problems = blocks_of(lines, README)
local chains, chain_problems = chains_of(blocks, README)

local ROOT = io.popen("pwd -P"):read("*l")
local function physical(path)
  local p = io.popen("cd " .. q(path) .. " && pwd -P")
  local s = p:read("*l")
  p:close()
  return s
end

-- This spec's module paths (the build under test: make check points cpath at its sanitizer
-- build), made absolute so that they hold in the examples' working directory.
local function absolute(paths)
  return (paths:gsub("%f[^;%z]%./", ROOT .. "/"))
end
local LUA_PATH = absolute(package.path)
local LUA_CPATH = absolute(package.cpath)

-- What every example gets from the environment: PATH with a `lua5.4` that is this spec's
-- interpreter first (so bin/vivalearning, `#!/usr/bin/env lua5.4`, runs on the same one), HOME,
-- the module paths, and the sanitizers' options when make check set them.
local function base_env(work)
  local env = {
    "PATH=" .. q(work .. "/.readme-bin:" .. os.getenv("PATH")), "HOME=" .. q(os.getenv("HOME") or work),
    "LUA_PATH=" .. q(LUA_PATH), "LUA_CPATH=" .. q(LUA_CPATH),
  }
  for _, k in ipairs { "ASAN_OPTIONS", "UBSAN_OPTIONS", "TMPDIR" } do
    if os.getenv(k) then env[#env + 1] = k .. "=" .. q(os.getenv(k)) end
  end
  return env
end

describe("README.md", function()
  local work

  setup(function()
    emu.reset()
    work = os.tmpname()
    os.remove(work)
    work = work .. "-readme"
    local emu_dir = physical(emu.dir)
    local cmd = table.concat({
      "mkdir -p " .. q(work .. "/emulator"),
      "ln -s " .. q(ROOT .. "/bin") .. " " .. q(work .. "/bin"),
      "ln -s " .. q(ROOT .. "/lua") .. " " .. q(work .. "/lua"),
      "ln -s " .. q(ROOT .. "/vivalearning") .. " " .. q(work .. "/vivalearning"),
      "for f in run stop lua nginx.conf.in seed.json README.md; do ln -s " .. q(ROOT .. "/emulator/") ..
        "\"$f\" " .. q(work .. "/emulator/") .. "\"$f\"; done",
      "ln -s " .. q(emu_dir) .. " " .. q(work .. "/emulator/.run"),
      "mkdir " .. q(work .. "/.readme-bin"),
      "printf '#!/bin/sh\\nexec %s \"$@\"\\n' " .. q(q(layer.LUA)) .. " > " .. q(work .. "/.readme-bin/lua5.4"),
      "chmod +x " .. q(work .. "/.readme-bin/lua5.4"),
    }, " && ")
    assert(http.ok(cmd), "could not prepare " .. work)
  end)

  teardown(function()
    if work then http.ok("rm -rf " .. q(work)) end
  end)

  it("is well-formed: markers, fences, continuations; under " .. MAX_LINES .. " lines", function()
    local problems = {}
    for _, p in ipairs(block_problems) do problems[#problems + 1] = p end
    for _, p in ipairs(chain_problems) do problems[#problems + 1] = p end
    assert.equal("", table.concat(problems, "\n"))
    assert.is_true(#lines < MAX_LINES, ("README.md has %d lines, the limit is %d"):format(#lines, MAX_LINES))
    assert.is_true(#chains > 0, "no runnable block found")
  end)

  it("has the newcomer's sections, in order", function()
    local want = { "Two commands", "Quick start: the command", "Quick start in Lua", "The `vivalearning` command",
                   "The Lua API", "Real Graph", "OpenResty and embedding", "Troubleshooting" }
    local seen = {}
    for _, l in ipairs(lines) do
      local h = l:match("^## (.-)%s*$")
      if h then seen[#seen + 1] = h end
    end
    local i = 1
    for _, h in ipairs(seen) do
      if h == want[i] then i = i + 1 end
    end
    assert.equal(#want + 1, i, ("README.md: the ## sections must include, in this order: %s (found: %s)")
      :format(table.concat(want, " | "), table.concat(seen, " | ")))
  end)

  it("names only documents that are in the repository", function()
    local problems = {}
    for _, doc in ipairs { "README.md", "docs/internals.md", "docs/benchmarks.md", "CHANGELOG.md" } do
      local dir = doc:match("^(.*)/") or "."
      for n, l in ipairs(lines_of(read(doc))) do
        for target in l:gmatch("%]%(([^)#%s]+)[^)]*%)") do
          if not target:match("^%a+://") and not http.ok("test -e " .. q(dir .. "/" .. target)) then
            problems[#problems + 1] = ("%s:%d: link to %s, which is not in the repository"):format(doc, n, target)
          end
        end
        for name in l:gmatch("([%w_%-%./]*[%w_%-]%.md)") do
          local found = http.ok("test -e " .. q(dir .. "/" .. name)) or http.ok("test -e " .. q(name))
          if not found then
            problems[#problems + 1] = ("%s:%d: names %s, which is not in the repository"):format(doc, n, name)
          end
        end
        for _, pat in ipairs { "reliability L%d", "[Ii]ssue %d", "%(issue%)", "§%d" } do
          if l:find(pat) then
            problems[#problems + 1] = ("%s:%d: refers to a document outside the repository (%s)"):format(doc, n, pat)
          end
        end
      end
    end
    assert.equal("", table.concat(problems, "\n"))
  end)

  -- Under make check's valgrind step the examples' child processes fail to start (EMFILE while
  -- loading libc; the cause is not found yet): they are not valgrind's
  -- to check anyway (children run plain lua5.4), and they run under ASan in the same make check.
  local run_it = os.getenv("VIVA_VALGRIND") and pending or it
  for _, c in ipairs(chains) do
    run_it("runs the example at " .. describe_chain(c), function()
      local script = work .. "/.readme-block"
      local code, out
      if c.lang == "lua" then
        -- README lines kept in place (others blanked), so a Lua error names README.md:LINE
        local src = {}
        local first = c.blocks[1].body_first
        for n = 1, first - 1 do src[n] = "" end
        local keep = {}
        for _, b in ipairs(c.blocks) do
          for n = b.body_first, b.body_last do keep[n] = true end
        end
        for n = first, c.blocks[#c.blocks].body_last do src[n] = keep[n] and lines[n] or "" end
        local f = assert(io.open(script, "w"))
        f:write(table.concat(src, "\n"), "\n")
        f:close()
        local env = base_env(work)
        for _, v in ipairs {
          "VIVA_EMU_HTTP=" .. q(emu.http), "VIVA_EMU_H2C=" .. q(emu.h2c),
          "VIVA_EMU_HTTPS=" .. q(emu.https), "VIVA_EMU_CA=" .. q(emu.ca), "VIVA_EMU_DIR=" .. q(emu.dir),
        } do env[#env + 1] = v end
        env[#env + 1] = "README_SPEC_CHUNK=" .. q(script)
        -- a driver file, not -e: make check's sanitizer host only runs script files
        local driver = work .. "/.readme-driver.lua"
        f = assert(io.open(driver, "w"))
        f:write("local f = assert(io.open(os.getenv('README_SPEC_CHUNK'))); local s = f:read('a'); f:close()\n",
          "local chunk = assert(load(s, '@README.md')); chunk()\n")
        f:close()
        code, out = http.run("cd " .. q(work) .. " && env -i " .. table.concat(env, " ") .. " timeout 300 " ..
          q(layer.LUA) .. " " .. q(driver) .. " </dev/null")
      else
        local parts = {}
        for _, b in ipairs(c.blocks) do
          parts[#parts + 1] = "echo " .. b.first .. " > " .. q(script .. ".at")
          parts[#parts + 1] = b.code
        end
        local f = assert(io.open(script, "w"))
        f:write(table.concat(parts, "\n"), "\n")
        f:close()
        local env = base_env(work)
        code, out = http.run("cd " .. q(work) .. " && env -i " .. table.concat(env, " ") ..
          " timeout 300 sh -e " .. q(script) .. " </dev/null")
      end
      if code ~= 0 then
        local at = c.blocks[1].first
        if c.lang == "sh" then
          at = tonumber(http.read_file(script .. ".at"):match("%d+")) or at
        else
          local line = tonumber(out:match("README%.md:(%d+):"))
          for _, b in ipairs(c.blocks) do
            if line and line >= b.body_first and line <= b.body_last then at = b.first end
          end
        end
        if #out > 4000 then out = "...\n" .. out:sub(-4000) end
        error(("%s:%d: the %s block exits %s (chain %s); its output:\n%s")
          :format(README, at, c.lang, tostring(code), describe_chain(c), out), 0)
      end
    end)
  end
end)
