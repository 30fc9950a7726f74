-- Emulator: collections, $top/$skip/$count/$select and absolute $skip-based nextLinks.
local emu = require("support.emulator")
local http = require("support.http")

local P = emu.PROVIDER
local COLL = "/employeeExperience/learningProviders/" .. P .. "/learningCourseActivities"
local USER_COLL = "/users/" .. emu.LEARNER .. "/employeeExperience/learningCourseActivities"

local function seed_activities(n)
  local ids = {}
  for i = 1, n do
    local r = emu.graph("POST", COLL, { json = emu.assignment{ externalcourseActivityId = string.format("pg-%02d", i) } })
    assert.equal(201, r.status, r.body)
    ids[i] = r.json.id
  end
  return ids
end

local function follow(url, token)
  local pages, items = {}, {}
  while url do
    local r = http.get(url, { headers = { Authorization = "Bearer " .. token } })
    assert.equal(200, r.status, r.body)
    pages[#pages + 1] = r.json
    for _, v in ipairs(r.json.value) do items[#items + 1] = v end
    url = r.json["@odata.nextLink"]
    assert.is_true(#pages < 100)
  end
  return pages, items
end

describe("emulator paging", function()
  local ids
  before_each(function()
    emu.reset()
    ids = seed_activities(7)
    emu.settings{ page_size = 3 }
    -- the lenient variant (A5 with an app token): these are about paging, not permissions
    emu.settings{ app_can_list_user_activities = true }
  end)
  after_each(function() emu.settings{ app_can_list_user_activities = false } end)

  it("pages with an absolute nextLink until it is absent; every item once, in order", function()
    local pages, items = follow(emu.graph_url_http .. USER_COLL, emu.token("importer"))
    assert.equal(3, #pages)
    assert.equal(7, #items)
    for i, v in ipairs(items) do assert.equal(ids[i], v.id) end
    local link = pages[1]["@odata.nextLink"]
    assert.equal(emu.graph_url_http .. USER_COLL .. "?$skip=3", link)
    assert.equal(emu.http .. "/v1.0/$metadata#users('" .. emu.LEARNER .. "')/employeeExperience/learningCourseActivities",
      pages[1]["@odata.context"])
  end)

  it("the nextLink carries the other query options and $count on each page", function()
    local r = emu.graph("GET", USER_COLL .. "?$select=status,externalcourseActivityId&$count=true")
    assert.equal(7, r.json["@odata.count"])
    local link = r.json["@odata.nextLink"]
    assert.truthy(link:find("$select=status,externalcourseActivityId", 1, true))
    assert.truthy(link:find("$count=true", 1, true))
    assert.truthy(link:find("$skip=3", 1, true))
    assert.is_nil(r.json.value[1].learnerUserId)
    assert.equal("pg-01", r.json.value[1].externalcourseActivityId)
    local r2 = http.get(link, { headers = { Authorization = "Bearer " .. emu.token("importer") } })
    assert.equal(7, r2.json["@odata.count"])
    assert.equal("pg-04", r2.json.value[1].externalcourseActivityId)
  end)

  it("the nextLink uses the request's scheme, host and port (HTTPS base)", function()
    local r = http.get(emu.graph_url .. USER_COLL, { cacert = emu.ca, headers = { Authorization = "Bearer " .. emu.token("importer") } })
    assert.equal(200, r.status, r.body)
    assert.equal(emu.graph_url .. USER_COLL .. "?$skip=3", r.json["@odata.nextLink"])
  end)

  it("$top sets the page size (clamped to max_top), $skip starts later", function()
    local r = emu.graph("GET", USER_COLL .. "?$top=5")
    assert.equal(5, #r.json.value)
    assert.truthy(r.json["@odata.nextLink"]:find("$top=5", 1, true))
    local r2 = emu.graph("GET", USER_COLL .. "?$skip=5")
    assert.equal(2, #r2.json.value)
    assert.is_nil(r2.json["@odata.nextLink"])
    emu.settings{ max_top = 2 }
    assert.equal(2, #emu.graph("GET", USER_COLL .. "?$top=100").json.value)
    local r3 = emu.graph("GET", USER_COLL .. "?$skip=70")
    assert.equal(0, #r3.json.value)
    assert.matches('"value":%[%]', r3.body)
  end)

  it("$count path answers text/plain", function()
    local r = emu.graph("GET", USER_COLL .. "/$count")
    assert.equal(200, r.status)
    assert.equal("7", r.body)
    assert.matches("^text/plain", r.headers["content-type"])
  end)

  it("rejects bad or unsupported query options", function()
    for _, q in ipairs({ "$top=-1", "$top=abc", "$skip=x", "$count=maybe", "$filter=status%20eq%20'completed'", "$orderby=id", "$bogus=1", "$select=nope" }) do
      local r = emu.graph("GET", USER_COLL .. "?" .. q)
      assert.equal(400, r.status, q)
      assert.equal("BadRequest", r.json.error.code)
    end
  end)

  it("lists per provider, tenant-wide and for me", function()
    assert.equal(7, #emu.graph("GET", COLL .. "?$top=50").json.value)
    assert.equal(0, #emu.graph("GET", "/employeeExperience/learningProviders/" .. emu.PROVIDER_FABRIKAM .. "/learningCourseActivities").json.value)
    assert.equal(7, #emu.graph("GET", "/employeeExperience/learningCourseActivities?$top=50").json.value)
    local me = emu.graph("GET", "/me/employeeExperience/learningCourseActivities", { app = "user" })
    assert.equal(200, me.status, me.body)
    assert.equal(0, #me.json.value)
    assert.equal(emu.http .. "/v1.0/$metadata#me/employeeExperience/learningCourseActivities", me.json["@odata.context"])
  end)

  it("A5 for app tokens: 403 by default as in Graph (§1.0), 200 in the lenient variant", function()
    emu.reset()
    seed_activities(2)
    assert.is_false(emu.get_settings().app_can_list_user_activities)
    local r = emu.graph("GET", USER_COLL)
    assert.equal(403, r.status)
    assert.equal("Forbidden", r.json.error.code)
    assert.equal(2, #emu.graph("GET", USER_COLL, { app = "user" }).json.value)
    emu.settings{ app_can_list_user_activities = true }
    assert.equal(2, #emu.graph("GET", USER_COLL).json.value)
    assert.equal(404, emu.graph("GET", "/users/nobody/employeeExperience/learningCourseActivities").status)
  end)

  it("lists only the families the token may read", function()
    emu.graph("POST", COLL, { json = emu.self_initiated() })
    assert.equal(8, #emu.graph("GET", USER_COLL .. "?$top=50").json.value)
    assert.equal(7, #emu.graph("GET", USER_COLL .. "?$top=50", { app = "assigned" }).json.value)
  end)

  it("page_size setting back to default after reset", function()
    emu.reset()
    assert.equal(50, emu.get_settings().page_size)
  end)
end)

describe("emulator paging test aids", function()
  before_each(function()
    emu.reset()
    seed_activities(4)
    emu.settings{ page_size = 2 }
    -- the lenient variant (A5 with an app token): these are about paging, not permissions
    emu.settings{ app_can_list_user_activities = true }
  end)
  after_each(function() emu.settings{ app_can_list_user_activities = false } end)

  it("empty_pages = N serves N empty pages with a nextLink before the data", function()
    emu.settings{ empty_pages = 3 }
    local pages, items = follow(emu.graph_url_http .. USER_COLL .. "?$select=status", emu.token("importer"))
    assert.equal(5, #pages)
    for i = 1, 3 do
      assert.equal(0, #pages[i].value)
      assert.truthy(pages[i]["@odata.nextLink"]:find("$skiptoken=empty-" .. i, 1, true))
      assert.truthy(pages[i]["@odata.nextLink"]:find("$select=status", 1, true))
    end
    assert.equal(4, #items)
    assert.equal(400, emu.graph("GET", USER_COLL .. "?$skiptoken=abc").status)
  end)

  it("next_link_loop makes every nextLink point at the request itself", function()
    emu.settings{ next_link_loop = true }
    local r = emu.graph("GET", USER_COLL .. "?$top=2")
    assert.equal(emu.graph_url_http .. USER_COLL .. "?$top=2", r.json["@odata.nextLink"])
    local r2 = emu.graph("GET", USER_COLL .. "?$skip=2")
    assert.equal(emu.graph_url_http .. USER_COLL .. "?$skip=2", r2.json["@odata.nextLink"])
  end)
end)

describe("emulator lists after many deletes", function()
  it("keep creation order and lose exactly the deleted ones", function()
    emu.reset()
    emu.settings{ batch_order = "request" }   -- creates in request order (the default order is shuffled)
    -- 150 creates and 100 deletes in a few $batch calls (the store compacts its lists on the way)
    local ids = {}
    for b = 0, 7 do
      local reqs = {}
      for i = 1, 20 do
        local n = b * 20 + i
        if n <= 150 then
          reqs[#reqs + 1] = { id = tostring(n), method = "POST", url = COLL, headers = { ["Content-Type"] = "application/json" },
            body = emu.assignment{ externalcourseActivityId = string.format("many-%03d", n) } }
        end
      end
      local res = emu.graph("POST", "/$batch", { json = { requests = reqs } })
      for _, r in ipairs(res.json.responses) do ids[tonumber(r.id)] = r.body.id end
    end
    local keep = {}
    for b = 0, 4 do
      local reqs = {}
      for i = 1, 20 do
        local n = b * 30 + i          -- deletes 1-20, 31-50, 61-80, 91-110, 121-140
        reqs[#reqs + 1] = { id = tostring(i), method = "DELETE", url = COLL .. "/" .. ids[n] }
      end
      local res = emu.graph("POST", "/$batch", { json = { requests = reqs } })
      for _, r in ipairs(res.json.responses) do assert.equal(204, r.status) end
    end
    for n = 1, 150 do
      local m = (n - 1) % 30
      if m >= 20 or n > 140 then keep[#keep + 1] = ids[n] end
    end
    -- listed with a delegated token, as Graph asks (graph-api.md §1.0)
    local _, items = follow(emu.graph_url_http .. USER_COLL .. "?$select=id", emu.user_token())
    assert.equal(#keep, #items)
    for i, v in ipairs(items) do assert.equal(keep[i], v.id) end
    local c = emu.graph("GET", USER_COLL .. "/$count", { app = "user" })
    assert.equal(tostring(#keep), c.body)
  end)
end)
