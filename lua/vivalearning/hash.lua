-- vivalearning.hash: FNV-1a, 32 bits, of a string, exact in Lua 5.4's 64-bit integers. One
-- function for every stable hash of the Lua layer: the journal's record checksums, the shard of
-- a row (`shard = "K/N"`), the rows a sync verifies. Its values are part of files and of how
-- shards split a source: they must never change.
local M = {}

function M.fnv1a32(s)
  local h = 0x811c9dc5
  for i = 1, #s do
    h = ((h ~ s:byte(i)) * 0x01000193) & 0xffffffff
  end
  return h
end

return M
