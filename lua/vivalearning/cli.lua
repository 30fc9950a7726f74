-- vivalearning.cli: the `vivalearning` command (bin/vivalearning runs M.main(arg)).
--
--   vivalearning import FILE --provider ID [--mode create|upsert|delete] [--batch N]
--                [--concurrency N] [--journal F] [--results F] [--type T] [--dry-run]
--   vivalearning export --user ID | --me [--format csv|jsonl] [-o FILE]
--   vivalearning get ID | get --provider ID --external-id X
--   vivalearning delete ID --provider ID | delete --provider ID --external-id X
--   vivalearning providers [--format table|jsonl]
--   vivalearning contents --provider ID [--format table|jsonl]
--
-- Exit codes: 0 ok; 1 some rows (or the one operation) failed; 2 usage or fatal error.
-- Credentials and URLs come from flags or the environment: VIVA_TENANT_ID, VIVA_CLIENT_ID,
-- VIVA_CLIENT_SECRET, VIVA_GRAPH_URL, VIVA_AUTHORITY_URL, VIVA_CA_FILE (and VIVA_TOKEN,
-- VIVA_USERNAME, VIVA_PASSWORD for a fixed or delegated token).
local argparse = require "argparse"

local M = {}

M.EXIT_OK, M.EXIT_FAILED, M.EXIT_USAGE = 0, 1, 2

local ENV = {
  tenant = "VIVA_TENANT_ID", client_id = "VIVA_CLIENT_ID", client_secret = "VIVA_CLIENT_SECRET",
  graph_url = "VIVA_GRAPH_URL", authority_url = "VIVA_AUTHORITY_URL", ca_file = "VIVA_CA_FILE",
  token = "VIVA_TOKEN", username = "VIVA_USERNAME", password = "VIVA_PASSWORD",
}

local function add_connection(cmd)
  cmd:group("Connection (flags override the environment)",
    cmd:option("--tenant", "Tenant id (env VIVA_TENANT_ID)."),
    cmd:option("--client-id", "App (client) id (env VIVA_CLIENT_ID)."),
    cmd:option("--client-secret", "Client secret (env VIVA_CLIENT_SECRET; prefer the environment: flags show in ps)."),
    cmd:option("--graph-url", "Graph base URL (env VIVA_GRAPH_URL, default https://graph.microsoft.com/v1.0)."),
    cmd:option("--authority-url", "Token authority (env VIVA_AUTHORITY_URL, default https://login.microsoftonline.com)."),
    cmd:option("--ca-file", "CA bundle for TLS (env VIVA_CA_FILE)."),
    cmd:option("--token", "A bearer token to use instead of client credentials (env VIVA_TOKEN)."),
    cmd:option("--username", "User for a delegated token, with --password (env VIVA_USERNAME)."),
    cmd:option("--password", "Password for --username (env VIVA_PASSWORD).")
  )
end

local function positive(s)
  local n = math.tointeger(tonumber(s))
  if not n or n < 1 then return nil, ("'%s' is not a positive integer"):format(tostring(s)) end
  return n
end

local function seconds(s)
  local n = tonumber(s)
  if not n or n ~= n or n < 0 or n == math.huge then return nil, ("'%s' is not a number of seconds"):format(tostring(s)) end
  return n
end

