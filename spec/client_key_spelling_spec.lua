-- The alternate key's spelling (graph-api.md §6 #1: externalcourseActivityId in the metadata,
-- externalCourseActivityId in every doc example). Against the emulator in each
-- external_id_spelling mode, with a client that starts with either spelling: when Graph refuses
-- the key as spelled (a 400, in a body or in the key URL), the client sends the request once more
-- in the other spelling and keeps that one, so the first fallback costs exactly one request (one
-- $batch round) and nothing after it does. Counted in the emulator's request log.
local viva = require "vivalearning"
local sample = require "vivalearning.sample"
local emu = require "support.emulator"
local support = require "support.client"
local cli = require "support.cli"

local PROVIDER = emu.PROVIDER
local META, DOCS = "externalcourseActivityId", "externalCourseActivityId"
local NAME = { metadata = META, docs = DOCS }

local function tmp(ext)
  local p = os.tmpname() .. ext
  os.remove(p)
  return p
end

-- Graph requests since seq ($batch steps each; envelopes and token requests apart), and how
-- many of them carried each spelling in their URL
local function graph_since(seq)
  local n, envelopes, by_url = 0, 0, { [META] = 0, [DOCS] = 0 }
  for _, e in ipairs(emu.log(seq)) do
    local p = e.path or ""
    if p:find("/oauth2/", 1, true) or p:find("/_emulator", 1, true) then -- not Graph
    elseif p:find("%$batch$") then envelopes = envelopes + 1
    else
      n = n + 1
      for _, k in ipairs({ META, DOCS }) do
        if p:find("(" .. k .. "=", 1, true) then by_url[k] = by_url[k] + 1 end
      end
    end
  end
  return n, envelopes, by_url
end

-- Runs fn and returns what it returned plus the Graph requests ($batch steps) and envelopes it made
local function counted(fn)
  local seq = emu.last_seq()
  local function after(...)
    local n, env = graph_since(seq)
    return n, env, ...
  end
  return after(fn())
end

-- the client's token, fetched outside the counts (a GET by id that finds nothing)
local function warm(c)
  local none, err = c:get("sp-warm")
  assert(none == nil and err.status == 404, err and err.message)
end

-- mode of the emulator, the client's first spelling, and the one Graph takes in that mode
local CASES = {
  { mode = "any", first = "metadata", works = "metadata", extra = 0 },
  { mode = "any", first = "docs", works = "docs", extra = 0 },
  { mode = "docs", first = "metadata", works = "docs", extra = 1 },
  { mode = "docs", first = "docs", works = "docs", extra = 0 },
  { mode = "metadata", first = "docs", works = "metadata", extra = 1 },
  { mode = "metadata", first = "metadata", works = "metadata", extra = 0 },
}

