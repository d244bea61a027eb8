#!/bin/bash
# flowscope --version (docs/cli.md): the version, the git commit the binary was
# built from (git rev-parse in the source tree is the oracle; "unknown" when
# the source is no git checkout, as in a tarball: cmake/gitcommit.cmake is run on
# a directory outside any repository), and each library it was built with,
# named with a version number (pkg-config --modversion is the oracle), and the
# running one where the library can tell (DPDK, libpcap, zstd, LMDB).
. "$(dirname "$0")/lib.sh"
SRC=${SRC:-$(cd "$(dirname "$0")/../.." && pwd)}

"$FLOWSCOPE" --version >"$TMP/v" 2>"$TMP/err" || fail "--version: exit $?"
[ -s "$TMP/err" ] && fail "--version wrote to stderr: $(head -c 200 "$TMP/err")"
sed 's/^/# /' "$TMP/v"
grep -qE '^flowscope [0-9]+\.[0-9]+\.[0-9]+$' "$TMP/v" && pass || fail "no 'flowscope X.Y.Z' line"

# the commit: the tree's HEAD (maybe -dirty) when the source is a git checkout
if head=$(git -C "$SRC" rev-parse --short=12 HEAD 2>/dev/null); then
    grep -qE "^commit $head(-dirty)?\$" "$TMP/v" && pass ||
        fail "commit line '$(grep ^commit "$TMP/v")' is not HEAD ($head; built before the last commit? rebuild)"
else
    grep -qx 'commit unknown' "$TMP/v" && pass || fail "no git checkout, but not 'commit unknown'"
fi
# a tarball: unpacked alone, and unpacked inside another repository (whose commit is not its)
mkdir -p "$TMP/tarball" "$TMP/repo/tarball"
git -C "$TMP/repo" init -q && git -C "$TMP/repo" -c user.name=t -c user.email=t@t \
    commit -q --allow-empty -m x || fail "git init"
for t in "$TMP/tarball" "$TMP/repo/tarball"; do
    rm -f "$TMP/git.h"
    GIT_CEILING_DIRECTORIES=$TMP cmake -DSRC="$t" -DOUT="$TMP/git.h" \
        -P "$SRC/cmake/gitcommit.cmake" || fail "cmake/gitcommit.cmake: exit $?"
    grep -qx '#define FLOWSCOPE_COMMIT "unknown"' "$TMP/git.h" && pass ||
        fail "$t, no git checkout of its own: the commit is not 'unknown': $(cat "$TMP/git.h")"
done

# every library: built with (its pkg-config version), and running (a version) where it can say
while read -r name module runtime; do
    built=$(pkg-config --modversion "$module")
    line=$(grep -E "^$name " "$TMP/v")
    [ -n "$line" ] || { fail "--version does not name $name"; continue; }
    [ "$(awk '{print $2}' <<<"$line")" = "$built" ] && pass ||
        fail "$name: built with '$(awk '{print $2}' <<<"$line")', pkg-config says $built"
    if [ "$runtime" = yes ]; then
        awk '{print $3}' <<<"$line" | grep -qE '^[0-9]+\.[0-9]+' && pass ||
            fail "$name: no running version in '$line'"
    fi
done <<'LIBS'
DPDK libdpdk yes
libpcap libpcap yes
zstd libzstd yes
LMDB lmdb yes
liburing liburing no
LuaJIT luajit no
LIBS
finish
