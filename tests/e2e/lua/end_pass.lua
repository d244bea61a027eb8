-- The last checker pass at the end of the input (tests/e2e/module_api.sh):
-- one pass a day, so with a capture of a few seconds the only pass is the
-- one that runs when the input ends.  It expires every flow and reports the
-- flows and packets it saw.
local ffi = require("ffi")

ffi.cdef [[ struct ep_state { uint64_t packets; }; ]]

local M = {}
M.stateType = "struct ep_state"
M.checkInterval = 86400

function M.handlePacket(key, state)
	state.packets = state.packets + 1
	return false
end

function M.checkInitializer(cs)
	cs.flows, cs.packets = 0, 0
end

function M.checkExpiry(key, state, cs)
	cs.flows = cs.flows + 1
	cs.packets = cs.packets + tonumber(state.packets)
	return true
end

function M.checkFinalizer(cs, kept, purged)
	print(("end_pass: flows %d packets %d kept %d purged %d"):format(cs.flows, cs.packets, kept,
	                                                                 purged))
	io.flush()
end

return M
