#!/usr/bin/env bash
# The man page documents exactly the options of `keyrelay --help`: every long option in the help's option column
# appears as an item of the man page's OPTIONS section, and every item there is an option of --help.
# Usage: manpage_matches_help.sh KEYRELAY_BINARY MAN_PAGE_SOURCE
set -euo pipefail
binary=$1
manpage=$2

help_text=$("$binary" --help)
# Option column: lines that start with spaces and a dash; cut at the first gap of two spaces (the description).
help_options=$(printf '%s\n' "$help_text" | sed -n 's/^ \{1,\}\(-[^ ].*\)$/\1/p' | sed 's/  .*//' \
    | grep -o -- '--[a-z][a-z0-9-]*' | sort -u)
# OPTIONS section: the line after each .TP is the item; roff writes a dash as \-.
man_options=$(sed -n '/^\.SH OPTIONS/,/^\.SH /p' "$manpage" | sed -n '/^\.TP/{n;p}' | sed 's/\\-/-/g' \
    | grep -o -- '--[a-z][a-z0-9-]*' | sort -u)

if [ -z "$help_options" ] || [ -z "$man_options" ]; then
    echo "FAIL: no options found (help: $(wc -w <<<"$help_options"), man page: $(wc -w <<<"$man_options"))"
    exit 1
fi
missing_in_man=$(comm -23 <(printf '%s\n' "$help_options") <(printf '%s\n' "$man_options"))
missing_in_help=$(comm -13 <(printf '%s\n' "$help_options") <(printf '%s\n' "$man_options"))
status=0
if [ -n "$missing_in_man" ]; then
    echo "FAIL: in --help but not in the man page's OPTIONS: $(tr '\n' ' ' <<<"$missing_in_man")"
    status=1
fi
if [ -n "$missing_in_help" ]; then
    echo "FAIL: in the man page's OPTIONS but not in --help: $(tr '\n' ' ' <<<"$missing_in_help")"
    status=1
fi
[ "$status" -eq 0 ] && echo "OK: $(wc -l <<<"$help_options") options agree: $(tr '\n' ' ' <<<"$help_options")"
exit "$status"
