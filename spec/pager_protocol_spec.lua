-- Paging over malformed pages: a nextLink that is not a string, or a `value` that is missing or
-- not an array, is a protocol error through the iterator, never a silent end. The emulator
-- serves the crafted page (a fault rule with status 200 and a body).
local emu = require "support.emulator"

local client = require("support.lualayer").client

describe("pager on malformed pages", function()
  local c
  local learner = emu.user(7)
  setup(function() c = client() end)
  before_each(function() emu.reset() end)
  after_each(function() emu.clear_faults() end)

  local function serve(body)
    emu.fault({ method = "GET", path = "/v1.0/users/.*/learningCourseActivities$", status = 200, body = body, count = 1 })
  end

  local function drain(it)
    local items, errs, calls = 0, {}, 0
    for v, err in it do
      calls = calls + 1
      assert.is_true(calls < 50, "the pager is spinning")
      if v then items = items + 1 else errs[#errs + 1] = err end
    end
    return items, errs
  end

  it("refuses a nextLink that is a number, an object, a boolean or an array", function()
    for _, link in ipairs { "5", '{"href":"x"}', "true", '["x"]' } do
      serve('{"value":[],"@odata.nextLink":' .. link .. '}')
      local items, errs = drain(c:activities { user = learner })
      assert.equal(0, items)
      assert.equal(1, #errs, link)
      assert.equal("protocol", errs[1].kind)
      assert.matches("nextLink", tostring(errs[1]), 1, true)
      serve('{"value":[],"@odata.nextLink":' .. link .. '}')
      local pages, perrs = drain(c:activity_pages { user = learner })
      assert.equal(0, pages)
      assert.equal("protocol", perrs[1].kind)
    end
  end)

  it("refuses a value that is missing, an object or a string", function()
    for _, body in ipairs { '{"@odata.nextLink":null}', '{"value":{"id":"x"}}', '{"value":"x"}', '{"value":null}' } do
      serve(body)
      local items, errs = drain(c:activities { user = learner })
      assert.equal(0, items)
      assert.equal(1, #errs, body)
      assert.equal("protocol", errs[1].kind, body)
      assert.matches("value", tostring(errs[1]), 1, true)
    end
  end)

  it("still ends quietly on an absent or null nextLink, and reads an empty array", function()
    for _, body in ipairs { '{"value":[]}', '{"value":[],"@odata.nextLink":null}' } do
      serve(body)
      local items, errs = drain(c:activities { user = learner })
      assert.equal(0, items); assert.equal(0, #errs, body)
    end
  end)
end)
