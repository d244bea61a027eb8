#!/bin/bash
# page.sh: one man page from the Markdown in docs/ (docs/man/CMakeLists.txt
# runs it for every page; docs/man/man.lua does the converting).
#   page.sh PANDOC FLOWSCOPE DOCS OUT DATE VERSION overview
#   page.sh PANDOC FLOWSCOPE DOCS OUT DATE VERSION command CMD
#   page.sh PANDOC FLOWSCOPE DOCS OUT DATE VERSION doc FILE.md
# OUT's name gives the page's name and section (flowscope-record.1).  The
# one-line summaries of the commands come from `flowscope --help`, the
# documents' from their title: every text exists once.
set -euo pipefail
pandoc=$1 flowscope=$2 docs=$3 out=$4 date=$5 version=$6 kind=$7
base=$(basename "$out")
page=${base%.*} section=${base##*.}
args=(-s -t man --lua-filter "$docs/man/man.lua" -M title="$page" -M section="$section"
      -M date="$date" -M footer="flowscope $version" -M header="flowscope manual")
summary() { "$flowscope" --help | awk -v c="$1" '$1 == c { $1 = ""; sub(/^ +/, ""); print }'; }
commands() { "$flowscope" --help | awk '/^  [a-z]/ { print $1 }'; }
see_also() {
    local c list="flowscope(1)"
    for c in $(commands); do list="$list, flowscope-$c(1)"; done
    echo "$list, flowscope.conf(5), flowscope-archive(5), flowscope-modules(7), flowscope-counters(7)" \
        | sed -E "s/(^|, )$page\\($section\\)//; s/^, //"
}
case $kind in
overview)
    tmp=$(mktemp "$out.XXXXXX.md")
    trap 'rm -f "$tmp"' EXIT
    { echo "## Commands"; echo
      for c in $(commands); do printf '**flowscope %s** (flowscope-%s(1))\n:   %s\n\n' "$c" "$c" "$(summary "$c")"; done
    } >"$tmp"
    "$pandoc" "${args[@]}" -M name="flowscope - $8" -M drop="flowscope " -M shift=1 \
        -M see-also="$(see_also)" "$docs/cli.md" "$tmp" -o "$out" ;;
command)
    what=$(summary "$8")
    [ -n "$what" ] || { echo "page.sh: flowscope --help lists no command '$8'" >&2; exit 1; }
    "$pandoc" "${args[@]}" -M name="flowscope-$8 - $what" -M only="flowscope $8" \
        -M also="Exit status" -M also=Values -M shift=2 -M see-also="$(see_also)" \
        "$docs/cli.md" -o "$out" ;;
doc)
    title=$(sed -n '1s/^# *//p' "$docs/$8")
    "$pandoc" "${args[@]}" -M name="$page - $title" -M shift=1 -M see-also="$(see_also)" \
        "$docs/$8" -o "$out" ;;
*) echo "page.sh: unknown kind '$kind'" >&2; exit 2 ;;
esac