function M.parser()
  local p = argparse("vivalearning", "Push and read Viva Learning course activities (Microsoft Graph).")
    :epilog("Exit codes: 0 ok, 1 some rows failed, 2 usage or fatal error.\n" ..
            "Run 'vivalearning <command> --help' for the options of a command.")
  p:command_target("command")
  p:require_command(true)

  local imp = p:command("import", "Import course activities from a CSV or JSON Lines file.")
  imp:argument("file", "CSV (Graph field names as columns, dotted for complex fields) or .jsonl file; - for stdin.")
  imp:option("--provider", "Learning provider id the activities belong to."):count(1)
  imp:option("--mode", "create, upsert (by externalCourseActivityId) or delete.")
    :choices({ "create", "upsert", "delete" }):default("create")
  imp:option("--type", "Type of rows without a type column: assignment or self_initiated.")
    :choices({ "assignment", "self_initiated" })
  imp:option("--format", "Input format (default: from the file name; .jsonl = JSON Lines, else CSV).")
    :choices({ "csv", "jsonl" })
  imp:option("--batch", "Requests per $batch, 1..20 (1 = single requests).", "20"):convert(positive)
  imp:flag("--no-batch", "Send single requests (same as --batch 1).")
  imp:option("--concurrency", "Most requests in flight (adapts down on throttling).", "16"):convert(positive)
  imp:option("--journal", "Journal file: makes the import resumable (run again with the same file).")
  imp:option("--results", "Per-row results file (.csv or .jsonl).")
  imp:flag("--repair-journal", "Go on with a damaged journal (records missing or damaged): keep its intact "
    .. "records and look up every row without an outcome before sending it.")
  imp:flag("--no-retry-failed", "Keep the outcome of rows that failed in an earlier run with the journal "
    .. "(by default they are tried again).")
  imp:option("--max-wait", "Longest Retry-After a row waits for, in seconds (default 120); "
    .. "longer fails the row as throttled."):convert(seconds)
  imp:option("--deadline", "Stop sending after this many seconds; rows not done are reported "
    .. "(run again with the same journal to do them)."):convert(seconds)
  imp:flag("--dry-run", "Validate every row, send nothing.")
  imp:flag("--progress", "Draw the progress bar even when stderr is not a terminal.")
  imp:flag("--no-progress", "No progress bar.")
  imp:flag("-q --quiet", "No summary on stdout.")
  add_connection(imp)

  local exp = p:command("export", "Write a learner's course activities as CSV or JSON Lines.")
  exp:mutex(
    exp:option("--user", "User id of the learner."),
    exp:flag("--me", "The signed-in user (delegated token).")
  )
  exp:option("--format", "csv or jsonl (default: from -o, else csv).") :choices({ "csv", "jsonl" })
  exp:option("-o --output", "Output file (default stdout).")
  exp:option("--top", "Page size to ask for."):convert(positive)
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

local function fmt_err(err)
  return (tostring(err):gsub("^vivalearning: ", ""))
end

