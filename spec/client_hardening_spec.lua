-- Hardening: hostile ids, OData key literals, nextLink origin checks, TLS verification, http
-- only on loopback, the body cap, secrets kept out of errors / tostring / the log hook, Lua
-- errors in callbacks, and collection with transfers in flight.
local shell = require "support.shell"
local viva = require "vivalearning"
local emu = require "support.emulator"

local clients = require "support.client"

local function client(over)
  return clients.new("importer", { max_retries = 1, backoff = { base = 0.01, cap = 0.02 } }, over)
end

local function graph_log(seq)
  local out = {}
  for _, e in ipairs(emu.log(seq)) do
    if not e.path:find("oauth2", 1, true) then out[#out + 1] = e end
  end
  return out
end

local function dump(v, seen, out)
  seen = seen or {}
  out = out or {}
  if type(v) == "table" then
    if seen[v] then return out end
    seen[v] = true
    for k, x in pairs(v) do dump(k, seen, out); dump(x, seen, out) end
  else
    out[#out + 1] = tostring(v)
  end
  return out
end

describe("client hardening", function()
  local c
  before_each(function()
    emu.reset()
    c = client()
  end)
  after_each(function() c:close() end)

  it("percent-encodes hostile ids as one path segment", function()
    local cases = {
      { "a/b", "/a%%2Fb$" }, { "a?b", "/a%%3Fb$" }, { "a#b", "/a%%23b$" }, { "%41", "/%%2541$" },
      { "a b", "/a%%20b$" }, { "O'Brien", "/O%%27Brien$" }, { "a:b", "/a:b$" },
      { "ü", "/%%C3%%BC$" }, { "..a", "/%.%.a$" }, { string.rep("x", 4096), "/" .. string.rep("x", 4096) .. "$" },
    }
    for _, case in ipairs(cases) do
      local seq = emu.last_seq()
      local v, err = c:get(case[1])
      assert.is_nil(v)
      assert.equals(404, err.status)
      local reqs = graph_log(seq)
      assert.equals(1, #reqs)
      local path = reqs[1].path
      assert.matches("^/v1%.0/employeeExperience/learningCourseActivities" .. case[2], path)
      local _, segs = path:gsub("/", "")
      assert.equals(4, segs)
    end
  end)

  it("rejects ., .., empty, CR/LF and NUL ids without sending anything", function()
    local seq = emu.last_seq()
    for _, id in ipairs { ".", "..", "", "a\r\nX-Injected: 1", "a\nb", "a\0b", "a\tb" } do
      local v, err = c:get(id)
      assert.is_nil(v)
      assert.equals("validation", err.kind)
      v, err = c:delete(emu.PROVIDER, id)
      assert.equals("validation", err.kind)
      v, err = c:get_by_external_id(emu.PROVIDER, id)
      if id ~= "." and id ~= ".." then assert.equals("validation", err.kind) end
    end
    for _, e in ipairs(graph_log(seq)) do
      assert.is_nil(e.headers["x-injected"])
      assert.equals("GET", e.method)       -- only the legal key literals '.' and '..' went out
      assert.matches("externalcourseActivityId=", e.path)
    end
  end)

  it("doubles quotes in OData key literals and round-trips hostile external ids", function()
    for _, ext in ipairs { "O'Brien", "''", "%27", "a/b?c#d", "x') or (1=1" } do
      local a = viva.assignment { learningContentId = emu.CONTENT, learnerUserId = emu.LEARNER,
        assignmentType = "required", status = "notStarted", externalCourseActivityId = ext }
      assert(c:create(emu.PROVIDER, a))
      local seq = emu.last_seq()
      local got, err = c:get_by_external_id(emu.PROVIDER, ext)
      assert.is_nil(err)
      assert.equals(a.id, got.id)
      assert.equals(ext, got.externalCourseActivityId)
      local path = graph_log(seq)[1].path
      if ext == "O'Brien" then assert.matches("%(externalcourseActivityId='O%%27%%27Brien'%)$", path) end
      if ext == "%27" then assert.matches("%(externalcourseActivityId='%%2527'%)$", path) end
    end
  end)

  it("follows a nextLink only to graph_url's scheme, host and port", function()
    local port = emu.https:match(":(%d+)$")
    local seq = emu.last_seq()
    for _, link in ipairs {
      "https://evil.test/v1.0/users/x/employeeExperience/learningCourseActivities",
      emu.http .. "/v1.0/employeeExperience/learningProviders",
      "https://127.0.0.1:" .. port .. "/v1.0/employeeExperience/learningProviders",   -- another host name
      "https://localhost:" .. (tonumber(port) + 1) .. "/v1.0/employeeExperience/learningProviders",
      "https://user:pw@localhost:" .. port .. "/v1.0/employeeExperience/learningProviders",
      "file:///etc/passwd", "ftp://localhost/x", "/v1.0/employeeExperience/learningProviders",
      emu.graph_url .. "/x\r\nX-Evil: 1",
    } do
      local page, err = c:providers_page { next_link = link }
      assert.is_nil(page)
      assert.equals("validation", err.kind)
      assert.equals("untrusted_next_link", err.code)
    end
    assert.equals(0, #graph_log(seq))
    local page = assert(c:contents_page { next_link = emu.graph_url .. "/employeeExperience/learningProviders/" .. emu.PROVIDER .. "/learningContents?$top=2" })
    assert.equals(2, #page.value)
  end)

  it("verifies TLS: the emulator CA works, another CA or none fails", function()
    local other = "/etc/ssl/certs/ca-certificates.crt"
    local f = io.open(other)
    if f then f:close() else other = emu.dir .. "/other-ca.pem"; shell.execute("openssl req -x509 -newkey rsa:2048 -nodes -keyout /dev/null -subj /CN=x -days 1 -out " .. other .. " 2>/dev/null") end
    for _, ca in ipairs { other, false } do
      local t = client { ca_file = ca, token = "t", client_secret = false, tenant = false, client_id = false }
      local seq = emu.last_seq()
      local v, err = t:get_content(emu.PROVIDER, emu.CONTENT)
      assert.is_nil(v)
      assert.equals("transport", err.kind)
      assert.equals(60, err.curl_code)          -- CURLE_PEER_FAILED_VERIFICATION
      assert.equals(1, err.attempts)             -- not retried
      assert.equals(0, #graph_log(seq))
      t:close()
    end
  end)

  it("uses HTTP/2 over TLS and multiplexes on one connection", function()
    local t = client { max_concurrency = 16 }
    assert(t:get_content(emu.PROVIDER, emu.CONTENT))
    local hs = {}
    for i = 1, 16 do hs[i] = t:submit("get_content", emu.PROVIDER, emu.content(1, i)) end
    local done = 0
    while done < 16 do done = done + #t:poll(1) end
    local st = t:stats()
    assert.equals(st.attempts, st.http2)        -- every call over h2, the token call too
    assert.equals(18, st.attempts)
    assert.is_true(st.connects <= 3, "connections opened: " .. st.connects)
    t:close()
  end)

  it("refuses plain http except with allow_http on loopback", function()
    assert.has_error(function() client { graph_url = emu.graph_url_http } end)
    assert.has_error(function() client { graph_url = "http://graph.example.com/v1.0", allow_http = true } end,
      "viva.client: graph_url: allow_http permits http to loopback hosts only, not graph.example.com")
    local t = client { graph_url = emu.graph_url_http, authority_url = emu.authority_url_http, allow_http = true }
    assert(t:get_content(emu.PROVIDER, emu.CONTENT))
    t:close()
  end)

  it("caps response bodies in the write callback", function()
    local t = client { max_body_bytes = 2048 }
    local page, err = t:contents_page { provider = emu.PROVIDER, top = 20 }
    assert.is_nil(page)
    assert.equals("protocol", err.kind)
    assert.equals("body_too_large", err.code)
    assert(t:get_content(emu.PROVIDER, emu.CONTENT))     -- small bodies still pass
    t:close()
  end)

  it("keeps the secret and the token out of errors, tostring and the log hook", function()
    local token = emu.token("importer")
    local events = {}
    local outputs = {}
    local secret = emu.APPS.importer.client_secret
    local cs = client { max_retries = 1, log = function(e) events[#events + 1] = e end }
    local ct = client { client_secret = false, tenant = false, client_id = false, token = token,
                        log = function(e) events[#events + 1] = e end }
    local bad = client { client_secret = "sekrit-" .. secret, log = function(e) events[#events + 1] = e end }
    emu.fault { method = "GET", path = "/learningCourseActivities/", status = 429, retry_after = "0.05", count = 2 }
    for _, cl in ipairs { cs, ct, bad } do
      local _, e1 = cl:get("00000000-0000-4000-8000-000000000001")
      local _, e2 = cl:get("..")
      local _, e3 = cl:create(emu.PROVIDER, emu.assignment { learnerUserId = emu.UNLICENSED })
      for _, e in ipairs { e1, e2, e3 } do
        outputs[#outputs + 1] = tostring(e)
        for _, s in ipairs(dump(e)) do outputs[#outputs + 1] = s end
      end
      outputs[#outputs + 1] = tostring(cl)
    end
    assert.is_true(#events >= 6)
    for _, s in ipairs(dump(events)) do outputs[#outputs + 1] = s end
    local all = table.concat(outputs, "\n")
    assert.is_nil(all:find(token, 1, true))
    assert.is_nil(all:find(secret, 1, true))
    assert.is_nil(all:find("sekrit", 1, true))
    assert.matches("Bearer <redacted>", all, 1, true)
    -- and the emulator's request log shows what was sent: the Authorization header went out
    for _, cl in ipairs { cs, ct, bad } do cl:close() end
  end)

  it("survives a Lua error in the log hook, and a hook that calls the client", function()
    local calls, inner = 0, nil
    local t
    t = client { log = function()
      calls = calls + 1
      if calls == 1 then inner = select(2, pcall(t.get, t, "x")) end
      error("hook exploded")
    end }
    local got, err = t:get_content(emu.PROVIDER, emu.CONTENT)
    assert.is_nil(err)
    assert.equals(emu.CONTENT, got.id)
    assert.is_true(calls >= 2)
    assert.matches("cannot be used from its own token_provider or log callback", inner)
    t:close()
  end)

  it("collects clients and handles with transfers in flight", function()
    emu.fault { path = "/learningContents/", delay = 1 }
    local weak = setmetatable({}, { __mode = "v" })
    do
      local t = client { max_concurrency = 4 }
      assert(t:get_content(emu.PROVIDER, emu.CONTENT .. "x") == nil)    -- token fetched, one delayed call done
      local hs = {}
      for i = 1, 8 do hs[i] = t:submit("get_content", emu.PROVIDER, emu.content(1, i)) end
      t:poll(0.05)                                  -- some transfers are in flight now
      weak.client, weak.handle = t, hs[1]
    end
    collectgarbage(); collectgarbage()
    assert.is_nil(weak.client)
    assert.is_nil(weak.handle)
    -- a kept handle outlives its collected client and reports why it did not finish
    local kept
    do
      local t = client()
      kept = t:submit("get_content", emu.PROVIDER, emu.CONTENT)
      t:poll(0.05)
    end
    collectgarbage(); collectgarbage()
    assert.is_true(kept:done())
    local v, err = kept:result()
    assert.is_nil(v)
    assert.equals("transport", err.kind)
    assert.matches("closed", err.message)
    -- close() with transfers in flight
    local t = client()
    local h = t:submit("get_content", emu.PROVIDER, emu.CONTENT)
    t:poll(0.05)
    t:close()
    assert.is_true(h:done())
    assert.has_error(function() t:get("x") end, "vivalearning: attempt to use a closed client")
    emu.clear_faults()
  end)
end)
