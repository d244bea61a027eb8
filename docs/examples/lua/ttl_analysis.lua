-- ttl_analysis: triggers a flow when a packet's IPv4 TTL (or IPv6 hop limit)
-- differs from the first one seen in the same direction of the flow: a
-- route change, or a second sender injecting packets into the connection.
-- The Lua counterpart of the built-in `ttl` module, with the same results.
--
--   flowscope record --read x.pcap --archive A --capture triggered \
--       --module docs/examples/lua/ttl_analysis.lua
--
-- Argument: the idle time in seconds after which a flow expires (default 30),
-- e.g. --module ttl_analysis.lua:60
local ffi = require("ffi")
local flowscope = require("flowscope")

local idle = tonumber((...)) or 30

ffi.cdef [[
struct ttl_state {
	uint64_t last_seen;  /* ns, capture time of the last packet */
	uint8_t ttl[2];      /* first TTL / hop limit per direction */
	uint8_t seen[2];
};
]]

local module = {}

module.stateType = "struct ttl_state"
module.defaultState = {}
module.checkInterval = 5

function module.handlePacket(flowKey, state, pkt, isFirstPacket)
	state.last_seen = pkt.ts_ns
	local ip4, ttl = pkt:ip4(), nil
	if ip4 then
		ttl = ip4.ttl
	else
		local ip6 = pkt:ip6()
		if not ip6 then return false end
		ttl = ip6.hop_limit
	end
	local dir = pkt.dir
	if state.seen[dir] == 0 then
		state.seen[dir] = 1
		state.ttl[dir] = ttl
		return false
	end
	return state.ttl[dir] ~= ttl
end

function module.checkExpiry(flowKey, state, checkState)
	local last = state.last_seen
	return flowscope.now_ns() > last + idle * 1e9, last
end

return module
