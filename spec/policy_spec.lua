-- The retry policy (src/policy.c), one pure function used by the engine, $batch items and the
-- token fetch, through its thin binding core._policy: no client, no network, no clock (every
-- attempt carries now, deadline and the random draw), so each decision is exact.
local core = require "vivalearning.core"

local function decide(t) return core._policy(t) end

describe("policy: Retry-After forms", function()
  local ra = core._retry_after
  local NOW = 1445412470          -- Wed, 21 Oct 2015 07:27:50 GMT

  it("reads seconds, fractional seconds and an HTTP-date", function()
    assert.equals(5, ra({ ["retry-after"] = "5" }, nil, NOW))
    assert.near(0.6, ra({ ["retry-after"] = "0.6" }, nil, NOW), 1e-9)
    assert.equals(10, ra({ ["retry-after"] = "Wed, 21 Oct 2015 07:28:00 GMT" }, nil, NOW))
    assert.equals(10, ra({ ["retry-after"] = "Wednesday, 21-Oct-15 07:28:00 GMT" }, nil, NOW))   -- RFC 850
    assert.equals(10, ra({ ["retry-after"] = "Wed Oct 21 07:28:00 2015" }, nil, NOW))            -- asctime
    assert.is_nil(ra({ ["retry-after"] = "Wed, 32 Oct 2015 07:28:00 GMT" }, nil, NOW))
    -- a date in the past means now
    assert.equals(0, ra({ ["retry-after"] = "Wed, 21 Oct 2015 07:00:00 GMT" }, nil, NOW))
  end)

  it("prefers retry-after-ms, then x-ms-retry-after-ms, then Retry-After, then the body", function()
    assert.equals(0.7, ra({ ["retry-after-ms"] = "700", ["x-ms-retry-after-ms"] = "800", ["retry-after"] = "9" }, nil, NOW))
    assert.equals(0.8, ra({ ["x-ms-retry-after-ms"] = "800", ["retry-after"] = "9" }, nil, NOW))
    assert.equals(9, ra({ ["retry-after"] = "9" }, "Retry after 3 minutes", NOW))
    assert.equals(180, ra({}, '{"error":{"message":"Rate limit. Retry after 3 minutes."}}', NOW))
  end)

  it("has no wait when no form is there or the value is not one", function()
    assert.is_nil(ra({}, nil, NOW))
    assert.is_nil(ra({ ["retry-after"] = "soon" }, "try later", NOW))
    assert.is_nil(ra({ ["retry-after-ms"] = "-5" }, nil, NOW))
  end)
end)

describe("policy: waits", function()
  it("waits at least the Retry-After, plus up to a quarter of it (at most 2 s) at random", function()
    assert.same({ action = "retry", wait = 4 }, decide { status = 429, retry_after = 4, jitter = 0 })
    assert.same({ action = "retry", wait = 4.5 }, decide { status = 429, retry_after = 4, jitter = 0.5 })
    assert.same({ action = "retry", wait = 61 }, decide { status = 429, retry_after = 60, jitter = 0.5 })
  end)

  it("backs off exponentially with full jitter when the server names no wait", function()
    local base = { status = 503, backoff_base = 0.5, backoff_cap = 3, jitter = 0.5 }
    local function wait(retries) base.retries = retries; base.max_retries = 9; return decide(base).wait end
    assert.equals(0.25, wait(0))
    assert.equals(0.5, wait(1))
    assert.equals(1, wait(2))
    assert.equals(1.5, wait(3))     -- capped at 3
    assert.equals(1.5, wait(8))
  end)
end)

