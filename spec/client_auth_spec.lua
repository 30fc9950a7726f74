-- Tokens: client credentials, fixed token, token_provider; caching, single flight, expiry,
-- refresh, the 401 replay, and token endpoint errors.
local shell = require "support.shell"
local viva = require "vivalearning"
local emu = require "support.emulator"

local clients = require "support.client"

local function client(over)
  return clients.new("importer", { max_retries = 3, backoff = { base = 0.01, cap = 0.05 } }, over)
end

local function tokens() return emu.counters().tokens end

local function token_requests(seq)
  local n = 0
  for _, e in ipairs(emu.log(seq)) do if e.path:find("/oauth2/v2.0/token", 1, true) then n = n + 1 end end
  return n
end

local function sleep(s) shell.execute("sleep " .. s) end

describe("client auth", function()
  before_each(function() emu.reset() end)

  it("fetches one token on first use and caches it, for 50 concurrent requests too", function()
    local c = client { max_concurrency = 50 }
    local seq = emu.last_seq()
    local hs = {}
    for i = 1, 50 do hs[i] = c:submit("get_content", emu.PROVIDER, emu.content(1, (i % 20) + 1)) end
    local done = 0
    while done < 50 do done = done + #c:poll(1) end
    for _, h in ipairs(hs) do assert.is_userdata((h:result())) end
    assert.equals(1, token_requests(seq))
    assert(c:get_content(emu.PROVIDER, emu.CONTENT))
    assert.equals(1, token_requests(seq))
    c:close()
  end)

  it("sends the client credentials form to /{tenant}/oauth2/v2.0/token", function()
    local c = client()
    local seq = emu.last_seq()
    assert(c:get_content(emu.PROVIDER, emu.CONTENT))
    local tok
    for _, e in ipairs(emu.log(seq)) do if e.path:find("oauth2") then tok = e end end
    assert.equals("POST", tok.method)
    assert.equals("/" .. emu.TENANT .. "/oauth2/v2.0/token", tok.path)
    assert.matches("application/x%-www%-form%-urlencoded", tok.headers["content-type"])
    c:close()
  end)

  it("fetches a new token once the old one expired", function()
    -- A 3 s token (refreshed ahead at half-life): long enough that even a run under valgrind
    -- makes its first call with it, short enough to wait out.
    emu.settings { token_lifetime = 3 }
    local c = client()
    assert(c:get_content(emu.PROVIDER, emu.CONTENT))
    local seq = emu.last_seq()
    sleep(3.3)
    assert(c:get_content(emu.PROVIDER, emu.CONTENT))
    -- exactly one new token, fetched by the client's own clock: Graph never answered 401
    assert.equals(1, token_requests(seq))
    for _, e in ipairs(emu.log(seq)) do assert.not_equals(401, e.status) end
    c:close()
  end)

  it("refreshes ahead of expiry while the current token still works", function()
    emu.settings { token_lifetime = 4 }      -- refresh at half-life for short tokens
    local c = client()
    local seq = emu.last_seq()
    assert(c:get_content(emu.PROVIDER, emu.CONTENT))
    sleep(2.3)
    assert(c:get_content(emu.PROVIDER, emu.CONTENT))   -- starts a background refresh, uses the old token
    assert(c:get_content(emu.PROVIDER, emu.CONTENT))
    assert.equals(2, token_requests(seq))
    local statuses = {}
    for _, e in ipairs(emu.log(seq)) do
      if e.path:find("learningContents") then statuses[#statuses + 1] = e.status end
    end
    assert.same({ 200, 200, 200 }, statuses)
    c:close()
  end)

  it("keeps using the valid token when a background refresh fails", function()
    emu.settings { token_lifetime = 4 }
    local c = client()
    assert(c:get_content(emu.PROVIDER, emu.CONTENT))
    emu.fault { path = "/oauth2/v2.0/token$", status = 500 }
    sleep(2.3)
    local seq = emu.last_seq()
    for _ = 1, 3 do assert(c:get_content(emu.PROVIDER, emu.CONTENT)) end
    local token_calls, graph = 0, {}
    for _, e in ipairs(emu.log(seq)) do
      if e.path:find("oauth2", 1, true) then token_calls = token_calls + 1 else graph[#graph + 1] = math.floor(e.status) end
    end
    assert.equals(1, token_calls)                  -- one failed refresh, the next try waits 30 s
    assert.same({ 200, 200, 200 }, graph)
    emu.clear_faults()
    c:close()
  end)

  it("answers a 401 with exactly one forced refresh and one replay", function()
    local c = client()
    assert(c:get_content(emu.PROVIDER, emu.CONTENT))
    emu.expire_tokens()
    local seq = emu.last_seq()
    local got, err = c:get_content(emu.PROVIDER, emu.CONTENT)
    assert.is_nil(err)
    assert.equals(emu.CONTENT, got.id)
    local seen = {}
    for _, e in ipairs(emu.log(seq)) do seen[#seen + 1] = (e.path:find("oauth2") and "token" or "graph") .. ":" .. math.floor(e.status) end
    assert.same({ "graph:401", "token:200", "graph:200" }, seen)
    c:close()
  end)

  it("refreshes once for many requests that all got 401", function()
    local c = client { max_concurrency = 20 }
    assert(c:get_content(emu.PROVIDER, emu.CONTENT))
    emu.expire_tokens()
    local seq = emu.last_seq()
    local hs = {}
    for i = 1, 20 do hs[i] = c:submit("get_content", emu.PROVIDER, emu.content(1, i)) end
    local done = 0
    while done < 20 do done = done + #c:poll(1) end
    for _, h in ipairs(hs) do local v, err = h:result(); assert.is_nil(err); assert.is_userdata(v) end
    assert.equals(1, token_requests(seq))
    c:close()
  end)

  it("fails with an auth error after the replay also gets 401", function()
    local calls = 0
    local c = client { client_secret = false, tenant = false, client_id = false,
                       token_provider = function() calls = calls + 1; return "bogus-token-" .. calls, 3600 end }
    local seq = emu.last_seq()
    local got, err = c:get_content(emu.PROVIDER, emu.CONTENT)
    assert.is_nil(got)
    assert.equals("auth", err.kind)
    assert.equals(401, err.status)
    assert.equals(2, err.attempts)
    assert.equals(2, calls)
    local graph = 0
    for _, e in ipairs(emu.log(seq)) do if e.path:find("learningContents") then graph = graph + 1 end end
    assert.equals(2, graph)
    assert.is_nil(tostring(err):find("bogus%-token"))
    c:close()
  end)

  it("uses a token_provider's token, and gets a new one after a 401", function()
    local calls, force = 0, {}
    local c = client { client_secret = false, tenant = false, client_id = false,
                       token_provider = function(info)
                         calls = calls + 1
                         force[#force + 1] = info.force
                         return emu.token("importer"), 3599
                       end }
    assert(c:get_content(emu.PROVIDER, emu.CONTENT))
    assert(c:get_content(emu.PROVIDER, emu.CONTENT))
    assert.equals(1, calls)
    emu.expire_tokens()
    assert(c:get_content(emu.PROVIDER, emu.CONTENT))
    assert.equals(2, calls)
    assert.same({ false, true }, force)
    c:close()
  end)

  it("turns a Lua error in token_provider into an auth error, and sends nothing", function()
    local c = client { client_secret = false, tenant = false, client_id = false,
                       token_provider = function() error("vault is sealed") end }
    local seq = emu.last_seq()
    local got, err = c:get_content(emu.PROVIDER, emu.CONTENT)
    assert.is_nil(got)
    assert.equals("auth", err.kind)
    assert.matches("vault is sealed", err.message)
    assert.equals(0, #emu.log(seq))
    local got2, err2 = viva.client { graph_url = emu.graph_url, ca_file = emu.ca,
      token_provider = function() return nil, "no token today" end }:get("x")
    assert.is_nil(got2)
    assert.matches("no token today", err2.message)
    c:close()
  end)

  it("reports token endpoint errors with the OAuth error and the AADSTS code, never the secret", function()
    local c = client { client_secret = "wrong-secret-value" }
    local got, err = c:get_content(emu.PROVIDER, emu.CONTENT)
    assert.is_nil(got)
    assert.equals("auth", err.kind)
    assert.equals("invalid_client", err.error)
    assert.equals(7000215, err.aadsts)
    assert.equals(401, err.status)
    assert.matches("AADSTS7000215", err.message)
    assert.is_nil(err.message:find("Trace ID"))        -- one line
    assert.is_nil(tostring(err):find("wrong%-secret%-value"))
    c:close()
    local t = client { tenant = "00000000-0000-4000-8000-00000000beef" }
    got, err = t:get_content(emu.PROVIDER, emu.CONTENT)
    assert.is_nil(got)
    assert.equals("auth", err.kind)
    assert.is_number(err.aadsts)
    t:close()
  end)

  it("retries a token endpoint that answers 503 once", function()
    emu.fault { path = "/oauth2/v2.0/token$", status = 503, count = 1 }
    local c = client()
    local got, err = c:get_content(emu.PROVIDER, emu.CONTENT)
    assert.is_nil(err)
    assert.equals(emu.CONTENT, got.id)
    c:close()
  end)

  it("fails every waiter when the token endpoint keeps failing", function()
    emu.fault { path = "/oauth2/v2.0/token$", status = 500 }
    local c = client { max_retries = 1 }
    local hs = {}
    for i = 1, 5 do hs[i] = c:submit("get_content", emu.PROVIDER, emu.content(1, i)) end
    local done = 0
    while done < 5 do done = done + #c:poll(1) end
    for _, h in ipairs(hs) do
      local v, err = h:result()
      assert.is_nil(v)
      assert.equals("auth", err.kind)
      assert.equals(500, err.status)
    end
    c:close()
  end)

  it("uses a fixed token as given", function()
    local c = client { client_secret = false, tenant = false, client_id = false, token = emu.token("importer") }
    local seq = emu.last_seq()
    assert(c:get_content(emu.PROVIDER, emu.CONTENT))
    assert.equals(0, token_requests(seq))
    c:close()
  end)

  it("validates the configuration at construction", function()
    local base = { graph_url = emu.graph_url, ca_file = emu.ca }
    local function with(t) local o = {}; for k, v in pairs(base) do o[k] = v end; for k, v in pairs(t) do o[k] = v end; return o end
    assert.has_error(function() viva.client(with {}) end,
      "viva.client: give exactly one of client_secret (with tenant and client_id), token, or token_provider")
    assert.has_error(function() viva.client(with { token = "a", token_provider = print }) end)
    assert.has_error(function() viva.client(with { client_secret = "s" }) end, "viva.client: client_secret needs tenant and client_id")
    assert.has_error(function() viva.client(with { token = "a", tokn = 1 }) end, "viva.client: unknown option 'tokn'; did you mean 'token'?")
    assert.has_error(function() viva.client(with { token = "a\r\nX-Evil: 1" }) end, "viva.client: token contains whitespace or control characters")
    assert.has_error(function() viva.client(with { token = "a", max_concurrency = 0 }) end)
    assert.has_error(function() viva.client(with { token = "a", timeouts = { connect = -1 } }) end)
    assert.has_error(function() viva.client(with { token = "a", ca_file = "/nonexistent.pem" }) end,
      "viva.client: ca_file /nonexistent.pem cannot be read")
    assert.has_error(function() viva.client(with { token = "a", graph_url = "ftp://x/v1.0" }) end,
      "viva.client: graph_url: scheme must be https")
    assert.has_error(function() viva.client(with { token = "a", graph_url = "https://u:p@graph.microsoft.com/v1.0" }) end,
      "viva.client: graph_url: credentials in the URL are not allowed")
  end)
end)
