-- Operations as data: every operation the core declares (core._ops()) works, against the
-- emulator, through its sync method, through submit and (when batchable) as a $batch item, and
-- what goes on the wire is the declaration's method and path template. An op without a fixture
-- here fails the spec: a new entry in src/ops.c needs a line below, nothing else.
local viva = require "vivalearning"
local unpack = table.unpack or unpack   -- 5.1 and LuaJIT
local core = require "vivalearning.core"
local emu = require "support.emulator"
local clients = require "support.client"

local n = 0
local function fresh(prefix) n = n + 1; return string.format("%s-%d-%d", prefix, os.time(), n) end

local function assignment()
  return viva.assignment {
    learningContentId = emu.CONTENT, learnerUserId = emu.LEARNER, assignmentType = "required",
    status = "notStarted", externalCourseActivityId = fresh("optab"),
    dueDateTime = { dateTime = "2026-12-01T00:00:00", timeZone = "UTC" },
  }
end

local function provider()
  return viva.provider {
    displayName = fresh("Optab Academy"),
    squareLogoWebUrlForDarkTheme = "https://example.com/a.png", longLogoWebUrlForDarkTheme = "https://example.com/b.png",
    squareLogoWebUrlForLightTheme = "https://example.com/c.png", longLogoWebUrlForLightTheme = "https://example.com/d.png",
    isCourseActivitySyncEnabled = true,
  }
end

local function content(ext)
  return viva.content { externalId = ext or fresh("OPTAB"), title = "Optab course",
                        contentWebUrl = "https://example.com/optab", languageTag = "en-us" }
end

-- checks of a result by the declared result kind
local checks = {
  model = function(v, o)
    local k = v:kind()
    if o.family == "activity" then assert.is_truthy(k == "assignment" or k == "self_initiated", k)
    else assert.equals(o.family, k) end
    assert.is_string(v.id)
  end,
  created = function(v) assert.is_string(v.id) end,
  ["true"] = function(v) assert.is_true(v) end,
  updated = function(v) assert.is_true(v) end,
  page = function(v) assert.is_table(v.value) end,
  batch = function(v) assert.is_table(v); assert.is_true(v[1].ok) end,
}

-- Per op: the client it needs ("user": delegated, for providers) and its named arguments,
-- made fresh for each run by the app client `c` (an activity to get, update or delete).
local fixtures = {
  create = { args = function() return { provider = emu.PROVIDER, model = assignment() } end },
  get = { args = function(c) return { id = assert(c:create(emu.PROVIDER, assignment())).id } end },
  get_by_external_id = { args = function(c)
    local a = assert(c:create(emu.PROVIDER, assignment()))
    return { provider = emu.PROVIDER, external_id = a.externalCourseActivityId }
  end },
  get_for_user = { args = function(c) return { user = emu.LEARNER, id = assert(c:create(emu.PROVIDER, assignment())).id } end },
  update = { args = function(c)
    return { provider = emu.PROVIDER, id = assert(c:create(emu.PROVIDER, assignment())).id, changes = { status = "inProgress" } }
  end },
  delete = { args = function(c) return { provider = emu.PROVIDER, id = assert(c:create(emu.PROVIDER, assignment())).id } end },
  -- listing a learner's activities is delegated only (Graph answers an app token 403)
  activities_page = { user = true, args = function() return { options = { user = emu.LEARNER } } end },
  providers_page = { user = true, args = function() return { options = {} } end },
  contents_page = { args = function() return { options = { provider = emu.PROVIDER } } end },
  create_provider = { user = true, args = function() return { model = provider() } end },
  get_provider = { user = true, args = function(_, u) return { id = assert(u:create_provider(provider())).id } end },
  update_provider = { user = true, args = function(_, u)
    return { id = assert(u:create_provider(provider())).id, changes = { displayName = fresh("Renamed") } }
  end },
  delete_provider = { user = true, args = function(_, u) return { id = assert(u:create_provider(provider())).id } end },
  upsert_content = { args = function() return { provider = emu.PROVIDER, model = content() } end },
  get_content = { args = function(c) return { provider = emu.PROVIDER, id = assert(c:upsert_content(emu.PROVIDER, content())).id } end },
  delete_content = { args = function(c)
    local ext = fresh("OPTAB")
    assert(c:upsert_content(emu.PROVIDER, content(ext)))
    return { provider = emu.PROVIDER, external_id = ext }        -- the other form: { external_id = }
  end },
  -- nothing on the wire: done once the client holds a usable token
  sign_in = { user = true, no_wire = true, args = function() return {} end },
  batch = { args = function(c)
    return { requests = { { op = "get", id = assert(c:create(emu.PROVIDER, assignment())).id } } }
  end },
}

local function words_have(words, named)
  if not words then return false end
  for _, w in ipairs(words) do
    if named[w:match("^{(.*)}$") or w] == nil and w ~= "options" then return false end
  end
  return true
end

-- the declared form the named arguments fill, its positional arguments and its $batch item
local function call_of(o, named)
  local form = words_have(o.args, named) and o.args or words_have(o.other_args, named) and o.other_args
  assert(form, o.name .. ": the fixture fills neither argument form")
  local pos, item = {}, { op = o.name }
  for i, w in ipairs(form) do
    local wrapped = w:match("^{(.*)}$")
    if wrapped then pos[i] = { [wrapped] = named[wrapped] }; item[wrapped] = named[wrapped]
    else pos[i] = named[w]; item[w] = named[w] end
  end
  return pos, item, #form