describe("policy: HTTP outcomes", function()
  it("finishes a 2xx and fails other statuses with their kind", function()
    assert.same({ action = "succeed" }, decide { status = 201, method = "POST" })
    assert.same({ action = "fail", reason = "http", kind = "http" }, decide { status = 400 })
    assert.same({ action = "fail", reason = "http", kind = "http" }, decide { status = 404, method = "DELETE" })
  end)

  it("refreshes the token and replays once after a 401, then fails it as auth", function()
    assert.same({ action = "refresh" }, decide { status = 401, refreshable = true })
    assert.same({ action = "fail", reason = "http", kind = "auth" },
                decide { status = 401, refreshable = true, auth_replays = 1 })
    -- a fixed token cannot be refreshed
    assert.same({ action = "fail", reason = "http", kind = "auth" }, decide { status = 401 })
  end)

  it("retries 429 for every method, 503/504 for all but a POST without alternate key", function()
    for _, m in ipairs { "GET", "POST", "PATCH", "DELETE" } do
      assert.equals("retry", decide({ status = 429, method = m }).action)
    end
    for _, st in ipairs { 503, 504 } do
      assert.equals("retry", decide({ status = st, method = "GET" }).action)
      assert.equals("retry", decide({ status = st, method = "PATCH" }).action)
      assert.equals("retry", decide({ status = st, method = "DELETE" }).action)
      -- a create with an external id: look it up before sending it again
      assert.equals("lookup", decide({ status = st, method = "POST", has_alt = true }).action)
      -- without one (a create, a $batch): final, whatever the Retry-After
      assert.same({ action = "fail", reason = "maybe_done", kind = st == 503 and "throttled" or "http" },
                  decide { status = st, method = "POST", retry_after = 0.1 })
    end
  end)

  it("counts a 404 on a retried DELETE as gone, not on the first attempt", function()
    assert.same({ action = "gone" }, decide { status = 404, method = "DELETE", del404ok = true, retries = 1 })
    assert.equals("fail", decide({ status = 404, method = "DELETE", del404ok = true, retries = 0 }).action)
  end)

  it("stops at max_retries and before the deadline", function()
    assert.same({ action = "fail", reason = "exhausted", kind = "throttled" },
                decide { status = 429, retries = 3, max_retries = 3 })
    assert.same({ action = "fail", reason = "exhausted", kind = "throttled" },
                decide { status = 429, max_retries = 0 })
    assert.same({ action = "fail", reason = "deadline", kind = "throttled", wait = 60 },
                decide { status = 429, retry_after = 60, now = 100, deadline = 130 })
    assert.equals("retry", decide({ status = 429, retry_after = 20, now = 100, deadline = 130 }).action)
  end)

  it("after an ambiguous create, reads the lookup: found, not there, throttled, other", function()
    assert.same({ action = "succeed" }, decide { kind = "lookup", method = "POST", status = 200, has_alt = true })
    assert.same({ action = "resend" }, decide { kind = "lookup", method = "POST", status = 404, has_alt = true })
    assert.same({ action = "lookup", wait = 1 },
                decide { kind = "lookup", method = "POST", status = 503, retry_after = 1, has_alt = true })
    assert.same({ action = "fail", reason = "http", kind = "http" },
                decide { kind = "lookup", method = "POST", status = 400, has_alt = true })
  end)
end)

describe("policy: transport outcomes", function()
  it("retries whatever did not reach the server, for every method", function()
    for _, m in ipairs { "GET", "POST", "PATCH", "DELETE" } do
      assert.equals("retry", decide({ transport = "not_sent", method = m }).action)
    end
  end)

  it("retries an ambiguous read, PATCH or DELETE (safe to repeat)", function()
    for _, t in ipairs { "maybe_sent", "timeout", "reset" } do
      for _, m in ipairs { "GET", "PATCH", "DELETE" } do
        assert.equals("retry", decide({ transport = t, method = m }).action)
      end
    end
  end)

  it("looks an ambiguous create up by its external id, and never re-sends one without", function()
    for _, t in ipairs { "maybe_sent", "timeout", "reset" } do
      assert.equals("lookup", decide({ transport = t, method = "POST", has_alt = true }).action)
      -- a create without external id, a $batch: it may have been processed
      assert.same({ action = "fail", reason = "maybe_done", kind = "transport" },
                  decide { transport = t, method = "POST" })
    end
    -- the lookup itself is a GET: it is repeated
    assert.equals("lookup", decide({ kind = "lookup", transport = "reset", method = "POST", has_alt = true }).action)
  end)

  it("never retries what cannot get better", function()
    assert.same({ action = "fail", reason = "fatal", kind = "transport" }, decide { transport = "fatal" })
    assert.same({ action = "fail", reason = "too_large", kind = "protocol" }, decide { transport = "too_large" })
    assert.same({ action = "fail", reason = "body_refused", kind = "transport" },
                decide { transport = "body_refused", method = "POST", has_alt = true })
  end)

  it("gives up on transport failures at max_retries and before the deadline", function()
    assert.same({ action = "fail", reason = "exhausted", kind = "transport" },
                decide { transport = "reset", retries = 2, max_retries = 2 })
    assert.same({ action = "fail", reason = "deadline", kind = "transport", wait = 1.5 },
                decide { transport = "timeout", backoff_base = 3, backoff_cap = 3, jitter = 0.5, now = 10, deadline = 11 })
  end)
end)

describe("policy: $batch items", function()
  it("retries throttled items only when asked, and 503/504 ones only when safe to repeat", function()
    assert.same({ action = "fail", reason = "http", kind = "throttled" },
                decide { kind = "batch_item", status = 429, method = "POST" })
    assert.same({ action = "retry", wait = 0.2 },
                decide { kind = "batch_item", status = 429, method = "POST", retry_items = true, retry_after = 0.2 })
    assert.equals("retry", decide({ kind = "batch_item", status = 503, method = "GET", retry_items = true }).action)
    assert.same({ action = "fail", reason = "http", kind = "throttled" },
                decide { kind = "batch_item", status = 503, method = "POST", retry_items = true })
    assert.same({ action = "succeed" }, decide { kind = "batch_item", status = 204, method = "PATCH" })
  end)

  it("gives the items up at max_retries and before the deadline", function()
    assert.equals("exhausted", decide({ kind = "batch_item", status = 429, retry_items = true,
                                        retries = 1, max_retries = 1 }).reason)
    assert.equals("deadline", decide({ kind = "batch_item", status = 429, retry_items = true,
                                       retry_after = 30, now = 0, deadline = 10 }).reason)
  end)
end)

