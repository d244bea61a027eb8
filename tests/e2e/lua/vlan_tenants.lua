-- A test module for tests/e2e/vlan_keys.sh on tenants_pcap.py's capture: it keeps the
-- built-in flow key (VLAN-aware: outer and inner tag) and triggers the ICMP flow of
-- tenant B (QinQ 300/42).  Arguments (any of): "blind" asks for a VLAN-blind key
-- (ignoreVlan); "filter" dumps triggered flows by flowscope.key_filter(key) and prints
-- that filter.  The finalizer prints the flows its pass saw, one line each.
local ffi = require("ffi")
local fs = require("flowscope")
local args = ... or ""

ffi.cdef [[ struct vlan_tenants_state { uint32_t packets; }; ]]

local M = {stateType = "struct vlan_tenants_state", checkInterval = 86400}
if args:find("blind") then M.ignoreVlan = true end

function M.handlePacket(key, state, pkt, isFirst)
	state.packets = state.packets + 1
	return pkt.pkt.proto == 1 and pkt:vlan_id(0) == 300 and pkt:vlan_id(1) == 42
end

function M.checkExpiry(key, state, checkState)
	checkState.keys = checkState.keys or {}
	table.insert(checkState.keys, ("%s packets %d"):format(fs.key_format(key), state.packets))
	return false
end

function M.checkFinalizer(checkState)
	local keys = checkState.keys or {}
	table.sort(keys)
	for _, k in ipairs(keys) do print("vlan_tenants flow: " .. k) end
	print("vlan_tenants flows: " .. #keys)
end

if args:find("filter") then
	function M.buildPacketFilter(key)
		local f = fs.key_filter(key)
		print("vlan_tenants filter: " .. f)
		return f
	end
end

return M
