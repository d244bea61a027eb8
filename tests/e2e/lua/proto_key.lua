-- A module with a key type of its own and no formatFlowKey
-- (tests/e2e/module_api.sh): one flow per IP family and transport protocol,
-- each triggered by its first packet, so monitor prints every key once, as
-- the type's name and bytes in hex: "struct pk_key 0611" is IPv4 UDP.
local ffi = require("ffi")

ffi.cdef [[
struct pk_key { uint8_t family, proto; };
struct pk_state { uint8_t unused; };
]]

local M = {}
M.stateType = "struct pk_state"
M.flowKeys = {"struct pk_key"}

function M.extractFlowKey(pkt, key)
	local p = pkt.pkt
	if p.family == 0 then return false end
	key.family, key.proto = p.family, p.proto
	return true
end

function M.handlePacket(key, state, pkt, isFirstPacket) return isFirstPacket end

function M.buildPacketFilter(key)
	return ("%s proto %d"):format(key.family == 4 and "ip" or "ip6", key.proto)
end

return M
