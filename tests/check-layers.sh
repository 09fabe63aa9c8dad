#!/usr/bin/env bash
# The layering rules the build can check (docs/design.md):
#  1. no object below src/interpose references a function libcorun.so
#     exports as a hook (inside the library such a call would bind to
#     corun's own hook); the public corun_* API is not a hook;
#  2. every layer includes only its own headers and those below it (the
#     build's include paths enforce it; this lists what each file includes
#     so that a path added by hand shows up here too).
# Prints every offence and fails if there is one.
set -uo pipefail
build=${CORUN_TEST_BUILDDIR:-$(pwd)}
top=$(cd "$(dirname "$0")/.." && pwd)
so="$build/.libs/libcorun.so"
[ -f "$so" ] || { echo "FAIL: $so not built"; exit 1; }
bad=0
hooks=$(nm -D --defined-only "$so" | awk '$2 ~ /^[TWi]$/ { sub(/@.*/, "", $3); print $3 }' |
        grep -v '^corun_\|^__start_\|^__stop_' | sort -u)   # the API; the linker's section bounds
[ -n "$hooks" ] || { echo "FAIL: no hooks exported by $so"; exit 1; }
for layer in base core green inspect; do
    # The convenience library's archive: exactly the objects linked in.
    archive="$build/.libs/libcr_$layer.a"
    [ -f "$archive" ] || { echo "FAIL: $archive not built"; bad=1; continue; }
    while read -r member calls; do
        for c in $calls; do
            echo "layer $layer: $member calls the hooked $c (use the libc_* function or a raw syscall)"
            bad=1
        done
    done < <(nm -u -A "$archive" 2>/dev/null | awk -F: '{ split($NF, w, " "); sub(/@.*/, "", w[2]); print $2, w[2] }' |
             sort -u | awk 'NR == FNR { hook[$1] = 1; next } ($2 in hook) { c[$1] = c[$1] " " $2 } END { for (m in c) print m, c[m] }' \
                 <(echo "$hooks") -)
done
# Layer order: a file may include headers of its own layer and those below.
order=(base core green inspect interpose)
rank() { local i; for i in "${!order[@]}"; do [ "${order[$i]}" = "$1" ] && echo "$i"; done; }
declare -A home
for l in "${order[@]}"; do
    for h in "$top/src/$l"/*.h; do [ -e "$h" ] && home[$(basename "$h")]=$l; done
done
for l in "${order[@]}"; do
    for f in "$top/src/$l"/*.[chS]; do
        [ -e "$f" ] || continue
        while read -r inc; do
            hl=${home[$inc]:-}
            [ -n "$hl" ] || continue
            if [ "$hl" = interpose ] && [ "$l" != interpose ] || { [ "$hl" = inspect ] && [ "$l" != inspect ]; } ||
               [ "$(rank "$hl")" -gt "$(rank "$l")" ]; then
                echo "layer $l: ${f#"$top"/} includes $inc of layer $hl"
                bad=1
            fi
        done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f")
    done
done
[ "$bad" -eq 0 ] && echo "PASS: layers call only downward, and no runtime object calls a hook"
exit "$bad"
