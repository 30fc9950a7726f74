-- vivalearning.progress: progress reporting for long imports.
--
-- mode "auto" (default): a bar on stderr when stderr is a terminal, else silent (or the
-- callback, when one is given). "bar": draw on the stream; on a stream that is not a terminal
-- (a CI log) that becomes "lines": one plain line every `line_interval` seconds (default 5)
-- and one at the end. "callback": only call callback(state). "none": nothing.
-- The bar is as wide as the terminal (TIOCGWINSZ, asked at each redraw, so a resized window
-- gets a bar of its new width at once), else $COLUMNS, else 80.
-- state = { done =, total = (nil when unknown), failed =, rate = rows/s, eta = seconds or nil,
--           elapsed = seconds, final = bool }
local compat = require "vivalearning.compat"
local M = {}

-- isatty and a monotonic clock come from vivalearning.sys, built beside the core.
local sys = require "vivalearning.sys"

local now = sys.monotime
M.now = now

--- True when the file handle is a terminal (false for a closed one).
function M.isatty(fh)
  local ok, r = pcall(sys.isatty, fh)
  return ok and r == true
end

local Progress = {}
Progress.__index = Progress

function M.new(opts)
  opts = opts or {}
  local stream = opts.stream or io.stderr
  local mode = opts.mode or "auto"
  local tty = M.isatty(stream)
  if mode == "auto" then
    if tty then mode = "bar"
    elseif opts.callback then mode = "callback"
    else mode = "none" end
  elseif mode == "bar" and not tty then
    mode = "lines"
  end
  local p = setmetatable({
    mode = mode, stream = stream, callback = opts.callback, total = opts.total,
    interval = mode == "lines" and (opts.line_interval or 5) or (opts.interval or 0.1),
    start = now(), last = -math.huge, drawn = false,
    label = opts.label or "import", width = opts.width,
  }, Progress)
  return p
end

local function fmt_time(s)
  if not s or s ~= s or s == math.huge then return "--:--" end
  s = math.floor(s + 0.5)
  local h, m = compat.idiv(s, 3600), compat.idiv(s % 3600, 60)
  if h > 0 then return ("%d:%02d:%02d"):format(h, m, s % 60) end
  return ("%d:%02d"):format(m, s % 60)
end
M.format_time = fmt_time

--- The state a progress report carries (also what the callback receives).
function Progress:state(done, failed, final)
  local elapsed = now() - self.start
  local rate = elapsed > 0 and done / elapsed or 0
  local eta
  if self.total and rate > 0 then eta = math.max(0, (self.total - done) / rate) end
  return { done = done, total = self.total, failed = failed or 0, rate = rate, eta = eta,
           elapsed = elapsed, final = final or false }
end

--- One line of text for a state (exposed so callers can print it themselves).
function M.render(st, width, label)
  width = width or 80
  local right
  if st.total then
    -- fixed-width fields, so the bar keeps its length while the numbers change
    local digits = #tostring(st.total)
    right = ("%" .. digits .. "d/%d %3d%% %6.0f rows/s ETA %5s"):format(st.done, st.total,
      st.total > 0 and math.floor(100 * st.done / st.total) or 100, st.rate, fmt_time(st.eta))
    local f = st.failed > 0 and (" failed %d"):format(st.failed) or ""
    right = right .. f .. (" "):rep(math.max(0, 8 + digits - #f))
  else
    right = ("%d rows %6.0f rows/s %s"):format(st.done, st.rate, fmt_time(st.elapsed))
    if st.failed > 0 then right = right .. (" failed %d"):format(st.failed) end
  end
  local left = (label or "import") .. " "
  local barw = width - #left - #right - 3   -- "[", "] ": the line is exactly `width` long
  if st.total and barw >= 10 then
    local fill = st.total > 0 and math.floor(barw * math.min(st.done, st.total) / st.total) or barw
    return left .. "[" .. ("#"):rep(fill) .. ("."):rep(barw - fill) .. "] " .. right
  end
  return left .. right
end

--- Width of the terminal the stream is on (nil when it is not one or reports no size).
function M.termsize(fh)
  local ok, cols = pcall(sys.termsize, fh)
  if ok and compat.type(cols) == "integer" and cols > 0 then return cols end
  return nil
end

function Progress:current_width()
  return self.width or M.termsize(self.stream) or tonumber(os.getenv("COLUMNS")) or 80
end

--- Report progress; redraws at most every `interval` seconds unless forced (or the
-- terminal's width changed since the last redraw).
function Progress:update(done, failed, force)
  if self.mode == "none" then return end
  local t = now()
  local width
  if self.mode == "bar" then
    width = self:current_width()
    if self.drawn_width and width ~= self.drawn_width then force = true end
  end
  if not force and t - self.last < self.interval then return end
  self.last = t
  local st = self:state(done, failed, false)
  if self.mode == "bar" then
    -- one column short of the width: a full-width line would wrap on some terminals
    self.stream:write("\r", M.render(st, width - 1, self.label), "\27[K")
    self.stream:flush()
    self.drawn, self.drawn_width = true, width
  elseif self.mode == "lines" then
    self.stream:write((M.render(st, 0, self.label):gsub("%s+$", "")), "\n")
    self.stream:flush()
  elseif self.callback then
    self.callback(st)
  end
end

--- Final report (always drawn/called, ends the bar's line).
function Progress:finish(done, failed)
  if self.mode == "none" then return end
  local st = self:state(done, failed, true)
  if self.mode == "bar" then
    self.stream:write("\r", M.render(st, self:current_width() - 1, self.label), "\27[K\n")
    self.stream:flush()
  elseif self.mode == "lines" then
    self.stream:write((M.render(st, 0, self.label):gsub("%s+$", "")), "\n")
    self.stream:flush()
  elseif self.callback then
    self.callback(st)
  end
end

return M
