-- vivalearning.cli: the `vivalearning` command (bin/vivalearning runs M.main(arg)).
--
--   vivalearning import FILE --provider ID [--mode create|upsert|delete] [--batch N]
--                [--concurrency N] [--journal F] [--results F|-] [--type T] [--dry-run]
--                [--shard K/N]
--   vivalearning sync FILE --provider ID --state F [--delete-missing] [--verify | --verify-share X]
--                [--dry-run] [--results F|-] [--shard K/N] ...
--   vivalearning state show|export --state F [--format csv|jsonl] [-o FILE]
--   vivalearning export --user ID | --me [--format csv|jsonl] [-o FILE]
--   vivalearning get ID | get --provider ID --external-id X
--   vivalearning delete ID --provider ID | delete --provider ID --external-id X
--   vivalearning providers [--format table|jsonl]
--   vivalearning contents --provider ID [--format table|jsonl]
--
-- Exit codes, the same for every subcommand: 0 ok; 1 some rows (or the one operation) failed;
-- 2 usage or fatal error (authentication failures included).
-- Every subcommand also takes --max-retries, --timeout, --verbose and --log FILE; the command
-- takes --version.
-- Credentials and URLs come from flags or the environment: VIVA_TENANT_ID, VIVA_CLIENT_ID,
-- VIVA_CLIENT_SECRET, VIVA_GRAPH_URL, VIVA_AUTHORITY_URL, VIVA_CA_FILE (and VIVA_TOKEN,
-- VIVA_USERNAME, VIVA_PASSWORD for a fixed or delegated token).
local compat = require "vivalearning.compat"
local argparse = require "argparse"

local M = {}

M.EXIT_OK, M.EXIT_FAILED, M.EXIT_USAGE = 0, 1, 2

-- The examples `vivalearning --help` ends with (spec/cli_options_spec.lua runs them).
M.EXAMPLES = {
  "vivalearning import activities.csv --provider c0000000-0000-4000-8000-000000000001 --journal import.journal --results results.csv",
  "vivalearning import activities.csv --provider c0000000-0000-4000-8000-000000000001 --mode upsert --dry-run",
  "vivalearning export --user b0000000-0000-4000-8000-000000000002 -o learner.csv",
}

local ENV = {
  tenant = "VIVA_TENANT_ID", client_id = "VIVA_CLIENT_ID", client_secret = "VIVA_CLIENT_SECRET",
  graph_url = "VIVA_GRAPH_URL", authority_url = "VIVA_AUTHORITY_URL", ca_file = "VIVA_CA_FILE",
  token = "VIVA_TOKEN", username = "VIVA_USERNAME", password = "VIVA_PASSWORD",
}

-- Converters for option values; their messages name the option.
local function positive(option)
  return function(s)
    local n = compat.tointeger(tonumber(s))
    if not n or n < 1 then return nil, ("%s: '%s' is not a positive integer"):format(option, tostring(s)) end
    return n
  end
end

local function retries(s)
  local n = compat.tointeger(tonumber(s))
  if not n or n < 0 or n > 20 then return nil, ("--max-retries: '%s' is not an integer 0..20"):format(tostring(s)) end
  return n
end

-- A converter for a seconds option: a finite number above `min` (or equal to it, when
-- `min_ok`) and at most `max`; the message names the option and the range.
local function seconds(flag, min, min_ok, max)
  local range = ("%s %s s%s"):format(min, min_ok and "<=" or "<", max and (" <= " .. max) or "")
  return function(s)
    local n = tonumber(s)
    if not n or n ~= n or n == math.huge or n < min or (n == min and not min_ok) or (max and n > max) then
      return nil, ("%s: '%s' is not a number of seconds (%s)"):format(flag, tostring(s), range)
    end
    return n
  end
end

-- --verify-share: a share of rows, 0 < x <= 1, or a percentage ("1%")
local function share(v)
  local pct = tostring(v):match("^%s*([%d.]+)%s*%%%s*$")
  local n = tonumber(pct or v)
  if n and pct then n = n / 100 end
  if not n or n ~= n or n <= 0 or n > 1 then
    return nil, ("--verify-share: '%s' is not a share 0 < x <= 1 (or a percentage, e.g. 1%%)"):format(tostring(v))
  end
  return n
end

local function shard(v)
  local ok, sh = pcall(require("vivalearning.bulk").parse_shard, v)
  if not ok then return nil, ("--shard: '%s' is not K/N with 0 <= K < N"):format(v) end
  return sh
end

-- The environment every subcommand reads, for its --help.
local ENV_HELP = {
  { "VIVA_TENANT_ID", "tenant id or domain (--tenant)" },
  { "VIVA_CLIENT_ID", "app (client) id (--client-id)" },
  { "VIVA_CLIENT_SECRET", "client secret (--client-secret)" },
  { "VIVA_GRAPH_URL", "Graph base URL (--graph-url)" },
  { "VIVA_AUTHORITY_URL", "token authority (--authority-url)" },
  { "VIVA_CA_FILE", "CA bundle (--ca-file)" },
  { "VIVA_TOKEN", "a bearer token instead of client credentials (--token)" },
  { "VIVA_USERNAME", "user of a delegated token (--username)" },
  { "VIVA_PASSWORD", "password of --username (--password)" },
}

