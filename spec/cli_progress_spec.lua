-- The import's progress bar: as wide as the real terminal (a pseudo-terminal with a set size,
-- util-linux script), redrawn at the new width when the terminal is resized, and plain lines
-- when stderr is not a terminal but --progress was asked.
local sample = require "vivalearning.sample"
local emu = require "support.emulator"
local cli = require "support.cli"
local q = cli.q

local PROVIDER = emu.PROVIDER
local ITEM_PATH = "/v1.0/employeeExperience/learningProviders/.*/learningCourseActivities$"

-- the bar's redraws, in order (what sits between carriage returns, escapes removed)
local function bars(tty)
  local t = {}
  for seg in tty:gmatch("\r([^\r]*)") do
    seg = seg:gsub("\27%[K", ""):gsub("\n.*", "")
    if seg:match("^create ") then t[#t + 1] = seg end
  end
  return t
end

describe("vivalearning import progress", function()
  before_each(function() emu.reset() end)
  after_each(function() emu.clear_faults() end)

  it("draws the bar as wide as the terminal (TIOCGWINSZ), whatever $COLUMNS says", function()
    local src = os.tmpname() .. ".csv"
    sample.write(src, 200, { prefix = "w-" })
    local tty, ok = cli.pty("stty cols 72 rows 20; COLUMNS=150 " ..
      cli.command({ "import", src, "--provider", PROVIDER, "-q" }))
    assert.is_true(ok)
    local b = bars(tty)
    assert.is_true(#b >= 1, tty)
    for _, seg in ipairs(b) do assert.equal(71, #seg, seg) end
    assert.matches("200/200 100%%", b[#b])
    os.remove(src)
  end)

  it("redraws at the new width when the terminal is resized", function()
    local src, jr = os.tmpname() .. ".csv", os.tmpname()
    os.remove(jr)
    sample.write(src, 30, { prefix = "rs-" })
    -- slow single creates, so the import is still running when the window shrinks (after its
    -- first row is journaled)
    emu.fault({ method = "POST", path = ITEM_PATH, delay = 0.1 })
    local script = "stty cols 120 rows 20; " ..
      cli.command({ "import", src, "--provider", PROVIDER, "-q", "--batch", "1", "--concurrency", "1",
                    "--journal", jr }) .. " & pid=$!; " ..
      "until grep -q '\"done\"' " .. q(jr) .. " 2>/dev/null; do sleep 0.05; done; stty cols 70; wait $pid"
    local tty, ok = cli.pty(script)
    assert.is_true(ok, tty)
    local b = bars(tty)
    local wide, narrow, last_wide, first_narrow = 0, 0, 0, math.huge
    for i, seg in ipairs(b) do
      if #seg == 119 then wide = wide + 1; last_wide = i
      elseif #seg == 69 then narrow = narrow + 1; first_narrow = math.min(first_narrow, i)
      else error("a bar of width " .. #seg .. ": " .. seg) end
    end
    assert.is_true(wide >= 1 and narrow >= 1, tty)
    assert.is_true(last_wide < first_narrow)
    assert.matches("30/30 100%%", b[#b])
    os.remove(src); os.remove(jr)
  end)

  it("--verbose lines clear the bar's line first", function()
    local src = os.tmpname() .. ".csv"
    sample.write(src, 30, { prefix = "vb-" })
    local tty, ok = cli.pty("stty cols 100 rows 20; " ..
      cli.command({ "import", src, "--provider", PROVIDER, "-q", "-v", "--batch", "10" }))
    assert.is_true(ok, tty)
    local n = 0
    for pre in tty:gmatch("(.?.?.?.?)POST /v1.0/%$batch %-> 200") do
      n = n + 1
      assert.equal("\r\27[K", pre)
    end
    assert.is_true(n >= 3)
    os.remove(src)
  end)

  it("--progress without a terminal prints plain lines (no carriage returns), the last one final", function()
    local src = os.tmpname() .. ".csv"
    sample.write(src, 120, { prefix = "ci-" })
    local code, _, err = cli.run({ "import", src, "--provider", PROVIDER, "-q", "--progress" })
    assert.equal(0, code)
    assert.not_matches("\r", err, 1, true)
    assert.not_matches("\27", err, 1, true)
    local lines = {}
    for l in err:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.is_true(#lines >= 1)
    for _, l in ipairs(lines) do assert.matches("^create +%d+/120 +%d+%%", l) end
    assert.matches("^create 120/120 100%%", lines[#lines])
    assert.equal("\n", err:sub(-1))
    os.remove(src)
  end)
end)
