#!/bin/bash
# A damaged or missing index, FORMAT or LOCK: every command (record, query, info, flows,
# index verify, index rebuild) answers with one line naming the archive and the damage (and
# `index rebuild` where that helps), a documented exit status, never a signal; no segment
# file goes; after `index rebuild` the query answer is the one before the damage (pcap bytes).
# Then: index rebuild killed at random moments (the archive keeps an index that verify
# passes), verify while a recorder comes and goes, rebuild on odd files in segments/, a
# failed creation on a full tmpfs, and readers that may not write index/lock.mdb.
. "$(dirname "$0")/lib.sh"

chmod 711 "$TMP" # setpriv'd readers (nobody) must reach the archives
IN=$TMP/in.pcap
SMALL=$PCAPS/dns_icmp.pcap
fs gen -w "$IN" --packets 40000 --seed 21 >/dev/null 2>&1 || { fail "gen"; finish; }
BASE=$TMP/base
fs record --read "$IN" --archive "$BASE" --segment-size 1M --dumpers 1 >/dev/null 2>"$TMP/rec.err" ||
    { fail "record: $(tail -2 "$TMP/rec.err")"; finish; }
fs query --archive "$BASE" -w "$TMP/ref.pcap" 2>/dev/null || { fail "reference query"; finish; }
# one dumper, read flat out: the archive is the input, in order
cmp -s <(tcpdump -nn -r "$IN" 2>/dev/null) <(tcpdump -nn -r "$TMP/ref.pcap" 2>/dev/null) && pass ||
    fail "the reference query differs from the input"

segs() { (cd "$1/segments" && ls) 2>/dev/null; }

# page_of_main_root INDEXDIR: the page holding the named-database table in the newest
# snapshot (LMDB 0.9 meta: mm_dbs[MAIN].md_root at 128, mm_txnid at 144; 4 KiB pages).
page_of_main_root() {
    local f=$1/data.mdb t0 t1
    t0=$(od -An -tu8 -j 144 -N8 "$f" | tr -d ' ')
    t1=$(od -An -tu8 -j $((4096 + 144)) -N8 "$f" | tr -d ' ')
    if [ "$t1" -gt "$t0" ]; then od -An -tu8 -j $((4096 + 128)) -N8 "$f"; else od -An -tu8 -j 128 -N8 "$f"; fi | tr -d ' '
}

# damage NAME DIR: applies damage NAME to archive DIR.
damage() {
    local d=$2 f=$2/index/data.mdb sz
    sz=$(stat -c %s "$f")
    case $1 in
    data_deleted) rm -f "$f" ;;
    trunc_0) truncate -s 0 "$f" ;;
    trunc_4096) truncate -s 4096 "$f" ;;
    trunc_8192) truncate -s 8192 "$f" ;;
    trunc_half) truncate -s $((sz / 2)) "$f" ;;
    overwrite_root) head -c 64 /dev/zero | tr '\0' '\377' |
        dd of="$f" bs=1 seek=$(($(page_of_main_root "$d/index") * 4096 + 4096 - 64)) conv=notrunc 2>/dev/null ;;
    overwrite_mid) head -c 64 /dev/zero | tr '\0' '\377' |
        dd of="$f" bs=1 seek=$((sz / 2)) conv=notrunc 2>/dev/null ;;
    lock_missing) rm -f "$d/index/lock.mdb" ;;
    LOCK_missing) rm -f "$d/LOCK" ;;
    FORMAT_missing) rm -f "$d/FORMAT" ;;
    FORMAT_garbled) echo "garbage" >"$d/FORMAT" ;;
    esac
}

# expect: what each damage makes the commands do.  ok: exit 0; damaged: exit 1, one line
# matching PATTERN; any: no signal, and if not 0 then one line naming the archive.
expect() {
    case $1 in
    data_deleted) echo "damaged:the index is missing.*index rebuild" ;;
    trunc_* | overwrite_root) echo "damaged:the index is damaged \(index/data.mdb: .*\): run flowscope index rebuild" ;;
    overwrite_mid) echo "any:" ;;
    lock_missing | LOCK_missing) echo "ok:" ;;
    FORMAT_*) echo "damaged:FORMAT missing or damaged.*index rebuild" ;;
    esac
}

