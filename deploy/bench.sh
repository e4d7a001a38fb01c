#!/usr/bin/env bash
# The benchmark of issue 5: cost while nothing fails, failover stalls and their phases, the
# alternatives, and checkpoint costs, all measured in one run on lab instance 1 (ct1-*, ct1br,
# 198.18.1.0/24: never the end-to-end tests' instance 0). Writes docs/benchmarks.md and its plots.
#
#   sudo deploy/bench.sh            # full: longer runs, 20 crashes, a failover sweep of 3 crashes a point
#   sudo deploy/bench.sh --quick    # short runs, 3 crashes, a sweep of 1 crash a point (the sweep alone: --only sweep)
#   sudo deploy/bench.sh --smoke    # the test suite's check that the benchmark still runs (< 3 min)
#   options: --out FILE (default docs/benchmarks.md), --crashes N, --state-dir DIR (the lab's state,
#   journals included; default /var/lib/continuity-lab-1: a tmpfs there shows what the disk costs),
#   --only SECTIONS (comma-separated: cost, failover, alternatives, checkpoints, sweep; to iterate on one of them),
#   --extra-config FILE (HOCON added to every node's configuration: to compare a setting in the same build),
#   --sweep-point MB/CONNECTIONS/INTERVAL (repeatable, e.g. 10/100/5s: only these points in the sweep of --quick or
#   the full run, to study one)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
say()  { printf '[bench] %s\n' "$*"; }
fail() { printf '[bench] ERROR: %s\n' "$*" >&2; exit 1; }

mode=full
out="$root/docs/benchmarks.md"
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) mode=quick ;;
    --smoke) mode=smoke ;;
    --out) [ $# -ge 2 ] || fail "--out needs a file name"; out=$2; shift ;;
    --crashes) [ $# -ge 2 ] || fail "--crashes needs a number"; extra+=(--crashes "$2"); shift ;;
    --state-dir) [ $# -ge 2 ] || fail "--state-dir needs a directory"; extra+=(--state-dir "$2"); shift ;;
    --extra-config) [ $# -ge 2 ] || fail "--extra-config needs a HOCON file"; extra+=(--extra-config "$(realpath "$2")"); shift ;;
    --only) [ $# -ge 2 ] || fail "--only needs sections, e.g. cost or cost,checkpoints"; extra+=(--only "$2"); shift ;;
    --sweep-point) [ $# -ge 2 ] || fail "--sweep-point needs MB/CONNECTIONS/INTERVAL, e.g. 10/100/5s"; extra+=(--sweep-point "$2"); shift ;;
    -h|--help) sed -n '2,${/^#/!q;p}' "$0"; exit 0 ;;
    *) fail "unknown option '$1' (try --quick, --smoke, --out FILE, --crashes N, --state-dir DIR, --only SECTIONS, --extra-config FILE, --sweep-point MB/CONNECTIONS/INTERVAL)" ;;
  esac
  shift
done

[ "$(id -u)" -eq 0 ] || fail "must run as root: the lab creates network namespaces (try: sudo $0 $*)"

# One benchmark at a time: two would share lab instance 1.
exec 9>/run/lock/continuity-bench.lock
flock -n 9 || fail "another deploy/bench.sh is running (it holds /run/lock/continuity-bench.lock); wait for it to finish"

# python3-matplotlib draws the plots; Debian's package, for Debian's own python3.
if ! /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
  say "installing python3-matplotlib (Debian) for the plots"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-matplotlib >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-matplotlib >/dev/null; } \
    || fail "could not install python3-matplotlib: run 'apt-get install python3-matplotlib' and look at its error (or sudo deploy/install-deps.sh)"
fi
for tool in criu iptables nsenter arping; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool not found: run sudo deploy/install-deps.sh"
done

# Build what is missing or stale: the test server and the load client always (cheap), the .NET
# programs only when not built, so a bench does not rebuild under someone else's feet.
bash "$root/tests/testserver/build.sh" >/dev/null || fail "building tests/testserver failed: run bash tests/testserver/build.sh to see why"
if [ ! -f "$root/src/Continuity.Lab/bin/Release/net10.0/continuity-lab.dll" ] || [ ! -f "$root/src/Continuity.Node/bin/Release/net10.0/continuity-node.dll" ]; then
  say "building Continuity (deploy/build.sh)"
  bash "$root/deploy/build.sh" || fail "the build failed: fix it, then run $0 again"
fi

mkdir -p "$(dirname "$out")"
say "mode $mode, lab instance 1, report $out"
exec /usr/bin/python3 "$root/deploy/bench/bench.py" --mode "$mode" --root "$root" --out "$out" "${extra[@]}"
