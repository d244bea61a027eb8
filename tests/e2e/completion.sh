#!/bin/bash
# The bash completion (packaging/flowscope.bash-completion) against the binary's --help, so the
# two cannot drift: the commands it completes are those `flowscope --help` lists; for every
# command, `flowscope CMD --<TAB>` offers exactly the long options `flowscope CMD --help`
# names; the options it treats as taking no value are flags in --help; the values it offers
# for a mode option are words of that command's --help.  The completion runs as bash runs it
# (COMP_WORDS, COMP_CWORD, the function `complete` registered), in a shell of its own.
. "$(dirname "$0")/lib.sh"
COMPLETION=$SRC/packaging/flowscope.bash-completion

# complete WORDS...: what TAB offers after WORDS (the last one is the word being completed),
# one per line, sorted
complete_words() {
    bash --norc --noprofile -c '
        . "$1" || exit 1
        f=$(complete -p flowscope | sed -n "s/.* -F \([^ ]*\) .*/\1/p")
        [ -n "$f" ] || { echo "no completion function for flowscope" >&2; exit 1; }
        shift
        COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
        "$f" flowscope "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
        printf "%s\n" "${COMPREPLY[@]}"' _ "$COMPLETION" "$@" | sed '/^$/d' | sort -u
}

bash -n "$COMPLETION" && pass || fail "bash -n $COMPLETION"
if command -v shellcheck >/dev/null; then
    shellcheck -s bash "$COMPLETION" >"$TMP/sc" 2>&1 && pass || fail "shellcheck: $(head -5 "$TMP/sc")"
fi

# the commands
"$FLOWSCOPE" --help | sed -n 's/^  \([a-z][a-z]*\) .*/\1/p' | sort >"$TMP/cmds.help"
[ -s "$TMP/cmds.help" ] || fail "flowscope --help lists no commands"
complete_words flowscope "" | grep -v '^-' >"$TMP/cmds.comp"
diff "$TMP/cmds.help" "$TMP/cmds.comp" >"$TMP/d" && pass ||
    fail "commands: --help (<) and the completion (>) differ: $(tr '\n' ' ' <"$TMP/d")"
[ "$(complete_words flowscope --)" = "$(printf '%s\n' --help --version)" ] && pass ||
    fail "flowscope --<TAB> does not offer exactly --help --version"

# each command's long options (as tests/e2e/cli.sh reads --help: options in quotes are another
# program's, e.g. DPDK EAL's --vdev)
while read -r cmd; do
    "$FLOWSCOPE" "$cmd" --help >"$TMP/help" 2>&1 || fail "$cmd --help: exit $?"
    { sed "s/'[^']*'//g" "$TMP/help" | grep -o -- '--[a-z][a-z0-9-]*'; echo --help; } |
        sort -u >"$TMP/opts.help"
    complete_words flowscope "$cmd" -- >"$TMP/opts.comp"
    diff "$TMP/opts.help" "$TMP/opts.comp" >"$TMP/d" && pass ||
        fail "$cmd: options in --help (<) and in the completion (>) differ: $(tr '\n' ' ' <"$TMP/d")"
    # an option completed as a flag (no value after it) is one --help shows without a value
    while read -r opt; do
        [ "$opt" = --help ] && continue
        # after a flag the options are offered again; after a value option, its values
        if [ "$(complete_words flowscope "$cmd" "$opt" --)" = "$(cat "$TMP/opts.comp")" ]; then
            grep -qE -- "$opt(\]|  | *$)" "$TMP/help" && pass ||
                fail "$cmd: the completion takes $opt as a flag, --help gives it a value"
        fi
    done <"$TMP/opts.comp"
done <"$TMP/cmds.help"
[ "$(complete_words flowscope index "")" = "$(printf '%s\n' rebuild verify)" ] && pass ||
    fail "flowscope index <TAB> does not offer verify and rebuild"
for sub in rebuild verify; do
    "$FLOWSCOPE" index --help 2>&1 | grep -q "flowscope index $sub" && pass ||
        fail "index --help does not name $sub"
done

# the values of mode options are words of the command's --help
for case in "record --capture" "query --format" "query --ts" "flows --sort" "gen --payload" "gen --size"; do
    read -r cmd opt <<<"$case"
    complete_words flowscope "$cmd" "$opt" "" >"$TMP/vals"
    [ -s "$TMP/vals" ] || fail "$cmd $opt <TAB> offers nothing"
    while read -r v; do
        "$FLOWSCOPE" "$cmd" --help 2>&1 | grep -qw -- "$v" && pass ||
            fail "$cmd $opt: the completion offers '$v', which $cmd --help does not name"
    done <"$TMP/vals"
done
# a file and a directory where the options want them
mkdir -p "$TMP/dir/arch" && : >"$TMP/dir/x.lua" && : >"$TMP/dir/x.txt"
[ "$(complete_words flowscope query --archive "$TMP/dir/a")" = "$TMP/dir/arch" ] && pass ||
    fail "--archive does not complete a directory"
[ "$(complete_words flowscope monitor --module "$TMP/dir/x")" = "$TMP/dir/x.lua" ] && pass ||
    fail "--module does not complete a .lua file (alone)"
finish
