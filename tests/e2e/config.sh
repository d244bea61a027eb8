#!/bin/bash
# The configuration file (docs/config.md): `record`, `monitor` and `serve --config FILE`.
#  * a file recording ../shared/pcaps stores what the same options on the command line
#    store: `flowscope info` agrees on segments and stored bytes (so every key took effect),
#    and `flowscope query` answers as tcpdump does on both archives;
#  * the command line overrides the file: a single value, the source (and its rx-queues),
#    the --trigger list;
#    sections, comments and indented lines; monitor skips [record];
#  * each error (unknown key, bad value, a flag given a non-boolean or no value, an empty
#    value, a key twice, two sources, `config` in the file, an unknown section, `key: value`,
#    a missing or unreadable file, --config twice) is exit status 2 and one line naming the
#    file, the line and the key, and nothing is recorded;
#  * serve --config: its [serve] keys (a [record] section skipped) serve the file's archive,
#    the command line's --listen replacing the file's; record skips [serve]; a bad value or
#    key is exit status 2 and one line naming the file and the line;
#  * packaging/flowscope.conf (the example installed as /etc/flowscope/flowscope.conf) parses,
#    as it is and with every `# key = value` line uncommented.
. "$(dirname "$0")/lib.sh"
SRC=${SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
IN=$PCAPS/http.pcap
C=$TMP/c.conf

# info_lines ARCHIVE: what an archive holds, without its name or run times
info_lines() { fs info --archive "$1" 2>/dev/null | grep -E '^(segments|packets|bytes|flows):'; }

# same_answers ARCHIVE: query answers the filters as tcpdump does
same_answers() {
    local f
    for f in "" "tcp" "port 80" "host 10.99.1.80"; do
        oracle "$IN" "$TMP/exp.pcap" ${f:+"$f"}
        fs query --archive "$1" -w "$TMP/got.pcap" ${f:+"$f"} 2>/dev/null &&
            cmp -s "$TMP/exp.pcap" "$TMP/got.pcap" && pass ||
            fail "$1: query '$f' differs from tcpdump"
    done
}

# ---- a file equals the same command line -----------------------------------------------------
cat >"$C" <<EOF
# a recorder from a file
read = $IN
archive = $TMP/from-file
qq-size = 32M
stats-interval = 0
dumpers = 1
segment-size = 1M
zstd-level = 3
max-flows = 4096
strict-modules = false
EOF
fs record --config "$C" >"$TMP/out" 2>"$TMP/err" && pass || fail "record --config: exit $?: $(tail -1 "$TMP/err")"
fs record --read "$IN" --archive "$TMP/from-cli" --qq-size 32M --stats-interval 0 --dumpers 1 \
    --segment-size 1M --zstd-level 3 --max-flows 4096 2>/dev/null || fail "record (command line): exit $?"
fs record --read "$IN" --archive "$TMP/defaults" --qq-size 32M --stats-interval 0 --dumpers 1 \
    2>/dev/null || fail "record (defaults): exit $?"
[ -n "$(info_lines "$TMP/from-file")" ] && [ "$(info_lines "$TMP/from-file")" = "$(info_lines "$TMP/from-cli")" ] &&
    pass || fail "the file's archive differs from the command line's: $(info_lines "$TMP/from-file" | head -3) vs $(info_lines "$TMP/from-cli" | head -3)"
[ "$(info_lines "$TMP/from-file")" != "$(info_lines "$TMP/defaults")" ] && pass ||
    fail "the file's segment-size and zstd-level had no effect (same as the defaults)"
same_answers "$TMP/from-file"
same_answers "$TMP/from-cli"

# ---- the command line overrides the file --------------------------------------------------------
cat >"$C" <<EOF
; every form the syntax allows
live = no-such-interface0
rx-queues = 4
   archive = $TMP/not-this-one
qq-size = 32M ; the ring
stats-interval = 0
trigger = udp
capture = triggered
[monitor]
module = no-such-module
[record]
trigger = icmp
EOF
fs record --config "$C" --read "$IN" --archive "$TMP/over" --qq-size 64M --trigger tcp \
    >/dev/null 2>"$TMP/err" && pass || fail "record --config with overrides: exit $?: $(tail -1 "$TMP/err")"
[ ! -e "$TMP/not-this-one" ] && [ -d "$TMP/over" ] && pass || fail "--archive did not override the file's"
grep -q '^flowscope record: QQ 64 MiB' "$TMP/err" && pass || fail "--qq-size did not override the file's: $(grep QQ "$TMP/err")"
grep -q 'file .*http.pcap, 1 queue' "$TMP/err" && pass || fail "--read did not replace the file's live source and its rx-queues"
[ "$(grep -oE 'module\.[0-9]+: .*' "$TMP/err" | tr '\n' ' ')" = "module.0: trigger:tcp " ] && pass ||
    fail "--trigger did not replace the file's list: $(grep -oE 'module\.[0-9]+: .*' "$TMP/err" | tr '\n' ' ')"
oracle "$IN" "$TMP/exp.pcap" tcp
fs query --archive "$TMP/over" -w "$TMP/got.pcap" 2>/dev/null && cmp -s "$TMP/exp.pcap" "$TMP/got.pcap" &&
    pass || fail "capture = triggered from the file with --trigger tcp: not tcpdump's 'tcp' packets"
# monitor reads the same kind of file: its own [monitor] section, [record] skipped
cat >"$C" <<EOF
read = $IN
stats-interval = 0
[record]
archive = $TMP/not-monitor
[monitor]
trigger = tcp port 80
EOF
fs monitor --config "$C" >"$TMP/out" 2>"$TMP/err" && grep -q 'trigger trigger:tcp port 80' "$TMP/out" &&
    [ ! -e "$TMP/not-monitor" ] && pass || fail "monitor --config: exit $?: $(tail -1 "$TMP/err")"

# ---- errors: status 2, one line naming the file, the line and the key, nothing recorded -----------
# bad_line "N: KEY...: WHAT" LINE...: a file of `archive` then LINE... is refused: "FILE:N: KEY...: WHAT"
bad_line() {
    local pat=$1 rc
    shift
    { echo "archive = $TMP/never"; printf '%s\n' "$@"; } >"$C"
    fs record --config "$C" --read "$IN" >/dev/null 2>"$TMP/err"
    rc=$?
    [ "$rc" = 2 ] && pass || fail "'$*': exit $rc, expected 2 ($(head -1 "$TMP/err"))"
    one_line_error "$TMP/err" "^flowscope record: $C:$pat"
    [ ! -e "$TMP/never" ] && pass || fail "'$*': an archive was created"
}
bad_line "2: bogus-key: unknown key" "bogus-key = 1"
bad_line "3: --qq-size '1x': expected" "stats-interval = 0" "qq-size = 1x"
bad_line "2: --zstd-level '40'" "zstd-level = 40"
bad_line "2: strict-modules = maybe: a flag" "strict-modules = maybe"
bad_line "2: 'strict-modules': not 'key = value'" "strict-modules"
bad_line "2: max-age: no value" "max-age ="
bad_line "3: qq-size: given twice \(also on line 2\)" "qq-size = 32M" "qq-size = 64M"
bad_line "3: live: read is given on line 2" "read = $IN" "live = eth0"
bad_line "2: config: a config file cannot name another" "config = $C"
bad_line "3: \[recrod\]: unknown section" "[recrod]" "qq-size = 32M"
bad_line "2: 'qq-size': write qq-size = VALUE" "qq-size: 32M"
bad_line "2: 'trigger': line longer than" "trigger = $(printf 'host 10.0.0.%d or ' $(seq 1 20))port 80"
# monitor: its own keys, its own checks of their values
printf 'read = %s\nmodule = stats\narchive = %s\n' "$IN" "$TMP/never" >"$C"
fs monitor --config "$C" >/dev/null 2>"$TMP/err"
rc=$?
[ "$rc" = 2 ] && pass || fail "monitor: a record-only key outside [record]: exit $rc, expected 2"
one_line_error "$TMP/err" "^flowscope monitor: $C:3: archive: unknown key"
printf 'read = %s\nmodule = stats\nanalyzers = 2\n' "$IN" >"$C"
fs monitor --config "$C" >/dev/null 2>"$TMP/err"
rc=$?
[ "$rc" = 2 ] && pass || fail "monitor: analyzers = 2: exit $rc, expected 2"
one_line_error "$TMP/err" "^flowscope monitor: $C:3: --analyzers: in immediate mode"
# the file itself
for f in "$TMP/no-such.conf" "$TMP"; do
    fs record --config "$f" --read "$IN" --archive "$TMP/never" >/dev/null 2>"$TMP/err"
    rc=$?
    [ "$rc" = 2 ] && pass || fail "--config $f: exit $rc, expected 2"
    one_line_error "$TMP/err" "^flowscope record: $f: cannot (open|read) the config file"
done
echo "qq-size = 32M" >"$C"
fs record --config "$C" --config "$C" --read "$IN" --archive "$TMP/never" >/dev/null 2>"$TMP/err"
rc=$?
[ "$rc" = 2 ] && pass || fail "--config twice: exit $rc, expected 2"
one_line_error "$TMP/err" "^flowscope record: --config given twice"
[ ! -e "$TMP/never" ] && pass || fail "an archive was created by a refused command"

# ---- serve --config: the API's settings from [serve] --------------------------------------------
# a [record] section is skipped; the file's address (not loopback, no TLS) is refused ...
printf '%s\n' '[record]' 'afpacket = eth9' '' '[serve]' "archive = $TMP/from-file" \
    'listen = 192.0.2.1:8080' 'max-queries = 2' 'query-timeout = 1m' >"$C"
fs serve --config "$C" >/dev/null 2>"$TMP/err"
rc=$?
[ "$rc" = 1 ] && pass || fail "serve: the file's non-loopback listen without TLS: exit $rc, expected 1"
one_line_error "$TMP/err" "^flowscope serve: refusing plain HTTP on 192.0.2.1:8080"
# ... and the command line's replaces it: the file's archive is served
"$FLOWSCOPE" serve --config "$C" --listen 127.0.0.1:0 >"$TMP/serve.out" 2>"$TMP/serve.err" &
SPID=$!
at_exit 'kill "$SPID" 2>/dev/null'
if wait_for "$TMP/serve.out" '^flowscope serve: listening on http://127\.0\.0\.1:[0-9]+$' "$SPID" 100; then
    URL=$(sed -n 's/^flowscope serve: listening on //p' "$TMP/serve.out")
    oracle "$IN" "$TMP/exp.pcap" "port 80"
    timeout 60 curl -sS -G "$URL/api/v1/query" --data-urlencode "filter=port 80" \
        -o "$TMP/got.pcap" 2>"$TMP/err" && cmp -s "$TMP/exp.pcap" "$TMP/got.pcap" && pass ||
        fail "serve --config: /api/v1/query differs from tcpdump: $(cat "$TMP/err")"
    kill -TERM "$SPID"
    wait "$SPID" && pass || fail "serve --config: exit $? on SIGTERM, expected 0"
else
    fail "serve --config did not start: $(cat "$TMP/serve.err")"
    kill "$SPID" 2>/dev/null
fi
# record reads the same file's [record] and skips its [serve]
printf '%s\n' '[serve]' 'listen = 192.0.2.1:8080' 'max-answer-bytes = 1G' '[record]' "read = $IN" \
    "archive = $TMP/rec-serve" 'qq-size = 32M' 'stats-interval = 0' >"$C"
fs record --config "$C" >/dev/null 2>"$TMP/err" && pass ||
    fail "record with a [serve] section: $(tail -1 "$TMP/err")"
# errors name the file and the line
serve_bad() {
    fs serve --config "$C" >/dev/null 2>"$TMP/err"
    local rc=$?
    [ "$rc" = 2 ] && pass || fail "serve: '$2': exit $rc, expected 2"
    one_line_error "$TMP/err" "^flowscope serve: $C:$1"
}
printf '%s\n' "archive = $TMP/from-file" 'listen = 127.0.0.1:0' 'max-queries = 0' >"$C"
serve_bad "3: --max-queries '0': expected a whole number" "max-queries = 0"
printf '%s\n' 'afpacket = eth1' "archive = $TMP/from-file" >"$C"
serve_bad "1: afpacket: unknown key: .*flowscope serve --help" "a record key outside [record]"
printf '%s\n' '[serve]' "archive = $TMP/from-file" 'tls-key =' >"$C"
serve_bad "3: tls-key: no value" "an empty value"
printf '%s\n' '[serve]' 'idle-timeout = forever' >"$C"
serve_bad "2: --idle-timeout 'forever': expected a duration" "idle-timeout = forever"

# ---- the example config ----------------------------------------------------------------------------
EX=$SRC/packaging/flowscope.conf
fs record --config "$EX" --read "$IN" --archive "$TMP/ex1" --qq-size 32M --stats-interval 0 \
    >/dev/null 2>"$TMP/err" && pass || fail "packaging/flowscope.conf as installed: $(tail -1 "$TMP/err")"
# uncommented: every key it shows is a key, every value valid (the source: overridden)
sed -E 's/^# ?([a-z][a-z-]* = )/\1/' "$EX" >"$TMP/ex.conf"
n=$(grep -cE '^[a-z][a-z-]* = ' "$TMP/ex.conf")
[ "$n" -ge 10 ] && pass || fail "packaging/flowscope.conf shows only $n keys"
fs record --config "$TMP/ex.conf" --read "$IN" --archive "$TMP/ex2" --qq-size 32M --stats-interval 0 \
    >/dev/null 2>"$TMP/err" && pass || fail "packaging/flowscope.conf uncommented: $(tail -1 "$TMP/err")"
same_answers "$TMP/ex2"
finish
