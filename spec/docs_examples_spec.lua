-- The `lua` examples of the docs that need no emulator run as written (README.md's are run by
-- spec/readme_spec.lua). Each block is loaded as one chunk, in a fresh environment of globals.
local DOCS = { "docs/architecture.md" }

local function lua_blocks(path)
  local f = assert(io.open(path, "r"), path .. ": cannot open")
  local text = f:read("*a")
  f:close()
  local blocks, n = {}, 0
  local lines, start, buf = {}, nil, nil
  for line in (text .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = line end
  for i, line in ipairs(lines) do
    if not buf and line == "```lua" then
      buf, start = {}, i
    elseif buf and line == "```" then
      n = n + 1
      blocks[n] = { line = start, code = table.concat(buf, "\n") }
      buf = nil
    elseif buf then
      buf[#buf + 1] = line
    end
  end
  assert(not buf, path .. ": a ```lua block opened at line " .. tostring(start) .. " is never closed")
  return blocks
end

describe("docs examples", function()
  for _, doc in ipairs(DOCS) do
    local blocks = lua_blocks(doc)
    it(doc .. " has lua examples", function() assert.is_true(#blocks > 0) end)
    for _, b in ipairs(blocks) do
      it(("%s:%d runs as written"):format(doc, b.line), function()
        local env = setmetatable({ print = function() end }, { __index = _G })
        local chunk = assert(load(b.code, "=" .. doc .. ":" .. b.line, "t", env))
        chunk()
      end)
    end
  end
end)