end

local function camel(s) return (s:gsub("_(%a)", string.upper)) end

-- The path the declaration says, from the named arguments (a page's options, the model's fields), following
-- the template rules of src/ops.c: /{x} a segment, {x=Key} an OData key, {x|y=Key} either.
local function expected_path(o, named)
  local function value(x)
    if named[x] ~= nil then return named[x] end
    if named.options and named.options[x] ~= nil then return named.options[x] end   -- a page's
    if named.model then return named.model[camel(x)] end
  end
  local path = o.path:gsub("/?{([^}]*)}", function(ph)
    ph = ph:gsub(":.*", "")
    local x, alt, key = ph:match("^([^|=]+)|([^=]+)=(.+)$")
    if not x then x, key = ph:match("^([^=]+)=(.+)$") end
    if not x then x = ph end
    if alt and value(x) == nil then return "(" .. key .. "='" .. value(alt) .. "')" end
    if key and not alt then return "(" .. key .. "='" .. value(x) .. "')" end
    return "/" .. assert(value(x), o.name .. ": no value for " .. x)
  end)
  return "/v1.0" .. path
end

local function requests_since(seq)
  local out = {}
  for _, e in ipairs(emu.log(seq)) do
    if e.path:find("^/v1%.0/") then out[#out + 1] = e end
  end
  return out
end

local function saw(o, named, seq, batch)
  if fixtures[o.name].no_wire then
    local sent = requests_since(seq)
    assert.equal(0, #sent, o.name .. ": nothing on the wire, saw " .. (sent[1] and sent[1].path or ""))
    return
  end
  local want = expected_path(o, named)
  local found = {}
  for _, e in ipairs(requests_since(seq)) do
    if e.method == o.method and e.path == want then return end
    found[#found + 1] = e.method .. " " .. e.path
  end
  error(("%s%s: no %s %s on the wire, saw: %s"):format(o.name, batch and " ($batch item)" or "", o.method, want,
    table.concat(found, ", ")))
end

describe("operations as data", function()
  local c, u
  before_each(function()
    emu.reset()
    c = clients.new("importer", { backoff = { base = 0.01, cap = 0.05 } })
    u = clients.user()
  end)
  after_each(function() c:close(); u:close() end)

  it("core._ops() lists every operation once, each with its method, path template, arguments and kinds", function()
    local ops, seen = core._ops(), {}
    assert.is_true(#ops >= 17)
    for _, o in ipairs(ops) do
      assert.is_nil(seen[o.name], o.name)
      seen[o.name] = true
      assert.matches("^[A-Z]+$", o.method)
      if not (fixtures[o.name] or {}).no_wire then assert.matches("^/", o.path) end
      assert.is_table(o.args)
      assert.is_truthy(checks[o.result], o.name .. ": result " .. tostring(o.result))
      assert.is_function(core.client_methods[o.name], o.name)
      assert.is_truthy(fixtures[o.name], o.name .. " is declared in src/ops.c but has no fixture in this spec")
    end
    -- a copy: changing it changes nothing in the core
    ops[1].method = "PUT"
    assert.are_not.equal("PUT", core._ops()[1].method)
  end)

  for _, o in ipairs(core._ops()) do
    local fx = fixtures[o.name]
    it(o.name .. " (" .. o.method .. " " .. o.path .. ") works as a sync call, through submit" ..
       (o.batchable and " and as a $batch item" or ""), function()
      assert(fx, o.name .. " has no fixture")
      local cl = fx.user and u or c
      local check = function(v) checks[o.result](v, o) end

      -- the sync method
      local named = fx.args(c, u)
      local pos, _, np = call_of(o, named)
      local seq = emu.last_seq()
      local v, err = cl[o.name](cl, unpack(pos, 1, np))
      assert.is_nil(err, o.name .. ": " .. tostring(err))
      check(v)
      if o.name ~= "batch" then saw(o, named, seq) end

      -- submit
      named = fx.args(c, u)
      pos, _, np = call_of(o, named)
      seq = emu.last_seq()
      local h = cl:submit(o.name, unpack(pos, 1, np))
      while not h:done() do cl:poll(5) end
      v, err = h:result()
      assert.is_nil(err, o.name .. " (submit): " .. tostring(err))
      check(v)
      if o.name ~= "batch" then saw(o, named, seq) end

      -- a $batch item, from the same declaration
      if o.batchable then
        local item
        named = fx.args(c, u)
        pos, item = call_of(o, named)
        seq = emu.last_seq()
        local res = assert(cl:batch { item })
        assert.is_true(res[1].ok, o.name .. " ($batch): " .. tostring(res[1].err))
        if o.result ~= "true" and o.result ~= "updated" then check(res[1].value) end
        saw(o, named, seq, true)
      else
        assert.has_error(function() cl:batch { { op = o.name } } end,
          "vivalearning: batch item 1: unknown op " .. o.name)
      end
    end)
  end
end)
