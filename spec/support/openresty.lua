-- A test nginx with ngx_lua (Debian's, as the emulator uses) for the io = "ngx" specs: its own
-- prefix under a temporary directory, the module from this tree's LuaJIT build (lib/luajit), the
-- handlers of spec/openresty/app.lua on one port and the hostile upstream of
-- spec/openresty/hostile.lua on another, one worker. Started by start(), stopped by its pid.
--   local ngxt = require "support.openresty"
--   local srv = ngxt.start(emu)   -- srv.url, srv.hostile, srv.dir;  srv:get(path) srv:stop() srv:errors()
local http = require "support.http"

local M = {}

local function sh(cmd)
  local ok, _, code = os.execute(cmd)
  return ok == true or code == 0
end
local q = http.shell_quote

local function free_port()
  local socket = require "socket"
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

local ROOT = (function()
  local p = io.popen("pwd")
  local d = p:read("*l")
  p:close()
  return d
end)()

M.ROOT = ROOT
M.CORE = ROOT .. "/lib/luajit/vivalearning/core.so"

local CONF = [[
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
@USER@
worker_processes 1;
daemon on;
pid "@DIR@/nginx.pid";
error_log "@DIR@/error.log" warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path "@DIR@/tmp/body";
  proxy_temp_path "@DIR@/tmp/proxy";
  fastcgi_temp_path "@DIR@/tmp/fastcgi";
  uwsgi_temp_path "@DIR@/tmp/uwsgi";
  scgi_temp_path "@DIR@/tmp/scgi";
  lua_socket_log_errors off;
  lua_package_path "@DIR@/lua/?.lua;@ROOT@/lua/?.lua;@ROOT@/lua/?/init.lua;@ROOT@/spec/openresty/?.lua;/usr/share/lua/5.1/?.lua;;";
  lua_package_cpath "@ROOT@/lib/luajit/?.so;/usr/lib/x86_64-linux-gnu/lua/5.1/?.so;;";
  lua_ssl_trusted_certificate "@CA@";
  lua_ssl_verify_depth 2;
  init_by_lua_block {
    require "resty.core"
    VIVA_TEST = { https = "@HTTPS@", http = "@HTTP@", hostile = "http://127.0.0.1:@HPORT@", dir = "@DIR@" }
  }
  init_worker_by_lua_block { require("app").init_worker() @INITW@ }
  server {
    listen 127.0.0.1:@PORT@;
    location /rewrite { rewrite_by_lua_block { require("app").in_phase("rewrite") } content_by_lua_block { ngx.say(ngx.ctx.phase_result) } }
    location /access { access_by_lua_block { require("app").in_phase("access") } content_by_lua_block { ngx.say(ngx.ctx.phase_result) } }
    location /logphase { content_by_lua_block { ngx.say("logged") } log_by_lua_block { require("app").in_log() } }
    location / { content_by_lua_block { require("app").handle() } }
    @LOCATIONS@
  }
  server {
    listen 127.0.0.1:@HPORT@;
    location / { content_by_lua_block { require("hostile").serve() } }
  }
}
]]

local Server = {}
Server.__index = Server

-- opts (all optional): files = { ["name.lua"] = text } (put on lua_package_path),
-- init_worker = Lua run in init_worker_by_lua after the app's, locations = server{} lines
function M.start(emu, opts)
  opts = opts or {}
  assert(io.open(M.CORE, "rb"), "no LuaJIT build of the module: run make build LUA=luajit first"):close()
  local tmp = os.tmpname()
  os.remove(tmp)
  local dir = tmp .. "-ngx"
  assert(sh("mkdir -p " .. q(dir .. "/tmp") .. " " .. q(dir .. "/lua") .. " && chmod 755 " .. q(dir)))
  for name, text in pairs(opts.files or {}) do
    local f = assert(io.open(dir .. "/lua/" .. name, "w"))
    f:write(text)
    f:close()
  end
  local port, hport = free_port(), free_port()
  local user = ""
  if sh("[ \"$(id -u)\" = 0 ]") then user = "user root;" end
  local conf = CONF:gsub("@(%u+)@", {
    USER = user, DIR = dir, ROOT = ROOT, CA = emu.ca, HTTPS = emu.https, HTTP = emu.http,
    PORT = tostring(port), HPORT = tostring(hport), INITW = opts.init_worker or "", LOCATIONS = opts.locations or "" })
  local f = assert(io.open(dir .. "/nginx.conf", "w"))
  f:write(conf)
  f:close()
  if not sh("/usr/sbin/nginx -p " .. q(dir .. "/") .. " -c " .. q(dir .. "/nginx.conf") .. " -e " ..
            q(dir .. "/error.log") .. " >" .. q(dir .. "/start.log") .. " 2>&1") then
    error("test nginx failed to start: " .. (http.read_file(dir .. "/start.log") or "") .. (http.read_file(dir .. "/error.log") or ""))
  end
  local srv = setmetatable({ dir = dir, port = port, url = "http://127.0.0.1:" .. port,
                             hostile = "http://127.0.0.1:" .. hport }, Server)
  for _ = 1, 100 do
    local r = http.request { url = srv.url .. "/ping", timeout = 2 }
    if r.status == 200 then return srv end
    sh("sleep 0.05")
  end
  srv:stop()
  error("test nginx does not answer (see " .. dir .. "/error.log)")
end

-- GET a handler (or o = { method =, json =, ... } for support.http.request); the body decoded
-- as JSON when it is JSON
function Server:get(path, timeout, o)
  o = o or {}
  o.url, o.timeout = self.url .. path, timeout or 60
  local r = http.request(o)
  r.json = http.json_decode(r.body or "")
  return r
end

-- [error], [alert], [crit] and [emerg] lines of the error log (expected: none)
function Server:errors()
  local log = http.read_file(self.dir .. "/error.log") or ""
  local bad = {}
  for line in log:gmatch("[^\n]+") do
    if line:find("%[error%]") or line:find("%[alert%]") or line:find("%[crit%]") or line:find("%[emerg%]") then
      bad[#bad + 1] = line
    end
  end
  return bad
end

function Server:stop()
  if self.stopped then return end
  self.stopped = true
  local pid = (http.read_file(self.dir .. "/nginx.pid") or ""):match("%d+")
  if pid then
    sh("kill -QUIT " .. pid .. " 2>/dev/null")
    for _ = 1, 100 do
      if not sh("kill -0 " .. pid .. " 2>/dev/null") then break end
      sh("sleep 0.05")
    end
    sh("kill -KILL " .. pid .. " 2>/dev/null")
  end
  if not os.getenv("VIVA_KEEP_NGX") then sh("rm -rf " .. q(self.dir)) end
end

return M