# check NAME CMD RC ERRFILE EXPECT ARCHIVE
check() {
    local name=$1 cmd=$2 rc=$3 err=$4 how=${5%%:*} pat=${5#*:} a=$6
    if [ "$rc" -ge 128 ]; then fail "$name: $cmd died with signal $((rc - 128))"; return; fi
    case $how in
    ok) [ "$rc" -eq 0 ] && pass || fail "$name: $cmd exit $rc: $(head -c 300 "$err")" ;;
    damaged)
        [ "$rc" -eq 1 ] && pass || fail "$name: $cmd exit $rc, expected 1: $(head -c 300 "$err")"
        one_line_error "$err" "^flowscope $cmd: $a: $pat" ;;
    any)
        [ "$rc" -eq 0 ] || [ "$rc" -eq 3 ] || one_line_error "$err" "^flowscope $cmd: $a: .*index rebuild" ;;
    esac
}

for dmg in data_deleted trunc_0 trunc_4096 trunc_8192 trunc_half overwrite_root overwrite_mid \
    lock_missing LOCK_missing FORMAT_missing FORMAT_garbled; do
    D=$TMP/d-$dmg
    rm -rf "$D" && cp -a "$BASE" "$D" && damage "$dmg" "$D"
    want=$(expect "$dmg")
    before=$(segs "$D")
    for c in query info flows verify; do
        case $c in
        query) fs query --archive "$D" -w "$TMP/q.pcap" >/dev/null 2>"$TMP/err" ;;
        verify) fs index verify --archive "$D" >"$TMP/out" 2>"$TMP/err" ;;
        *) fs $c --archive "$D" >/dev/null 2>"$TMP/err" ;;
        esac
        rc=$?
        cmd=$c
        [ $c = verify ] && cmd="index verify"
        check "$dmg" "$cmd" $rc "$TMP/err" "$want" "$D"
        [ "$before" = "$(segs "$D")" ] && pass || fail "$dmg: $cmd changed segments/"
    done
    # record on its own copy (it adds segments when it may)
    R=$TMP/r-$dmg
    rm -rf "$R" && cp -a "$D" "$R"
    fs record --read "$SMALL" --archive "$R" >/dev/null 2>"$TMP/err"
    rc=$?
    if [ $dmg = data_deleted ]; then # refusing is record's start-up check (issue 12 item 1)
        [ $rc -ne 0 ] && [ $rc -lt 128 ] && grep -q "index rebuild" "$TMP/err" && pass ||
            fail "$dmg: record exit $rc (expected a refusal naming index rebuild): $(tail -1 "$TMP/err")"
    elif [ "${want%%:*}" = ok ]; then
        [ $rc -eq 0 ] && pass || fail "$dmg: record exit $rc: $(tail -1 "$TMP/err")"
    else
        check "$dmg" record $rc "$TMP/err" "$want" "$R"
    fi
    for s in $before; do [ -e "$R/segments/$s" ] || fail "$dmg: record removed segment $s"; done
    # rebuild, then the answer before the damage
    fs index rebuild --archive "$D" >"$TMP/out" 2>"$TMP/err"
    rc=$?
    [ $rc -eq 0 ] && pass || fail "$dmg: index rebuild exit $rc: $(tail -2 "$TMP/err")"
    case $dmg in
    trunc_* | overwrite_root)
        grep -q "the old index was moved to $D/index.damaged-" "$TMP/err" && [ -d "$D"/index.damaged-* ] &&
            pass || fail "$dmg: rebuild did not keep the damaged index: $(cat "$TMP/err")" ;;
    esac
    [ "$before" = "$(segs "$D")" ] && pass || fail "$dmg: index rebuild changed segments/"
    fs index verify --archive "$D" >"$TMP/out" 2>&1 && pass || fail "$dmg: verify after rebuild: $(tail -2 "$TMP/out")"
    fs query --archive "$D" -w "$TMP/q.pcap" 2>/dev/null
    cmp -s "$TMP/q.pcap" "$TMP/ref.pcap" && pass || fail "$dmg: the answer after index rebuild differs"
    rm -rf "$D" "$R"
done

