-- The cosocket driver's HTTP/1.1 reader against a hostile upstream (spec/openresty/hostile.lua,
-- a raw-socket server in the test nginx): every bad answer is a clear transport or protocol
-- outcome naming what was wrong, within the attempt's timeout, never a hang or a crash; a
-- 100-continue, an HTTP/1.0 answer and chunked framing with extensions and trailers are read.
local emu = require "support.emulator"
local ngxt = require "support.openresty"

local ID = "00000000-0000-4000-8000-0000000000aa"

local srv

local function exchange(case, extra)
  local r = srv:get("/exchange?case=" .. case .. (extra or ""), 30)
  assert.equals(200, r.status, case .. ": " .. tostring(r.body))
  return r.json
end

describe("the io = 'ngx' HTTP/1.1 reader against a hostile upstream", function()
  setup(function() srv = ngxt.start(emu) end)
  teardown(function()
    if srv then
      local bad = srv:errors()
      srv:stop()
      assert.same({}, bad)
    end
  end)

  it("reads a plain answer (the control case)", function()
    local r = exchange("ok")
    assert.equals(200, r.status)
    assert.truthy(r.body:find(ID, 1, true))
  end)

  local failures = {
    { "truncated_headers", "reset", "connection closed while reading the header block" },
    { "big_header", "maybe_sent", "the header block is over 65536 bytes" },
    { "many_headers", "maybe_sent", "the header block has over 100 fields" },
    { "bad_status", "maybe_sent", 'not an HTTP/1.x status line: "SSH%-2.0%-OpenSSH_9.2"' },
    { "status_999", "maybe_sent", "status 999 is not an HTTP status" },
    { "bad_chunk", "maybe_sent", 'bad chunk size "zz"' },
    { "chunk_too_long", "maybe_sent", "end of a chunk" },
    { "close_mid_body", "reset", "connection closed while reading the body %(20 of 100 bytes%)" },
    { "smuggle", "maybe_sent", "both Transfer%-Encoding and Content%-Length" },
    { "bad_length", "maybe_sent", 'bad Content%-Length "12abc"' },
    { "huge_length", "too_large", "Content%-Length 999999999 over 1048576 bytes" },
    { "drip", "timeout", "timed out reading the header block" },
    { "silent", "timeout", "timed out reading the status line" },
  }
  for _, f in ipairs(failures) do
    it("gives " .. f[2] .. " for " .. f[1], function()
      local r = exchange(f[1], "&timeout=1")
      assert.is_nil(r.status)
      assert.equals(f[2], r.outcome)
      assert.matches(f[3], r.detail)
    end)
  end

  it("takes the body as long as Content-Length says, never the bytes past it", function()
    local r = exchange("long_body")
    assert.equals(200, r.status)
    assert.matches('"status":"notStarted"}$', r.body)
  end)

  it("skips a 100 Continue and reads the final answer", function()
    local r = exchange("continue")
    assert.equals(200, r.status)
    assert.truthy(r.body:find(ID, 1, true))
  end)

  it("reads an HTTP/1.0 answer delimited by close", function()
    local r = exchange("http10")
    assert.equals(200, r.status)
    assert.matches('"status":"notStarted"}$', r.body)
  end)

  it("reads chunks with extensions and trailers", function()
    local r = exchange("chunked")
    assert.equals(200, r.status)
    assert.matches('^{"@odata.type".*"status":"notStarted"}$', r.body)
  end)

  it("hands the outcome to the client, whose error names it", function()
    local r = srv:get("/hostile_client?case=bad_chunk", 30).json
    assert.is_false(r.ok)
    assert.equals("transport", r.err.kind)
    assert.matches('the driver reported: maybe_sent %(bad chunk size "zz"%)', r.err.cause)
    r = srv:get("/hostile_client?case=http10", 30).json
    assert.is_true(r.ok)
    assert.equals(ID, r.id)
    r = srv:get("/hostile_client?case=close_mid_body", 30).json
    assert.is_false(r.ok)
    assert.matches("reset %(connection closed while reading the body", r.err.cause)
  end)
end)
