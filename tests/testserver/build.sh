#!/bin/sh
# Builds the test server, its verifying client and the benchmark's load client (ct-bench) into build/testserver/ under the repo root.
# Idempotent: rebuilds only what is older than its source, so every test may call it first.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out="$root/build/testserver"
mkdir -p "$out"
command -v gcc >/dev/null 2>&1 || { echo "build.sh: gcc not found; run deploy/install-deps.sh (or apt-get install gcc)" >&2; exit 1; }
for prog in ct-kv ct-kv-client ct-bench; do
    src="$here/$prog.c"
    bin="$out/$prog"
    if [ ! -x "$bin" ] || [ "$src" -nt "$bin" ]; then
        # Build into a temporary name and rename: concurrent test runs never see half a binary.
        tmp="$bin.tmp.$$"
        gcc -O2 -Wall -Wextra -std=gnu11 -o "$tmp" "$src"
        mv -f "$tmp" "$bin"
    fi
done
echo "$out"