# ---- index rebuild killed at random moments: an index, old or new, always --------------
note "index rebuild, kill -9 at random moments"
K=$TMP/kill
cp -a "$BASE" "$K"
t0=$(date +%s%N)
fs index rebuild --archive "$K" >/dev/null 2>&1 || fail "rebuild (timing run)"
ms=$((($(date +%s%N) - t0) / 1000000 + 1))
for round in $(seq 1 12); do
    "$FLOWSCOPE" index rebuild --archive "$K" >/dev/null 2>&1 &
    pid=$!
    sleep "$(awk -v r=$RANDOM -v ms=$ms 'BEGIN { printf "%.3f", (r % (ms + 1)) / 1000 }')"
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    [ -f "$K/index/data.mdb" ] || { fail "round $round: no index after a killed rebuild ($(ls "$K"))"; break; }
    fs index verify --archive "$K" >"$TMP/out" 2>&1 || { fail "round $round: verify: $(tail -2 "$TMP/out")"; break; }
    fs query --archive "$K" -w "$TMP/q.pcap" 2>/dev/null
    cmp -s "$TMP/q.pcap" "$TMP/ref.pcap" && pass || fail "round $round: the answer differs"
done

# killed exactly at each rename of the swap (strace injects SIGKILL at the Nth rename call)
if command -v strace >/dev/null; then
    for n in 1 2 3; do
        rm -rf "$K" && cp -a "$BASE" "$K"
        "${TRACED[@]}" -f -o /dev/null -e trace=rename,renameat,renameat2 \
            -e inject=rename,renameat,renameat2:signal=KILL:when=$n \
            "$FLOWSCOPE" index rebuild --archive "$K" >/dev/null 2>&1
        [ -f "$K/index/data.mdb" ] && pass || fail "killed at rename $n: no index left ($(ls "$K" | tr '\n' ' '))"
        fs index verify --archive "$K" >"$TMP/out" 2>&1 && pass || fail "killed at rename $n: verify: $(tail -1 "$TMP/out")"
    done
else
    fail "no strace (make deps installs it): the kills at each rename cannot be tried"
fi

# ---- verify while a recorder comes and goes --------------------------------------------
note "verify paused while a recorder adds segments"
V=$TMP/ver
cp -a "$BASE" "$V"
caught=0
for try in $(seq 1 20); do
    "$FLOWSCOPE" index verify --archive "$V" >"$TMP/vout" 2>&1 &
    pid=$!
    for i in $(seq 1 2000); do # stopped once it reads segments: its snapshot is taken
        if ls -l /proc/$pid/fd 2>/dev/null | grep -q "/segments/0"; then
            kill -STOP $pid && caught=1
            break
        fi
        kill -0 $pid 2>/dev/null || break
    done
    [ $caught = 1 ] && break
    wait $pid
done
if [ $caught = 1 ]; then
    fs record --read "$PCAPS/http.pcap" --archive "$V" --segment-size 1M >/dev/null 2>&1 ||
        fail "record beside a paused verify"
    kill -CONT $pid
    wait $pid
    rc=$?
    [ $rc -eq 0 ] && grep -q "checked: OK" "$TMP/vout" && pass ||
        fail "verify reports the recorder's new segments (exit $rc): $(head -c 400 "$TMP/vout")"
else
    fail "could not pause verify while it read segments (20 tries)"
fi

# ---- rebuild: odd files in segments/ -----------------------------------------------------
note "index rebuild with a directory, an empty .open file and an emptied segment"
O=$TMP/odd
cp -a "$BASE" "$O"
mkdir "$O/segments/000000000099.pcap.zst"
: >"$O/segments/000000000050.pcap.zst.open"
: >"$O/segments/000000000003.pcap.zst"
head -c 3000 /dev/urandom >"$O/segments/000000000060.pcap.zst.open" # no whole frame, yet bytes
fs index rebuild --archive "$O" >"$TMP/out" 2>"$TMP/err"
rc=$?
[ $rc -eq 0 ] && pass || fail "rebuild with odd files: exit $rc: $(cat "$TMP/err")"
grep -q "000000000099.pcap.zst: not a regular file" "$TMP/err" && pass || fail "rebuild does not report the directory: $(cat "$TMP/err")"
grep -q "segment 3: not one readable frame.*move it out of segments/" "$TMP/err" && pass ||
    fail "rebuild does not say what to do with the emptied segment: $(cat "$TMP/err")"
