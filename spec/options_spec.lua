-- Option checking: viva.client{}, the page options (c:activities{...}, c:activities_page{...}),
-- $batch options and viva.bulk.import. Misuse raises, naming the option, with the nearest
-- known name for a misspelled one; nothing is sent (the emulator's request counter says so).
local viva = require "vivalearning"
local emu = require "support.emulator"
local sample = require "vivalearning.sample"

local PROVIDER = sample.provider

local function raises(f, msg)
  local ok, err = pcall(f)
  assert.is_false(ok, "did not raise")
  assert.matches(msg, tostring(err), 1, true)
end

describe("viva.client options", function()
  local function client(t)
    t.token = t.token or "t"
    return viva.client(t)
  end

  it("names an unknown option with the nearest known one", function()
    raises(function() client { max_concurency = 4 } end,
      "viva.client: unknown option 'max_concurency'; did you mean 'max_concurrency'?")
    raises(function() client { graph_ulr = "https://x/v1.0" } end, "did you mean 'graph_url'?")
    raises(function() client { zzzzzzzz = 1 } end, "viva.client: unknown option 'zzzzzzzz'")
    raises(function() client { [1] = "x" } end, "viva.client: unknown option (a number key)")
  end)

  it("checks the keys of timeouts and backoff", function()
    raises(function() client { timeouts = { bogus = 1 } } end, "viva.client: timeouts: unknown option 'bogus'")
    raises(function() client { timeouts = { conect = 5 } } end, "timeouts: unknown option 'conect'; did you mean 'connect'?")
    raises(function() client { backoff = { bse = 1 } } end, "viva.client: backoff: unknown option 'bse'; did you mean 'base'?")
    assert.truthy(client { timeouts = { connect = 1, attempt = 2, deadline = 3 }, backoff = { base = 0.1, cap = 1 } })
  end)

  it("refuses counts that are not integers instead of truncating them", function()
    raises(function() client { max_concurrency = 2.5 } end, "viva.client: max_concurrency must be an integer 1..1024, got 2.5")
    raises(function() client { max_retries = 1.5 } end, "max_retries must be an integer 0..20")
    raises(function() client { max_retries = "x" } end, "max_retries must be an integer 0..20")
    raises(function() client { max_body_bytes = 4096.5 } end, "max_body_bytes must be an integer")
    raises(function() client { allow_http = "yes" } end, "viva.client: allow_http must be a boolean")
    assert.truthy(client { max_concurrency = 4.0, max_retries = 0 })   -- integral floats are integers
  end)
end)

describe("page and batch options", function()
  local c
  setup(function() c = require("support.lualayer").client() end)

  it("raise on an unknown or ill-typed option when the iterator is made, before any request", function()
    local before = emu.counters().requests
    raises(function() c:activities { user = emu.user(7), tpo = 5 } end,
      "activities: unknown option 'tpo'; did you mean 'top'?")
    raises(function() c:activity_pages { user = emu.user(7), max_page = 3 } end,
      "activities: unknown option 'max_page'; did you mean 'max_pages'?")
    raises(function() c:activities { user = emu.user(7), max_pages = "x" } end,
      "activities: option 'max_pages' must be an integer >= 1, got \"x\"")
    raises(function() c:activities { user = emu.user(7), max_pages = 2.5 } end, "option 'max_pages' must be an integer >= 1")
    raises(function() c:activities { me = "yes" } end, "activities: option 'me' must be a boolean")
    raises(function() c:providers { provider = PROVIDER } end, "providers: unknown option 'provider'")
    raises(function() c:contents { provider = PROVIDER, top = -1 } end, "contents: option 'top' must be an integer >= 0")
    raises(function() c:contents { provider = PROVIDER, selct = "id" } end, "did you mean 'select'?")
    -- the page calls themselves, and $batch options
    raises(function() c:activities_page { user = emu.user(7), tpo = 5 } end,
      "vivalearning: activities_page: unknown option 'tpo'; did you mean 'top'?")
    raises(function() c:submit("providers_page", { skp = 1 }) end, "providers_page: unknown option 'skp'; did you mean 'skip'?")
    raises(function() c:activities_page { user = emu.user(7), count = "yes" } end, "vivalearning: count must be a boolean")
    raises(function() c:batch({ { op = "get", id = "x" } }, { retyr = true }) end,
      "vivalearning: batch options: unknown option 'retyr'; did you mean 'retry'?")
    raises(function() c:batch({ { op = "get", id = "x", provder = PROVIDER } }) end,
      "vivalearning: batch item 1: unknown option 'provder'; did you mean 'provider'?")
    raises(function() c:get_content(PROVIDER, { external_id = "CA-01", externalid = "x" }) end,
      "vivalearning: content key: unknown option 'externalid'")
    assert.equal(before, emu.counters().requests)
    -- good options still page
    local n = 0
    for p, err in c:content_pages { provider = PROVIDER, top = 5, count = true, max_pages = 2 } do
      if not p then assert.equal("pageLimit", err.code); break end
      n = n + 1
    end
    assert.equal(2, n)
  end)
end)

describe("viva.bulk.import options", function()
  local c
  setup(function() c = require("support.lualayer").client() end)

  local rows = { { type = "assignment", externalCourseActivityId = "opt-1", learnerUserId = sample.learner(1),
                   learningContentId = sample.content(1), status = "notStarted", assignmentType = "required" } }

  it("raises on an unknown option, with the nearest name", function()
    local before = emu.counters().requests
    raises(function() viva.bulk.import(c, rows, { provider = PROVIDER, concurency = 4 }) end,
      "import: unknown option 'concurency'; did you mean 'concurrency'?")
    raises(function() viva.bulk.import(c, rows, { provider = PROVIDER, journl = "x" }) end, "did you mean 'journal'?")
    raises(function() viva.bulk.import(c, rows, { provider = PROVIDER, dryrun = true }) end, "did you mean 'dry_run'?")
    raises(function() viva.bulk.import(c, rows, { provider = PROVIDER, qqqqqqqq = true }) end, "import: unknown option 'qqqqqqqq'")
    assert.equal(before, emu.counters().requests)
  end)

  it("raises on ill-typed options, naming the option and the value", function()
    for _, case in ipairs {
      { { max_attempts = "x" }, "import: option 'max_attempts' must be an integer >= 1, got \"x\"" },
      { { max_attempts = 2.5 }, "option 'max_attempts' must be an integer >= 1, got 2.5" },
      { { concurrency = 1.5 }, "option 'concurrency' must be an integer >= 1" },
      { { batch = 21 }, "option 'batch' must be a boolean or an integer 1..20, got 21" },
      { { mode = "merge" }, "option 'mode' must be create, upsert, delete or sync, got \"merge\"" },
      { { type = "webinar" }, "option 'type' must be assignment or self_initiated" },
      { { format = "xml" }, "option 'format' must be csv or jsonl" },
      { { results_format = "xls" }, "option 'results_format' must be csv or jsonl" },
      { { journal = 5 }, "option 'journal' must be a non-empty string, got 5" },
      { { results = true }, "option 'results' must be a path or an open file" },
      { { progress = "yes" }, "option 'progress' must be a boolean or bar" },
      { { on_outcome = "print" }, "option 'on_outcome' must be a function" },
      { { on_progress = 1 }, "option 'on_progress' must be a function" },
      { { dry_run = 1 }, "option 'dry_run' must be a boolean" },
      { { label = {} }, "option 'label' must be a non-empty string, got a table" },
    } do
      local o = { provider = PROVIDER }
      for k, v in pairs(case[1]) do o[k] = v end
      raises(function() viva.bulk.import(c, rows, o) end, case[2])
    end
  end)

  it("knows the options other parts of the importer read (one table)", function()
    for _, name in ipairs { "max_wait", "deadline", "journal_repair", "retry_failed", "shard", "provider", "mode" } do
      assert.truthy(viva.bulk.IMPORT_OPTIONS[name], name)
    end
    local s = assert(viva.bulk.import(c, rows, { provider = PROVIDER, dry_run = true, batch = false, concurrency = 2,
                                                 max_attempts = 3, progress = false, label = "x" }))
    assert.equal(1, s.valid)
  end)
end)
