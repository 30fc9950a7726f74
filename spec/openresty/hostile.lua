-- A hostile HTTP/1.1 upstream for the cosocket driver's reader: the first path segment picks
-- what it does wrong. It answers on the raw downstream socket (ngx.req.socket(true)), so it can
-- send anything at all: truncated heads, bad framing, slow drips, closes mid-body.
local M = {}

local JSON = '{"@odata.type":"#microsoft.graph.learningAssignment","id":"00000000-0000-4000-8000-0000000000aa",' ..
  '"learningContentId":"d0000000-0000-4000-8000-000001000001","learnerUserId":"b0000000-0000-4000-8000-000000000002",' ..
  '"assignmentType":"required","status":"notStarted"}'

local function head(extra)
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" .. (extra or "")
end

local CASES = {
  -- the answer, and whether the server then waits before closing
  ok = { head("Content-Length: " .. #JSON .. "\r\n\r\n") .. JSON },
  truncated_headers = { "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Len" },
  big_header = { head("X-Big: " .. string.rep("a", 70000) .. "\r\nContent-Length: 2\r\n\r\n{}") },
  many_headers = { head(string.rep("X-Many: 1\r\n", 150) .. "Content-Length: 2\r\n\r\n{}") },
  bad_status = { "SSH-2.0-OpenSSH_9.2\r\n\r\n" },
  bad_chunk = { head("Transfer-Encoding: chunked\r\n\r\n") .. "zz\r\nhello\r\n0\r\n\r\n" },
  chunked = { head("Transfer-Encoding: chunked\r\n\r\n") .. string.format("%x;ext=1\r\n", 10) .. JSON:sub(1, 10) ..
              "\r\n" .. string.format("%X\r\n", #JSON - 10) .. JSON:sub(11) .. "\r\n0\r\nX-Trailer: t\r\n\r\n" },
  chunk_too_long = { head("Transfer-Encoding: chunked\r\n\r\n") .. "2\r\nabcdef\r\n0\r\n\r\n" },
  long_body = { head("Content-Length: " .. #JSON .. "\r\n\r\n") .. JSON .. "GARBAGE-PAST-THE-LENGTH" },
  close_mid_body = { head("Content-Length: 100\r\n\r\n") .. string.rep("x", 20) },
  continue = { "HTTP/1.1 100 Continue\r\n\r\n" .. head("Content-Length: " .. #JSON .. "\r\n\r\n") .. JSON },
  http10 = { "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" .. JSON },
  smuggle = { head("Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n") .. "0\r\n\r\n" },
  bad_length = { head("Content-Length: 12abc\r\n\r\n") .. "{}" },
  huge_length = { head("Content-Length: 999999999\r\n\r\n") .. "{}" },
  status_999 = { "HTTP/1.1 999 Weird\r\nContent-Length: 0\r\n\r\n" },
  -- the status line and one header byte every 0.3 s: never done within the attempt's timeout
  drip = { "HTTP/1.1 200 OK\r\n", drip = "Content-Type: application/json\r\n" },
  -- nothing at all, and the connection stays open
  silent = { "", wait = 5 },
}

function M.serve()
  local case = ngx.var.uri:match("^/([%w_]+)")
  local c = CASES[case]
  if not c then ngx.status = 404; ngx.say("no case ", tostring(case)); return end
  local sock = assert(ngx.req.socket(true))
  if c[1] ~= "" then sock:send(c[1]) end
  if c.drip then
    for i = 1, #c.drip do
      ngx.sleep(0.3)
      if not sock:send(c.drip:sub(i, i)) then break end
    end
  end
  if c.wait then ngx.sleep(c.wait) end
  -- the raw socket closes with the request
end

return M
