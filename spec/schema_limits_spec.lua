-- The schema's limits are checked by the compiler: a model's change mask has one bit per field
-- and its name map a fixed number of slots, so a type with too many fields must not build.
-- Compiles copies of src/schema.c and src/model_store.c with the project's flags (-fsyntax-only).

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"rc=$?\"")
  local out = p:read("*a")
  p:close()
  local rc = tonumber(out:match("rc=(%d+)%s*$"))
  return rc, out
end

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local function write(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

local cflags
local function flags()
  if not cflags then
    local _, lua = sh("pkg-config --cflags lua5.4 || echo -I/usr/include/lua5.4")
    local _, curl = sh("pkg-config --cflags libcurl")
    cflags = "-std=c99 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes " ..
      "-D_POSIX_C_SOURCE=200809L " .. lua:gsub("rc=%d+%s*$", ""):gsub("\n", " ") .. " " ..
      curl:gsub("rc=%d+%s*$", ""):gsub("\n", " ")
  end
  return cflags
end

-- compiles src/<name> after edit(text) in a scratch copy of src/; returns rc, compiler output
local function compile(name, edit)
  local dir = os.tmpname()
  os.remove(dir)
  assert(sh("mkdir -p " .. q(dir) .. " && cp src/*.c src/*.h " .. q(dir)) == 0)
  local path = dir .. "/" .. name
  if edit then
    local text = read(path)
    local changed = edit(text)
    assert.are_not.equal(text, changed, "the edit did not apply")
    write(path, changed)
  end
  local rc, out = sh("cc " .. flags() .. " -I" .. q(dir) .. " -fsyntax-only " .. q(path))
  sh("rm -rf " .. q(dir))
  return rc, out
end

-- content_fields with n more string fields before its closing CONTEXT_FIELD
local function more_content_fields(n)
  return function(text)
    local extra = {}
    for i = 1, n do
      extra[#extra + 1] = string.format('  { "extra%d", NULL, NULL, VT_STRING, VF_NULLABLE, NULL, 0, 0 },\n', i)
    end
    local head, tail = text:match("^(.-static const vl_field content_fields%[%] = {.-)(  CONTEXT_FIELD,\n};.*)$")
    assert(head, "content_fields not found")
    return head .. table.concat(extra) .. tail
  end
end

describe("schema limits", function()
  it("the schema and the models build as they are", function()
    local rc, out = compile("schema.c")
    assert.are.equal(0, rc, out)
    rc, out = compile("model_store.c")
    assert.are.equal(0, rc, out)
  end)

  it("a type with more fields than the change mask has bits does not compile", function()
    -- content has 21 fields: 11 more make 32 (fits), 12 more make 33 (one too many)
    local rc, out = compile("schema.c", more_content_fields(11))
    assert.are.equal(0, rc, out)
    rc, out = compile("schema.c", more_content_fields(12))
    assert.are_not.equal(0, rc, out)
    assert.is_truthy(out:find("fit_the_change_mask", 1, true), out)
  end)

  it("a name map too small for every spelling of the most fields does not compile", function()
    local rc, out = compile("model_store.c", function(text)
      return (text:gsub("#define PTRMAP_SLOTS %d+", "#define PTRMAP_SLOTS 16"))
    end)
    assert.are_not.equal(0, rc, out)
  end)
end)
