-- What a module sees of ARP frames (tests/e2e/module_api.sh): extractFlowKey
-- gets every packet (a module with its own keys), counts the ARP/RARP frames
-- (ethertype 0x0806 / 0x8035 in the parsed view), those among them for which
-- pkt:ip4() is not nil or pkt.pkt.family is 4 (there must be none: ARP is not
-- IPv4), and all frames with an IPv4 header by pkt:ip4().  Tracks nothing.
-- One checker pass a day: the counts are printed by the last pass, at the end
-- of the input.
local ffi = require("ffi")
local flowscope = require("flowscope")
local band = require("bit").band

ffi.cdef [[
struct av_key { uint8_t unused; };
struct av_state { uint8_t unused; };
]]

local n = {arp = 0, arp_flag = 0, arp_ip4 = 0, arp_family4 = 0, ip4 = 0}

local M = {}
M.stateType = "struct av_state"
M.flowKeys = {"struct av_key"}
M.checkInterval = 86400

function M.extractFlowKey(pkt, key)
	local p = pkt.pkt
	if pkt:ip4() ~= nil then n.ip4 = n.ip4 + 1 end
	if p.ethertype == 0x0806 or p.ethertype == 0x8035 then
		n.arp = n.arp + 1
		if pkt:ip4() ~= nil then n.arp_ip4 = n.arp_ip4 + 1 end
		if p.family == 4 then n.arp_family4 = n.arp_family4 + 1 end
		if band(p.flags, flowscope.FT_PKT_ARP) ~= 0 then n.arp_flag = n.arp_flag + 1 end
	end
	return false
end

function M.handlePacket() return false end

function M.buildPacketFilter() return "" end

function M.checkInitializer(cs)
	for k, v in pairs(n) do cs[k] = v end
end

function M.checkFinalizer(cs)
	print(("arp_view: arp %d flagged %d ip4 %d family4 %d; ip4 frames %d"):format(
	    cs.arp or 0, cs.arp_flag or 0, cs.arp_ip4 or 0, cs.arp_family4 or 0, cs.ip4 or 0))
	io.flush()
end

return M