grep -q "segment 60: not one readable frame.*move it out of segments/" "$TMP/err" && pass ||
    fail "rebuild does not say what to do with the frameless open segment: $(cat "$TMP/err")"
[ -d "$O/segments/000000000099.pcap.zst" ] && [ -e "$O/segments/000000000003.pcap.zst" ] &&
    [ -s "$O/segments/000000000060.pcap.zst.open" ] && pass ||
    fail "rebuild removed what it cannot index"
fs index verify --archive "$O" >"$TMP/out" 2>&1
rc=$?
[ $rc -eq 3 ] && grep -q "000000000003.pcap.zst is not in the index and holds no readable frame.*move it out" "$TMP/out" &&
    grep -q "000000000099.pcap.zst is not a regular file" "$TMP/out" && ! grep -q "run flowscope index rebuild" "$TMP/out" &&
    pass || fail "verify on odd files (exit $rc): $(head -c 600 "$TMP/out")"

# ---- a failed creation leaves nothing ------------------------------------------------------
note "archive creation on a full tmpfs"
M=$TMP/mnt
mkdir -p "$M"
if mount -t tmpfs -o size=4m tmpfs "$M"; then
    at_exit 'umount "$M" 2>/dev/null'
    dd if=/dev/zero of="$M/fill" bs=4k 2>/dev/null
    fs record --read "$SMALL" --archive "$M/arch" >/dev/null 2>"$TMP/err"
    rc=$?
    [ $rc -eq 1 ] && pass || fail "record on a full disk: exit $rc"
    one_line_error "$TMP/err" "$M/arch.*No space left on device.*nothing was created"
    [ ! -e "$M/arch" ] && pass || fail "a failed creation left $(ls -a "$M/arch" | tr '\n' ' ')"
    rm -f "$M/fill"
    fs record --read "$SMALL" --archive "$M/arch" >/dev/null 2>"$TMP/err" && pass ||
        fail "record once there is room: $(tail -1 "$TMP/err")"
    umount "$M"
else
    fail "cannot mount a tmpfs"
fi

# ---- readers that may not write index/lock.mdb ---------------------------------------------
note "readers as nobody"
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups timeout 300 "$FLOWSCOPE" "$@"; }
U=$TMP/user
cp -a "$BASE" "$U"
for c in query info flows verify; do
    case $c in
    query) as_nobody query --archive "$U" -w - >"$TMP/q.pcap" 2>"$TMP/err" ;;
    verify) as_nobody index verify --archive "$U" >"$TMP/out" 2>"$TMP/err" ;;
    *) as_nobody $c --archive "$U" >/dev/null 2>"$TMP/err" ;;
    esac
    rc=$?
    [ $rc -eq 0 ] && pass || fail "$c as nobody: exit $rc: $(head -c 300 "$TMP/err")"
done
cmp -s "$TMP/q.pcap" "$TMP/ref.pcap" && pass || fail "query as nobody: the answer differs"
# while a recorder writes: refused without the group, served with --archive-group
for grp in "" nogroup; do
    W=$TMP/w$grp
    rm -rf "$W"
    "$FLOWSCOPE" record --read "$IN" --replay-speed 0.3 --archive "$W" ${grp:+--archive-group $grp} \
        >/dev/null 2>"$TMP/werr" &
    wpid=$!
    for i in $(seq 1 300); do
        [ -f "$W/FORMAT" ] && ! flock -n "$W/LOCK" true 2>/dev/null && break
        sleep 0.1
    done
    as_nobody info --archive "$W" >/dev/null 2>"$TMP/err"
    rc=$?
    if [ -z "$grp" ]; then
        [ $rc -eq 1 ] && pass || fail "nobody while recording, no group: exit $rc"
        one_line_error "$TMP/err" "^flowscope info: $W: a recorder is writing it and this user may not write index/lock.mdb"
    else
        [ $rc -eq 0 ] && pass || fail "nobody in --archive-group while recording: exit $rc: $(cat "$TMP/err")"
        [ "$(stat -c %G "$W/index/lock.mdb")" = nogroup ] && [ -n "$(find "$W/index/lock.mdb" -perm -g+rw)" ] &&
            pass || fail "lock.mdb: $(stat -c '%A %G' "$W/index/lock.mdb")"
    fi
    kill -INT $wpid
    wait $wpid
done

finish
