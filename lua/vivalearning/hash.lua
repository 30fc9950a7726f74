-- vivalearning.hash: FNV-1a, 32 bits, of a string (an integer 0..2^32-1, computed in C by
-- vivalearning.sys: exact and the same on Lua 5.1-5.4 and LuaJIT). One
-- function for every stable hash of the Lua layer: the journal's record checksums, the shard of
-- a row (`shard = "K/N"`), the rows a sync verifies. Its values are part of files and of how
-- shards split a source: they must never change.
local sys = require "vivalearning.sys"

local M = {}

M.fnv1a32 = sys.fnv1a32

return M