describe("client: the alternate key's spelling", function()
  after_each(function() emu.reset() end)

  it("starts with the metadata spelling and says which one it uses", function()
    emu.reset()
    local c = support.new()
    assert.equal(META, c:stats().external_id_key)
    assert.equal(DOCS, support.new(nil, { external_id_spelling = "docs" }):stats().external_id_key)
    assert.has_error(function() support.new(nil, { external_id_spelling = "camel" }) end,
      'viva.client: external_id_spelling must be "metadata" (externalcourseActivityId) or "docs" (externalCourseActivityId)')
    c:close()
  end)

  for _, k in ipairs(CASES) do
    local label = ("emulator %s, client first %s"):format(k.mode, k.first)
    describe(label, function()
      local c, make
      before_each(function()
        emu.reset()
        emu.settings{ external_id_spelling = k.mode }
        c = support.new(nil, { external_id_spelling = k.first })
        warm(c)
        make = support.assignments("sp-" .. k.mode .. "-" .. k.first)
      end)
      after_each(function() c:close() end)

      it("creates by external id, gets, updates and deletes by it: " .. k.extra .. " extra request, then none", function()
        local m = make()
        local ext = m.externalCourseActivityId
        local n, _, made, err = counted(function() return c:create(PROVIDER, m) end)
        assert.is_nil(err)
        assert.equal(1 + k.extra, n)
        assert.equal(1, emu.creates(PROVIDER, ext))      -- the refused POST created nothing
        assert.equal(NAME[k.works], c:stats().external_id_key)
        -- everything after: one request each
        local got
        n, _, got, err = counted(function() return c:get_by_external_id(PROVIDER, ext) end)
        assert.is_nil(err); assert.equal(1, n); assert.equal(made.id, got.id)
        assert.equal(ext, got.externalCourseActivityId)
        got.status = "completed"
        local ok
        n, _, ok, err = counted(function() return c:update(PROVIDER, got) end)
        assert.is_nil(err); assert.is_true(ok); assert.equal(1, n)
        n, _, got = counted(function() return c:get_by_external_id(PROVIDER, ext) end)
        assert.equal(1, n); assert.equal("completed", got.status)
        n, _, ok, err = counted(function() return c:delete(PROVIDER, got.id) end)
        assert.is_nil(err); assert.is_true(ok); assert.equal(1, n)
        local gone
        n, _, gone, err = counted(function() return c:get_by_external_id(PROVIDER, ext) end)
        assert.is_nil(gone); assert.equal(404, err.status); assert.equal(1, n)
        -- a second create: the spelling that worked, at once
        n, _, made, err = counted(function() return c:create(PROVIDER, make()) end)
        assert.is_nil(err); assert.truthy(made); assert.equal(1, n)
      end)

      it("falls back on the key URL of a GET first: " .. k.extra .. " extra request, then the create sends none", function()
        local m = make()
        local seq = emu.last_seq()
        local none, err = c:get_by_external_id(PROVIDER, m.externalCourseActivityId)
        assert.is_nil(none); assert.equal(404, err.status)
        local n, _, by_url = graph_since(seq)
        assert.equal(1 + k.extra, n)
        assert.equal(1, by_url[NAME[k.works]])
        assert.equal(k.extra, by_url[NAME[k.works] == META and DOCS or META])
        assert.equal(NAME[k.works], c:stats().external_id_key)
        local made
        n, _, made, err = counted(function() return c:create(PROVIDER, m) end)
        assert.is_nil(err); assert.truthy(made.id); assert.equal(1, n)
      end)

      it("falls back in a $batch: " .. k.extra .. " extra round for its steps, then none", function()
        local a1, a2 = make(), make()
        local n, env, res = counted(function()
          return c:batch({
            { op = "create", provider = PROVIDER, model = a1 },
            { op = "get_by_external_id", provider = PROVIDER, external_id = "sp-none-" .. os.time() },
            { op = "create", provider = PROVIDER, model = a2 },
          })
        end)
        assert.is_true(res[1].ok, res[1].err and res[1].err.message)
        assert.is_false(res[2].ok); assert.equal(404, res[2].err.status)
        assert.is_true(res[3].ok, res[3].err and res[3].err.message)
        assert.equal(3 * (1 + k.extra), n)
        assert.equal(1 + k.extra, env)
        assert.equal(1, emu.creates(PROVIDER, a1.externalCourseActivityId))
        assert.equal(1, emu.creates(PROVIDER, a2.externalCourseActivityId))
        assert.equal(NAME[k.works], c:stats().external_id_key)
        n, env, res = counted(function()
          return c:batch({
            { op = "get_by_external_id", provider = PROVIDER, external_id = a1.externalCourseActivityId },
            { op = "create", provider = PROVIDER, model = make() },
          })
        end)
        assert.is_true(res[1].ok); assert.equal(a1.id, res[1].value.id)
        assert.is_true(res[2].ok)
        assert.equal(2, n); assert.equal(1, env)
      end)

      it("upserts a file (one request at a time): " .. k.extra .. " extra request, then none", function()
        local src = tmp(".csv")
        sample.write(src, 6, { prefix = "spu-" .. k.mode .. k.first .. "-" })
        local opts = { provider = PROVIDER, mode = "upsert", batch = false, concurrency = 1 }
        local n, _, s = counted(function() return viva.bulk.import(c, src, opts) end)
        assert.truthy(s)
        assert.equal(6, s.created); assert.equal(0, s.failed or 0)
        assert.equal(12 + k.extra, n)                   -- a lookup and a create per row
        -- the same file again: one lookup per row, nothing else
        n, _, s = counted(function() return viva.bulk.import(c, src, opts) end)
        assert.equal(6, s.unchanged); assert.equal(6, n)
        os.remove(src)
      end)

      it("upserts a file in $batch: the first round falls back, the next import sends no extra", function()
        local src = tmp(".csv")
        sample.write(src, 30, { prefix = "spb-" .. k.mode .. k.first .. "-" })
        local s = assert(viva.bulk.import(c, src, { provider = PROVIDER, mode = "upsert" }))
        assert.equal(30, s.created); assert.equal(0, s.failed or 0)
        assert.equal(NAME[k.works], c:stats().external_id_key)
        local n, _, s2 = counted(function() return viva.bulk.import(c, src, { provider = PROVIDER, mode = "upsert" }) end)
        assert.equal(30, s2.unchanged); assert.equal(30, n)
        os.remove(src)
      end)

      it("syncs with a new state (lookups first): " .. k.extra .. " extra request, then none", function()
        local src, st = tmp(".csv"), tmp(".sqlite")
        sample.write(src, 5, { prefix = "sps-" .. k.mode .. k.first .. "-" })
        local opts = { provider = PROVIDER, mode = "sync", state = st, batch = false, concurrency = 1 }
        local n, _, s = counted(function() return viva.bulk.import(c, src, opts) end)
        assert.truthy(s)
        assert.equal(5, s.created); assert.equal(0, s.failed or 0)
        assert.equal(10 + k.extra, n)
        -- rows changed in the source: PATCHed by their stored id, not one extra request
        sample.write(src, 5, { prefix = "sps-" .. k.mode .. k.first .. "-", changed = function(i) return i <= 2 end })
        n, _, s = counted(function() return viva.bulk.import(c, src, opts) end)
        assert.equal(2, s.updated); assert.equal(2, n)
        for _, suffix in ipairs({ "", "-wal", "-shm", "-lock" }) do os.remove(st .. suffix) end
        os.remove(src)
      end)
    end)
  end

  it("fails with both answers when Graph refuses the key in both spellings, and keeps its spelling", function()
    emu.reset()
    -- the PATCH of an external id (not updatable) is refused whatever the spelling
    local c = support.new()
    local m = assert(c:create(PROVIDER, support.assignments("sp-both")()))
    local seq = emu.last_seq()
    local ok, err = c:update(PROVIDER, m.id, { externalCourseActivityId = "other-" .. os.time() })
    assert.is_nil(ok)
    assert.equal(400, err.status)
    assert.matches("both spellings", err.note, 1, true)
    assert.equal(2, (graph_since(seq)))
    assert.equal(META, c:stats().external_id_key)
    c:close()
  end)

  it("does not respell a 400 that is about another field", function()
    emu.reset()
    local c = support.new()
    warm(c)
    local seq = emu.last_seq()
    -- a provider whose course-activity sync is off: a 400 that names no key
    local made, err = c:create(emu.PROVIDER_DORMANT, support.assignments("sp-other")())
    assert.is_nil(made)
    assert.equal(400, err.status)
    assert.is_nil(err.note)
    assert.equal(1, (graph_since(seq)))
    assert.equal(META, c:stats().external_id_key)
    c:close()
  end)

  for _, mode in ipairs({ "metadata", "docs" }) do
    it("the command imports, gets and deletes by external id against a Graph that takes only " .. mode, function()
      emu.reset()
      emu.settings{ external_id_spelling = mode }
      local src = tmp(".csv")
      local prefix = "spc-" .. mode .. "-" .. os.time() .. "-"
      sample.write(src, 3, { prefix = prefix })
      local code, out, errout = cli.run({ "import", src, "--provider", PROVIDER, "--mode", "upsert" })
      assert.equal(0, code, errout)
      assert.matches("3 created", out, 1, true)
      local ext = prefix .. "000002"
      assert.equal(1, emu.creates(PROVIDER, ext))
      local c2, o2, e2 = cli.run({ "get", "--provider", PROVIDER, "--external-id", ext })
      assert.equal(0, c2, e2)
      assert.matches(ext, o2, 1, true)
      local c3, o3, e3 = cli.run({ "delete", "--provider", PROVIDER, "--external-id", ext })
      assert.equal(0, c3, e3); assert.matches("deleted", o3)
      local c4, _, e4 = cli.run({ "get", "--provider", PROVIDER, "--external-id", ext })
      assert.equal(1, c4); assert.matches("404", e4)
      os.remove(src)
    end)
  end
end)
