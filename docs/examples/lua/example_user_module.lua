-- example_user_module: everything a module can define, in one small file.
--
--   * its own flow key (flowKeys + extractFlowKey): the host pair and the IP
--     protocol, ports ignored, so all TCP between two hosts is one "flow",
--     and how to print one (formatFlowKey: `flowscope monitor`'s trigger lines);
--   * a default state that is not all zeros (defaultState);
--   * a trigger: a random sample of the flows (rate=P, seed=N), each dumped
--     by the BPF filter buildPacketFilter gives for its key;
--   * expiry (checkExpiry) after idle=S seconds of silence, and a report per
--     checker interval (checkInitializer / checkFinalizer; the passes of
--     several analyzer threads are merged by the default merge: numbers add).
--
--   flowscope record --read x.pcap --archive A --capture triggered \
--       --module 'docs/examples/lua/example_user_module.lua:rate=0.25,seed=7,idle=10'
local ffi = require("ffi")
local flowscope = require("flowscope")

local opts = {rate = 0.1, seed = 1, idle = 30, interval = 5}
for k, v in ((...) or ""):gmatch("(%w+)=([%d.]+)") do
	if opts[k] == nil then error("example_user_module: unknown argument " .. k) end
	opts[k] = tonumber(v)
end
math.randomseed(opts.seed)

ffi.cdef [[
struct host_pair_key {
	uint8_t lo[16];  /* the lower address (IPv4-mapped for IPv4) */
	uint8_t hi[16];
	uint8_t proto;
};
struct sample_state {
	uint64_t last_seen; /* ns */
	uint64_t packets;
	uint8_t min_ttl;    /* lowest TTL / hop limit seen; starts at 255 */
	uint8_t sampled;    /* 0 = not decided yet, 1 = sampled, 2 = not sampled */
};
int memcmp(const void *a, const void *b, size_t n);
]]

local module = {}

module.flowKeys = {"struct host_pair_key"}
module.stateType = "struct sample_state"
module.defaultState = {min_ttl = 255}
module.checkInterval = opts.interval

-- fills key from the packet; false for packets that are not IP (not tracked; ARP
-- has family 0 too, and flowscope.FT_PKT_ARP in p.flags)
function module.extractFlowKey(pkt, key)
	local p = pkt.pkt
	if p.family == 0 then return false end
	local a, b = p.src, p.dst
	if ffi.C.memcmp(a, b, 16) > 0 then a, b = b, a end
	ffi.copy(key.lo, a, 16)
	ffi.copy(key.hi, b, 16)
	key.proto = p.proto
	return true
end

function module.handlePacket(key, state, pkt, isFirstPacket)
	state.last_seen = pkt.ts_ns
	state.packets = state.packets + 1
	if pkt.pkt.ttl < state.min_ttl then state.min_ttl = pkt.pkt.ttl end
	if state.sampled == 0 then
		state.sampled = math.random() < opts.rate and 1 or 2
		if state.sampled == 1 then
			io.write("example_user_module: sampled ", module.buildPacketFilter(key), "\n")
			return true
		end
	end
	return false
end

-- the host pair's packets (untagged: libpcap needs "vlan and ..." for 802.1Q frames)
function module.buildPacketFilter(key)
	local v4 = key.lo[10] == 0xff and key.lo[11] == 0xff and key.lo[0] == 0
	-- protochain: the protocol after any IPv6 extension headers, as the key has it
	local f = ("%s %d and host %s and host %s"):format(v4 and "ip proto" or "ip6 protochain",
	                                                  key.proto,
	                                                        flowscope.addr(key.lo),
	                                                        flowscope.addr(key.hi))
	return f
end

-- "host pair 10.0.0.1 <-> 10.0.0.2 udp": the key as monitor prints it
function module.formatFlowKey(key)
	return ("host pair %s <-> %s %s"):format(flowscope.addr(key.lo), flowscope.addr(key.hi),
	                                         flowscope.proto_name(key.proto))
end

function module.checkInitializer(checkState)
	checkState.flows = 0
	checkState.packets = 0
end

function module.checkExpiry(key, state, checkState)
	checkState.flows = checkState.flows + 1
	checkState.packets = checkState.packets + tonumber(state.packets)
	local last = state.last_seen
	return flowscope.now_ns() > last + opts.idle * 1e9, last
end

function module.checkFinalizer(checkState, keptFlows, purgedFlows)
	io.write(("example_user_module: flows %d, packets %d, kept %d, purged %d\n"):format(
	         checkState.flows or 0, checkState.packets or 0, keptFlows, purgedFlows))
	io.flush()
end

return module
