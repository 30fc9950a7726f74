-- vivalearning.sample: sample course-activity rows for the emulator's default seed (used by
-- `make demo`, the benchmarks and the specs; handy for trying an import offline).
--
-- Learners are the seed's licensed users b0000000-0000-4000-8000-0000000000NN (NN = 01..50),
-- contents are provider 1's CA-01..CA-20 (d0000000-0000-4000-8000-0000010000NN).
local compat = require "vivalearning.compat"
local xorshift32 = require("vivalearning.sys").xorshift32
local csv = require "vivalearning.csv"
local jsonl = require "vivalearning.jsonl"
local rows = require "vivalearning.rows"

local M = {}

M.provider = "c0000000-0000-4000-8000-000000000001"
M.learners, M.contents = 50, 20

function M.learner(i) return ("b0000000-0000-4000-8000-%012d"):format((i - 1) % M.learners + 1) end
function M.content(i) return ("d0000000-0000-4000-8000-%06d%06d"):format(1, (i - 1) % M.contents + 1) end

local STATUSES = { "notStarted", "inProgress", "completed" }

-- A small deterministic generator (xorshift), so the same seed gives the same file.
local function rng(seed)
  local s = seed or 42
  return function(n)
    s = xorshift32(s)
    return (s % n) + 1
  end
end

local function date(day, hour)
  return ("2026-%02d-%02dT%02d:00:00Z"):format(compat.idiv(day, 28) % 12 + 1, day % 28 + 1, hour % 24)
end

--- Row i (a flat table with the export/import columns).
-- opts.prefix (external id prefix, default "demo-"), opts.seed, opts.version (changes status
-- and completion so a later upsert run has something to update).
function M.row(i, r, opts)
  opts = opts or {}
  local prefix = opts.prefix or "demo-"
  local t = {
    externalCourseActivityId = ("%s%06d"):format(prefix, i),
    learnerUserId = M.learner(r(M.learners)),
    learningContentId = M.content(i),
    learningProviderId = opts.provider or M.provider,
  }
  local st = STATUSES[r(3)]
  t.status = st
  t.completionPercentage = st == "completed" and "100" or st == "notStarted" and "0" or tostring(r(99))
  if st == "completed" then t.completedDateTime = date(r(300), r(24)) end
  if i % 5 < 3 then
    t.type = "assignment"
    t.assignmentType = (i % 2 == 0) and "required" or "recommended"
    t.assignedDateTime = date(r(200), 9)
    t.assignerUserId = M.learner(1)
    t["dueDateTime.dateTime"] = ("2026-12-%02dT17:00:00"):format(r(28))
    t["dueDateTime.timeZone"] = "UTC"
    t["notes.contentType"] = "text"
    t["notes.content"] = (i % 7 == 0) and 'Quarterly "safety" refresher, part 2' or "Assigned by your manager"
  else
    t.type = "self_initiated"
    t.startedDateTime = date(r(200), 8)
  end
  return t
end

-- Deliberately broken rows, each with the field the importer should name.
M.invalid_kinds = {
  function(t) t.completionPercentage = "150"; return "completionPercentage" end,
  function(t) t.status = "finished"; return "status" end,
  function(t) t.learnerUserId = ""; return "learnerUserId" end,
  function(t) t.type = "webinar"; return "type" end,
  function(t) t.externalCourseActivityId = ""; return "externalCourseActivityId" end,
}

--- Iterator over n rows: row table, i, invalid_field (nil for good rows).
-- opts.invalid: number of broken rows spread through the file (default 0).
function M.rows(n, opts)
  opts = opts or {}
  local r = rng(opts.seed or 7)
  local every = (opts.invalid or 0) > 0 and math.max(1, compat.idiv(n, opts.invalid)) or nil
  local i, bad = 0, 0
  return function()
    i = i + 1
    if i > n then return nil end
    local t = M.row(i, r, opts)
    if opts.changed and opts.changed(i) then
      t.status = "completed"; t.completionPercentage = "100"; t.completedDateTime = "2026-11-20T10:00:00Z"
    end
    local field
    if every and i % every == compat.idiv(every, 2) and bad < opts.invalid then
      bad = bad + 1
      field = M.invalid_kinds[(bad - 1) % #M.invalid_kinds + 1](t)
    end
    return t, i, field
  end
end

--- Write n sample rows to a CSV (or .jsonl) file. Returns a list of {row=, field=} for the
-- invalid rows it put in.
function M.write(path, n, opts)
  opts = opts or {}
  local invalid = {}
  if path:match("%.jsonl$") then
    local w = assert(jsonl.writer(path))
    for t, i, field in M.rows(n, opts) do
      local nested = rows.normalize(t, {}).fields
      nested["@odata.type"] = rows.type_names[rows.kind(t.type) or ""] or t.type
      if nested.completionPercentage then nested.completionPercentage = compat.tointeger(tonumber(nested.completionPercentage)) or nested.completionPercentage end
      w:write(nested)
      if field then invalid[#invalid + 1] = { row = i, field = field } end
    end
    w:close()
  else
    local w = assert(csv.writer(path, { eol = "\n" }))
    local cols = rows.columns
    w:write(cols)
    for t, i, field in M.rows(n, opts) do
      local rec = {}
      for c, k in ipairs(cols) do rec[c] = t[k] or "" end
      w:write(rec, #cols)
      if field then invalid[#invalid + 1] = { row = i, field = field } end
    end
    w:close()
  end
  return invalid
end

return M
