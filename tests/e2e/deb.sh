#!/bin/bash
# The Debian package, built by CPack from this build (what `make deb` runs), without installing
# it (this is a dev machine; the install in a bare Debian 12 root is the fresh-check command in
# docs/install.md): its name is flowscope_<version>_<arch>.deb; it holds every file
# `cmake --install` installs, man pages gzipped, plus the copyright and changelog.gz; the
# files the appliance needs are there (binary, completion, docs/examples, Wireshark's extcap
# script, and the unit and the example config once they are in the tree, the config as a
# conffile); Depends names the
# runtime libraries by their Debian names (dpkg-shlibdeps) and adduser; lintian finds no
# error; the maintainer scripts pass sh -n and shellcheck.
# Environment: BUILD (the build directory), SANITIZE (FLOWSCOPE_SANITIZE of that build).
. "$(dirname "$0")/lib.sh"
: "${BUILD:?BUILD must name the build directory}"
[ -z "${SANITIZE:-}" ] || skip "the package is made from the release build, not a $SANITIZE build"
for t in cpack dpkg-deb dpkg-shlibdeps lintian file; do
    command -v "$t" >/dev/null || fail "$t is missing (Makefile's DEB_BUILD/DEB_TEST installs it)"
done
[ "$FAILS" -eq 0 ] || finish

# ---- build it ----------------------------------------------------------------------------------
VER=$("$FLOWSCOPE" --version | head -1 | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -1)
[ -n "$VER" ] || fail "flowscope --version names no version: $("$FLOWSCOPE" --version | head -1)"
ARCH=$(dpkg --print-architecture)
DEB=$TMP/pkg/flowscope_${VER}_${ARCH}.deb
(cd "$BUILD" && timeout 600 cpack --config CPackConfig.cmake -B "$TMP/pkg") >"$TMP/cpack.out" 2>&1 ||
    fail "cpack: $(tail -5 "$TMP/cpack.out")"
[ -f "$DEB" ] && pass || { fail "no $DEB: $(ls "$TMP/pkg") $(tail -3 "$TMP/cpack.out")"; finish; }

# ---- its files -----------------------------------------------------------------------------------
dpkg-deb -c "$DEB" | awk '$1 !~ /^d/ {print $6}' | sed 's|^\./|/|' | sort >"$TMP/files"
has() { grep -qx -- "$1" "$TMP/files" && pass || fail "the package lacks $1"; }
has /usr/bin/flowscope
has /usr/share/bash-completion/completions/flowscope
has /usr/share/doc/flowscope/copyright
has /usr/share/doc/flowscope/changelog.gz
has "/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)/wireshark/extcap/flowscope"
while read -r f; do has "/usr/share/doc/flowscope/examples${f#.}"; done < <(cd "$SRC/docs/examples" && find . -type f)
if [ -f "$SRC/packaging/flowscope@.service" ]; then has /lib/systemd/system/flowscope@.service
else note "packaging/flowscope@.service is not in this tree: not checked"; fi
dpkg-deb -f "$DEB" Package Version Architecture >"$TMP/fields"
printf 'Package: flowscope\nVersion: %s\nArchitecture: %s\n' "$VER" "$ARCH" | cmp -s - "$TMP/fields" &&
    pass || fail "control fields: $(tr '\n' ' ' <"$TMP/fields")"
dpkg-deb --ctrl-tarfile "$DEB" | tar -xO ./conffiles 2>/dev/null >"$TMP/conffiles"
if [ -f "$SRC/packaging/flowscope.conf" ]; then
    has /etc/flowscope/flowscope.conf
    grep -qx /etc/flowscope/flowscope.conf "$TMP/conffiles" && pass ||
        fail "/etc/flowscope/flowscope.conf is not a conffile: '$(cat "$TMP/conffiles")'"
else
    note "packaging/flowscope.conf is not in this tree: not checked"
