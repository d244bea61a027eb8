-- live_statistician: the top flows by bit rate over a sliding window, and
-- totals, printed every interval like the reference's liveStatistician
-- (and like the built-in `stats` module, whose output it reproduces).
--
--   flowscope record --read x.pcap --archive A --module docs/examples/lua/live_statistician.lua
--   ... --module 'docs/examples/lua/live_statistician.lua:top=20,interval=10,idle=30'
--
-- Arguments (all optional): top=N flows listed (10), interval=S seconds
-- between reports (5), idle=S seconds after which a silent flow expires (30).
-- Times are capture time: the packets' own timestamps.
local ffi = require("ffi")
local flowscope = require("flowscope")

local opts = {top = 10, interval = 5, idle = 30}
for k, v in ((...) or ""):gmatch("(%w+)=([%d.]+)") do
	if opts[k] == nil then error("live_statistician: unknown argument " .. k) end
	opts[k] = tonumber(v)
end

ffi.cdef [[
struct live_flow_state {
	uint64_t packet_counter; /* in the current window */
	uint64_t byte_counter;   /* wire bytes in the current window */
	uint64_t first_seen;     /* ns */
	uint64_t last_seen;      /* ns */
};
]]

local module = {}

module.stateType = "struct live_flow_state"
module.defaultState = {}
module.checkInterval = opts.interval

function module.handlePacket(flowKey, state, pkt, isFirstPacket)
	state.packet_counter = state.packet_counter + 1
	state.byte_counter = state.byte_counter + pkt.wirelen
	if isFirstPacket then state.first_seen = pkt.ts_ns end
	state.last_seen = pkt.ts_ns
	return false
end

function module.checkInitializer(checkState)
	checkState.start_time = os.clock()
	checkState.active_flows = 0
	checkState.window_packets = 0
	checkState.window_bytes = 0
	checkState.top = {}
end

-- keeps the list sorted by bps, at most opts.top long; an entry joins after equal ones
local function top_insert(top, e)
	local n = #top
	if n == opts.top and (opts.top == 0 or e.bps <= top[n].bps) then return end
	local i = n < opts.top and n + 1 or n
	while i > 1 and top[i - 1].bps < e.bps do
		top[i] = top[i - 1]
		i = i - 1
	end
	top[i] = e
end

function module.checkExpiry(flowKey, state, checkState)
	local packets, bytes = tonumber(state.packet_counter), tonumber(state.byte_counter)
	checkState.active_flows = checkState.active_flows + 1
	checkState.window_packets = checkState.window_packets + packets
	checkState.window_bytes = checkState.window_bytes + bytes
	local top, bps = checkState.top, bytes * 8 / opts.interval
	-- only a flow that makes the list costs a table and a string
	if packets > 0 and (#top < opts.top or bps > top[#top].bps) then
		top_insert(top, {key = flowscope.key_string(flowKey), bps = bps,
		                 pps = packets / opts.interval})
	end
	state.packet_counter = 0
	state.byte_counter = 0
	local last = state.last_seen
	return flowscope.now_ns() > last + opts.idle * 1e9, last
end

-- the passes of several analyzer threads: sums, the earliest start, one top list
function module.checkMerge(into, from)
	into.start_time = math.min(into.start_time, from.start_time)
	into.active_flows = into.active_flows + from.active_flows
	into.window_packets = into.window_packets + from.window_packets
	into.window_bytes = into.window_bytes + from.window_bytes
	for _, e in ipairs(from.top) do top_insert(into.top, e) end
end

local cumulative_packets, cumulative_bytes = 0, 0

function module.checkFinalizer(checkState, keptFlows, purgedFlows)
	local secs = opts.interval
	cumulative_packets = cumulative_packets + (checkState.window_packets or 0)
	cumulative_bytes = cumulative_bytes + (checkState.window_bytes or 0)
	local out = {("Top flows over sliding %.0fs window:\n#\tbps\tpps\tFlow\n"):format(secs)}
	for i, e in ipairs(checkState.top or {}) do
		out[#out + 1] = ("%d %.2f %.2f %s\n"):format(i, e.bps, e.pps, e.key)
	end
	out[#out + 1] = ("Active flows %d, cumulative packets %d [%.2f/s], cumulative bytes %d " ..
	                 "[%.2f/s], took %.2fs\n"):format(checkState.active_flows or 0,
	                 cumulative_packets, (checkState.window_packets or 0) / secs,
	                 cumulative_bytes, (checkState.window_bytes or 0) / secs,
	                 os.clock() - (checkState.start_time or os.clock()))
	io.write(table.concat(out))
	io.flush()
end

return module
