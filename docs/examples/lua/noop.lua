-- noop: flow tracking only, the Lua counterpart of the built-in `noop`
-- module (the upper bound of analyzer speed for a Lua module).
--
--   flowscope record --read x.pcap --archive A --module docs/examples/lua/noop.lua
local ffi = require("ffi")

ffi.cdef [[
struct noop_state { uint8_t unused; };
]]

local module = {}

module.stateType = "struct noop_state"
module.defaultState = {}

function module.handlePacket(flowKey, state, pkt, isFirstPacket)
	return false
end

return module
