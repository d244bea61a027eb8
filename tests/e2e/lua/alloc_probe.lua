-- Allocation probe: a handlePacket that reads the packet's headers and
-- writes its state, in a state whose garbage collector is stopped, prints
-- the Lua heap growth between checker passes on stderr.  Packets, headers,
-- keys and states are cdata pointers the JIT keeps in registers: a pass
-- over ~100 k packets must allocate (next to) nothing, where one boxed
-- pointer per packet would be megabytes.
local ffi = require("ffi")
ffi.cdef [[ struct probe { uint64_t bytes, last; uint8_t ttl; uint16_t port; }; ]]
collectgarbage("stop")

local module = {stateType = "struct probe", checkInterval = 1}

function module.handlePacket(key, s, pkt, first)
	s.bytes = s.bytes + pkt.wirelen
	s.last = pkt.ts_ns
	local ip4 = pkt:ip4()
	if ip4 then
		s.ttl = ip4.ttl
	else
		local ip6 = pkt:ip6()
		if ip6 then s.ttl = ip6.hop_limit end
	end
	local l4 = pkt:tcp() or pkt:udp()
	if l4 then s.port = l4.dport end
	return key.port_a == 1 and s.ttl == 0
end

local prev
function module.checkInitializer(checkState)
	local now = collectgarbage("count")
	if prev then io.stderr:write(("alloc_probe: %d bytes\n"):format((now - prev) * 1024)) end
	prev = collectgarbage("count")
end

return module
