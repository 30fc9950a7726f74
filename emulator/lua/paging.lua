-- OData query options on collections ($top, $skip, $count, $select) and server-side paging with an
-- absolute, $skip-based @odata.nextLink that carries the request's other query options.
local state = require("state")
local util = require("util")
local errors = require("errors")

local M = {}

local UNSUPPORTED = {
  ["$filter"] = true, ["$orderby"] = true, ["$expand"] = true, ["$search"] = true,
  ["$skiptoken"] = true, ["$apply"] = true, ["$format"] = true,
}
local COLLECTION_OPTS = { ["$top"] = true, ["$skip"] = true, ["$count"] = true, ["$select"] = true }

local function nonneg_int(s)
  if not s or not s:match("^%d+$") or #s > 10 then return nil end
  return tonumber(s)
end

-- Parses $select against the allowed field set; returns a set (or nil when absent) or nil, error response.
function M.parse_select(req, allowed, type_name)
  local sel = req.qmap["$select"]
  if sel == nil then return false end
  local set = {}
  for name in sel:gmatch("[^,]+") do
    name = name:match("^%s*(.-)%s*$")
    local ext = state.ext_key(name)
    if ext then name = ext elseif ext == false then name = "?" .. name end   -- a spelling not taken: unknown
    if name ~= "*" then
      if not allowed[name] then
        return nil, errors.graph(req, 400, "BadRequest",
          "Could not find a property named '" .. name:gsub("^%?", "") .. "' on type 'microsoft.graph." .. type_name .. "'.")
      end
      set[name] = true
    else
      return false
    end
  end
  return set
end

-- Checks the query options of a single-entity GET.
function M.check_entity_options(req)
  for _, kv in ipairs(req.qlist) do
    local k = kv[1]
    if k:sub(1, 1) == "$" and k ~= "$select" and k ~= "$expand" then
      return errors.graph(req, 400, "BadRequest", "Query option '" .. k .. "' is not allowed on a single entity.")
    end
    if k == "$expand" then
      return errors.graph(req, 400, "BadRequest", "Query option '$expand' is not supported for this resource.")
    end
  end
end

-- Builds a collection response.
--   items: array of records; render(rec, select_set) -> table; context: @odata.context URL;
--   allowed: set of selectable fields; type_name for messages.
function M.collection(req, items, opts)
  -- Test aids (settings): empty_pages = N serves N empty pages (each with a nextLink carrying
  -- $skiptoken=empty-K) before the data; next_link_loop = true makes every nextLink point at the
  -- request's own URL.
  local empty_k
  local st = req.qmap["$skiptoken"]
  if st then
    empty_k = tonumber(st:match("^empty%-(%d+)$") or "")
    if not empty_k then
      return errors.graph(req, 400, "BadRequest", "Invalid value '" .. st .. "' for query option '$skiptoken'.")
    end
  end
  local want_empty = tonumber(state.settings.empty_pages) or 0
  if want_empty > 0 and (empty_k or 0) < want_empty and not req.qmap["$skip"] then
    local parts = {}
    for _, kv in ipairs(req.qlist) do
      if kv[1] ~= "$skiptoken" then
        parts[#parts + 1] = util.query_encode(kv[1]) .. "=" .. util.query_encode(kv[2])
      end
    end
    parts[#parts + 1] = "$skiptoken=empty-" .. ((empty_k or 0) + 1)
    return { status = 200, json = {
      ["@odata.context"] = opts.context, value = require("json").array({}),
      ["@odata.nextLink"] = req.base .. req.raw_path .. "?" .. table.concat(parts, "&"),
    } }
  end
  for _, kv in ipairs(req.qlist) do
    local k = kv[1]
    if k == "$skiptoken" then
      -- one of ours (checked above)
    elseif UNSUPPORTED[k] then
      return errors.graph(req, 400, "BadRequest", "Query option '" .. k .. "' is not supported for this resource.")
    elseif k:sub(1, 1) == "$" and not COLLECTION_OPTS[k] then
      return errors.graph(req, 400, "BadRequest", "Query option '" .. k .. "' is not allowed.")
    end
  end
  local q = req.qmap
  local function invalid(name)
    return errors.graph(req, 400, "BadRequest", "Invalid value '" .. q[name] .. "' for query option '" .. name .. "'.")
  end
  local top = q["$top"] and nonneg_int(q["$top"])
  if q["$top"] and not top then return invalid("$top") end
  local skip = q["$skip"] and nonneg_int(q["$skip"]) or 0
  if q["$skip"] and not nonneg_int(q["$skip"]) then return invalid("$skip") end
  local c = q["$count"] and q["$count"]:lower()
  if c and c ~= "true" and c ~= "false" then return invalid("$count") end
  local count = c == "true"
  local select, serr = M.parse_select(req, opts.allowed, opts.type_name)
  if select == nil then return serr end

  local size = tonumber(state.settings.page_size) or 50
  if top then
    local max_top = tonumber(state.settings.max_top) or 999
    size = math.min(top, max_top)
  end
  if size < 0 then size = 0 end
  local total = #items
  local value = {}
  local last = math.min(total, skip + size)
  for i = skip + 1, last do
    value[#value + 1] = opts.render(items[i], select)
  end
  local body = { ["@odata.context"] = opts.context, value = setmetatable(value, require("json").ARRAY) }
  if count then body["@odata.count"] = total end
  if state.settings.next_link_loop then
    body["@odata.nextLink"] = req.base .. req.raw_path .. (req.raw_query ~= "" and ("?" .. req.raw_query) or "")
  elseif last < total and size > 0 then
    local parts = {}
    for _, kv in ipairs(req.qlist) do
      if kv[1] ~= "$skip" and kv[1] ~= "$skiptoken" then
        parts[#parts + 1] = util.query_encode(kv[1]) .. "=" .. util.query_encode(kv[2])
      end
    end
    parts[#parts + 1] = "$skip=" .. last
    body["@odata.nextLink"] = req.base .. req.raw_path .. "?" .. table.concat(parts, "&")
  end
  return { status = 200, json = body }
end

return M
