-- Numbers that come into the client: NaN and infinities are refused wherever a number comes in
-- (arguments, options, token lifetimes, Retry-After), with an error that names it.
local emu = require "support.emulator"
local clients = require "support.client"

local NAN, INF = 0 / 0, math.huge

local function graph_log(seq)
  local out = {}
  for _, e in ipairs(emu.log(seq)) do
    if not e.path:find("oauth2", 1, true) then out[#out + 1] = e end
  end
  return out
end

local function client(over)
  return clients.new("importer", { max_retries = 1, backoff = { base = 0.01, cap = 0.02 } }, over)
end

describe("client numbers", function()
  before_each(function() emu.reset() end)
  after_each(function() emu.clear_faults() end)

  it("refuses a poll timeout that is NaN or infinite", function()
    local c = client()
    for _, t in ipairs { NAN, INF, -INF } do
      assert.has_error(function() c:poll(t) end,
        "bad argument #1 to 'poll' (finite number of seconds expected, got " .. tostring(t) .. ")")
    end
    assert.same({}, c:poll(0))
    assert.same({}, c:poll(-1))                    -- a negative timeout is 0, as before
    c:close()
  end)

  it("refuses NaN and infinite numeric options, naming them", function()
    for _, case in ipairs {
      { { max_retries = NAN }, "max_retries" }, { { max_concurrency = INF }, "max_concurrency" },
      { { max_body_bytes = -INF }, "max_body_bytes" }, { { timeouts = { connect = NAN } }, "connect" },
      { { timeouts = { attempt = INF } }, "attempt" }, { { timeouts = { deadline = NAN } }, "deadline" },
      { { backoff = { base = NAN } }, "base" }, { { backoff = { cap = INF } }, "cap" },
      { { timeouts = { connect = 1e9 } }, "connect" },   -- finite but out of range: the range is named
    } do
      local ok, err = pcall(client, case[1])
      assert.is_false(ok)
      assert.matches("viva.client: " .. case[2] .. " must be", err, 1, true)
    end
  end)

  for _, life in ipairs { NAN, INF, -INF } do
    it("fails the waiters when a token_provider returns expires_in = " .. tostring(life), function()
      local token, calls = emu.token("importer"), 0
      local c = client { client_secret = false, tenant = false, client_id = false,
                         token_provider = function() calls = calls + 1; return token, life end }
      local h = c:submit("get_content", emu.PROVIDER, emu.CONTENT)
      local done = c:poll(2)
      assert.equals(1, calls)                      -- no spinning on a token that never works
      assert.equals(h, done[1])
      local v, err = h:result()
      assert.is_nil(v)
      assert.equals("auth", err.kind)
      assert.equals("token_provider_error", err.code)
      assert.matches("token_provider returned expires_in = " .. tostring(life) ..
        " (a finite number of seconds expected)", err.message, 1, true)
      -- a good lifetime afterwards works
      life = 3600
      assert.equals(emu.CONTENT, assert(c:get_content(emu.PROVIDER, emu.CONTENT)).id)
      c:close()
    end)
  end

  it("takes a Retry-After that does not parse to a finite number as no hint", function()
    local c = client { max_retries = 2 }
    for _, ra in ipairs { "1e999", "inf", "nan", "-inf", string.rep("9", 60) .. ".5" } do
      emu.fault { path = "/learningContents/", status = 429, retry_after = ra, count = 1 }
      local seq = emu.last_seq()
      local v, err = c:get_content(emu.PROVIDER, emu.CONTENT)
      local n = #graph_log(seq)
      if ra:sub(1, 1) == "9" then            -- a finite, huge wait: gives up at once, honestly
        assert.is_nil(v)
        assert.equals("throttled", err.kind)
        assert.matches("would pass the", err.note, 1, true)
        assert.is_true(err.retry_after > 1e10)
        assert.equals(1, n)
      else                                   -- no hint: the jittered backoff, then success
        assert.is_nil(err)
        assert.equals(emu.CONTENT, v.id)
        assert.equals(2, n)
      end
    end
    c:close()
  end)
end)
