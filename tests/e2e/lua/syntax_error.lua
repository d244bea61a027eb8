-- a module with a syntax error on line 5: flowscope must refuse to start, naming file:line
local module = {}
module.stateType = "struct nothing"

function module.handlePacket(flowKey, state, pkt isFirstPacket)
	return false
end

return module
