# Shared helpers for the end-to-end tests (sourced, not run).
# Environment (set by CMake/ctest): FLOWSCOPE = the binary, SHARED = ../shared.
set -u
: "${FLOWSCOPE:?FLOWSCOPE must name the flowscope binary}"
: "${SHARED:?SHARED must name the shared directory}"
PCAPS="$SHARED/pcaps"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/flowscope-test.XXXXXX")
# A recorder started as root drops to the flowscope user when it exists (a box with the .deb
# installed): it must still reach the archives the tests make in here.
chmod 0711 "$TMP"
# at_exit CMDS: what the test's own shell runs when it exits, before it removes $TMP (one
# CMDS: a second call replaces the first).  Only that shell: bash runs the EXIT trap in a
# job's child too when a signal ends it before its exec (`cmd & kill $!` under load), which
# removed $TMP under a running test (seen: e2e_signal) and would stop servers, remove veth
# pairs and delete users in the traps of others.
AT_EXIT=
at_exit() { AT_EXIT=$1; }
trap '[ "$BASHPID" != "$$" ] || { eval "$AT_EXIT"; rm -rf "$TMP"; }' EXIT
FAILS=0
CHECKS=0

fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
pass() { CHECKS=$((CHECKS + 1)); }
note() { echo "# $*"; }

# finish: print the tally and exit with the right status.
finish() {
    echo "$CHECKS checks passed, $FAILS failed"
    [ "$FAILS" -eq 0 ]
    exit $?
}

# skip REASON: the test, or what is left of it, cannot run here (e.g. it needs root): says
# so and exits 77, which ctest shows as skipped, not passed (SKIP_RETURN_CODE in
# CMakeLists.txt); if a check has already failed, it finishes as failed instead.
skip() {
    echo "SKIP: $*"
    [ "$FAILS" -eq 0 ] || finish
    echo "$CHECKS checks passed, $FAILS failed"
    exit 77
}

# fs ARGS...: run flowscope with a bounded time.
fs() { timeout 300 "$FLOWSCOPE" "$@"; }

# "${TRACED[@]}" ARGS...: strace ARGS, with LeakSanitizer off in a sanitizer build: it
# cannot work under ptrace, and a process that exits under strace would abort on its
# "fatal error".  A command, not a function, so that $! after "${TRACED[@]}" ... & is strace.
TRACED=(env "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" strace)

# oracle SRC OUT [FILTER]: tcpdump's answer, nanosecond pcap (tcpdump -Z root: it drops
# privileges before writing otherwise).  Returns tcpdump's status; OUT absent if it
# could not even start (bad file, bad filter).
oracle() {
    local src=$1 out=$2
    shift 2
    rm -f "$out"
    timeout 300 tcpdump -Z root -r "$src" --time-stamp-precision=nano -w "$out" "$@" 2>/dev/null
}

# npackets FILE: packet count of a pcap (via tcpdump, which reads what we write).
npackets() { capinfos -M -c "$1" 2>/dev/null | awk '/Number of packets/ {print $NF}'; }

# one_line_error STDERR_FILE PATTERN: the file holds exactly one line matching PATTERN.
one_line_error() {
    local n
    n=$(wc -l <"$1")
    if [ "$n" -ne 1 ]; then fail "expected one error line, got $n: $(head -c 400 "$1")"; return 1; fi
    if ! grep -qE -- "$2" "$1"; then fail "error line '$(cat "$1")' does not match '$2'"; return 1; fi
    pass
}

# le32 FILE OFFSET: a little-endian u32 read from FILE at OFFSET (negative = from the end).
le32() {
    local off=$2
    [ "$off" -ge 0 ] || off=$(( $(stat -c %s "$1") + off ))
    od -An -tu4 -j "$off" -N4 --endian=little "$1" | tr -d ' '
}

