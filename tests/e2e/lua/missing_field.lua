-- a module without handlePacket: flowscope must refuse to start, naming file:line
local ffi = require("ffi")
ffi.cdef [[ struct missing_state { uint64_t n; }; ]]

local module = {}
module.stateType = "struct missing_state"

return module
