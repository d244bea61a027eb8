-- The Lua side of flowscope's LuaJIT bridge (flowtrack/lua.c), run first in
-- every Lua state: one per analyzer engine, plus the module's finalizer state.
--
-- It declares our C structs to the FFI (layouts checked against the C
-- compiler's offsets, which lua.c passes in), provides the `flowscope`
-- helper module a user module may require, and returns bind(), which checks
-- a user module table and returns the trampolines lua.c calls: one call per
-- packet burst or checker batch, with the per-packet loop here, so LuaJIT
-- compiles the loop together with the user's handlePacket.
--
-- Invariants: nothing here allocates per packet once compiled (flow keys,
-- states and packets are cdata pointers into C memory; the casts are sunk by
-- the JIT); a trampoline records its progress in the batch (`pos`) before
-- each user call, so after an error lua.c resumes at the next element.
local C_INFO = ...
local ffi = require("ffi")
local bit = require("bit")

ffi.cdef [[
struct ft_packet {
	uint32_t flags;
	uint16_t ethertype, l3_off, l4_off;
	uint8_t family, proto, ttl, tcp_flags, icmp_type, icmp_code, n_vlan, n_nxt;
	uint16_t vlan[4];
	uint8_t nxt[8];
	uint16_t sport, dport;
	uint8_t src[16], dst[16];
};
struct ft_flow_key {
	uint8_t a[16], b[16];
	uint16_t port_a, port_b;
	uint8_t proto, pad;
	uint16_t vlan, vlan_inner;
};
struct ft_flow {
	struct ft_flow_key key;
	uint64_t first_ns, last_ns;
	uint64_t packets[2], bytes[2];
	uint8_t tcp_flags[2];
	uint8_t triggered;
	uint8_t pad_[5];
	uint8_t state[0];
};
struct ft_packet_ctx {
	uint64_t ts_ns;
	uint32_t caplen, wirelen;
	int linktype;
	const uint8_t *data;
	const struct ft_packet *pkt;
	int dir;
};
struct ft__burst {
	struct ft_flow *flow[32];
	const struct ft_packet_ctx *pkt[32];
	uint8_t is_new[32], trig[32], ok[32];
	uint32_t n, pos;
	struct ft_flow_key key[32];
};
struct ft__check_batch {
	struct ft_flow *flow[64];
	uint64_t last[64];
	uint8_t expired[64];
	uint32_t n, pos;
};
/* headers as they are on the wire: multi-byte fields in network byte order */
struct fs_ether { uint8_t dst[6], src[6]; uint16_t type; };
struct fs_vlan { uint16_t tpid, tci; };
struct fs_ip4 {
	uint8_t ver_ihl, tos; uint16_t len, id, frag;
	uint8_t ttl, proto; uint16_t csum; uint8_t src[4], dst[4];
};
struct fs_ip6 {
	uint32_t vtc_flow; uint16_t payload_len; uint8_t next_header, hop_limit;
	uint8_t src[16], dst[16];
};
struct fs_tcp {
	uint16_t sport, dport; uint32_t seq, ack;
	uint8_t off, flags; uint16_t window, csum, urg;
};
struct fs_udp { uint16_t sport, dport, len, csum; };
struct fs_icmp { uint8_t type, code; uint16_t csum; uint32_t rest; };
]]

-- the C compiler's layout must be the FFI's: a mismatch is a build bug
for name, off in pairs(C_INFO.offsets) do
	local ty, field = name:match("^(.-)%.(.+)$")
	local got = ffi.offsetof(ty, field)
	if got ~= off then
		error(string.format("flowscope bridge: offsetof(%s, %s) is %s in C, %s in the FFI",
		                    ty, field, off, tostring(got)))
	end
end
assert(ffi.sizeof("struct ft__burst") == C_INFO.burst_size, "struct ft__burst size")
assert(ffi.sizeof("struct ft__check_batch") == C_INFO.check_size, "struct ft__check_batch size")

local cast, copy, fill = ffi.cast, ffi.copy, ffi.fill
local bswap, rshift, band = bit.bswap, bit.rshift, bit.band
local addr_format = cast("char *(*)(const uint8_t *, char *, size_t)", C_INFO.addr_format)
local proto_name = cast("const char *(*)(uint8_t, char *, size_t)", C_INFO.proto_name)
local strbuf = ffi.new("char[64]")

local FT_PKT_L4, FT_PKT_FRAG_LATER = 0x4, 0x10
-- module.flowKeys: key types of at most 40 bytes (39 with several: the type's index is in
-- byte 39); the rest of the built-in key's bytes (VLAN ids) stay 0
local KEY_SIZE, CUSTOM_KEY_MAX = ffi.sizeof("struct ft_flow_key"), 40
local MAX_KEY_TYPES, KEY_TYPE_BYTE = 8, CUSTOM_KEY_MAX - 1
local FT_KEY_NO_VLAN = 0x2
local U8P = ffi.typeof("uint8_t *")
local ptr = {
	ether = ffi.typeof("struct fs_ether *"),
	vlan = ffi.typeof("struct fs_vlan *"),
	ip4 = ffi.typeof("struct fs_ip4 *"),
	ip6 = ffi.typeof("struct fs_ip6 *"),
	tcp = ffi.typeof("struct fs_tcp *"),
	udp = ffi.typeof("struct fs_udp *"),
	icmp = ffi.typeof("struct fs_icmp *"),
	key = ffi.typeof("struct ft_flow_key *"),
}

-- ---- the flowscope helper module --------------------------------------------------------

local fs = {}
-- capture time of the current checker pass or packet burst (lua.c writes it)
local now_p = cast("const uint64_t *", C_INFO.now_ptr)
local BURST = ffi.typeof("struct ft__burst *")
local CHECK = ffi.typeof("struct ft__check_batch *")
local FLOW = ffi.typeof("struct ft_flow *")

function fs.ntohs(x) return rshift(bswap(x), 16) end
function fs.ntohl(x) return bswap(x) % 4294967296 end
fs.htons, fs.htonl = fs.ntohs, fs.ntohl
-- capture time of the running checker pass, in seconds
function fs.now() return tonumber(now_p[0]) / 1e9 end
function fs.now_ns() return now_p[0] end

-- an address of 16 bytes (IPv4-mapped shown dotted) or a 4-byte IPv4 address, as text
function fs.addr(a, len)
	if len == 4 then
		return string.format("%d.%d.%d.%d", a[0], a[1], a[2], a[3])
	end
	return ffi.string(addr_format(a, strbuf, 64))
end

-- struct ft_packet.flags (flowtrack/flowtrack.h; docs/modules.md lists them)
fs.FT_PKT_IP, fs.FT_PKT_ARP, fs.FT_PKT_L4, fs.FT_PKT_FRAG = 0x1, 0x2, 0x4, 0x8
fs.FT_PKT_FRAG_LATER, fs.FT_PKT_TRUNCATED, fs.FT_PKT_MALFORMED, fs.FT_PKT_MPLS = 0x10, 0x20, 0x40, 0x80
fs.FT_PKT_PARSED = 0x100

function fs.proto_name(p)
	return ffi.string(proto_name(p, strbuf, 64))
end

local function is_v4(a)
	for i = 0, 9 do if a[i] ~= 0 then return false end end
	return a[10] == 0xff and a[11] == 0xff
end

-- a key's VLAN ids as text: "300/42", "42", or nil when it has none
local function vlan_text(k)
	if k.vlan_inner ~= 0 then return ("%d/%d"):format(k.vlan, k.vlan_inner) end
	if k.vlan ~= 0 then return tostring(k.vlan) end
	return nil
end

-- "ipv4_5tuple{ip_a: 10.0.0.10, ip_b: 10.1.0.10, port_a: 2143, port_b: 1234, proto: udp}",
-- with ", vlan: 300/42" before the brace when the key has VLAN ids
function fs.key_string(k)
	local v = vlan_text(k)
	return string.format("%s_5tuple{ip_a: %s, ip_b: %s, port_a: %d, port_b: %d, proto: %s%s}",
	                     is_v4(k.a) and "ipv4" or "ipv6", fs.addr(k.a), fs.addr(k.b),
	                     k.port_a, k.port_b, fs.proto_name(k.proto), v and ", vlan: " .. v or "")
end

-- "proto a:port <-> b:port", the format of the flows command
function fs.key_format(k)
	local function ep(a, p)
		return (is_v4(a) and "%s:%d" or "[%s]:%d"):format(fs.addr(a), p)
	end
	local v = vlan_text(k)
	return ("%s %s <-> %s%s"):format(fs.proto_name(k.proto), ep(k.a, k.port_a), ep(k.b, k.port_b),
	                                 v and " vlan " .. v or "")
end

-- a tcpdump filter that selects exactly the flow of a built-in key (both directions)
function fs.key_filter(k)
	local v4 = is_v4(k.a)
	local a, b = fs.addr(k.a), fs.addr(k.b)
	local proto = fs.proto_name(k.proto)
	local f
	if k.proto == 6 or k.proto == 17 or k.proto == 132 then
		f = ("%s and host %s and host %s and port %d and port %d"):format(proto, a, b,
		                                                                  k.port_a, k.port_b)
	else
		f = ("%s proto %d and host %s and host %s"):format(v4 and "ip" or "ip6", k.proto, a, b)
	end
	-- each `vlan` moves libpcap past one tag: outer, then inner (ft_flow_key_filter)
	if k.vlan_inner ~= 0 then
		f = ("vlan %d and vlan %d and %s"):format(k.vlan, k.vlan_inner, f)
	elseif k.vlan ~= 0 then
		f = ("vlan %d and %s"):format(k.vlan, f)
	end
	return f
end

ffi.metatype("struct ft_flow_key", {__tostring = fs.key_string})

-- the packet: cdata over struct ft_packet_ctx; headers are pointers into its bytes
local pkt_methods = {}
function pkt_methods.time(p) return tonumber(p.ts_ns) / 1e9 end
function pkt_methods.parsed(p) return p.pkt end
function pkt_methods.bytes(p) return p.data end
function pkt_methods.ether(p)
	if p.linktype == 1 and p.caplen >= 14 then return cast(ptr.ether, p.data) end
	return nil
end
-- the i-th VLAN tag (0 = outer), or nil
function pkt_methods.vlan(p, i)
	i = i or 0
	if p.linktype == 1 and i < p.pkt.n_vlan and 16 + 4 * i <= p.caplen then
		return cast(ptr.vlan, p.data + 12 + 4 * i)
	end
	return nil
end
-- the VLAN id of tag i (host order), or nil
function pkt_methods.vlan_id(p, i)
	i = i or 0
	if i < p.pkt.n_vlan and i < 4 then return p.pkt.vlan[i] end
	return nil
end
function pkt_methods.ip4(p)
	local q = p.pkt
	if q.family == 4 and q.l3_off + 20 <= p.caplen then return cast(ptr.ip4, p.data + q.l3_off) end
	return nil
end
function pkt_methods.ip6(p)
	local q = p.pkt
	if q.family == 6 and q.l3_off + 40 <= p.caplen then return cast(ptr.ip6, p.data + q.l3_off) end
	return nil
end
local function l4(p, proto, len, t)
	local q = p.pkt
	if q.proto == proto and band(q.flags, FT_PKT_FRAG_LATER) == 0 and q.l4_off ~= 0 and
	   q.l4_off + len <= p.caplen then
		return cast(t, p.data + q.l4_off)
	end
	return nil
end
function pkt_methods.tcp(p) return l4(p, 6, 20, ptr.tcp) end
function pkt_methods.udp(p) return l4(p, 17, 8, ptr.udp) end
function pkt_methods.icmp(p)
	local q = p.pkt
	return l4(p, q.family == 6 and 58 or 1, 8, ptr.icmp)
end
-- the transport payload (pointer, length), or nil
function pkt_methods.payload(p)
	local q = p.pkt
	local h = q.proto == 6 and pkt_methods.tcp(p) or q.proto == 17 and pkt_methods.udp(p)
	if not h then return nil end
	local off = q.l4_off + (q.proto == 6 and 4 * rshift(h.off, 4) or 8)
	if off > p.caplen then return nil end
	return p.data + off, p.caplen - off
end
ffi.metatype("struct ft_packet_ctx", {__index = pkt_methods})

package.loaded.flowscope = fs

-- ---- bind: a user module table -> trampolines --------------------------------------------

local function last_return_line(path)
	local f, n, last = io.open(path, "r"), 0, 1
	if not f then return 1 end
	for line in f:lines() do
		n = n + 1
		if line:match("^%s*return[%s%(]") or line:match("^%s*return$") then last = n end
	end
	f:close()
	return last
end

-- bind(M, path, args, snap, burst, batch): snap, burst and batch are the C buffers of an
-- analyzer's state (nil in the finalizer state); the trampolines work on them only
local function bind(M, path, args, snap_ptr, burst_ptr, batch_ptr)
	local where = path .. ":" .. last_return_line(path) .. ": "
	if type(M) ~= "table" then
		error(where .. "the module must return its table (got " .. type(M) .. ")", 0)
	end
	local function need(name, ty)
		if type(M[name]) ~= ty then
			error(where .. ("module.%s is %s, must be a %s"):format(name, M[name] == nil and
			      "missing" or "a " .. type(M[name]), ty), 0)
		end
	end
	local function opt(name, ty)
		if M[name] ~= nil then need(name, ty) end
	end
	need("handlePacket", "function")
	if type(M.stateType) ~= "string" and type(M.stateType) ~= "cdata" then
		error(where .. "module.stateType is " .. (M.stateType == nil and "missing" or
		      "a " .. type(M.stateType)) .. ", must name a C type declared with ffi.cdef", 0)
	end
	for _, f in ipairs({"checkInitializer", "checkExpiry", "checkFinalizer", "checkMerge",
	                    "buildPacketFilter", "extractFlowKey", "formatFlowKey"}) do
		opt(f, "function")
	end
	opt("checkInterval", "number")
	opt("defaultState", "table")
	opt("flowKeys", "table")
	opt("ignoreVlan", "boolean")
	local ok, stype = pcall(ffi.typeof, M.stateType)
	if not ok then
		error(where .. "module.stateType '" .. tostring(M.stateType) .. "': " .. stype, 0)
	end
	local state_size = ffi.sizeof(stype)
	if not state_size or state_size > 65536 then
		error(where .. "module.stateType must have a fixed size of at most 64 KiB", 0)
	end
	local sptr = ffi.typeof("$ *", stype)
	-- flow keys: the built-in key, or the module's key types (the reference's
	-- several flow tables: one table here, the type's index in the key's last byte)
	local kptr, key_custom, kptrs, nkeys = ptr.key, false, {}, 1
	if M.flowKeys then
		nkeys = #M.flowKeys
		if nkeys < 1 or nkeys > MAX_KEY_TYPES then
			error(where .. ("module.flowKeys must list 1 to %d key types"):format(MAX_KEY_TYPES), 0)
		end
		local max = CUSTOM_KEY_MAX - (nkeys > 1 and 1 or 0)
		for i = 1, nkeys do
			local kok, ktype = pcall(ffi.typeof, M.flowKeys[i])
			if not kok then error(where .. ("module.flowKeys[%d]: "):format(i) .. ktype, 0) end
			if ffi.sizeof(ktype) > max then
				error(where .. ("module.flowKeys[%d] is %d bytes, at most %d%s"):format(
				      i, ffi.sizeof(ktype), max,
				      nkeys > 1 and " (with several key types the last byte holds the type)" or ""), 0)
			end
			kptrs[i] = ffi.typeof("$ *", ktype)
		end
		need("extractFlowKey", "function")
		need("buildPacketFilter", "function")
		kptr, key_custom = kptrs[1], true
	elseif M.extractFlowKey then
		error(where .. "module.extractFlowKey needs module.flowKeys", 0)
	elseif M.formatFlowKey then
		error(where .. "module.formatFlowKey needs module.flowKeys", 0)
	end
	if M.ignoreVlan and key_custom then
		error(where .. "module.ignoreVlan is for the built-in key; with flowKeys, " ..
		      "extractFlowKey decides what the key holds", 0)
	end
	-- a flow (or key) pointer as its key type
	local kcast
	if nkeys > 1 then
		kcast = function(f) return cast(kptrs[cast(U8P, f)[KEY_TYPE_BYTE] + 1], f) end
	else
		kcast = function(f) return cast(kptr, f) end
	end
	local defstate = ffi.new(stype)
	if M.defaultState then
		for k, v in pairs(M.defaultState) do
			local sok, e = pcall(function() defstate[k] = v end)
			if not sok then error(where .. "module.defaultState." .. tostring(k) .. ": " .. e, 0) end
		end
	end
	local info = {
		state_size = state_size,
		default_state = ffi.string(defstate, state_size),
		key_custom = key_custom,
		key_flags = M.ignoreVlan and FT_KEY_NO_VLAN or 0,
		interval = M.checkInterval or 0,
		has_expiry = M.checkExpiry ~= nil,
		has_filter = M.buildPacketFilter ~= nil,
		args = args,
	}

	local handle, extract = M.handlePacket, M.extractFlowKey
	local snap = snap_ptr and cast("uint8_t *", snap_ptr)
	local b = burst_ptr and cast(BURST, burst_ptr)
	local cb = batch_ptr and cast(CHECK, batch_ptr)
	local t = {}
	-- handlePacket over a burst; the state of the flow being handled is saved to snap
	-- first, so lua.c can put it back when the call fails
	if snap and state_size > 0 then
		function t.handle()
			for j = b.pos, b.n - 1 do
				b.pos = j
				local f = b.flow[j]
				local s = f.state
				copy(snap, s, state_size)
				if handle(kcast(f), cast(sptr, s), b.pkt[j], b.is_new[j] ~= 0) then
					b.trig[j] = 1
				end
			end
			b.pos = b.n
		end
	else
		function t.handle()
			for j = b.pos, b.n - 1 do
				b.pos = j
				local f = b.flow[j]
				if handle(kcast(f), cast(sptr, f.state), b.pkt[j], b.is_new[j] ~= 0) then
					b.trig[j] = 1
				end
			end
			b.pos = b.n
		end
	end
	if extract then
		function t.extract()
			for j = b.pos, b.n - 1 do
				b.pos = j
				local k = b.key + j
				fill(k, KEY_SIZE)
				if nkeys == 1 then
					if extract(b.pkt[j], cast(kptr, k)) then b.ok[j] = 1 end
				else -- the reference's (buffer) -> ok, index of the key type filled
					local ok, idx = extract(b.pkt[j], cast(U8P, k))
					if ok then
						idx = idx or 1
						if type(idx) ~= "number" or idx < 1 or idx > nkeys or idx % 1 ~= 0 then
							error(("extractFlowKey returned key type %s, not 1..%d"):format(
							      tostring(idx), nkeys), 0)
						end
						cast(U8P, k)[KEY_TYPE_BYTE] = idx - 1
						b.ok[j] = 1
					end
				end
			end
			b.pos = b.n
		end
	end

	-- the checker: one checkState per pass of this state
	local cs
	local init, expiry = M.checkInitializer, M.checkExpiry
	function t.check_begin()
		cs = {}
		if init then init(cs) end
	end
	function t.check_batch()
		for j = cb.pos, cb.n - 1 do
			cb.pos = j
			local f = cb.flow[j]
			local expired, last = expiry(kcast(f), cast(sptr, f.state), cs)
			if expired then cb.expired[j] = 1 end
			if type(last) == "number" then
				cb.last[j] = last * 1e9
			elseif last ~= nil then
				cb.last[j] = last
			end
		end
		cb.pos = cb.n
	end
	function t.check_end()
		local r = cs
		cs = nil
		return r
	end
	local build = M.buildPacketFilter
	function t.filter(fp)
		local r = build(kcast(cast(FLOW, fp)))
		if r ~= nil and type(r) ~= "string" then
			error("buildPacketFilter returned a " .. type(r) .. ", not a string", 0)
		end
		return r
	end

	-- a key of the module's own type as text (monitor's trigger lines): formatFlowKey's
	-- string, else the key type's name and its bytes in hex, never a misread 5-tuple
	local format_key = M.formatFlowKey
	function t.key_text(fp)
		local k = kcast(cast(FLOW, fp))
		if format_key then
			local r = format_key(k)
			if type(r) ~= "string" then
				error("formatFlowKey returned a " .. type(r) .. ", not a string", 0)
			end
			return r
		end
		local idx = nkeys > 1 and cast(U8P, fp)[KEY_TYPE_BYTE] + 1 or 1
		local kt, bytes, hex = ffi.typeof(M.flowKeys[idx]), cast(U8P, fp), {}
		for i = 0, ffi.sizeof(kt) - 1 do hex[#hex + 1] = ("%02x"):format(bytes[i]) end
		local name = type(M.flowKeys[idx]) == "string" and M.flowKeys[idx] or tostring(kt)
		return name .. " " .. table.concat(hex)
	end

	-- the finalizer state: merge the passes of every analyzer, then report
	local merge, final = M.checkMerge, M.checkFinalizer
	local function default_merge(into, from)
		for k, v in pairs(from) do
			local cur = into[k]
			if cur == nil then
				into[k] = v
			elseif type(cur) == "number" and type(v) == "number" then
				into[k] = cur + v
			elseif type(cur) == "table" and type(v) == "table" then
				if #cur > 0 or #v > 0 then
					for _, x in ipairs(v) do cur[#cur + 1] = x end
				else
					default_merge(cur, v)
				end
			end
		end
	end
	t.default_merge = default_merge
	function t.merge(into, from)
		if merge then merge(into, from) else default_merge(into, from) end
	end
	function t.final(check, kept, purged)
		if final then final(check, kept, purged) end
	end
	return info, t
end

return bind