# wait_for ERRFILE PATTERN PID [TENTHS]: until ERRFILE (which may not exist yet) matches
# PATTERN (ERE); 1 if PID ends first or after TENTHS tenths of a second (default 300).
wait_for() {
    local i
    for ((i = 0; i < ${4:-300}; i++)); do
        grep -qsE "$2" "$1" && return 0
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# replay NAME SRC PID [OPTION]: tcpreplay sends SRC from $B in $NS (OPTION default
# --topspeed); SENT = the packets it sent.  If it sent none: a failure, PID killed, 1.
# (--timer=nano: a paced rate sleeps between packets; tcpreplay's default spins a core)
replay() {
    SENT=$(ip netns exec "$NS" tcpreplay -i "$B" --timer=nano "${4:---topspeed}" "$2" 2>&1 | sed -n 's/.*Actual: \([0-9]*\) packets.*/\1/p')
    [ -n "$SENT" ] && [ "$SENT" -gt 0 ] && return 0
    fail "$1: tcpreplay sent nothing"
    kill -9 "$3"
    return 1
}

# wait_counted ERRFILE: until the last status line in ERRFILE ("N pkts, R pkt/s M Mbit/s
# drops D") accounts for $SENT packets; 1 after ~30 s.
wait_counted() {
    local i got drops
    for ((i = 0; i < 300; i++)); do
        read -r got drops < <(tail -1 "$1" | sed -n 's/.* \([0-9]*\) pkts, [0-9]* pkt\/s [0-9.]* Mbit\/s drops \([0-9]*\).*/\1 \2/p')
        [ -n "$got" ] && [ $((got + drops)) -ge "$SENT" ] && return 0
        sleep 0.1
    done
    return 1
}

# stop_when_counted NAME ERRFILE PID: once the last status line in ERRFILE accounts for $SENT
# packets (wait_counted, or after ~30 s), stops PID with SIGINT; a pass if it then exits 0.
stop_when_counted() {
    local rc
    wait_counted "$2"
    kill -INT "$3"
    wait "$3"
    rc=$?
    [ $rc -eq 0 ] && pass || fail "$1: exit $rc: $(tail -3 "$2")"
}

# veth_pair TAG: a veth pair $A (here) / $B (in the new network namespace $NS), both up,
# without IPv6 (the kernel would send solicitations of its own); removed at exit.
# Needs root; 1 if it cannot be made.
veth_pair() {
    NS=fs${1}ns$$
    A=fs${1}a$$
    B=fs${1}b$$
    at_exit 'ip link del "$A" 2>/dev/null; ip netns del "$NS" 2>/dev/null'
    ip netns add "$NS" && ip link add "$A" type veth peer name "$B" &&
        ip link set "$B" netns "$NS" || return 1
    sysctl -qw "net.ipv6.conf.$A.disable_ipv6=1"
    ip netns exec "$NS" sysctl -qw "net.ipv6.conf.$B.disable_ipv6=1"
    # no multicast: a program on the host that announces itself on every multicast
    # interface (a browser's mDNS/SSDP) does not send onto the captured link
    ip link set "$A" multicast off && ip link set "$A" up &&
        ip netns exec "$NS" ip link set "$B" multicast off &&
        ip netns exec "$NS" ip link set "$B" up
}

# digests FILE: "timestamp caplen wirelen hash" per packet of a capture (unique for gen
# traffic), by the pktdigest helper ($PKTDIGEST).
digests() { "${PKTDIGEST:?PKTDIGEST must name the pktdigest helper}" -t "$1"; }

# subsequence SUB ALL: every packet of capture SUB is in ALL, in the same order; ALL is a
# capture, or (ending in .dig) a file of digests, e.g. of several captures one after another.
subsequence() {
    local prog='NR == FNR { pos[$0] = FNR; next }
                { p = pos[$0]; if (!p || p <= last) { bad = 1; exit } last = p }
                END { exit bad }'
    if [ "${2%.dig}" != "$2" ]; then awk "$prog" "$2" <(digests "$1")
    else awk "$prog" <(digests "$2") <(digests "$1"); fi
}

# stored ARCHIVE: packets the index knows
stored() { fs info --archive "$1" 2>/dev/null | awk '/^packets:/ {print $2}'; }

# verify_ok ARCHIVE WHAT: index verify passes (its output in $TMP/verify.out)
verify_ok() {
    if fs index verify --archive "$1" >"$TMP/verify.out" 2>&1; then pass; else
        fail "$2: index verify: $(grep -v '^index verify' "$TMP/verify.out" | head -3) $(tail -1 "$TMP/verify.out")"
    fi
}

# tshark_ok ARGS...: tshark's output; 1, with its complaint on stderr, if it fails or says
# anything but its root warning (a failed oracle must not answer "nothing": use with || fail)
tshark_ok() {
    local err rc
    err=$(mktemp "$TMP/tshark.err.XXXXXX")
    timeout 300 tshark "$@" 2>"$err"
    rc=$?
    if [ $rc -ne 0 ] || grep -qv '^Running as user "root"' "$err"; then
        echo "tshark $*: exit $rc: $(grep -v '^Running as user "root"' "$err" | head -c 300)" >&2
        rm -f "$err"
        return 1
    fi
    rm -f "$err"
}

# tshark_packets FILE: one line per packet as tshark reads it (also a pcapng whose interfaces
# have several link types, which libpcap, so tcpdump, refuses): link type (encapsulation),
# time (a simple packet block has none: 0, as libpcap reads it), captured and wire length,
# the bytes in hex.  One pass: each packet's columns, then its hex dump (`-x`: the frame's
# bytes first, labelled "Frame (N bytes):" when reassembly adds other data sources, whose
# dumps are left out); blocks that are not packets (custom blocks: no link type) are left out.
tshark_packets() {
    local cols='"E","%Cus:frame.encap_type:0:U","T","%Cus:frame.time_epoch","C","%Cus:frame.cap_len"'
    timeout 300 tshark -r "$1" -T tabs -x -P -o "gui.column.format:$cols,\"L\",\"%Cus:frame.len\"" 2>/dev/null |
        awk -F'\t' -v OFS='\t' '
            function put() { if (head != "") print head, hex; head = ""; hex = "" }
            /^[0-9a-f]+  [0-9a-f][0-9a-f] / { if (!more) next
                                               o = $0; sub(/ .*/, "", o)
                                               h = substr($0, length(o) + 3, 48); gsub(/ /, "", h)
                                               hex = hex h; next }
            NF == 4 { put(); if ($2 == "") $2 = "0.000000000"; if ($1 != "") head = $0
                      more = 1; next }
            /^Frame \([0-9]+ bytes\):$/ { more = 1; next }
            /./ { more = 0 }
            END { put() }'
}

# tshark_packets_of FILE OUT: tshark_packets FILE into OUT, kept in $TMP for the same file
# (path, size, time, inode) asked again.
tshark_packets_of() {
    local c
    c="$TMP/tshark.$(stat -c '%n %s %.9Y %i' "$1" | md5sum | cut -c1-16)"
    [ -f "$c" ] || tshark_packets "$1" >"$c"
    cp "$c" "$2"
}

# check_links SRC ARCHIVE [sorted|part]: what `query --format pcapng` returns of ARCHIVE is
# what tshark reads of SRC, packet for packet (link type, time, lengths, bytes; order too
# unless `sorted`), and as many packets of each link type; `part` (libpcap stopped at damage
# that tshark reads past): every packet returned is one tshark reads.
check_links() {
    local src=$1 arch=$2 e
    fs query --archive "$arch" --format pcapng -w "$TMP/links.pcapng" 2>"$TMP/links.err" ||
        { fail "$src: query --format pcapng: $(cat "$TMP/links.err")"; return; }
    tshark_packets_of "$src" "$TMP/links.exp"
    tshark_packets "$TMP/links.pcapng" >"$TMP/links.got"
    if [ "${3:-}" != "" ]; then
        sort -o "$TMP/links.exp" "$TMP/links.exp"
        sort -o "$TMP/links.got" "$TMP/links.got"
    fi
    if [ "${3:-}" = part ]; then
        [ -z "$(comm -13 "$TMP/links.exp" "$TMP/links.got")" ] && pass ||
            fail "$src: query returns packets tshark does not read"
        return
    fi
    if cmp -s "$TMP/links.exp" "$TMP/links.got"; then pass; else
        fail "$src: query differs from tshark: $(diff "$TMP/links.exp" "$TMP/links.got" | head -3 | cut -c1-120)"
    fi
    for e in $(cut -f1 "$TMP/links.exp" | sort -un); do
        [ "$(awk -v e="$e" '$1 == e' "$TMP/links.exp" | wc -l)" = "$(awk -v e="$e" '$1 == e' "$TMP/links.got" | wc -l)" ] &&
            pass || fail "$src: encapsulation $e: packet counts differ from tshark's"
    done
}

# counter ERRFILE CMD NAME: the value of counter NAME (docs/counters.md) in the final report
# of `flowscope CMD` in ERRFILE: its counter lines, "flowscope CMD: a.b=1 a.c=2" (a line whose
# first word holds '='); empty when absent.
counter() {
    sed -n "s/^flowscope $2: //p" "$1" | awk -v n="$3" '$1 ~ /=/ {
        for (i = 1; i <= NF; i++) { k = v = $i; sub(/=.*/, "", k); sub(/^[^=]*=/, "", v)
                                    if (k == n) { print v; exit } } }'
}

