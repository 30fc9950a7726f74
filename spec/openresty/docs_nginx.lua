-- docs/openresty.md's lms.lua, as written there, in the test nginx: its content handler and its
-- timer import against the emulator (the nginx.conf of the page with the emulator's URLs and
-- credentials in place of Graph's).
local emu = require "support.emulator"
local ngxt = require "support.openresty"
local http = require "support.http"

local function lms_lua()
  local doc = assert(http.read_file("docs/openresty.md"))
  local code = doc:match("```lua\n(%-%- lms%.lua:.-)```")
  assert(code, "docs/openresty.md has no lms.lua block")
  return code
end

describe("docs/openresty.md", function()
  local srv
  setup(function()
    emu.reset()
    srv = ngxt.start(emu, {
      files = { ["lms.lua"] = lms_lua() },
      init_worker = ([[require("lms").init_worker { tenant = "%s", client_id = "%s", client_secret = "%s",
        graph_url = VIVA_TEST.https .. "/v1.0", authority_url = VIVA_TEST.https }]]):format(
        emu.TENANT, emu.APPS.importer.client_id, emu.APPS.importer.client_secret),
      locations = [[
        location = /lms/activity { content_by_lua_block { require("lms").activity() } }
        location = /lms/import   { content_by_lua_block { require("lms").import() } }
        location = /lms/job      { content_by_lua_block { ngx.say(require("cjson").encode(require("lms").imports[tonumber(ngx.var.arg_job)])) } }
      ]],
    })
  end)
  teardown(function()
    if srv then
      local bad = srv:errors()
      srv:stop()
      assert.same({}, bad)
    end
  end)

  it("carries the nginx.conf lines it names", function()
    local doc = http.read_file("docs/openresty.md")
    for _, d in ipairs { "lua_package_path", "lua_package_cpath", "lua_ssl_trusted_certificate", "lua_ssl_verify_depth",
                         "resolver", "init_worker_by_lua_block", "content_by_lua_block" } do
      assert.truthy(doc:find(" " .. d .. " ", 1, true), d)
    end
  end)

  it("imports in a timer, then serves an activity from the content handler", function()
    local rows = {}
    for i = 1, 30 do
      rows[i] = { externalCourseActivityId = "doc-" .. i, learnerUserId = emu.user(i), learningContentId = emu.CONTENT,
                  status = "notStarted", assignmentType = "required" }
    end
    local r = srv:get("/lms/import", 30, { method = "POST", json = rows })
    assert.equals(202, r.status, r.body)
    local job = r.json.job
    local j
    for _ = 1, 300 do
      j = srv:get("/lms/job?job=" .. job).json
      if j and j.done then break end
      os.execute("sleep 0.1")
    end
    assert.is_true(j.done)
    assert.equals(30, j.created, j.error)
    for i = 1, 30 do assert.equals(1, emu.counters().creates[emu.PROVIDER]["doc-" .. i]) end
    local list = emu.graph("GET", "/users/" .. emu.user(3) .. "/employeeExperience/learningCourseActivities",
      { token = emu.user_token() })   -- delegated only: an app token gets Graph's 403
    local id = list.json.value[1].id
    r = srv:get("/lms/activity?id=" .. id)
    assert.equals(200, r.status, r.body)
    assert.equals(id, r.json.id)
    assert.equals("doc-3", r.json.externalcourseActivityId)
    r = srv:get("/lms/activity?id=00000000-0000-4000-8000-00000000dead")
    assert.equals(404, r.status)
    assert.equals("http", r.json.error)
  end)
end)
