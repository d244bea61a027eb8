#!/bin/bash
# The man pages (docs/man/: made by pandoc from docs/*.md at build time):
#  * every page is there: flowscope(1), one per command, flowscope-modules(7),
#    flowscope-archive(5), flowscope-counters(7), and flowscope.conf(5) when docs/config.md exists;
#  * groff, which man-db renders them with, formats each with every warning on
#    (-ww) and says nothing; man -l shows each, from NAME on;
#  * every option `flowscope COMMAND --help` names is in flowscope-COMMAND(1),
#    and each command's page names no option that --help does not know.
# MANDIR = the build's docs/man directory (tests/e2e/CMakeLists.txt).
. "$(dirname "$0")/lib.sh"
SRC=${SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
: "${MANDIR:?MANDIR must name the build directory of the man pages}"
CMDS="record query monitor flows info index gen serve extcap"

pages="flowscope.1 flowscope-modules.7 flowscope-archive.5 flowscope-counters.7"
for c in $CMDS; do pages="$pages flowscope-$c.1"; done
[ -e "$SRC/docs/config.md" ] && pages="$pages flowscope.conf.5" ||
    note "docs/config.md absent: no flowscope.conf(5) expected"
if ! ls "$MANDIR"/*.[157] >/dev/null 2>&1 && ! command -v pandoc >/dev/null; then
    skip "pandoc not installed: the build made no man pages (make deps installs it)"
fi
command -v groff >/dev/null && command -v man >/dev/null || skip "groff or man missing (make deps)"

for p in $pages; do
    f=$MANDIR/$p
    [ -s "$f" ] || { fail "$p: not built (in $MANDIR)"; continue; }
    warn=$(groff -ww -z -t -man "$f" 2>&1)
    [ -z "$warn" ] && pass || fail "$p: groff -ww: $(head -c 400 <<<"$warn")"
    MANWIDTH=1000 man --warnings -l "$f" 2>"$TMP/man.err" >"$TMP/$p.txt"
    [ ! -s "$TMP/man.err" ] && pass || fail "$p: man -l: $(head -c 400 "$TMP/man.err")"
    name=${p%.*}
    grep -qE "^NAME" "$TMP/$p.txt" && grep -qE "^ +$name - " "$TMP/$p.txt" && pass ||
        fail "$p: man -l shows no 'NAME / $name - ...'"
done

# --help against the page, both ways (options inside quotes are other programs' arguments,
# as in cli.sh)
for c in $CMDS; do
    txt=$TMP/flowscope-$c.1.txt
    [ -s "$txt" ] || continue
    "$FLOWSCOPE" "$c" --help >"$TMP/help" 2>&1 || fail "$c --help: exit $?"
    sed "s/'[^']*'//g" "$TMP/help" | grep -o -- '--[a-z][a-z0-9-]*' | grep -vx -- --help | sort -u >"$TMP/help.opts"
    while read -r opt; do
        grep -q -- "$opt\b" "$txt" && pass || fail "flowscope-$c(1) lacks $opt, which '$c --help' names"
    done <"$TMP/help.opts"
    # the options the page gives as its own (in its SYNOPSIS, or as a tag at the start of a
    # line: its text mentions other commands' too), each in --help
    { awk '/^SYNOPSIS/ { s = 1; next } /^[A-Z]/ { s = 0 } s' "$txt"
      grep -E -- '^       --[a-z]' "$txt"; } | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u >"$TMP/page.opts"
    [ -s "$TMP/page.opts" ] || fail "flowscope-$c(1): no synopsis or option tags found"
    while read -r opt; do
        grep -qx -- "$opt" "$TMP/help.opts" && pass ||
            fail "flowscope-$c(1) documents $opt, which '$c --help' does not name"
    done <"$TMP/page.opts"
done
finish