local function summary_text(s)
  local lines = {}
  lines[#lines + 1] = ("%d rows read: %d created, %d updated, %d unchanged, %d deleted, %d failed")
    :format(s.read, s.created, s.updated, s.unchanged, s.deleted, s.failed)
  if s.invalid > 0 then lines[#lines + 1] = ("  %d of the failed rows were invalid and never sent"):format(s.invalid) end
  if s.resumed > 0 then lines[#lines + 1] = ("  %d rows were already done in the journal (resumed)"):format(s.resumed) end
  if s.elapsed and s.elapsed > 0 then
    lines[#lines + 1] = ("  %d requests in %.1f s (%.0f rows/s)"):format(s.requests, s.elapsed,
      (s.read - s.resumed) / s.elapsed)
  end
  if s.throttled then lines[#lines + 1] = ("  throttled %d times; concurrency backed off"):format(s.throttled) end
  return table.concat(lines, "\n") .. "\n"
end
M.summary_text = summary_text

local commands = {}

function commands.import(viva, c, a, out, errout)
  local batch = a.no_batch and 1 or a.batch
  if batch > 20 then
    return nil, "--batch must be 1..20 (Graph allows at most 20 requests in a $batch)", true
  end
  local progress = "auto"
  if a.no_progress then progress = false elseif a.progress then progress = "bar" end
  local s, err = viva.bulk.import(c, a.file == "-" and io.stdin or a.file, {
    provider = a.provider, mode = a.mode, type = a.type, format = a.format, batch = batch,
    concurrency = a.concurrency, journal = a.journal, results = a.results, dry_run = a.dry_run,
    journal_repair = a.repair_journal or nil, retry_failed = not a.no_retry_failed,
    max_wait = a.max_wait, deadline = a.deadline,
    progress = progress == "auto" and true or progress,
  })
  if not s then return nil, err end
  for _, w in ipairs(s.warnings or {}) do say(errout, "warning: ", w, "\n") end
  if not a.quiet then
    if s.dry_run then
      say(out, ("%d rows checked: %d valid, %d invalid\n"):format(s.read, s.valid or 0, s.failed))
    else
      say(out, summary_text(s))
    end
    if a.results then say(out, "  results: ", a.results, "\n") end
  end
  return s.failed > 0 and M.EXIT_FAILED or M.EXIT_OK
end

function commands.export(viva, c, a, out)
  if not a.user and not a.me then return nil, "export needs --user ID or --me", true end
  local n, err = viva.bulk.export(c, { user = a.user, me = a.me or nil, format = a.format,
                                        output = a.output or out, top = a.top })
  if not n then return nil, err end
  if a.output then say(io.stderr, ("%d activities written to %s\n"):format(n, a.output)) end
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
    if not a.provider then return nil, "--external-id needs --provider", true end
    act, err = c:get_by_external_id(a.provider, a.external_id)
  elseif a.id then
    if a.user then act, err = c:get_for_user(a.user, a.id) else act, err = c:get(a.id) end
  else
    return nil, "get needs an ID or --provider with --external-id", true
  end
  if not act then return nil, err, false, M.EXIT_FAILED end
  print_json(out, act)
  return M.EXIT_OK
end

function commands.delete(_, c, a, out)
  local id = a.id
  if a.external_id then
    local act, err = c:get_by_external_id(a.provider, a.external_id)
    if not act then return nil, err, false, M.EXIT_FAILED end
    id = act.id
  end
  if not id then return nil, "delete needs an ID or --external-id", true end
  local ok, err = c:delete(a.provider, id)
  if not ok then return nil, err, false, M.EXIT_FAILED end
  say(out, "deleted ", id, "\n")
  return M.EXIT_OK
end

local function list(out, iter, format, cols)
  local jsonl = require "vivalearning.jsonl"
  local n = 0
  if format == "table" then say(out, table.concat(cols, "\t"), "\n") end
  for m, err in iter do
    if not m then return nil, err end
    n = n + 1
    if format == "jsonl" then
      say(out, jsonl.encode(m:totable()), "\n")
    else
      local t = {}
      for i, k in ipairs(cols) do
        local v = m[k]
        t[i] = (v == nil or type(v) == "userdata") and "" or tostring(v)
      end
      say(out, table.concat(t, "\t"), "\n")
    end
  end
  return n
end

function commands.providers(_, c, a, out)
  local n, err = list(out, c:providers{}, a.format, { "id", "displayName", "isCourseActivitySyncEnabled" })
  if not n then return nil, err, false, M.EXIT_FAILED end
  return M.EXIT_OK
end

function commands.contents(_, c, a, out)
  local n, err = list(out, c:contents{ provider = a.provider }, a.format, { "id", "externalId", "title", "languageTag" })
  if not n then return nil, err, false, M.EXIT_FAILED end
  return M.EXIT_OK
end

--- Run the command with an argument array; returns the exit code (never calls os.exit,
-- except argparse's --help, which exits 0 after printing).
function M.run(args, out, errout)
  out, errout = out or io.stdout, errout or io.stderr
  local a, msg, sub = M.parse(args)
  if not a then
    say(errout, sub:get_usage(), "\n\nError: ", msg, "\n")
    return M.EXIT_USAGE
  end
  local viva = require "vivalearning"
  local cfg, cerr = M.client_config(a)
  if not cfg then
    say(errout, "vivalearning ", a.command, ": ", cerr, "\n")
    return M.EXIT_USAGE
  end
  if a.command == "import" and a.concurrency then cfg.max_concurrency = a.concurrency end
  local okc, c = pcall(viva.client, cfg)
  if not okc or not c then
    say(errout, "vivalearning ", a.command, ": cannot create the client: ", tostring(c), "\n")
    return M.EXIT_USAGE
  end
  local okr, code, err, usage, failcode = pcall(commands[a.command], viva, c, a, out, errout)
  if not okr then
    say(errout, "vivalearning ", a.command, ": ", tostring(code), "\n")
    return M.EXIT_USAGE
  end
  if code == nil then
    say(errout, "vivalearning ", a.command, ": ", fmt_err(err), "\n")
    if usage then return M.EXIT_USAGE end
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
