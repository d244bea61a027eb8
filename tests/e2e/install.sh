#!/bin/bash
# make install's CMake rules (GNUInstallDirs), run as a package build runs them:
# `DESTDIR=ROOT cmake --install BUILD --prefix /usr` (what make install
# DESTDIR=ROOT PREFIX=/usr does after configuring) puts the binary in
# usr/bin, each man page in usr/share/man/manN, docs/examples in
# usr/share/doc/flowscope/examples, Wireshark's extcap script in its extcap directory,
# nothing outside ROOT; the installed binary runs (--version) without the build tree, and
# man finds the installed pages.
# BUILD = the build directory (tests/e2e/CMakeLists.txt).
. "$(dirname "$0")/lib.sh"
SRC=${SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
: "${BUILD:?BUILD must name the build directory}"
R=$TMP/root

DESTDIR=$R cmake --install "$BUILD" --prefix /usr >"$TMP/install.log" 2>&1 ||
    fail "cmake --install: exit $?: $(tail -3 "$TMP/install.log")"
grep -E '^-- (Installing|Up-to-date): ' "$TMP/install.log" | grep -v " $R/" >"$TMP/outside"
[ ! -s "$TMP/outside" ] && pass || fail "installed outside DESTDIR: $(head -3 "$TMP/outside")"

# the binary, runnable from there alone, without a RUNPATH into the build tree
[ -x "$R/usr/bin/flowscope" ] && pass || fail "no usr/bin/flowscope"
readelf -d "$R/usr/bin/flowscope" 2>/dev/null | grep -E 'R(UN)?PATH' | grep -q "$BUILD" &&
    fail "the installed binary's RUNPATH names the build tree" || pass
(cd "$TMP" && "$R/usr/bin/flowscope" --version) >"$TMP/version" 2>&1 && pass ||
    fail "installed flowscope --version: exit $?"
grep -qE '^flowscope [0-9]+\.[0-9]+' "$TMP/version" && pass || fail "--version: $(head -1 "$TMP/version")"

# the man pages the build made, each in its section's directory, and man finds them
n=0
for p in "$BUILD"/docs/man/*.[157]; do
    [ -e "$p" ] || continue
    n=$((n + 1))
    s=${p##*.}
    dest=$R/usr/share/man/man$s/$(basename "$p")
    # (gzipped with -DFLOWSCOPE_MAN_GZIP=ON, as a package carries them)
    { cmp -s "$p" "$dest" || { [ -e "$dest.gz" ] && zcat "$dest.gz" | cmp -s "$p" -; }; } && pass ||
        fail "$(basename "$p") not installed as usr/share/man/man$s/$(basename "$p")[.gz]"
done
[ "$n" -gt 0 ] || note "the build made no man pages (no pandoc): none checked"
if [ "$n" -gt 0 ] && command -v man >/dev/null; then
    [ "$(man -M "$R/usr/share/man" -w flowscope-record)" = "$(ls "$R"/usr/share/man/man1/flowscope-record.1*)" ] &&
        pass || fail "man -M ROOT/usr/share/man -w flowscope-record: $(man -M "$R/usr/share/man" -w flowscope-record 2>&1)"
    MANWIDTH=80 man -M "$R/usr/share/man" 5 flowscope-archive 2>/dev/null | grep -q 'flowscope-archive - ' &&
        pass || fail "man -M ROOT/usr/share/man 5 flowscope-archive shows no NAME line"
fi

# Wireshark's extcap script (packaging/flowscope-extcap.in), in Wireshark's directory (the
# multiarch one of Debian's wireshark-common), naming the installed binary
EXT=$R/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)/wireshark/extcap/flowscope
[ -x "$EXT" ] && pass || fail "no executable ${EXT#"$R"}: $(find "$R" -path '*extcap*')"
grep -qx 'exec "/usr/bin/flowscope" extcap "$@"' "$EXT" 2>/dev/null && pass ||
    fail "${EXT#"$R"} does not run /usr/bin/flowscope extcap: $(cat "$EXT" 2>/dev/null)"
sed "s|/usr/bin/flowscope|$R/usr/bin/flowscope|" "$EXT" >"$TMP/extcap" && chmod +x "$TMP/extcap"
"$TMP/extcap" --extcap-interfaces 2>&1 | grep -q '^interface {value=flowscope}' && pass ||
    fail "the installed extcap script with the installed binary lists no interface"

# docs/examples, whole
(cd "$SRC/docs/examples" && find . -type f | sort) >"$TMP/want"
(cd "$R/usr/share/doc/flowscope/examples" 2>/dev/null && find . -type f | sort) >"$TMP/got"
[ -s "$TMP/want" ] && cmp -s "$TMP/want" "$TMP/got" && pass ||
    fail "usr/share/doc/flowscope/examples differs from docs/examples: $(diff "$TMP/want" "$TMP/got" | head -5)"
finish
