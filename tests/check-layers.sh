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
        grep -v '^corun_' | sort -u)
[ -n "$hooks" ] || { echo "FAIL: no hooks exported by $so"; exit 1; }
for layer in base core green inspect; do
    objs=("$build/src/$layer"/.libs/libcr_"$layer"_la-*.o)
    [ -e "${objs[0]}" ] || { echo "FAIL: no objects for src/$layer in $build"; bad=1; continue; }
    for o in "${objs[@]}"; do
        calls=$(nm -u "$o" | awk '{ sub(/@.*/, "", $2); print $2 }' | sort -u | comm -12 - <(echo "$hooks"))
        for c in $calls; do
            echo "layer $layer: $(basename "$o") calls the hooked $c (use the libc_* function or a raw syscall)"
            bad=1
        done
    done
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
