-- vivalearning.pace: how much a bulk import sends, sized from what it observes.
--
-- Graph admits a rate (steps per second, each $batch step counting as one request), not a number
-- of requests in flight, and the round-trip time decides how many must be in flight to reach that
-- rate (Little's law: in flight = rate x RTT). So the importer keeps two things:
--
--   window  requests in flight, at most max_window. Before the first throttle it grows by one per
--           request that comes back without a throttled step, times min(1, 100 ms / RTT) (it doubles
--           each round trip up to 100 ms, x 1.5 at 200 ms; slow start; sends are spaced at twice the window's rate per RTT), but never past twice
--           what is delivered at the shortest RTT seen, plus 4 (more would only queue). Once paced, it is what the paced rate needs at the smoothed RTT, twice over
--           (so a slower round trip does not starve the pipe), at least 2.
--   rate    steps per second, unset (no pacing) until Graph first throttles. On a throttle (once
--           per round trip, whatever number of steps were throttled in it) the delivered rate
--           (steps not throttled over the last four round trips, 0.25 to 1 s) is what Graph
--           admitted: it becomes the ceiling, and the rate 0.9 x the lower of it and the rate
--           (after the first cut, over at least a second: the bucket's burst, refilled while
--           the rate was below it, must not read as admitted).
--           Between throttles the rate closes the gap to the ceiling with a time constant of one
--           second, then grows past it (the admitted rate may have gone up, or the ceiling was
--           measured low), 10% per second doubling every second up to 100%, never
--           beyond 1.25 x the delivered rate, until Graph throttles again (CUBIC-like); not once
--           the source is read and less than 3 s of steps are left (remaining). It never
--           goes below half a full request per round trip.
--           Sends are spaced by a credit of steps that fills at that rate (at most one full
--           request, or 20 ms of sends, ahead).
--
-- No clock is read here: every call takes the time t, so specs drive it with synthetic
-- observations. Timing never enters a decision except through t.
local M = {}
local W = {}
W.__index = W

M.START = 4          -- first window (requests)
M.CUT = 0.9          -- rate after a throttle, x the delivered rate
M.GROWTH = 0.1       -- rate growth per second past the ceiling
M.HEADROOM = 1.25    -- the rate never grows beyond this x the delivered rate
M.SPAN_MIN, M.SPAN_MAX = 0.25, 1.0  -- the delivered rate is measured over 4 RTTs within these
M.RECOVER = 1.0      -- seconds: time constant of the return to the ceiling after a cut
M.SS_RTT = 0.1       -- seconds: slow start doubles per round trip up to this RTT, less beyond
M.LONG = 1.0         -- seconds: the delivered rate a cut after the first one is measured over (at least)
M.ENDGAME = 3.0      -- seconds of steps left (source read): no probing past the ceiling

-- o: max_window (requests in flight, >= 1), per_request (steps a full request carries, >= 1), t.
function M.new(o)
  local self = setmetatable({
    max_window = o.max_window, per = o.per_request or 1,
    window = math.min(o.max_window, M.START),
    rate = nil, credit = 0, t_credit = o.t, t_grow = o.t, t_start = o.t,
    srtt = nil, last_cut = -math.huge, cuts = 0,
    hist_t = {}, hist_n = {}, h1 = 1, hs = 1, h2 = 0, delivered_n = 0, long_n = 0,
  }, W)
  return self
end

local function span_of(self)
  return math.max(M.SPAN_MIN, math.min(M.SPAN_MAX, 1.5 * (self.srtt or 0)))
end

-- steps not throttled over the last span (4 round trips, 0.25 to 1 s), per second
-- (the history is kept for LONG seconds at least: h1 is its start, hs the span's)
function W:delivered(t)
  local ht, hn = self.hist_t, self.hist_n
  local span = span_of(self)
  local long = math.max(span, M.LONG)
  while self.h1 <= self.h2 and ht[self.h1] < t - long do
    self.long_n = self.long_n - hn[self.h1]
    ht[self.h1], hn[self.h1] = nil, nil
    self.h1 = self.h1 + 1
  end
  if self.hs < self.h1 then self.hs = self.h1; self.delivered_n = self.long_n end
  while self.hs <= self.h2 and ht[self.hs] < t - span do
    self.delivered_n = self.delivered_n - hn[self.hs]
    self.hs = self.hs + 1
  end
  return self.delivered_n / math.min(span, math.max(t - self.t_start, 1e-3))
end

-- the same over LONG seconds (at least the span): a token bucket's burst, refilled while the
-- rate was below what it admits, inflates this less
function W:delivered_long(t)
  self:delivered(t)
  return self.long_n / math.min(math.max(span_of(self), M.LONG), math.max(t - self.t_start, 1e-3))
end

-- Steps still to send once the source is read to its end (nil while it is not): with less
-- than ENDGAME seconds of them left at the rate, the rate no longer probes past the ceiling
-- (a step refused now waits a whole-second Retry-After at the end of the import).
function W:remaining(steps)
  self.left = steps
end

-- the rate sends are spaced at: the paced rate, or in slow start (once an RTT is known) twice
-- what the window sends per shortest round trip, so a window's requests do not all leave in one instant
-- (a token bucket with a small burst would refuse the end of such a burst)
local function cur_rate(self)
  if self.rate then return self.rate end
  -- (the shortest RTT seen: the first one carries the connection's setup and the token)
  if self.min_rtt then return 2 * self.window * self.per / math.max(self.min_rtt, 1e-3) end
end

local function refill(self, t)
  local r = cur_rate(self)
  if not r then return end
  local dt = t - self.t_credit
  if dt > 0 then
    -- at most one full request, or 20 ms of sends, ahead: a loop that comes round late must not
    -- lose the sends it was due (nor send a long-saved burst)
    self.credit = math.min(math.max(self.per, 0.02 * r), self.credit + dt * r)
  end
  self.t_credit = t
end

-- the lowest rate: half a full request per smoothed round trip (1 step/s before any RTT is known)
function W:floor()
  return self.srtt and 0.5 * self.per / math.max(self.srtt, 1e-3) or 1
end

-- May a request go out now? (the window is checked by the caller: in flight < floor(window))
function W:can_send(t)
  if not cur_rate(self) then return true end
  refill(self, t)
  return self.credit >= 1
end

-- Seconds until can_send(t) is true (0 when it is).
function W:wait(t)
  if not cur_rate(self) then return 0 end
  refill(self, t)
  if self.credit >= 1 then return 0 end
  return (1 - self.credit) / cur_rate(self)
end

-- A request carrying `steps` steps went out at t.
function W:sent(t, steps)
  if not cur_rate(self) then return end
  refill(self, t)
  self.credit = self.credit - steps
end

-- A request came back at t after rtt seconds: ok steps succeeded, throttled is true when any
-- step (or the whole request) was throttled, sent_at is when it went out.
function W:completed(t, ok, throttled, rtt, sent_at)
  if ok > 0 then
    self.h2 = self.h2 + 1
    self.hist_t[self.h2], self.hist_n[self.h2] = t, ok
    self.delivered_n = self.delivered_n + ok
    self.long_n = self.long_n + ok
  end
  if rtt and rtt >= 0 then
    self.srtt = self.srtt and (0.875 * self.srtt + 0.125 * rtt) or rtt
    self.min_rtt = math.min(self.min_rtt or rtt, rtt)
  end
  local delivered = self:delivered(t)
  if throttled then
    -- once per round trip: the requests that went out before the last cut, or within a round
    -- trip after it (they meet the bucket the requests in flight at the cut emptied), say
    -- nothing new
    if sent_at == nil or sent_at > self.last_cut + (self.srtt or 0) then
      self.cuts = self.cuts + 1
      self.last_cut = t
      -- after the first cut the rate was held below what the bucket admits for a while, so its
      -- burst is full: over the span alone the delivered rate reads above the admitted one, and
      -- a cut to 0.9 x it can stay above it (refused steps every round trip until the next cut)
      local d = self.rate and math.min(delivered, self:delivered_long(t)) or delivered
      self.ceiling = d
      self.t_past = nil
      local base = self.rate and math.min(self.rate, d) or d
      refill(self, t)
      -- never below half a full request per round trip (about the window of one request the import had
      -- before it paced): throttling that does not come from a rate (a share of requests
      -- refused whatever the rate) must not spiral the rate down to nothing
      self.rate = math.max(self:floor(), M.CUT * base)
      self.t_grow = t
      self.credit = math.min(self.credit, 0)
    end
  elseif self.rate then
    local dt = t - self.t_grow
    if dt > 0 then
      local r = self.rate
      if r < self.ceiling then
        r = r + (self.ceiling - r) * math.min(1, dt / M.RECOVER)
        if r > 0.99 * self.ceiling then r = self.ceiling; self.t_past = t end
      else
        -- past the ceiling: 10% per second, doubling every second without a throttle (up to
        -- 100% per second), so a ceiling measured too low is soon left behind
        local s = t - (self.t_past or t)
        if not (self.left and self.left < self.rate * M.ENDGAME) then
          r = r * (1 + math.min(1, M.GROWTH * 2 ^ s) * dt)
        end
      end
      self.rate = math.min(r, math.max(self.rate, M.HEADROOM * delivered))
      self.t_grow = t
    end
  else
    -- slow start, but no further than twice what is delivered at the shortest round trip seen
    -- (plus 4): past that, more in flight only queues (a server that is the bottleneck without
    -- throttling, as on loopback), it does not deliver more
    local cap = self.min_rtt and 2 * delivered * self.min_rtt / self.per + 4 or math.huge
    -- at round trips longer than SS_RTT the window grows by less than double per round trip
    -- (x 1.5 at 200 ms): the first throttle comes back a round trip after the rate passed the
    -- admitted one, and all that was sent past it in that round trip is refused
    local inc = self.srtt and math.min(1, M.SS_RTT / math.max(self.srtt, 1e-3)) or 1
    self.window = math.min(self.max_window, math.max(self.window, math.min(self.window + inc, cap)))
  end
  if self.rate and self.srtt then
    -- the pace bounds the rate; the window only bounds what is in flight (a slower round trip,
    -- requests the client holds for a Retry-After): twice what the rate needs, plus 4
    local need = 2 * self.rate * self.srtt / self.per + 4
    self.window = math.min(self.max_window, need)
  end
end

return M
