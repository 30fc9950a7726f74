-- The transport's own behaviour under failure: libcurl never re-sends a write by itself, what a
-- 503 after commit means for a create, the token endpoint's Retry-After, proxies, oversized
-- uploads. What arrived is read from the emulator's request log and counters.
local shell = require "support.shell"
local viva = require "vivalearning"
local emu = require "support.emulator"

local clients = require "support.client"

local assignment = clients.assignments("transport")

-- the same client over each protocol the emulator speaks
local PROTOCOLS = {
  { name = "HTTP/1.1", over = function() return { graph_url = emu.graph_url_http, authority_url = emu.authority_url_http, allow_http = true, ca_file = false } end },
  { name = "HTTP/2", over = function() return {} end },
}

local function client(proto, over)
  return clients.new("importer", { max_retries = 3, backoff = { base = 0.02, cap = 0.1 } }, proto and proto.over() or {}, over)
end

-- Graph requests logged since seq whose path matches the Lua pattern
local function requests(seq, pattern, method)
  local out = {}
  for _, e in ipairs(emu.log(seq)) do
    if e.path:find(pattern) and (not method or e.method == method) then out[#out + 1] = e end
  end
  return out
end

local function self_initiated()
  return viva.self_initiated { learningContentId = emu.CONTENT, learnerUserId = emu.LEARNER, status = "inProgress" }
end

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- Runs a Lua chunk in a child lua5.4 (with this tree's module) under extra environment
-- variables (killed after `watchdog` seconds when given: a hang shows as missing output);
-- returns its output.
local function child(env, code, watchdog)
  local f = os.tmpname()
  local h = assert(io.open(f, "w"))
  h:write('package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path\n',
          'package.cpath = "./?.so;" .. package.cpath\n', code)
  h:close()
  local parts = { watchdog and ("timeout -s KILL " .. watchdog) or "", "env" }
  for k, v in pairs(env) do parts[#parts + 1] = k .. "=" .. q(v) end
  parts[#parts + 1] = "lua5.4 " .. q(f) .. " 2>&1"
  local p = assert(io.popen(table.concat(parts, " ")))
  local out = p:read("*a")
  p:close()
  os.remove(f)
  return out
end

describe("client transport", function()
  before_each(function() emu.reset() end)

  describe("503 after commit", function()
    local c
    before_each(function() c = client() end)
    after_each(function() c:close() end)

    it("is final for a create without an external id, as 504 is", function()
      for _, status in ipairs { 503, 504 } do
        emu.fault { method = "POST", path = "/learningCourseActivities$", status = status, retry_after = "0.1", after = true, count = 1 }
        local seq = emu.last_seq()
        local got, err = c:create(emu.PROVIDER, self_initiated())
        assert.is_nil(got)
        assert.equals(status, err.status)
        assert.equals(1, err.attempts)
        assert.matches("not re%-sent", err.note)
        local posts = requests(seq, "/learningCourseActivities$", "POST")
        assert.equals(1, #posts, "status " .. status)
        assert.equals(201, posts[1].committed_status)
      end
    end)

    it("is final for a $batch envelope (its items may have been applied)", function()
      emu.fault { method = "POST", path = "^/v1.0/%$batch$", status = 503, retry_after = "0.1", after = true, count = 1 }
      local seq = emu.last_seq()
      local res, err = c:batch { { op = "create", provider = emu.PROVIDER, model = self_initiated() } }
      assert.is_nil(res)
      assert.equals(503, err.status)
      assert.equals(1, err.attempts)
      assert.equals(1, #requests(seq, "^/v1.0/%$batch$", "POST"))
    end)

    it("still leads to a lookup for a create with an external id, and 429 is still retried", function()
      emu.fault { method = "POST", path = "/learningCourseActivities$", status = 503, retry_after = "0.1", after = true, count = 1 }
      local a = assignment()
      local got, err = c:create(emu.PROVIDER, a)
      assert.is_nil(err)
      assert.equals(a.externalCourseActivityId, got.externalCourseActivityId)
      assert.equals(1, emu.creates(emu.PROVIDER, a.externalCourseActivityId))
      emu.fault { method = "POST", path = "/learningCourseActivities$", status = 429, retry_after = "0.1", count = 1 }
      assert(c:create(emu.PROVIDER, self_initiated()))
    end)
  end)

  describe("large uploads", function()
    for _, proto in ipairs(PROTOCOLS) do
      it("a 413 answered while uploading is reported once, over " .. proto.name, function()
        local c = client(proto)
        local act = assert(c:create(emu.PROVIDER, assignment()))
        emu.settings { max_body_bytes = 200000 }
        local seq = emu.last_seq()
        local ok, err = c:update(emu.PROVIDER, act.id, { completionPercentage = 10, externalCourseActivityId = string.rep("x", 3 * 1024 * 1024) })
        assert.is_nil(ok)
        if proto.name == "HTTP/2" then
          -- nginx resets the stream instead of letting the 413 through
          assert.equals("transport", err.kind)
          assert.equals(92, err.curl_code)
          assert.matches("too large", err.message)
        else
          assert.equals("http", err.kind)
          assert.equals(413, err.status)
          assert.matches("maximum size", err.message)
        end
        assert.equals(1, err.attempts)
        assert.equals(1, #requests(seq, "/learningCourseActivities/", "PATCH"))
        c:close()
      end)
    end

    it("refuses a body over Graph's 4 MiB request limit before sending anything", function()
      local c = client()
      local act = assert(c:create(emu.PROVIDER, assignment()))
      local seq = emu.last_seq()
      local ok, err = c:update(emu.PROVIDER, act.id, { externalCourseActivityId = string.rep("x", 4 * 1024 * 1024) })
      assert.is_nil(ok)
      assert.equals("validation", err.kind)
      assert.matches("4194304", err.message)
      assert.equals(0, err.attempts)
      assert.equals(0, #emu.log(seq))
      c:close()
    end)
  end)

  describe("a DNS lookup that never answers", function()
    -- getaddrinfo() of *.blocked.test blocks for good in the child (spec/support/blocking_resolver.c,
    -- preloaded): a call that waits for libcurl's resolver thread never comes back, so the child's
    -- output (and not a clock) tells whether poll and close returned.
    local so
    setup(function()
      so = os.tmpname() .. ".so"
      assert(shell.execute("cc -shared -fPIC -o " .. q(so) .. " spec/support/blocking_resolver.c -ldl"))
    end)
    teardown(function() os.remove(so) end)

    it("neither blocks poll when the connect timeout hits nor close", function()
      local out = child({ LD_PRELOAD = so }, [[
        local viva = require "vivalearning"
        local c = viva.client { graph_url = "https://graph.blocked.test/v1.0", token = "t", max_retries = 0,
                                timeouts = { connect = 0.2, attempt = 5, deadline = 10 } }
        local h = c:submit("get", "00000000-0000-4000-8000-000000000001")
        while not h:done() do c:poll(0.05) end
        local _, err = h:result()
        print("TIMEOUT", err.kind, err.curl_code)
        io.stdout:flush()
        local h2 = c:submit("get", "00000000-0000-4000-8000-000000000002")
        c:poll(0)
        c:close()
        local v, err2 = h2:result()
        print("CLOSED", h2:done(), v, err2.message)
      ]], 30)
      assert.matches("TIMEOUT\ttransport\t28", out)      -- CURLE_OPERATION_TIMEDOUT, in the resolve
      assert.matches("CLOSED\ttrue\tnil\tthe client was closed", out)
    end)
  end)

  describe("proxy variables", function()
    -- The emulator's HTTP port plays the proxy: anything sent through it is answered and logged
    -- there, with the target's Host. The targets themselves are a closed loopback port.
    local function proxy_env()
      return { http_proxy = emu.http, HTTP_PROXY = emu.http, https_proxy = emu.http, HTTPS_PROXY = emu.http,
               ALL_PROXY = emu.http, all_proxy = emu.http, no_proxy = "", NO_PROXY = "" }
    end
    local CHILD = [[
      local viva = require "vivalearning"
      local base, scheme = ...
      local c = viva.client { graph_url = "%s://127.0.0.1:1/v1.0", authority_url = "%s://127.0.0.1:1",
        allow_http = true, tenant = "%s", client_id = "%s", client_secret = "%s", max_retries = 0 }
      local v, err = c:get_content("%s", "%s")
      print("RESULT", v and "ok" or err.kind, err and err.curl_code, err and err.cause)
      c:close()
    ]]
    local function code(scheme)
      local a = emu.APPS.importer
      return CHILD:format(scheme, scheme, emu.TENANT, a.client_id, a.client_secret, emu.PROVIDER, emu.CONTENT)
    end

    it("never send plain http (token form, bearer token) through a proxy", function()
      local seq = emu.last_seq()
      local out = child(proxy_env(), code("http"))
      assert.equals(0, #emu.log(seq), "requests reached the proxy: " .. out)
      local kind, curl_code = out:match("RESULT\t(%S+)\t(%S+)")
      assert.equals("auth", kind, out)                    -- the token request went to 127.0.0.1:1 itself
      assert.equals("7", curl_code, out)                  -- CURLE_COULDNT_CONNECT
    end)

    it("use a proxy for https only through a CONNECT tunnel", function()
      local seq = emu.last_seq()
      local out = child(proxy_env(), code("https"))
      assert.equals(0, #emu.log(seq), "requests reached the proxy in clear: " .. out)
      assert.matches("CONNECT", out)                      -- nginx refuses CONNECT: the tunnel was asked for
    end)
  end)

  describe("token endpoint Retry-After", function()
    it("waits at least as long as the token endpoint asks", function()
      emu.fault { path = "/oauth2/v2.0/token$", status = 503, retry_after = "2", count = 1 }
      local c = client(nil, { backoff = { base = 0.01, cap = 0.01 } })
      local seq = emu.last_seq()
      local got, err = c:get_content(emu.PROVIDER, emu.CONTENT)
      assert.is_nil(err)
      assert.equals(emu.CONTENT, got.id)
      local toks = requests(seq, "/oauth2/v2.0/token$")
      assert.equals(2, #toks)
      assert.equals(503, toks[1].status)
      assert.equals(200, toks[2].status)
      local gap = toks[2].time - toks[1].time
      assert.is_true(gap >= 1.95, "token request repeated after " .. gap .. " s")
      c:close()
    end)

    it("ends the call at once when the Retry-After passes its deadline", function()
      emu.fault { path = "/oauth2/v2.0/token$", status = 503, retry_after = "30" }
      local c = client(nil, { timeouts = { deadline = 3 }, backoff = { base = 0.01, cap = 0.01 } })
      local seq = emu.last_seq()
      local got, err = c:get_content(emu.PROVIDER, emu.CONTENT)
      assert.is_nil(got)
      assert.equals("auth", err.kind)
      assert.equals(503, err.status)
      assert.equals(30, err.retry_after)
      assert.equals(1, err.attempts)
      assert.matches("deadline", err.note)
      assert.equals(1, #requests(seq, "/oauth2/v2.0/token$"))
      c:close()
    end)
  end)

  describe("token endpoint transport errors", function()
    it("carry curl's whole cause, curl_code and the number of token requests", function()
      -- a closed port on loopback
      local c = client(nil, { authority_url = "https://127.0.0.1:1", max_retries = 2, backoff = { base = 0.01, cap = 0.01 } })
      local got, err = c:get(emu.LEARNER)
      assert.is_nil(got)
      assert.equals("auth", err.kind)
      assert.equals("token_request_failed", err.code)
      assert.matches("^Couldn't connect", err.cause)
      assert.equals(7, err.curl_code)
      assert.equals(3, err.attempts)                     -- 1 + max_retries token requests
      c:close()
      emu.fault { path = "/oauth2/v2.0/token$", status = 500 }
      c = client(nil, { max_retries = 1, backoff = { base = 0.01, cap = 0.01 } })
      got, err = c:get(emu.LEARNER)
      assert.is_nil(got)
      assert.equals(500, err.status)
      assert.equals(2, err.attempts)
      c:close()
    end)

    it("do not retry a token endpoint whose certificate is not trusted", function()
      local other = "/etc/ssl/certs/ca-certificates.crt"
      local c = client(nil, { ca_file = other })
      local seq = emu.last_seq()
      local got, err = c:get(emu.LEARNER)
      assert.is_nil(got)
      assert.equals("auth", err.kind)
      assert.matches("^SSL peer certificate", err.cause)
      assert.equals(60, err.curl_code)
      assert.equals(1, err.attempts)
      assert.equals(0, #requests(seq, "/oauth2/v2.0/token$"))
      c:close()
    end)
  end)

  for _, proto in ipairs(PROTOCOLS) do
    describe("over " .. proto.name, function()
      local c, act
      before_each(function()
        c = client(proto)
        -- a kept-alive connection to the emulator, as in any run
        act = assert(c:create(emu.PROVIDER, assignment()))
      end)
      after_each(function() c:close() end)

      it("never lets libcurl re-send a create without an external id after the connection died", function()
        emu.fault { method = "POST", path = "/learningCourseActivities$", drop = true, after = true, count = 1 }
        local seq = emu.last_seq()
        local got, err = c:create(emu.PROVIDER, self_initiated())
        assert.is_nil(got)
        assert.equals("transport", err.kind)
        assert.matches("may have been processed", err.message)
        assert.equals(1, err.attempts)
        assert.equals(1, #requests(seq, "/learningCourseActivities$", "POST"))
      end)

      it("reconciles a create with an external id itself after the connection died (one POST)", function()
        emu.fault { method = "POST", path = "/learningCourseActivities$", drop = true, after = true, count = 1 }
        local a = assignment()
        local seq = emu.last_seq()
        local got, err = c:create(emu.PROVIDER, a)
        assert.is_nil(err)
        assert.equals(a.externalCourseActivityId, got.externalCourseActivityId)
        assert.equals(1, emu.creates(emu.PROVIDER, a.externalCourseActivityId))
        local posts = requests(seq, "/learningCourseActivities$", "POST")
        assert.equals(1, #posts)
        local gets = requests(seq, "externalcourseActivityId=", "GET")
        assert.equals(1, #gets)
        assert.equals("1", gets[1].headers["retry-attempt"])
      end)

      it("re-sends a PATCH after the connection died only through its own retry", function()
        emu.fault { method = "PATCH", path = "/learningCourseActivities/", drop = true, after = true, count = 1 }
        local seq = emu.last_seq()
        assert.is_true(c:update(emu.PROVIDER, act.id, { completionPercentage = 40 }))
        local patches = requests(seq, "/learningCourseActivities/", "PATCH")
        assert.equals(2, #patches)
        assert.is_nil(patches[1].headers["retry-attempt"])
        assert.equals("1", patches[2].headers["retry-attempt"])
      end)

      it("re-sends a DELETE (no body) after the connection died only through its own retry", function()
        emu.fault { method = "DELETE", path = "/learningCourseActivities/", drop = true, after = true, count = 1 }
        local seq = emu.last_seq()
        assert.is_true(c:delete(emu.PROVIDER, act.id))
        local deletes = requests(seq, "/learningCourseActivities/", "DELETE")
        assert.equals(2, #deletes)
        assert.is_nil(deletes[1].headers["retry-attempt"])
        assert.equals("1", deletes[2].headers["retry-attempt"])
        assert.equals(404, deletes[2].status)
      end)

      it("imports rows once each when POSTs are dropped after commit (single requests)", function()
        local sample = require "vivalearning.sample"
        local src = os.tmpname() .. ".csv"
        sample.write(src, 300, { prefix = "drop-" })
        emu.fault { method = "POST", path = "/learningCourseActivities$", drop = true, after = true, share = 0.05 }
        local seq = emu.last_seq()
        local s = assert(viva.bulk.import(c, src, { provider = emu.PROVIDER, batch = 1 }))
        os.remove(src)
        assert.equals(300, s.created)
        assert.equals(0, s.failed)
        local creates = emu.counters().creates[emu.PROVIDER]
        for i = 1, 300 do
          local ext = ("drop-%06d"):format(i)
          assert.equals(1, creates[ext], ext)
        end
        -- every POST that went out again was ours: it carries Retry-Attempt
        local seen = {}
        for _, e in ipairs(requests(seq, "/learningCourseActivities$", "POST")) do
          if seen[e.client_request_id] then assert.is_string(e.headers["retry-attempt"]) end
          seen[e.client_request_id] = true
        end
      end)

      it("never lets libcurl re-send a $batch after the connection died", function()
        emu.fault { method = "POST", path = "^/v1.0/%$batch$", drop = true, after = true, count = 1 }
        local seq = emu.last_seq()
        local res, err = c:batch { { op = "create", provider = emu.PROVIDER, model = self_initiated() } }
        assert.is_nil(res)
        assert.equals("transport", err.kind)
        assert.equals(1, #requests(seq, "^/v1.0/%$batch$", "POST"))
      end)
    end)
  end
end)
