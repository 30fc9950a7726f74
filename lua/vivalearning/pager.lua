-- vivalearning.pager: lazy iteration over Graph collections that page with @odata.nextLink.
--
--   for act, err in c:activities{ user = uid } do
--     if not act then print("stopped: " .. tostring(err)) break end
--     ...
--   end
--
-- One page is held in memory at a time; the next page is fetched only when the current one is
-- used up. Paging ends when a page has no nextLink (absent or null); a nextLink that is not a
-- string, or a page without a `value` array, is a protocol error (never a silent end). An error never raises
-- inside the loop: the iterator yields `false, err` once (false, not nil, because a generic
-- `for` stops on nil and the body would never see the error) and then ends. A nextLink seen
-- before (a loop) or more pages than `max_pages` (default 100000) end paging the same way, with
-- an error of kind "protocol" and code "nextLinkLoop" or "pageLimit".
-- The page functions come from the client (c:activities_page, c:providers_page,
-- c:contents_page); this module never builds a URL.
local compat = require "vivalearning.compat"
local M = {}

M.default_max_pages = 100000

-- Errors are the core's error objects (the same metatable as every other error).
local core = require "vivalearning.core"
local function pager_error(code, message)
  return core.error { kind = "protocol", code = code, message = message }
end
M.error = pager_error

-- The options of each page method (the query options of c:*_page, and max_pages). Misuse
-- raises when the iterator is made, never inside the loop.
local opt = require "vivalearning.options"
local function nonneg(v) if compat.type(v) ~= "integer" or v < 0 then return "an integer >= 0" end end
local function select_list(v)
  if type(v) == "string" then return nil end
  if type(v) == "table" then
    for _, x in ipairs(v) do if type(x) ~= "string" then return "a string or a list of field names" end end
    return nil
  end
  return "a string or a list of field names"
end
local COMMON = { top = nonneg, skip = nonneg, count = opt.boolean, select = select_list,
                 max_pages = opt.integer(1) }
local function with(t)
  for k, v in pairs(COMMON) do t[k] = v end
  return t
end
M.OPTIONS = {
  activities_page = with { user = opt.string, me = opt.boolean },
  providers_page = with {},
  contents_page = with { provider = opt.string },
}
local WHERE = { activities_page = "activities", providers_page = "providers", contents_page = "contents" }

local function copy_query(opts)
  local q = {}
  for k, v in pairs(opts or {}) do
    if k ~= "max_pages" then q[k] = v end
  end
  return q
end

--- Page iterator: for page, err in M.pages(c, "activities_page", opts) do ... end
-- page = { value = {...}, next_link = string|nil, count = n|nil, number = 1-based page number }
function M.pages(c, method, opts, level)
  opts = opts or {}
  if type(opts) ~= "table" then error("bad argument #2 (table of query options expected)", 2) end
  local fetch = c[method]
  if type(fetch) ~= "function" then error("client has no method " .. tostring(method), 2) end
  if M.OPTIONS[method] then opt.check(WHERE[method], opts, M.OPTIONS[method], 2 + (level or 0)) end
  local max_pages = opts.max_pages or M.default_max_pages
  local query = copy_query(opts)
  local seen = {}
  local number = 0
  local finished = false
  return function()
    if finished then return nil end
    if number >= max_pages then
      finished = true
      return false, pager_error("pageLimit", ("more than %d pages; stopped (raise max_pages to read more)"):format(max_pages))
    end
    local page, err = fetch(c, query)
    if not page then
      finished = true
      return false, err
    end
    -- the core checks pages; a page function of another kind may not have
    local link = type(page) == "table" and page.next_link
    if type(page) ~= "table" or type(page.value) ~= "table"
        or (link ~= nil and link ~= core.null and type(link) ~= "string") then
      finished = true
      return false, pager_error("invalidPage", type(page) == "table" and type(page.value) == "table"
        and "page nextLink is not a string" or "page has no value array")
    end
    number = number + 1
    page.number = number
    if type(link) ~= "string" or link == "" then     -- absent, null (nil or viva.null), empty
      finished = true
      -- the last page is still returned below; the next call ends the loop
    else
      if seen[link] then
        finished = true
        page.next_link = nil
        -- items of this page were delivered; the loop is reported after them
        return page, nil, pager_error("nextLinkLoop", ("nextLink repeats after %d pages: %s"):format(number, link))
      end
      seen[link] = true
      query = { next_link = link }
    end
    return page
  end
end

--- Item iterator over the same pages: yields each model; false, err on failure.
function M.items(c, method, opts, level)
  local pages = M.pages(c, method, opts, (level or 0) + 1)
  local page, i, pending_err, done = nil, 0, nil, false
  return function()
    if done then return nil end
    while true do
      if page then
        i = i + 1
        local v = page.value[i]
        if v ~= nil then return v end
        page = nil
        if pending_err then
          done = true
          return false, pending_err
        end
      end
      local p, err, loop_err = pages()
      if p == nil then done = true; return nil end
      if p == false then done = true; return false, err end
      page, i, pending_err = p, 0, loop_err
    end
  end
end

--- Install the pager methods on a client method table (done by vivalearning/init.lua).
-- c:activities{...}  c:activity_pages{...}   (user = id | me = true, top, select, skip, ...)
-- c:providers{...}   c:provider_pages{...}
-- c:contents{provider = id, ...}  c:content_pages{...}
function M.install(methods)
  -- (level 1: errors point at the caller of c:activities{...})
  methods.activities = function(c, opts) return M.items(c, "activities_page", opts, 1) end
  methods.providers = function(c, opts) return M.items(c, "providers_page", opts, 1) end
  methods.contents = function(c, opts) return M.items(c, "contents_page", opts, 1) end
  methods.activity_pages = function(c, opts) return M.page_iterator(c, "activities_page", opts, 1) end
  methods.provider_pages = function(c, opts) return M.page_iterator(c, "providers_page", opts, 1) end
  methods.content_pages = function(c, opts) return M.page_iterator(c, "contents_page", opts, 1) end
end

--- Page iterator that reports a nextLink loop as `false, err` after the page that carried it.
function M.page_iterator(c, method, opts, level)
  local it = M.pages(c, method, opts, (level or 0) + 1)
  local pending, done = nil, false
  return function()
    if done then return nil end
    if pending then done = true; return false, pending end
    local p, err, loop = it()
    if p == nil then done = true; return nil end
    if p == false then done = true; return false, err end
    pending = loop
    return p
  end
end

return M
