# Finds every external dependency through pkg-config and names the Debian
# package to install when one is missing (make deps installs them all).
find_package(PkgConfig)
if(NOT PKG_CONFIG_FOUND)
  message(FATAL_ERROR "pkg-config not found: install the Debian package 'pkg-config' (or run: make deps)")
endif()
find_package(Threads REQUIRED)

# flowscope_dep(<target name> <pkg-config module> <Debian package>)
function(flowscope_dep name module debpkg)
  pkg_check_modules(${name} QUIET IMPORTED_TARGET GLOBAL ${module})
  if(NOT ${name}_FOUND)
    message(FATAL_ERROR "${module} not found by pkg-config: install the Debian package '${debpkg}' (or run: make deps)")
  endif()
  message(STATUS "found ${module} ${${name}_VERSION}")
endfunction()

flowscope_dep(DPDK    libdpdk   libdpdk-dev)
flowscope_dep(URING   liburing  liburing-dev)
flowscope_dep(LMDB    lmdb      liblmdb-dev)
flowscope_dep(PCAP    libpcap   libpcap-dev)
flowscope_dep(ZSTD    libzstd   libzstd-dev)
# Lua modules: LuaJIT 2.1 from OpenResty's maintained branch (see docs/modules.md)
flowscope_dep(LUAJIT  luajit    libluajit2-5.1-dev)
# the config file's INI lines (record --config, docs/config.md)
flowscope_dep(INIH    inih      libinih-dev)
# record/monitor --user: capability sets cleared after the drop (tools/privdrop.c)
flowscope_dep(CAP     libcap    libcap-dev)
# sd_notify(3) for the systemd unit (Type=notify, watchdog): tools/service.c
flowscope_dep(SYSTEMD libsystemd libsystemd-dev)
# the HTTP API (flowscope serve, docs/api.md): libmicrohttpd built with GnuTLS, GnuTLS itself
# for the client-certificate check, libcurl for query --remote
flowscope_dep(MHD     libmicrohttpd libmicrohttpd-dev)
flowscope_dep(GNUTLS  gnutls    libgnutls28-dev)
flowscope_dep(CURL    libcurl   libcurl4-gnutls-dev)
# JSON input: POST /api/v1/trigger's body (query/api_trigger.c)
flowscope_dep(JANSSON jansson   libjansson-dev)
# SHA-1 and base64 of the Community ID (flowtrack/community_id.c)
flowscope_dep(NETTLE  nettle    nettle-dev)