fi
# exactly what `make install` installs (with the prefix the package uses), man pages gzipped
DESTDIR=$TMP/stage cmake --install "$BUILD" --prefix /usr >"$TMP/install.out" 2>&1 ||
    fail "cmake --install: $(tail -3 "$TMP/install.out")"
(cd "$TMP/stage" && find . -type f -o -type l) | sed 's|^\.||' |
    sed -E 's|^(/usr/share/man/.*[^z])$|\1.gz|' | sort >"$TMP/installed"
grep -vx /usr/share/doc/flowscope/changelog.gz "$TMP/files" >"$TMP/packaged"
diff "$TMP/installed" "$TMP/packaged" >"$TMP/d" && pass ||
    fail "make install (<) and the package (>) differ: $(tr '\n' ' ' <"$TMP/d")"
grep '^/usr/share/man/' "$TMP/files" | grep -v '\.gz$' >"$TMP/raw" && fail "man pages not gzipped: $(cat "$TMP/raw")"
note "man pages in the package: $(grep -c '^/usr/share/man/' "$TMP/files")"
# stripped: no debug sections in the binary
dpkg-deb -x "$DEB" "$TMP/x"
file "$TMP/x/usr/bin/flowscope" | grep -q ', stripped' && pass || fail "the binary is not stripped"

# ---- Depends: the libraries the binary links, by their Debian names ---------------------------
DEPENDS=$(dpkg-deb -f "$DEB" Depends)
note "Depends: $DEPENDS"
for lib in libc6 libpcap0.8 libzstd1 liblmdb0 liburing2 librte-ethdev23 adduser; do
    grep -qE "(^|, )$lib( |,|$)" <<<"$DEPENDS" && pass || fail "Depends lacks $lib: $DEPENDS"
done
# every library the binary links (its NEEDED entries, found where ldd finds them) belongs to a
# package Depends names
owner() { dpkg -S "$1" 2>/dev/null | head -1 | cut -d: -f1; }
while read -r name; do
    so=$(ldd "$FLOWSCOPE" | awk -v n="$name" '$1 == n && $3 ~ /^\// {print $3}')
    [ -n "$so" ] || { fail "ldd does not find $name"; continue; }
    pkg=$(owner "$so")
    [ -n "$pkg" ] || pkg=$(owner "$(readlink -f "$so")")
    [ -n "$pkg" ] || pkg=$(owner "${so#/usr}")
    [ -n "$pkg" ] || { fail "$so ($name) belongs to no package"; continue; }
    grep -qE "(^|[ ,|] ?)$pkg( |,|$)" <<<"$DEPENDS" && pass || fail "Depends lacks $pkg (for $name)"
done < <(readelf -d "$FLOWSCOPE" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | grep -v '^ld-linux')

# ---- lintian ------------------------------------------------------------------------------------
timeout 600 lintian --fail-on error "$DEB" >"$TMP/lintian" 2>"$TMP/lintian.err" && pass ||
    fail "lintian: $(grep '^E:' "$TMP/lintian" | head -5) $(head -3 "$TMP/lintian.err")"
grep -q '^E:' "$TMP/lintian" && fail "lintian errors: $(grep '^E:' "$TMP/lintian")"
note "lintian: $(grep -c '^W:' "$TMP/lintian") warnings: $(grep '^W:' "$TMP/lintian" | cut -d' ' -f3 | tr '\n' ' ')"

# ---- the maintainer scripts ---------------------------------------------------------------------
for s in postinst prerm postrm; do
    f=$SRC/packaging/debian/$s
    [ -x "$f" ] && pass || fail "$f is not executable"
    sh -n "$f" && pass || fail "sh -n $f"
    if command -v shellcheck >/dev/null; then
        shellcheck -s sh "$f" >"$TMP/sc" 2>&1 && pass || fail "shellcheck $s: $(head -5 "$TMP/sc")"
    fi
    dpkg-deb --ctrl-tarfile "$DEB" | tar -xO "./$s" | cmp -s - "$f" && pass ||
        fail "the package's $s is not packaging/debian/$s"