# module_index ERRFILE CMD SPEC: N of the module given as SPEC (--module SPEC, or trigger:BPF)
# in the report of `flowscope CMD`, by its "module.N: SPEC" line; 1 if there is none.
module_index() {
    awk -v p="flowscope $2: module." -v s="$3" 'index($0, p) == 1 {
            r = substr($0, length(p) + 1); i = index(r, ": ")
            if (i && substr(r, i + 2) == s) { print substr(r, 1, i - 1); found = 1; exit } }
        END { exit !found }' "$1"
}

# module_counter ERRFILE CMD SPEC NAME: counter module.N.NAME of the module given as SPEC.
module_counter() {
    local n
    n=$(module_index "$1" "$2" "$3") && counter "$1" "$2" "module.$n.$4"
}

# crashed_archive DIR PCAP: an archive whose recorder was killed (SIGKILL) while its first
# segment was open, so that the next record recovers it ("archive: segment 1: left open by a
# crash"); 1 if no segment was opened within ~30 s.
crashed_archive() {
    local pid i
    "$FLOWSCOPE" record --read "$2" --replay-speed 0.1 --archive "$1" --qq-size 16M \
        --status-interval 0 2>/dev/null &
    pid=$!
    for ((i = 0; i < 300; i++)); do
        compgen -G "$1/segments/*.open" >/dev/null && break
        sleep 0.1
    done
    kill -9 "$pid"
    wait "$pid" 2>/dev/null
    compgen -G "$1/segments/*.open" >/dev/null
}

