-- raises in handlePacket on every 100th packet this analyzer sees, after
-- changing the flow's state: the recorder must count the error, put the
-- state back and go on.  checkFinalizer prints the packets the states hold,
-- which must be the packets handled minus the failed ones.
local ffi = require("ffi")
ffi.cdef [[ struct raise_state { uint64_t packets; }; ]]

local module = {}
module.stateType = "struct raise_state"
module.checkInterval = 3600

local seen = 0

function module.handlePacket(flowKey, state, pkt, isFirstPacket)
	seen = seen + 1
	state.packets = state.packets + 1
	if seen % 100 == 0 then
		error(("packet %d: deliberate error"):format(seen))
	end
	return false
end

function module.checkInitializer(checkState)
	checkState.packets = 0
end

function module.checkExpiry(flowKey, state, checkState)
	checkState.packets = checkState.packets + tonumber(state.packets)
	return false
end

function module.checkFinalizer(checkState, keptFlows, purgedFlows)
	print(("raise_every_100: packets in states %d, flows %d"):format(checkState.packets or 0,
	                                                                 keptFlows))
end

return module
