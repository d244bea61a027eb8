-- Several flow key types, the reference's way (its tuple library): an IPv4
-- and an IPv6 5-tuple, as seen (one flow per direction); extractFlowKey
-- fills the buffer as one of them and says which (true, 1 or true, 2).
-- Counts flows and packets per type; triggers the flows to port 53, dumped
-- by the filter buildPacketFilter makes from the key of its own type.
local ffi = require("ffi")
local flowscope = require("flowscope")

ffi.cdef [[
struct tk_ipv4_5tuple { uint8_t src[4], dst[4]; uint16_t sport, dport; uint8_t proto; };
struct tk_ipv6_5tuple { uint8_t src[16], dst[16]; uint16_t sport, dport; uint8_t proto; };
struct tk_state { uint64_t packets; };
]]
local V4 = ffi.typeof("struct tk_ipv4_5tuple *")
local V6 = ffi.typeof("struct tk_ipv6_5tuple *")
local TCP, UDP = 6, 17

local M = {}
M.stateType = "struct tk_state"
M.flowKeys = {"struct tk_ipv4_5tuple", "struct tk_ipv6_5tuple"}
M.checkInterval = 3600

function M.extractFlowKey(pkt, buf)
	local p = pkt.pkt
	if (p.proto ~= TCP and p.proto ~= UDP) or (pkt:tcp() == nil and pkt:udp() == nil) then
		return false
	end
	local ip4, ip6 = pkt:ip4(), pkt:ip6()
	local k, idx
	if ip4 ~= nil then
		k, idx = ffi.cast(V4, buf), 1
		ffi.copy(k.src, ip4.src, 4)
		ffi.copy(k.dst, ip4.dst, 4)
	elseif ip6 ~= nil then
		k, idx = ffi.cast(V6, buf), 2
		ffi.copy(k.src, ip6.src, 16)
		ffi.copy(k.dst, ip6.dst, 16)
	else
		return false
	end
	k.sport, k.dport, k.proto = p.sport, p.dport, p.proto
	return true, idx
end

function M.handlePacket(key, state, pkt, isFirstPacket)
	state.packets = state.packets + 1
	return isFirstPacket and key.dport == 53
end

function M.buildPacketFilter(key)
	local v4 = ffi.istype(V4, key)
	local len = v4 and 4 or 16
	return ("%s and src host %s and dst host %s and %s src port %d and %s dst port %d"):format(
	    v4 and "ip" or "ip6", flowscope.addr(key.src, len), flowscope.addr(key.dst, len),
	    key.proto == TCP and "tcp" or "udp", key.sport, key.proto == TCP and "tcp" or "udp",
	    key.dport)
end

function M.checkInitializer(cs)
	cs.v4_flows, cs.v4_packets, cs.v6_flows, cs.v6_packets = 0, 0, 0, 0
end

function M.checkExpiry(key, state, cs)
	if ffi.istype(V4, key) then
		cs.v4_flows = cs.v4_flows + 1
		cs.v4_packets = cs.v4_packets + tonumber(state.packets)
	else
		cs.v6_flows = cs.v6_flows + 1
		cs.v6_packets = cs.v6_packets + tonumber(state.packets)
	end
	return false
end

function M.checkFinalizer(cs)
	print(("tuple_keys: v4 flows %d packets %d; v6 flows %d packets %d"):format(
	    cs.v4_flows, cs.v4_packets, cs.v6_flows, cs.v6_packets))
end

return M