# metric URL NAME: a sample of a server's GET /metrics (empty when it has none)
metric() { curl -s "$1/metrics" | awk -v n="$2" '$1 == n { print $2 }'; }

# wait_analyzed URL N PID: until the recorder's analyzers looked at N packets or more (~30 s
# bound); a file source publishes a chunk when it is full, so the input's last chunk waits
# for the end
wait_analyzed() {
    local i v
    for ((i = 0; i < 300; i++)); do
        v=$(metric "$1" flowscope_flowtrack_packets_total)
        [ -n "$v" ] && [ "$v" -ge "$2" ] && return 0
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# stop_pid PID: SIGTERM (a collector or server writes out what it holds), SIGKILL if it is
# still there after ~10 s; waited for
stop_pid() {
    local i
    kill "$1" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}

# load_full_filters: FULL_FILTERS, the differential filters of diff_tcpdump.sh
load_full_filters() { eval "$(sed -n '/^FULL_FILTERS=(/,/^)/p' "$(dirname "${BASH_SOURCE[0]}")/diff_tcpdump.sh")"; }

# free_port: a TCP port on 127.0.0.1 free now (for a service that needs its port in a config)
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start_clickhouse DIR [HTTP_PORT]: Debian's clickhouse-server on 127.0.0.1 with its data, logs
# and configuration in DIR (the same DIR again: a restart with its data); CH_HTTP (its URL),
# CH_PORT and CH_PID set; 1 if it does not answer /ping within ~30 s.  A cluster
# `flowscope_test` of one shard (this server) serves Distributed tables.
start_clickhouse() {
    local d=$1 i
    CH_PORT=${2:-$(free_port)}
    mkdir -p "$d"
    [ -f "$d/tcp_port" ] || free_port >"$d/tcp_port"
    cat >"$d/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>$d/server.log</log><errorlog>$d/error.log</errorlog></logger>
  <http_port>$CH_PORT</http_port>
  <tcp_port>$(cat "$d/tcp_port")</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>$d/data/</path>
  <tmp_path>$d/tmp/</tmp_path>
  <user_files_path>$d/user_files/</user_files_path>
  <format_schema_path>$d/format_schemas/</format_schema_path>
  <users_config>$d/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>5368709120</mark_cache_size>
  <remote_servers><flowscope_test><shard><replica>
    <host>127.0.0.1</host><port>$(cat "$d/tcp_port")</port>
  </replica></shard></flowscope_test></remote_servers>
</yandex>
XML
    cat >"$d/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <profiles><default></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip></networks>
    <profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>
XML
    clickhouse-server --config-file="$d/config.xml" >>"$d/stdout" 2>&1 &
    CH_PID=$!
    CH_HTTP=http://127.0.0.1:$CH_PORT
    for ((i = 0; i < 300; i++)); do
        curl -s -m 2 "$CH_HTTP/ping" 2>/dev/null | grep -q Ok && return 0
        kill -0 "$CH_PID" 2>/dev/null || break
        sleep 0.1
    done
    return 1
}

# ch SQL: one statement at $CH_HTTP (its answer on stdout; 1 on an HTTP error)
ch() { curl -sS -m 60 --fail-with-body --data-binary "$1" "$CH_HTTP/"; }

# ch_schema FILE: the statements of a .sql file (separated by ';' at a line's end)
ch_schema() {
    local s
    while IFS= read -r -d ';' s; do
        s=$(sed '/^--/d' <<<"$s")
        [ -z "${s//[[:space:]]/}" ] || ch "$s" || return 1
    done < <(cat "$1"; echo ';')
}