local function env_epilog(extra)
  local lines = { "Environment (flags win over it):" }
  for _, e in ipairs(ENV_HELP) do lines[#lines + 1] = ("   %-20s %s"):format(e[1], e[2]) end
  for _, e in ipairs(extra or {}) do lines[#lines + 1] = ("   %-20s %s"):format(e[1], e[2]) end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "Exit codes: 0 ok, 1 " .. (extra and extra.failed or "the operation failed") ..
    ", 2 usage or fatal error (authentication failures included)."
  return table.concat(lines, "\n")
end

local function add_connection(cmd, extra_env)
  cmd:group("Connection (flags override the environment)",
    cmd:option("--tenant", "Tenant id (env VIVA_TENANT_ID)."),
    cmd:option("--client-id", "App (client) id (env VIVA_CLIENT_ID)."),
    cmd:option("--client-secret", "Client secret (env VIVA_CLIENT_SECRET; prefer the environment: flags show in ps)."),
    cmd:option("--graph-url", "Graph base URL (env VIVA_GRAPH_URL, default https://graph.microsoft.com/v1.0)."),
    cmd:option("--authority-url", "Token authority (env VIVA_AUTHORITY_URL, default https://login.microsoftonline.com)."),
    cmd:option("--ca-file", "CA bundle for TLS (env VIVA_CA_FILE)."),
    cmd:option("--token", "A bearer token to use instead of client credentials (env VIVA_TOKEN; prefer the environment: flags show in ps)."),
    cmd:option("--username", "User for a delegated token, with --password (env VIVA_USERNAME)."),
    cmd:option("--password", "Password for --username (env VIVA_PASSWORD; prefer the environment: flags show in ps).")
  )
  cmd:group("Requests and logging",
    cmd:option("--max-retries", "Retries of a request after its first attempt, 0..20 (default 3; import: 0, it retries rows itself)."):convert(retries),
    cmd:option("--timeout", "Seconds one request may take, its retries included (default 300)."):convert(seconds("--timeout", 0, false, 86400)),
    cmd:flag("-v --verbose", "One line per HTTP attempt on stderr (method, path, status, attempt, time, request-id)."),
    cmd:option("--log", "Append one JSON line per HTTP attempt to this file (method, path, status, attempt, elapsed, request_id; never a secret).")
  )
  cmd:epilog(env_epilog(extra_env))
end

function M.parser()
  local p = argparse("vivalearning", "Push and read Viva Learning course activities (Microsoft Graph).")
    :epilog("Exit codes (every command): 0 ok, 1 some rows (or the one operation) failed, 2 usage or\n" ..
            "fatal error (authentication failures included).\n" ..
            "Run 'vivalearning <command> --help' for the options and environment of a command.\n\n" ..
            "Examples:\n" ..
            "   " .. M.EXAMPLES[1] .. "\n   " .. M.EXAMPLES[2] .. "\n   " .. M.EXAMPLES[3])
  p:command_target("command")
  p:require_command(true)
  p:flag("--version", "Print the version and exit."):action(function()
    io.stdout:write(tostring(require("vivalearning")._VERSION), "\n")
    io.stdout:flush()
    os.exit(0)
  end)

  local imp = p:command("import", "Import course activities from a CSV or JSON Lines file.")
  imp:argument("file", "CSV (Graph field names as columns, dotted for complex fields) or .jsonl file; - for stdin.")
  imp:option("--provider", "Learning provider id the activities belong to."):count(1)
  imp:option("--mode", "create, upsert (by externalCourseActivityId) or delete.")
    :choices({ "create", "upsert", "delete" }):default("create")
  imp:option("--type", "Type of rows without a type column: assignment or self_initiated.")
    :choices({ "assignment", "self_initiated" })
  imp:option("--format", "Input format (default: from the file name; .jsonl = JSON Lines, else CSV).")
    :choices({ "csv", "jsonl" })
  imp:option("--batch", "Requests per $batch, 1..20 (1 = single requests).", "20"):convert(positive("--batch"))
  imp:flag("--no-batch", "Send single requests (same as --batch 1).")
  imp:option("--concurrency", "Most requests in flight (the window adapts to the round trip and Graph's throttling below it).", "128"):convert(positive("--concurrency"))
  imp:option("--journal", "Journal file: makes the import resumable (run again with the same file).")
  imp:option("--results", "Per-row results file (.csv or .jsonl; - for stdout, then the summary goes to stderr).")
  imp:option("--results-format", "Format of the results (default: from the name; csv for -)."):choices({ "csv", "jsonl" })
  imp:option("--shard", "K/N: import only the rows whose externalCourseActivityId hashes to K of N (FNV-1a 32, 0 <= K < N).")
    :convert(shard)
  imp:flag("--repair-journal", "Go on with a damaged journal (records missing or damaged): keep its intact "
    .. "records and look up every row without an outcome before sending it.")
  imp:flag("--no-retry-failed", "Keep the outcome of rows that failed in an earlier run with the journal "
    .. "(by default they are tried again).")
  imp:option("--max-wait", "Longest Retry-After a row waits for, in seconds (default 120); "
    .. "longer fails the row as throttled."):convert(seconds("--max-wait", 0, true))
  imp:option("--deadline", "Stop sending after this many seconds; rows not done are reported "
    .. "(run again with the same journal to do them)."):convert(seconds("--deadline", 0, false))
  imp:flag("--dry-run", "Validate every row, send nothing.")
  imp:flag("--progress", "Show progress even when stderr is not a terminal (then a plain line every 5 s, for CI logs).")
  imp:flag("--no-progress", "No progress bar.")
  imp:flag("-q --quiet", "No summary on stdout.")
  add_connection(imp, { { "COLUMNS", "progress bar width when the terminal reports none" },
                        failed = "some rows failed" })

  local syn = p:command("sync", "Incremental sync with a local state database: only rows that changed since the last run are sent.")
  syn:argument("file", "CSV or .jsonl file with every row of the provider (or of the shard); - for stdin.")
  syn:option("--provider", "Learning provider id the activities belong to."):count(1)
  syn:option("--state", "State database (SQLite; created on the first run, one per provider and shard)."):count(1)
  syn:flag("--delete-missing", "Delete in Graph the rows of the state that are not in the file (mirror; "
    .. "with --dry-run, only list them).")
  syn:flag("--verify", "Re-read every row from Graph and repair drift (a lookup per row).")
  syn:option("--verify-share", "Re-read this share of the rows per run (e.g. 0.01 or 1%): every row once "
    .. "over 1/share runs."):convert(share)
  syn:option("--type", "Type of rows without a type column: assignment or self_initiated.")
    :choices({ "assignment", "self_initiated" })
  syn:option("--format", "Input format (default: from the file name; .jsonl = JSON Lines, else CSV).")
    :choices({ "csv", "jsonl" })
  syn:option("--batch", "Requests per $batch, 1..20 (1 = single requests).", "20"):convert(positive("--batch"))
  syn:option("--concurrency", "Most requests in flight (adapts down on throttling).", "16"):convert(positive("--concurrency"))
  syn:option("--results", "Per-row results file (.csv or .jsonl; - for stdout, then the summary goes to stderr).")
  syn:option("--results-format", "Format of the results (default: from the name; csv for -)."):choices({ "csv", "jsonl" })
  syn:option("--shard", "K/N: sync only the rows whose externalCourseActivityId hashes to K of N (one state per shard).")
    :convert(shard)
  syn:option("--max-wait", "Longest Retry-After a row waits for, in seconds (default 120)."):convert(seconds("--max-wait", 0, true))
  syn:option("--deadline", "Stop sending after this many seconds (run again to do the rest)."):convert(seconds("--deadline", 0, false))
  syn:flag("--dry-run", "Validate every row and say what would be sent (and deleted), from the state alone; send nothing.")
  syn:flag("--progress", "Show progress even when stderr is not a terminal.")
  syn:flag("--no-progress", "No progress bar.")
  syn:flag("-q --quiet", "No summary on stdout.")
  add_connection(syn, { failed = "some rows failed" })

  local sta = p:command("state", "Show a sync's state database, or export what it believes is in Graph.")
  sta:argument("action", "show (a summary) or export (every activity, as CSV or JSON Lines)."):choices({ "show", "export" })
  sta:option("--state", "State database."):count(1)
  sta:option("--format", "Export format: csv or jsonl (default: from -o, else csv)."):choices({ "csv", "jsonl" })
  sta:option("-o --output", "Export to this file (default stdout); written under a temporary name and renamed.")
  sta:epilog("Needs no credentials and sends nothing. Exit codes: 0 ok, 2 usage error or a state that cannot be read.")

  local exp = p:command("export", "Write a learner's course activities as CSV or JSON Lines.")
  exp:mutex(
    exp:option("--user", "User id of the learner."),
    exp:flag("--me", "The signed-in user (delegated token).")
  )
  exp:option("--format", "csv or jsonl (default: from -o, else csv).") :choices({ "csv", "jsonl" })
  exp:option("-o --output", "Output file (default stdout); written under a temporary name and renamed when complete.")
  exp:option("--top", "Page size to ask for."):convert(positive("--top"))
  add_connection(exp)

  local get = p:command("get", "Print one course activity as JSON.")
  get:argument("id", "Activity id."):args("?")
  get:option("--provider", "Provider id (with --external-id).")
  get:option("--external-id", "externalCourseActivityId to look up.")
  get:option("--user", "Read it through this user (users/{id}/employeeExperience/...).")
  add_connection(get)

  local del = p:command("delete", "Delete one course activity.")
  del:argument("id", "Activity id."):args("?")
  del:option("--provider", "Provider id."):count(1)
  del:option("--external-id", "Delete by externalCourseActivityId instead of id.")
  add_connection(del)

  local prov = p:command("providers", "List learning providers (needs a delegated token).")
  prov:option("--format", "table or jsonl."):choices({ "table", "jsonl" }):default("table")
  add_connection(prov)

  local cont = p:command("contents", "List a provider's learning contents.")
  cont:option("--provider", "Provider id."):count(1)
  cont:option("--format", "table or jsonl."):choices({ "table", "jsonl" }):default("table")
  add_connection(cont)

  return p
end

-- Parse without exiting: args table, or nil, message, the (sub)parser that failed.
function M.parse(args)
  local p = M.parser()
  local failed_parser
  local ok, res = pcall(function()
    if p._parse then
      return p:_parse(args, function(sub, msg) failed_parser = sub; error({ usage_error = msg }, 0) end)
    end
    local pok, r = p:pparse(args)
    if not pok then error({ usage_error = r }, 0) end
    return r
  end)
  if ok then return res end
  if type(res) == "table" and res.usage_error then
    return nil, res.usage_error, failed_parser or p
  end
  error(res, 0)
end

local function env_or(args, key)
  local v = args[key]
  if v == nil or v == "" then v = os.getenv(ENV[key]) end
  if v == "" then v = nil end
  return v
end

-- Client config from flags and environment; nil, message when something needed is missing.
function M.client_config(args)
  local cfg = {
    graph_url = env_or(args, "graph_url") or "https://graph.microsoft.com/v1.0",
    authority_url = env_or(args, "authority_url") or "https://login.microsoftonline.com",
    ca_file = env_or(args, "ca_file"),
    tenant = env_or(args, "tenant"),
    client_id = env_or(args, "client_id"),
  }
  local token = env_or(args, "token")
  if token then
    cfg.token = token
    return cfg
  end
  local user, pass = env_or(args, "username"), env_or(args, "password")
  cfg.client_secret = env_or(args, "client_secret")
  if user or pass then
    -- delegated token (password grant); a confidential app sends its secret too
    if not (user and pass) then return nil, "--username and --password go together" end
    cfg.username, cfg.password = user, pass
  else
    if not cfg.client_secret then
      return nil, "no credentials: give --client-secret (or VIVA_CLIENT_SECRET), --token, or --username/--password"
    end
  end
  if not cfg.tenant then return nil, "no tenant: give --tenant or VIVA_TENANT_ID" end
  if not cfg.client_id then return nil, "no client id: give --client-id or VIVA_CLIENT_ID" end
  return cfg
end

local function say(io_, ...) io_:write(...) end

-- "1 row", "2 rows"
local function plural(n, word, words)
  return ("%d %s"):format(n, n == 1 and word or (words or word .. "s"))
end
M.plural = plural

local function fmt_err(err)
  return (tostring(err):gsub("^vivalearning: ", ""))
end

local function summary_text(s)
  local lines = {}
  lines[#lines + 1] = ("%s read: %d created, %d updated, %d unchanged, %d deleted, %d failed")
    :format(plural(s.read, "row"), s.created, s.updated, s.unchanged, s.deleted, s.failed)
  if s.invalid > 0 then
    lines[#lines + 1] = ("  %d of the failed rows %s invalid and never sent"):format(s.invalid,
      s.invalid == 1 and "was" or "were")
  end
  if s.resumed > 0 then
    lines[#lines + 1] = ("  %s %s already done in the journal (resumed)"):format(plural(s.resumed, "row"),
      s.resumed == 1 and "was" or "were")
  end
  if s.shard then
    lines[#lines + 1] = ("  shard %d/%d: %s of other shards skipped"):format(s.shard.k, s.shard.n,
      plural(s.other_shards or 0, "row"))
  end
  if s.elapsed and s.elapsed > 0 then
    lines[#lines + 1] = ("  %s in %.1f s (%.0f rows/s)"):format(plural(s.requests, "request"), s.elapsed,
      (s.read - s.resumed) / s.elapsed)
  end
  if s.throttled then
    lines[#lines + 1] = ("  throttled %s; concurrency backed off"):format(plural(s.throttled, "time"))
  end
  return table.concat(lines, "\n") .. "\n"
end
M.summary_text = summary_text

-- How many failed rows import and --dry-run list on stderr.
M.SHOW_FAILED = 20

-- Keeps the first M.SHOW_FAILED failed rows (by row number) and counts the rest.
local function failure_log()
  local kept, n = {}, 0
  local log = {}
  local function by_row(x, y) return x.row < y.row end
  function log.add(rec)
    if rec.outcome ~= "failed" then return end
    n = n + 1
    kept[#kept + 1] = { row = rec.row, external_id = rec.external_id, status = rec.status,
                        code = rec.code, message = rec.message }
    if #kept > M.SHOW_FAILED then
      table.sort(kept, by_row)
      kept[#kept] = nil
    end
  end
  function log.write(errout, results_path)
    if n == 0 then return end
    table.sort(kept, by_row)
    say(errout, ("%s failed%s:\n"):format(plural(n, "row"), n > #kept and (", the first " .. #kept) or ""))
    for _, r in ipairs(kept) do
      local what = {}
      if r.status then what[#what + 1] = tostring(compat.tointeger(r.status) or r.status) end
      if r.code and r.code ~= "invalidRow" then what[#what + 1] = tostring(r.code) end
      local msg = tostring(r.message or "")
      if #what > 0 then msg = table.concat(what, " ") .. (msg ~= "" and (": " .. msg) or "") end
      say(errout, ("  row %d%s: %s\n"):format(r.row,
        (r.external_id and r.external_id ~= "") and (" (" .. tostring(r.external_id) .. ")") or "", msg))
    end
    if n > #kept then
      local where = " (give --results FILE for every row)"
      if results_path == "-" then where = " (every row is in the results on stdout)"
      elseif results_path then where = " (every row is in " .. results_path .. ")" end
      say(errout, ("  ... and %d more failed %s%s\n"):format(n - #kept, n - #kept == 1 and "row" or "rows", where))
    end
  end
  return log
end

-- Exit code of an operation that failed: 2 when it could not have succeeded (authentication
-- refused, or an argument the client will not send), else 1.
local function failure_code(err)
  local ok, kind = pcall(function() return err.kind end)
  if ok and (kind == "auth" or kind == "validation") then return M.EXIT_USAGE end
  return M.EXIT_FAILED
end
M.failure_code = failure_code

-- The process id, for temporary names beside an output file.
local function pid()
  local f = io.open("/proc/self/stat", "r")
  local n = f and f:read("*n")
  if f then f:close() end
  return compat.tointeger(n) or math.random(1, 0x7fffffff)
end

-- Output that appears whole or not at all: written to a temporary file (beside `path`, or in
-- the temporary directory for stdout), then renamed to `path` or copied to `out` by commit();
-- abort() removes it. A failed request leaves no file and prints nothing.
local function open_sink(path, out)
  local tmp = path and ("%s.tmp-%d"):format(path, pid()) or os.tmpname()
  local fh, err = io.open(tmp, "wb")
  if not fh then
    if not path then os.remove(tmp) end
    return nil, ("cannot write %s: %s"):format(path or "a temporary file", (tostring(err):match("^.*: (.-)$") or tostring(err)))
  end
  local sink, done = { fh = fh }, false
  function sink.abort()
    if done then return end
    done = true
    fh:close()
    os.remove(tmp)
  end
  function sink.commit()
    if done then return true end
    done = true
    local ok, cerr = fh:close()
    if not ok then os.remove(tmp); return nil, ("cannot write %s: %s"):format(path or "stdout", tostring(cerr)) end
    if path then
      local rok, rerr = os.rename(tmp, path)
      if not rok then os.remove(tmp); return nil, ("cannot write %s: %s"):format(path, tostring(rerr)) end
      return true
    end
    local f = assert(io.open(tmp, "rb"))
    while true do
      local chunk = f:read(65536)
      if not chunk then break end
      out:write(chunk)
    end
    f:close()
    os.remove(tmp)
    return true
  end
  return sink
end

local commands = {}

-- What import and sync share: the progress and results options, the failed-rows listing, the
-- warnings, the summary (report(sout, s) writes the command's own lines) and the exit code.
local function run_import(viva, c, a, out, errout, opts, report)
  local progress = "auto"
  if a.no_progress then progress = false elseif a.progress then progress = "bar" end
  local failures = failure_log()
  opts.results = a.results == "-" and out or a.results
  opts.progress = progress == "auto" and true or progress
  opts.on_outcome = failures.add
  local s, err = viva.bulk.import(c, a.file == "-" and io.stdin or a.file, opts)
  if not s then return nil, err, M.EXIT_USAGE end
  -- with the results on stdout, the summary goes to stderr
  local sout = a.results == "-" and errout or out
  for _, w in ipairs(s.warnings or {}) do say(errout, "warning: ", w, "\n") end
  if not a.quiet then
    if s.dry_run then
      say(sout, ("%s checked: %d valid, %d invalid\n"):format(plural(s.read, "row"), s.valid or 0, s.failed))
    else
      say(sout, summary_text(s))
    end
    report(sout, s)
    if a.results and a.results ~= "-" then say(sout, "  results: ", a.results, "\n") end
  end
  failures.write(errout, a.results)
  return s.failed > 0 and M.EXIT_FAILED or M.EXIT_OK
end

local BATCH_LIMIT = "--batch must be 1..20 (Graph allows at most 20 requests in a $batch)"

function commands.import(viva, c, a, out, errout)
  local batch = a.no_batch and 1 or a.batch
  if batch > 20 then return nil, BATCH_LIMIT, M.EXIT_USAGE end
  return run_import(viva, c, a, out, errout, {
    provider = a.provider, mode = a.mode, type = a.type, format = a.format, batch = batch,
    concurrency = a.concurrency, journal = a.journal,
    results_format = a.results_format, dry_run = a.dry_run, shard = a.shard,
    journal_repair = a.repair_journal or nil, retry_failed = not a.no_retry_failed,
    max_wait = a.max_wait, deadline = a.deadline,
  }, function() end)
end

function commands.sync(viva, c, a, out, errout)
  if a.batch > 20 then return nil, BATCH_LIMIT, M.EXIT_USAGE end
  if a.verify and a.verify_share then return nil, "--verify and --verify-share: give one", M.EXIT_USAGE end
  return run_import(viva, c, a, out, errout, {
    provider = a.provider, mode = "sync", state = a.state, type = a.type, format = a.format, batch = a.batch,
    concurrency = a.concurrency, results_format = a.results_format, dry_run = a.dry_run,
    shard = a.shard, max_wait = a.max_wait, deadline = a.deadline, delete_missing = a.delete_missing or nil,
    verify = a.verify or a.verify_share, label = "sync",
  }, function(sout, s)
    if s.dry_run then
      local w = s.would
      say(sout, ("  would send: %d creates, %d updates, %d lookups; %d unchanged (nothing sent)\n"):format(
        w.create, w.update, w.lookup, w.unchanged))
      if s.missing > 0 then
        say(sout, ("  %s in the state and not in the file%s:\n"):format(plural(s.missing, "row"),
          a.delete_missing and " would be deleted" or " (--delete-missing would delete them)"))
        for _, ext in ipairs(s.missing_ids) do say(sout, "    ", ext, "\n") end
        if s.missing > #s.missing_ids then say(sout, ("    ... and %d more\n"):format(s.missing - #s.missing_ids)) end
      end
    else
      say(sout, ("  state %s: %s before this run%s%s\n"):format(a.state, plural(s.state_rows, "row"),
        s.state_fallback and " (new: every row was looked up)" or "",
        s.verified > 0 and (", %d verified, %d repaired"):format(s.verified, s.repaired) or ""))
    end
  end)
end

-- `state show|export`: no client, nothing sent.
function commands.state(a, out, errout)
  local state = require "vivalearning.state"
  local st, err = state.open(a.state, { writer = false })
  if not st then return nil, err, M.EXIT_USAGE end
  if a.action == "show" then
    local t = st:info()
    st:close()
    say(out, ("state %s (schema version %d)\n"):format(t.path, t.version))
    say(out, ("  provider %s%s\n"):format(tostring(t.provider), t.shard and (", shard " .. t.shard) or ""))
    local parts = {}
    local names = {}
    for o in pairs(t.by_outcome) do names[#names + 1] = o end
    table.sort(names)
    for _, o in ipairs(names) do parts[#parts + 1] = ("%d %s"):format(t.by_outcome[o], o) end
    say(out, ("  %s%s\n"):format(plural(t.rows, "activity", "activities"),
      #parts > 0 and (" (last outcome: " .. table.concat(parts, ", ") .. ")") or ""))
    if t.pending > 0 then
      say(out, ("  %s with a create intent of an unfinished run (looked up by the next sync)\n"):format(plural(t.pending, "row")))
    end
    local r = t.last_run
    if r then
      say(out, ("  %s; the last: #%d %s, %s, started %s%s\n"):format(plural(t.runs, "run"), r.run, tostring(r.status),
        tostring(r.source), os.date("!%Y-%m-%dT%H:%M:%SZ", r.started),
        r.counts and (": %d read, %d created, %d updated, %d unchanged, %d deleted, %d failed"):format(
          r.counts.read or 0, r.counts.created or 0, r.counts.updated or 0, r.counts.unchanged or 0,
          r.counts.deleted or 0, r.counts.failed or 0) or ""))
    end
    return M.EXIT_OK
  end
  local rows = require "vivalearning.rows"
  local csv = require "vivalearning.csv"
  local jsonl = require "vivalearning.jsonl"
  local format = a.format or require("vivalearning.results").format_for(a.output)
  local sink, serr = open_sink(a.output, out)
  if not sink then st:close(); return nil, serr, M.EXIT_USAGE end
  local ok, n = pcall(function()
    local count = 0
    local w = format == "jsonl" and assert(jsonl.writer(sink.fh)) or assert(csv.writer(sink.fh, { eol = "\n" }))
    if format == "csv" then w:write(rows.columns) end
    for t in st:rows() do
      count = count + 1
      if format == "jsonl" then
        assert(w:write(t))
      else
        local flat = rows.flatten(t)
        local rec = {}
        for i, k in ipairs(rows.columns) do
          local v = flat[k]
          if v == jsonl.null or v == rows.null then v = nil end
          rec[i] = v ~= nil and tostring(v) or ""
        end
        assert(w:write(rec, #rows.columns))
      end
    end
    return count
  end)
  st:close()
  if not ok then sink.abort(); return nil, tostring(n), M.EXIT_USAGE end
  local cok, cerr = sink.commit()
  if not cok then return nil, cerr, M.EXIT_USAGE end
  if a.output then say(errout, ("%s written to %s\n"):format(plural(n, "activity", "activities"), a.output)) end
  return M.EXIT_OK
end

function commands.export(viva, c, a, out, errout)
  if not a.user and not a.me then return nil, "export needs --user ID or --me", M.EXIT_USAGE end
  local format = a.format or require("vivalearning.results").format_for(a.output)
  local sink, serr = open_sink(a.output, out)
  if not sink then return nil, serr, M.EXIT_USAGE end
  local ok, n, err = pcall(viva.bulk.export, c, { user = a.user, me = a.me or nil, format = format,
                                                  output = sink.fh, top = a.top })
  if not ok or not n then
    sink.abort()
    if not ok then error(n, 0) end
    return nil, err, failure_code(err)
  end
  local cok, cerr = sink.commit()
  if not cok then return nil, cerr, M.EXIT_USAGE end
  if a.output then say(errout, ("%s written to %s\n"):format(plural(n, "activity", "activities"), a.output)) end
  return M.EXIT_OK
end

local function print_json(out, m)
  if type(m) == "userdata" or (type(m) == "table" and m.tojson) then
    say(out, m:tojson(), "\n")
  else
    say(out, require("vivalearning.jsonl").encode(m), "\n")
  end
end

function commands.get(_, c, a, out)
  local act, err
  if a.external_id then
    if not a.provider then return nil, "--external-id needs --provider", M.EXIT_USAGE end
    act, err = c:get_by_external_id(a.provider, a.external_id)
  elseif a.id then
    if a.user then act, err = c:get_for_user(a.user, a.id) else act, err = c:get(a.id) end
  else
    return nil, "get needs an ID or --provider with --external-id", M.EXIT_USAGE
  end
  if not act then return nil, err, failure_code(err) end
  print_json(out, act)
  return M.EXIT_OK
end

function commands.delete(_, c, a, out)
  local id = a.id
  if a.external_id then
    local act, err = c:get_by_external_id(a.provider, a.external_id)
    if not act then return nil, err, failure_code(err) end
    id = act.id
  end
  if not id then return nil, "delete needs an ID or --external-id", M.EXIT_USAGE end
  local ok, err = c:delete(a.provider, id)
  if not ok then return nil, err, failure_code(err) end
  say(out, "deleted ", id, "\n")
  return M.EXIT_OK
end

-- A listing, whole or nothing: the table header and rows (or the models' own JSON lines) go
-- to a sink that reaches `out` only when every page came.
local function list(out, iter, format, cols)
  local sink, serr = open_sink(nil, out)
  if not sink then return nil, serr, M.EXIT_USAGE end
  local ok, n, err = pcall(function()
    local count = 0
    local fh = sink.fh
    if format == "table" then fh:write(table.concat(cols, "\t"), "\n") end
    for m, e in iter do
      if not m then return nil, e end
      count = count + 1
      if format == "jsonl" then
        fh:write(m:tojson(), "\n")
      else
        local t = {}
        for i, k in ipairs(cols) do
          local v = m[k]
          t[i] = (v == nil or type(v) == "userdata") and "" or tostring(v)
        end
        fh:write(table.concat(t, "\t"), "\n")
      end
    end
    return count
  end)
  if not ok or not n then
    sink.abort()
    if not ok then error(n, 0) end
    return nil, err, failure_code(err)
  end
  local cok, cerr = sink.commit()
  if not cok then return nil, cerr, M.EXIT_USAGE end
  return M.EXIT_OK
end

function commands.providers(_, c, a, out)
  return list(out, c:providers{}, a.format, { "id", "displayName", "isCourseActivitySyncEnabled" })
end

function commands.contents(_, c, a, out)
  return list(out, c:contents{ provider = a.provider }, a.format, { "id", "externalId", "title", "languageTag" })
end

-- One attempt as a JSON line, keys in a fixed order; only what the log promises (never the
-- headers, so never a token).
local LOG_KEYS = { "event", "op", "method", "path", "status", "attempt", "elapsed", "request_id",
                   "client_request_id", "error" }
local function log_line(ev)
  local jsonl = require "vivalearning.jsonl"
  local parts = { ('"time":%s'):format(jsonl.encode(os.date("!%Y-%m-%dT%H:%M:%SZ"))) }
  for _, k in ipairs(LOG_KEYS) do
    local v = ev[k]
    if k == "path" then v = tostring(ev.url or ""):gsub("^%a[%w+.-]*://[^/]*", "") end
    if k == "elapsed" and type(v) == "number" then v = math.floor(v * 1000 + 0.5) / 1000 end
    if v ~= nil then parts[#parts + 1] = ("%s:%s"):format(jsonl.encode(k), jsonl.encode(v)) end
  end
  -- lua-cjson escapes every "/"; paths read better without (still valid JSON)
  return (("{" .. table.concat(parts, ",") .. "}"):gsub("\\/", "/"))
end
M.log_line = log_line

-- The client's log hook for --verbose / --log (nil when neither); the log file is returned
-- for closing. nil, nil, message when the log file cannot be opened.
local function log_hook(a, errout)
  if not a.verbose and not a.log then return nil end
  local fh
  if a.log then
    local err
    fh, err = io.open(a.log, "a")
    if not fh then return nil, nil, ("cannot open the log %s: %s"):format(a.log, tostring(err):match("^.*: (.-)$") or err) end
  end
  -- on a terminal, a line first clears the progress bar (redrawn at its next update)
  local clear = a.verbose and require("vivalearning.progress").isatty(errout) and "\r\27[K" or ""
  return function(ev)
    if fh then
      fh:write(log_line(ev), "\n")
      fh:flush()
    end
    if a.verbose then
      local path = tostring(ev.url or ""):gsub("^%a[%w+.-]*://[^/]*", "")
      local extra = ev.request_id and (", request-id " .. tostring(ev.request_id)) or ""
      if ev.error then extra = extra .. ", " .. tostring(ev.error) end
      errout:write(clear, ("%s %s -> %s (attempt %s, %.3f s%s)\n"):format(tostring(ev.method), path,
        tostring(ev.status), tostring(ev.attempt), tonumber(ev.elapsed) or 0, extra))
      errout:flush()
    end
  end, fh
end

--- Run the command with an argument array; returns the exit code (never calls os.exit,
-- except argparse's --help and --version, which exit 0 after printing).
function M.run(args, out, errout)
  out, errout = out or io.stdout, errout or io.stderr
  local a, msg, sub = M.parse(args)
  if not a then
    say(errout, sub:get_usage(), "\n\nError: ", msg, "\n")
    return M.EXIT_USAGE
  end
  if a.command == "state" then
    -- reads the local database only: no credentials, no client
    local okr, code, err, failcode = pcall(commands.state, a, out, errout)
    if not okr then say(errout, "vivalearning state: ", tostring(code), "\n"); return M.EXIT_USAGE end
    if code == nil then say(errout, "vivalearning state: ", tostring(err), "\n"); return failcode or M.EXIT_USAGE end
    out:flush()
    return code
  end
  local viva = require "vivalearning"
  local cfg, cerr = M.client_config(a)
  if not cfg then
    say(errout, "vivalearning ", a.command, ": ", cerr, "\n")
    return M.EXIT_USAGE
  end
  if (a.command == "import" or a.command == "sync") and a.concurrency then cfg.max_concurrency = a.concurrency end
  if a.max_retries then cfg.max_retries = a.max_retries
  elseif a.command == "import" or a.command == "sync" then
    -- the import retries rows itself (max_attempts, Retry-After, creates reconciled); a client
    -- that retried a throttled request on its own would hide the 429 from the import's pace
    cfg.max_retries = 0
  end
  if a.timeout then
    cfg.timeouts = { deadline = a.timeout, attempt = math.min(a.timeout, 60), connect = math.min(a.timeout, 10) }
  end
  local hook, logfh, lerr = log_hook(a, errout)
  if lerr then
    say(errout, "vivalearning ", a.command, ": ", lerr, "\n")
    return M.EXIT_USAGE
  end
  cfg.log = hook
  local okc, c = pcall(viva.client, cfg)
  if not okc or not c then
    if logfh then logfh:close() end
    say(errout, "vivalearning ", a.command, ": cannot create the client: ", fmt_err(c), "\n")
    return M.EXIT_USAGE
  end
  local okr, code, err, failcode = pcall(commands[a.command], viva, c, a, out, errout)
  pcall(c.close, c)
  if logfh then logfh:close() end
  if not okr then
    say(errout, "vivalearning ", a.command, ": ", tostring(code), "\n")
    return M.EXIT_USAGE
  end
  if code == nil then
    say(errout, "vivalearning ", a.command, ": ", fmt_err(err), "\n")
    return failcode or M.EXIT_USAGE
  end
  out:flush()
  return code
end

function M.main(args)
  local t = {}
  for i = 1, #args do t[i] = args[i] end
  local code = M.run(t)
  io.stdout:flush()
  return code
end

return M
