#!/usr/bin/env bash
# The Continuity demo: installs what is missing, builds, brings up a 3-node lab on this machine
# (network namespaces in 198.18.0.0/15), shows the cluster, crashes a node like a power loss,
# and shows the cluster healing. Everything it creates is removed at the end (or on Ctrl-C).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[ "$(id -u)" -eq 0 ] || { echo "deploy/demo.sh: run as root (sudo deploy/demo.sh): the lab creates network namespaces" >&2; exit 1; }

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
bash deploy/install-deps.sh
bash deploy/build.sh

lab=bin/continuity-lab
export CONTINUITY_TOKEN_FILE=/var/lib/continuity-lab/token
cmd() { bin/continuity-cmd --node "$1" "${@:2}"; }
trap '$lab down >/dev/null 2>&1 || true' EXIT

step "Bringing up a lab of 3 data nodes (each a continuity-node process in its own network namespace)"
$lab up --nodes 3

step "The cluster as node n2 sees it (continuity-cmd cluster show)"
cmd 198.18.0.12:8558 cluster show

step "Crashing n3 like a power loss: its links are cut, then every process it ran is killed"
$lab crash n3
start=$(date +%s%N)
elapsed() { local ms=$(( ($(date +%s%N) - start) / 1000000 )); printf "%d.%d" $((ms / 1000)) $(((ms % 1000) / 100)); }

step "Waiting for the survivors to detect the failure, down n3 and remove it"
while :; do
  unreachable=$(cmd 198.18.0.11:8558 --json cluster show | tr -d ' \n' | grep -o '"unreachable":\[[^]]*\]' || true)
  printf '  %5s s: %s\n' "$(elapsed)" "$unreachable"
  [ "$unreachable" = '"unreachable":[]' ] && ! cmd 198.18.0.11:8558 cluster show | grep -q '^n3' && break
  sleep 1
done
echo "  n3 removed after $(elapsed) s"
cmd 198.18.0.11:8558 cluster show

step "Reviving n3: it rejoins the cluster"
$lab revive n3
for _ in $(seq 1 60); do
  cmd 198.18.0.11:8558 cluster show | grep -qE '^n3 .* Up ' && break
  sleep 1
done
cmd 198.18.0.11:8558 cluster show

step "Demo finished; removing the lab"