done

# ---- what they do, without touching this machine -------------------------------------------------
# In a mount namespace of their own with a tmpfs on /var/lib, and stubs (first on PATH) for
# the commands that would change the system's users or services, each logging its arguments:
# configure twice (the user made once), purge with an archive (kept, user kept), purge empty.
command -v unshare >/dev/null && [ "$(id -u)" = 0 ] ||
    skip "the maintainer scripts' effects need root and unshare (a private /var/lib)"
mkdir -p "$TMP/stubs"
for c in adduser deluser delgroup chown systemctl deb-systemd-invoke deb-systemd-helper; do
    printf '#!/bin/sh\necho "%s $*" >>"$CALLS"\n[ %s != adduser ] || echo "$*" >>"$USERS"\n' \
        "$c" "$c" >"$TMP/stubs/$c"
done
printf '#!/bin/sh\n[ "$1" = passwd ] || [ "$1" = group ] || exit 2\ngrep -q "$2\\$" "$USERS" 2>/dev/null\n' \
    >"$TMP/stubs/getent"
chmod +x "$TMP/stubs"/*
: >"$TMP/users"
# scripts STEP...: runs each "SCRIPT ARGS" in the namespace (its /var/lib kept in $TMP/varlib
# between runs); the calls they made in $TMP/calls, what the steps print in $TMP/out
mkdir -p "$TMP/varlib"
scripts() {
    : >"$TMP/calls"
    CALLS=$TMP/calls USERS=$TMP/users PATH=$TMP/stubs:$PATH unshare -m sh -c '
        mount --bind "$1/varlib" /var/lib || exit 1
        shift
        for step in "$@"; do $step || { echo "$step: exit $?"; exit 1; }; done' _ "$TMP" "$@" \
        >"$TMP/out" 2>&1
}
D=$SRC/packaging/debian
scripts "$D/postinst configure" "$D/postinst configure" || fail "postinst: $(cat "$TMP/out")"
[ "$(grep -c '^adduser' "$TMP/calls")" = 1 ] && pass || fail "postinst twice: adduser calls: $(grep adduser "$TMP/calls")"
grep -qx 'adduser --quiet --system --group --home /var/lib/flowscope --no-create-home --gecos flowscope traffic recorder flowscope' \
    "$TMP/calls" && pass || fail "postinst: adduser called as $(grep adduser "$TMP/calls")"
[ "$(stat -c %a "$TMP/varlib/flowscope" 2>/dev/null)" = 750 ] && pass || fail "postinst: no /var/lib/flowscope 0750"
grep -qx 'chown flowscope:flowscope /var/lib/flowscope' "$TMP/calls" && pass || fail "postinst: /var/lib/flowscope not given to flowscope"
mkdir -p "$TMP/varlib/flowscope/eth1/segments" && echo data >"$TMP/varlib/flowscope/eth1/segments/1.pcap.zst"
scripts "$D/prerm remove" "$D/postrm remove" "$D/postrm purge" || fail "purge: $(cat "$TMP/out")"
[ -f "$TMP/varlib/flowscope/eth1/segments/1.pcap.zst" ] && pass || fail "purge removed an archive"
grep -q '^del' "$TMP/calls" && fail "purge removed the user of a kept archive: $(grep '^del' "$TMP/calls")"
grep -q 'not empty' "$TMP/out" && pass || fail "purge with an archive says nothing: $(cat "$TMP/out")"
rm -r "$TMP/varlib/flowscope/eth1"
scripts "$D/postrm purge" || fail "purge: $(cat "$TMP/out")"
[ ! -e "$TMP/varlib/flowscope" ] && pass || fail "purge left an empty /var/lib/flowscope"
grep -qx 'deluser --quiet --system flowscope' "$TMP/calls" && pass || fail "purge did not remove the user: $(cat "$TMP/calls")"
finish
