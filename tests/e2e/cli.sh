#!/bin/bash
# The command line against its documentation (docs/cli.md, README.md):
#  * every option in a command's synopsis and option tables in docs/cli.md
#    appears in `flowscope COMMAND --help` (and the values a table lists, such
#    as `--capture all|triggered`), and every option --help names is
#    documented: the two cannot drift apart;
#  * `flowscope --help` names --version;
#  * a closed pipe (`query -w - | head -c 100`) ends with a status the
#    exit-status table lists, and prints nothing;
#  * the README's "Using it" examples, run as written on the archive they
#    build, each answer something;
#  * the output docs/cli.md shows for `flowscope gen` is what the command it
#    shows prints.
. "$(dirname "$0")/lib.sh"
SRC=${SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
DOC=$SRC/docs/cli.md

# doc_options: "COMMAND --option" for each option of each command's synopsis (the first
# code block of its section) and option tables; "COMMAND =value" for the literal values a
# table row or the synopsis gives (`--capture all\|triggered`, `--format pcapng`)
doc_options() {
    awk '
        /^## flowscope / { cmd = $3; syn = 1; next }
        /^## / { cmd = ""; next }
        cmd == "" { next }
        syn && /^    / { scan($0); next }
        syn && /^[^ ]/ && !/^$/ { syn = 0 }
        /^\| *`-/ { s = $0; sub(/^\| */, "", s); scan(substr(s, 1, index(s, " | "))) }
        function scan(s,    rest, m, opt, vals, n, v, i) {
            rest = s
            while (match(rest, /--[a-z][a-z0-9-]*( [a-z0-9|\\:-]+)?/)) {
                m = substr(rest, RSTART, RLENGTH)
                rest = substr(rest, RSTART + RLENGTH)
                opt = m; sub(/ .*/, "", opt)
                print cmd, opt
                if (m !~ / /) continue
                vals = m; sub(/^[^ ]* /, "", vals); gsub(/\\/, "", vals)
                n = split(vals, v, "|")
                for (i = 1; i <= n; i++)
                    if (v[i] ~ /^[a-z][a-z0-9]*$/) print cmd, "=" v[i]
            }
        }' "$DOC" | sort -u
}

# ---- --help and docs/cli.md agree ------------------------------------------------------------
doc_options >"$TMP/doc.opts"
[ "$(cut -d' ' -f1 "$TMP/doc.opts" | sort -u | tr '\n' ' ')" = "extcap flows gen index info monitor query record serve trigger " ] &&
    pass || fail "docs/cli.md: expected a section per command, got $(cut -d' ' -f1 "$TMP/doc.opts" | sort -u | tr '\n' ' ')"
for cmd in record monitor query flows info index gen serve trigger extcap; do
    "$FLOWSCOPE" "$cmd" --help >"$TMP/help" 2>&1 || fail "$cmd --help: exit $?"
    while read -r _ opt; do
        if [ "${opt#=}" != "$opt" ]; then
            grep -qw -- "${opt#=}" "$TMP/help" && pass ||
                fail "$cmd --help does not mention '${opt#=}', a value docs/cli.md gives"
        else
            grep -q -- "$opt\b" "$TMP/help" && pass ||
                fail "$cmd --help does not mention $opt, which docs/cli.md documents"
        fi
    done < <(grep "^$cmd " "$TMP/doc.opts")
    # (options inside quotes are examples of other programs' arguments: DPDK EAL's --vdev)
    for opt in $(sed "s/'[^']*'//g" "$TMP/help" | grep -o -- '--[a-z][a-z0-9-]*' | sort -u); do
        [ "$opt" = --help ] && continue
        grep -q "^$cmd $opt\$" "$TMP/doc.opts" && pass ||
            fail "$cmd --help names $opt, which docs/cli.md does not document for $cmd"
    done
done
# modules: built-in names, C (.so) and Lua (.lua), for both commands that run them
for cmd in record monitor; do
    "$FLOWSCOPE" "$cmd" --help | grep -q 'PATH\.lua' && pass || fail "$cmd --help omits Lua modules (PATH.lua)"
done
"$FLOWSCOPE" --help | grep -q -- '--version' && pass || fail "flowscope --help does not mention --version"
"$FLOWSCOPE" --version | grep -qE '^flowscope [0-9]+\.[0-9]+' && pass || fail "flowscope --version"

# ---- a closed pipe: a status the table lists, nothing on stderr -------------------------------
A=$TMP/a
fs record --read "$PCAPS/http.pcap" --archive "$A" --qq-size 32M --stats-interval 0 2>/dev/null || fail "record"
fs query --archive "$A" -w - 2>"$TMP/pipe.err" | head -c 100 >/dev/null
rc=${PIPESTATUS[0]}
sed -n '/^## Exit status/,/^## /p' "$DOC" | grep -q "^| $rc |" && pass ||
    fail "query -w - | head -c 100 exits $rc, a status docs/cli.md's exit-status table does not list"
[ ! -s "$TMP/pipe.err" ] && pass || fail "query -w - | head: stderr says $(head -c 300 "$TMP/pipe.err")"

# ---- the README's examples answer something ---------------------------------------------------
# the "Using it" block, run as written (its archive /tmp/a and ../shared moved to this test's)
sed -n '/^## Using it/,/^\* /p' "$SRC/README.md" | sed -n 's/^    \(flowscope .*\/tmp\/a.*\)/\1/p' |
    sed -e "s#/tmp/a#$TMP/readme#g" -e "s#\.\./shared#$SHARED#g" >"$TMP/readme.cmds"
grep -q "^flowscope query " "$TMP/readme.cmds" && pass || fail "no query example found in README.md's \"Using it\": update this test"
flowscope() { timeout 300 "$FLOWSCOPE" "$@"; }
while read -r line; do
    (cd "$TMP" && set -o pipefail && eval "$line") >"$TMP/readme.out" 2>"$TMP/readme.err" </dev/null
    rc=$?
    if [ $rc -ne 0 ] || grep -q "no packets matched" "$TMP/readme.err" ||
        { [ "${line#*| tcpdump}" != "$line" ] && [ ! -s "$TMP/readme.out" ]; }; then
        fail "README: '$line' answers nothing (exit $rc): $(grep -v '^reading from' "$TMP/readme.err" | head -c 300)"
    else
        pass
    fi
done <"$TMP/readme.cmds"
unset -f flowscope

# ---- docs/cli.md's gen example is what gen prints ---------------------------------------------
sed -n '/^## flowscope gen/,$p' "$DOC" | grep -A1 '^    \$ flowscope gen ' | head -2 >"$TMP/gen.doc"
cmd=$(sed -n '1s/^    \$ flowscope //p' "$TMP/gen.doc")
want=$(sed -n '2s/^    //p' "$TMP/gen.doc")
if [ -z "$cmd" ] || [ -z "$want" ]; then
    fail "docs/cli.md shows gen's output line without the command that prints it ('    \$ flowscope gen ...')"
else
    # shellcheck disable=SC2086 # the documented command's words
    (cd "$TMP" && "$FLOWSCOPE" $cmd 2>"$TMP/gen.err") || fail "gen example: exit $?"
    [ "$(cat "$TMP/gen.err")" = "$want" ] && pass ||
        fail "docs/cli.md says 'flowscope $cmd' prints '$want'; it prints '$(cat "$TMP/gen.err")'"
fi
finish
