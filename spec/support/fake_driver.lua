-- A fake Graph behind an io = "external" driver, for policy specs (deterministic, no sleeps):
-- every request the client hands out is logged in w.log (with w.now, the fake clock's time, as
-- req.at) and answered by the next step of w.script ({ status =, headers =, body = }, or
-- { outcome = "reset" | "timeout" | ... }, or a function of the request returning one), else by
-- w.default, else a 500; when nothing is in flight the clock jumps to the client's next wakeup.
-- w.on_request(c, req), when given, sees each request as it goes out.
local M = {}

--- The driver option for a client whose clock is `function() return w.now end`.
function M.driver(w)
  return function(c)
    local reqs = c:take()
    for _, req in ipairs(reqs) do
      req.at = w.now
      w.log[#w.log + 1] = req
      if w.on_request then w.on_request(c, req) end
      local step = table.remove(w.script, 1) or w.default or { status = 500 }
      if type(step) == "function" then step = step(req) end
      if step.outcome then c:deliver(req.id, nil, step.outcome) else c:deliver(req.id, step) end
    end
    if #reqs == 0 then
      local t = c:next_wakeup()
      if t and t > w.now then w.now = t end
      c:tick()
    end
  end
end

return M
