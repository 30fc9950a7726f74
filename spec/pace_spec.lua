-- vivalearning.pace, the import's window and pace, driven with synthetic observations on a
-- simulated clock (no timing): a token bucket of R steps/s (burst R/10) stands for Graph's
-- throttling, each request costs one RTT, throttled steps come back after a whole-second
-- Retry-After, as the emulator and Graph answer.
local pace = require "vivalearning.pace"

-- Imports n rows in requests of up to `per` steps against the bucket; returns the share of the
-- admitted rate reached, the share of steps answered 429, and the controller.
local function simulate(n, per, R, rtt, max_window, refuse_share)
  local t = 0
  local ctl = pace.new { max_window = max_window or 128, per_request = per, t = 0 }
  local burst = R / 10
  local tokens, t_bucket = burst, 0
  local ready, retries, inflight = n, {}, {}
  local done, sent, refused, k_refuse = 0, 0, 0, 0
  while done < n do
    local left = ready
    for _, r in ipairs(retries) do left = left + r.n end
    ctl:remaining(left)                    -- as the importer says once its source is read
    for i = #retries, 1, -1 do
      if retries[i].due <= t then ready = ready + retries[i].n; table.remove(retries, i) end
    end
    while ready > 0 and #inflight < math.floor(ctl.window) and ctl:can_send(t) do
      local k = math.min(per, ready)
      ready = ready - k
      ctl:sent(t, k)
      local at = t + rtt / 2
      tokens = math.min(burst, tokens + (at - t_bucket) * R); t_bucket = at
      local ok = 0
      for _ = 1, k do
        k_refuse = k_refuse + (refuse_share or 0)
        if k_refuse >= 1 then k_refuse = k_refuse - 1          -- refused whatever the rate
        elseif tokens >= 1 then tokens = tokens - 1; ok = ok + 1 end
      end
      sent, refused = sent + k, refused + (k - ok)
      inflight[#inflight + 1] = { at = t + rtt, ok = ok, thr = k - ok, sent = t }
    end
    local nxt = math.huge
    for _, r in ipairs(inflight) do nxt = math.min(nxt, r.at) end
    for _, r in ipairs(retries) do nxt = math.min(nxt, r.due) end
    if ready > 0 and #inflight < math.floor(ctl.window) then
      nxt = math.min(nxt, t + math.max(ctl:wait(t), 1e-4))
    end
    t = math.max(t, nxt)
    for i = #inflight, 1, -1 do
      local r = inflight[i]
      if r.at <= t then
        table.remove(inflight, i)
        done = done + r.ok
        if r.thr > 0 then retries[#retries + 1] = { due = t + 1, n = r.thr } end
        ctl:completed(t, r.ok, r.thr > 0, t - r.sent, r.sent)
      end
    end
  end
  return n / t / R, refused / sent, ctl
end

describe("pace: the import's window and pace", function()
  it("slow start: unpaced until an RTT is known, the window doubles each round trip up to max_window", function()
    local w = pace.new { max_window = 20, per_request = 20, t = 0 }
    assert.equal(4, w.window)
    assert.is_true(w:can_send(0))
    assert.equal(0, w:wait(0))
    -- a round trip of 4 requests, none throttled: the window is 8
    for _ = 1, 4 do w:completed(0.1, 20, false, 0.1, 0) end
    assert.equal(8, w.window)
    for _ = 1, 8 do w:completed(0.2, 20, false, 0.1, 0.1) end
    assert.equal(16, w.window)
    for _ = 1, 16 do w:completed(0.3, 20, false, 0.1, 0.2) end
    assert.equal(20, w.window)
    assert.is_nil(w.rate)
  end)

  it("slow start at a long round trip grows the window by less than double per round trip", function()
    -- 200 ms: 4 requests come back, the window grows by half (4 -> 6), not 4 -> 8
    local w = pace.new { max_window = 128, per_request = 20, t = 0 }
    for _ = 1, 4 do w:completed(0.2, 20, false, 0.2, 0) end
    assert.near(6, w.window, 1e-9)
    -- what the start sends past the admitted rate before the first throttle comes back (all of
    -- it refused) against a bucket of 1,000 steps/s (burst 100) at 200 ms: doubling sent 422
    -- steps the bucket refused
    local t, ctl = 0, pace.new { max_window = 128, per_request = 20, t = 0 }
    local tokens, tb, inflight, refused = 100, 0, {}, 0
    while ctl.cuts == 0 do
      while #inflight < math.floor(ctl.window) and ctl:can_send(t) do
        ctl:sent(t, 20)
        local at = t + 0.1
        tokens = math.min(100, tokens + (at - tb) * 1000); tb = at
        local ok = math.min(20, math.floor(tokens))
        tokens = tokens - ok
        refused = refused + 20 - ok
        inflight[#inflight + 1] = { at = t + 0.2, ok = ok, sent = t }
      end
      local nxt = t + math.max(ctl:wait(t), 1e-4)
      for _, r in ipairs(inflight) do nxt = math.min(nxt, r.at) end
      t = nxt
      for i = #inflight, 1, -1 do
        local r = inflight[i]
        if r.at <= t then
          table.remove(inflight, i)
          ctl:completed(t, r.ok, r.ok < 20, t - r.sent, r.sent)
        end
      end
    end
    for _, r in ipairs(inflight) do refused = refused + 20 - r.ok end
    assert.is_true(refused <= 300, tostring(refused))
  end)

  it("slow start stops where more in flight only queues (a server that is the bottleneck, no throttling)", function()
    local w = pace.new { max_window = 128, per_request = 20, t = 0 }
    -- the server delivers 5,000 steps/s whatever is in flight; the round trip grows with the queue
    local t = 0
    for i = 1, 2000 do
      t = i * 20 / 5000
      w:completed(t, 20, false, 0.004 + w.window * 20 / 5000, t - 0.004)
    end
    assert.is_nil(w.rate)
    -- twice 5,000 steps/s x the shortest RTT seen (20 ms, with the first 4 in flight), in
    -- requests of 20, plus 4: 14 (without the stop it reaches max_window, 128)
    assert.is_true(w.window < 15, tostring(w.window))
  end)

  it("slow start spaces a window's requests at twice the window's rate per RTT", function()
    local w = pace.new { max_window = 100, per_request = 1, t = 0 }
    for _ = 1, 4 do w:completed(0.1, 1, false, 0.1, 0) end   -- window 8, RTT 0.1: 160 steps/s
    local n = 0
    while w:can_send(0.1) do w:sent(0.1, 1); n = n + 1 end
    assert.equal(3, n)                        -- 20 ms of sends at 160/s ahead at most, not 8 at once
    assert.near(0.8 / 160, w:wait(0.1), 1e-9)
  end)

  it("a throttle paces just below the delivered rate, once per round trip", function()
    local w = pace.new { max_window = 128, per_request = 20, t = 0 }
    -- one second at 1,000 steps/s: 50 requests of 20, RTT 0.1
    for i = 1, 50 do w:completed(i / 50, 20, false, 0.1, i / 50 - 0.1) end
    assert.is_nil(w.rate)
    w:completed(1.0, 10, true, 0.1, 0.9)
    assert.equal(1, w.cuts)
    assert.is_true(w.rate > 0.8 * 1000 and w.rate < 1000, tostring(w.rate))
    local r = w.rate
    -- requests that went out before the cut bring no second cut
    w:completed(1.05, 0, true, 0.1, 0.95)
    assert.equal(1, w.cuts)
    assert.equal(r, w.rate)
    -- Little's law: the window is what the rate needs at this RTT, twice over, plus 4
    assert.near(2 * r * 0.1 / 20 + 4, w.window, 0.5)
    -- nor one that went out within a round trip after it (the bucket was empty then)
    w:completed(1.15, 0, true, 0.1, 1.05)
    assert.equal(1, w.cuts)
    -- one that went out later does
    w:completed(1.3, 0, true, 0.1, 1.2)
    assert.equal(2, w.cuts)
  end)

  it("returns to the ceiling after a cut, then probes past it", function()
    local w = pace.new { max_window = 128, per_request = 1, t = 0 }
    for i = 1, 1000 do w:completed(i / 1000, 1, false, 0.05, i / 1000 - 0.05) end
    w:completed(1.0, 0, true, 0.05, 0.95)
    local cut, ceiling = w.rate, w.ceiling
    local t = 1.0
    for _ = 1, 3000 do t = t + 0.001; w:completed(t, 1, false, 0.05, t - 0.05) end
    assert.is_true(w.rate >= ceiling, ("rate %g ceiling %g"):format(w.rate, ceiling))
    assert.is_true(w.rate > cut)
    -- never beyond 1.25 x what is delivered
    assert.is_true(w.rate <= 1.25 * w:delivered(t) + 1e-9)
  end)

  it("near the end of the import (source read, little left) the rate does not probe past the ceiling", function()
    local w = pace.new { max_window = 128, per_request = 1, t = 0 }
    for i = 1, 1000 do w:completed(i / 1000, 1, false, 0.05, i / 1000 - 0.05) end
    w:completed(1.0, 0, true, 0.05, 0.95)
    local ceiling = w.ceiling
    w:remaining(500)                        -- half a second of steps left
    local t = 1.0
    for _ = 1, 3000 do t = t + 0.001; w:completed(t, 1, false, 0.05, t - 0.05) end
    assert.near(ceiling, w.rate, 1e-6 * ceiling)
    -- with more than ENDGAME seconds left it probes again
    w:remaining(1e6)
    for _ = 1, 1000 do t = t + 0.001; w:completed(t, 1, false, 0.05, t - 0.05) end
    assert.is_true(w.rate > ceiling)
  end)

  it("a 10,000-row import (10 s at the admitted rate) reaches 90% with at most 2% 429s at RTT 80 to 200 ms", function()
    -- short imports are where the start and the end weigh: the overshoot of the start, and a step
    -- refused near the end waiting a whole-second Retry-After (a cut after the first measured
    -- over the span alone read a refilled burst as admitted and held the rate above it)
    for _, rtt in ipairs { 0.08, 0.12, 0.2 } do
      local share, refused = simulate(10000, 20, 1000, rtt)
      assert.is_true(share >= 0.9, ("RTT %g: %.1f%% of the admitted rate"):format(rtt, share * 100))
      assert.is_true(refused <= 0.02, ("RTT %g: %.2f%% 429"):format(rtt, refused * 100))
    end
  end)

  it("with default settings reaches 90% of the admitted rate with at most 2% 429s, RTT 20 to 200 ms ($batch)", function()
    for _, rtt in ipairs { 0.02, 0.05, 0.08, 0.12, 0.2 } do
      local share, refused = simulate(50000, 20, 1000, rtt)
      assert.is_true(share >= 0.9, ("RTT %g: %.1f%% of the admitted rate"):format(rtt, share * 100))
      assert.is_true(refused <= 0.02, ("RTT %g: %.2f%% 429"):format(rtt, refused * 100))
    end
  end)

  it("single requests the same, up to max_window requests in flight", function()
    for _, rtt in ipairs { 0.02, 0.08 } do
      local share, refused = simulate(50000, 1, 1000, rtt)
      assert.is_true(share >= 0.9, ("RTT %g: %.1f%%"):format(rtt, share * 100))
      assert.is_true(refused <= 0.02, ("RTT %g: %.2f%% 429"):format(rtt, refused * 100))
    end
    -- 200 ms: 128 in flight carry 640 steps/s, below the 1,000 admitted: bound by the window
    local share, refused, w = simulate(20000, 1, 1000, 0.2)
    assert.equal(128, w.window)
    assert.is_true(share >= 0.9 * 0.64, ("%.1f%%"):format(share * 100))
    assert.equal(0, refused)
  end)

  it("throttling that does not come from a rate does not spiral the pace down to nothing", function()
    -- 25% of steps refused whatever the rate, 1,000 steps/s admitted otherwise
    local share, _, w = simulate(5000, 20, 1000, 0.02, 128, 0.25)
    assert.is_true(w.rate >= w:floor())
    assert.is_true(share > 0.2, ("%.1f%%"):format(share * 100))
  end)
end)
