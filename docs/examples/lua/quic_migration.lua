-- quic_migration: triggers a flow when a QUIC connection ID already seen on
-- one 5-tuple shows up on another: connection migration (RFC 9000 sec. 9) or
-- NAT rebinding, i.e. a connection that moved to a new address or port.
--
--   flowscope record --read x.pcap --archive A --capture triggered \
--       --module 'docs/examples/lua/quic_migration.lua:port=443,cidlen=8'
--
-- Packets to the server port (default 443) carry the connection ID the
-- server chose: in long headers (Initial, Handshake, 0-RTT) its length is
-- in the packet; short headers (1-RTT) do not say, so the length the server
-- uses must be given (cidlen, default 8).  Server -> client packets are
-- ignored.  The table of connection IDs belongs to one analyzer's Lua
-- state: with several analyzers, a migration is seen when both 5-tuples
-- hash to the same analyzer (flows are partitioned by their 5-tuple).
--
-- Arguments: port=N, cidlen=N (1..20), idle=S seconds (30).
local ffi = require("ffi")
local flowscope = require("flowscope")
local bit = require("bit")

local opts = {port = 443, cidlen = 8, idle = 30}
for k, v in ((...) or ""):gmatch("(%w+)=([%d.]+)") do
	if opts[k] == nil then error("quic_migration: unknown argument " .. k) end
	opts[k] = tonumber(v)
end
assert(opts.cidlen >= 1 and opts.cidlen <= 20, "quic_migration: cidlen must be 1..20")

ffi.cdef [[
struct quic_state {
	uint64_t last_seen;  /* ns */
	uint8_t cid_len;     /* the connection ID this flow carried last, 0 = none yet */
	uint8_t cid[20];
	uint8_t migrated;
};
]]

local module = {}

module.stateType = "struct quic_state"
module.defaultState = {}
module.checkInterval = 5

-- connection ID (bytes as a string) -> the key text of the flow that carried it first
local owner = {}

-- the destination connection ID of a QUIC packet to the server, or nil
local function dcid(p, len)
	if len < 1 + opts.cidlen then return nil end
	if p[0] >= 0x80 then -- long header: flags, version (4), DCID length, DCID
		if len < 6 then return nil end
		local n = p[5]
		if n == 0 or n > 20 or len < 6 + n then return nil end
		return p + 6, n
	end
	if bit.band(p[0], 0x40) == 0 then return nil end -- not QUIC (fixed bit clear)
	return p + 1, opts.cidlen
end

local function same_cid(state, c, n)
	if state.cid_len ~= n then return false end
	for i = 0, n - 1 do
		if state.cid[i] ~= c[i] then return false end
	end
	return true
end

function module.handlePacket(flowKey, state, pkt, isFirstPacket)
	state.last_seen = pkt.ts_ns
	local udp = pkt:udp()
	if not udp or flowscope.ntohs(udp.dport) ~= opts.port then return false end
	local payload, len = pkt:payload()
	if not payload then return false end
	local c, n = dcid(payload, len)
	if not c or same_cid(state, c, n) then return false end
	-- a connection ID new to this flow: who had it first?
	state.cid_len = n
	ffi.copy(state.cid, c, n)
	local id, me = ffi.string(c, n), flowscope.key_format(flowKey)
	local first = owner[id]
	if first == nil then
		owner[id] = me
		return false
	end
	if first ~= me and state.migrated == 0 then
		state.migrated = 1
		io.write(("quic_migration: connection moved from %s to %s\n"):format(first, me))
		io.flush()
		return true
	end
	return false
end

function module.checkExpiry(flowKey, state, checkState)
	local last = state.last_seen
	if flowscope.now_ns() <= last + opts.idle * 1e9 then return false, last end
	if state.cid_len > 0 then
		local id = ffi.string(state.cid, state.cid_len)
		if owner[id] == flowscope.key_format(flowKey) then owner[id] = nil end
	end
	return true, last
end

return module
