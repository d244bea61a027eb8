#!/bin/bash
# packaging/flowscope@.service (docs/cli.md "Running as a service"):
#  * `systemd-analyze verify` finds nothing to say about it (its ExecStart pointed at the
#    binary under test, as /usr/bin/flowscope is not installed here; man pages not checked:
#    they are installed by the package);
#  * it is what the docs promise: Type=notify, WatchdogSec, Restart=on-failure, the
#    instance's config file, the archive as the only writable path, CAP_NET_RAW alone;
#  * `systemd-analyze security --offline=true` (no running systemd needed) rates its
#    exposure at most 2.0 (1.6 when written: a guard against hardening lost by an edit).
# Skipped (77) without systemd-analyze (Debian package systemd).
. "$(dirname "$0")/lib.sh"
SRC=${SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
UNIT=$SRC/packaging/flowscope@.service
command -v systemd-analyze >/dev/null || skip "no systemd-analyze (Debian package systemd)"
[ -f "$UNIT" ] || { fail "no $UNIT"; finish; }

# the instance eth1, running the binary under test
sed "s|^ExecStart=/usr/bin/flowscope |ExecStart=$FLOWSCOPE |" "$UNIT" >"$TMP/flowscope@eth1.service"
grep -q "^ExecStart=$FLOWSCOPE record --config /etc/flowscope/%i.conf$" "$TMP/flowscope@eth1.service" && pass ||
    fail "ExecStart is not '/usr/bin/flowscope record --config /etc/flowscope/%i.conf'"
systemd-analyze verify --man=no "$TMP/flowscope@eth1.service" >"$TMP/verify.out" 2>&1
rc=$?
[ $rc = 0 ] && [ ! -s "$TMP/verify.out" ] && pass || fail "systemd-analyze verify: exit $rc: $(head -5 "$TMP/verify.out")"

# what docs/cli.md says of it
for line in Type=notify Restart=on-failure 'WatchdogSec=[1-9]' User=flowscope ProtectSystem=strict \
    ReadWritePaths=/var/lib/flowscope$ PrivateTmp=yes NoNewPrivileges=yes ProtectHome=yes \
    AmbientCapabilities=CAP_NET_RAW$ CapabilityBoundingSet=CAP_NET_RAW$ LimitMEMLOCK=infinity \
    'RestrictAddressFamilies=AF_PACKET AF_UNIX AF_NETLINK AF_INET AF_INET6$' \
    SystemCallFilter=@system-service$; do
    grep -qE "^$line" "$UNIT" && pass || fail "the unit has no $line"
done
[ "$(grep -c '^ReadWritePaths=' "$UNIT")" = 1 ] && pass || fail "more writable paths than the archive's"

systemd-analyze security --offline=true "$TMP/flowscope@eth1.service" >"$TMP/security.out" 2>&1
score=$(sed -n 's/.*Overall exposure level for flowscope@eth1.service: \([0-9.]*\).*/\1/p' "$TMP/security.out")
note "systemd-analyze security: exposure ${score:-?}"
[ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' && pass ||
    fail "systemd-analyze security: exposure ${score:-?} (want <= 2.0): $(grep '✗' "$TMP/security.out" | head -5)"
finish