describe("policy: the token fetch", function()
  it("retries transient failures (transport, 429, 5xx, temporarily_unavailable) up to max_retries", function()
    assert.equals("retry", decide({ kind = "token", transport = "reset" }).action)
    assert.equals("retry", decide({ kind = "token", transport = "setup" }).action)
    assert.equals("retry", decide({ kind = "token", status = 429 }).action)
    assert.equals("retry", decide({ kind = "token", status = 500 }).action)
    assert.equals("retry", decide({ kind = "token", status = 400, token_transient = true }).action)
    assert.same({ action = "fail", reason = "exhausted", kind = "auth" },
                decide { kind = "token", status = 503, retries = 4, max_retries = 4 })
  end)

  it("fails permanent errors at once", function()
    assert.same({ action = "fail", reason = "not_transient", kind = "auth" }, decide { kind = "token", status = 401 })
    assert.same({ action = "fail", reason = "not_transient", kind = "auth" }, decide { kind = "token", transport = "fatal" })
    -- the token provider's errors (no status, no transport) and a 200 without a token
    assert.equals("not_transient", decide({ kind = "token" }).reason)
    assert.equals("not_transient", decide({ kind = "token", status = 200 }).reason)
  end)

  it("retries managed identity's 404, 408 and 410 (IMDS updating), 404 and 408 from App Service; never Entra's", function()
    for _, st in ipairs { 404, 408, 410 } do
      assert.equals("retry", decide({ kind = "token", status = st, token_mi = "imds" }).action)
      assert.equals("not_transient", decide({ kind = "token", status = st }).reason)
    end
    assert.equals("retry", decide({ kind = "token", status = 404, token_mi = "app_service" }).action)
    assert.equals("not_transient", decide({ kind = "token", status = 410, token_mi = "app_service" }).reason)
    -- identity not found, a wrong header: no retry
    assert.equals("not_transient", decide({ kind = "token", status = 400, token_mi = "imds" }).reason)
    assert.equals("not_transient", decide({ kind = "token", status = 401, token_mi = "app_service" }).reason)
    assert.has_error(function() decide { kind = "token", token_mi = "vm" } end)
  end)

  it("keeps a still valid token after a failed background refresh, and tries again later", function()
    assert.same({ action = "retry", wait = 30 },
                decide { kind = "token", status = 401, token_valid = true, now = 0, token_expires = 200 })
    assert.same({ action = "retry", wait = 45 },
                decide { kind = "token", status = 503, retry_after = 45, token_valid = true, now = 0, token_expires = 200 })
    -- never past the expiry of the token held
    assert.same({ action = "retry", wait = 10 },
                decide { kind = "token", status = 503, token_valid = true, now = 100, token_expires = 110 })
  end)

  it("waits for the token as for Graph requests", function()
    assert.same({ action = "retry", wait = 2.25 }, decide { kind = "token", status = 503, retry_after = 2, jitter = 0.5 })
  end)
end)

describe("policy: the alternate key's spelling (graph-api.md §6 #1)", function()
  it("sends a request whose 400 refused the key once more in the other spelling, a POST too", function()
    for _, m in ipairs({ "POST", "GET", "PATCH", "DELETE" }) do
      assert.same({ action = "respell" }, decide { status = 400, method = m, key_refused = true, respellable = true })
    end
    -- the lookup after an ambiguous create, and a $batch step (retry option or not)
    assert.same({ action = "respell" }, decide { kind = "lookup", status = 400, key_refused = true, respellable = true })
    assert.same({ action = "respell" }, decide { kind = "batch_item", method = "POST", status = 400,
                                                 key_refused = true, respellable = true })
    -- not a retry: max_retries = 0 and a deadline due do not stop it
    assert.same({ action = "respell" }, decide { status = 400, method = "POST", key_refused = true, respellable = true,
                                                 max_retries = 0, now = 10, deadline = 10 })
  end)

  it("fails the second refusal, and a 400 that is not about the key", function()
    assert.same({ action = "fail", reason = "http", kind = "http" },
                decide { status = 400, method = "POST", key_refused = true, respellable = false })
    assert.same({ action = "fail", reason = "http", kind = "http" },
                decide { status = 400, method = "POST", key_refused = false, respellable = true })
    assert.same({ action = "fail", reason = "http", kind = "http" },
                decide { kind = "batch_item", status = 400, key_refused = true, respellable = false })
    -- only a 400: a 404 or 409 names the key without refusing it
    assert.same({ action = "fail", reason = "http", kind = "http" },
                decide { status = 409, method = "POST", key_refused = true, respellable = true })
  end)
end)

describe("policy: its binding", function()
  it("names a bad field", function()
    assert.has_error(function() decide { transport = "lost" } end,
      "core._policy: transport must be one of the known names, got 'lost'")
    assert.has_error(function() decide { status = "429" } end, "core._policy: status must be a number")
    assert.has_error(function() decide { jitter = 1 } end, "core._policy: jitter must be in [0, 1)")
  end)
end)
