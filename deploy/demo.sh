#!/usr/bin/env bash
# The Continuity demo: installs what is missing, builds, brings up a 3-node lab on this machine
# (network namespaces in 198.18.0.0/15) protecting a stateful server, runs a client that prints
# its live replies, crashes the primary's machine under it, and shows the client carrying on,
# the application's new primary, and the cluster healing when the node comes back.
# Everything it creates is removed at the end (or on Ctrl-C).
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
# Every command of the trap must succeed: under set -e a failing one (kill of a client that already ended) made a
# successful demo exit 1.
trap 'if [ -n "${client:-}" ]; then kill "$client" 2>/dev/null || true; fi; $lab down >/dev/null 2>&1 || true; rm -f "${config:-}" "${client_log:-}"' EXIT
client=

config=$(mktemp --suffix=.hocon)
sed "s#/opt/continuity#$root#" hocon/examples/kv-lab.hocon > "$config"

step "Bringing up a lab of 3 data nodes protecting 'kv' (VIP 198.18.0.50, tcp/7000, udp/7001)"
$lab up --nodes 3 --config "$config"

step "Waiting until kv has a primary and two ready standbys"
for _ in $(seq 1 60); do
  cmd 198.18.0.11:8558 app list | grep -qE '^kv .*protected' && break
  sleep 1
done
cmd 198.18.0.11:8558 app list

step "The cluster as node n2 sees it (continuity-cmd cluster show)"
cmd 198.18.0.12:8558 cluster show

step "A client in the client namespace: 20 TCP connections and 4 UDP flows, every reply verified"
client_log=$(mktemp)
nsenter --net=/run/netns/ct-client build/testserver/ct-kv-client --server 198.18.0.50:7000 \
  --connections 20 --interval-ms 50 --duration-s 45 --udp-flows 4 --udp-port 7001 --verbose > "$client_log" 2>&1 &
client=$!
tail -f "$client_log" --pid=$client &
sleep 8

primary=$($lab crash --primary-of kv | tee /dev/stderr | sed -n 's/^Crashed \([a-z0-9]*\) .*/\1/p')
step "The primary $primary crashed like a power loss; the client keeps going"
start=$(date +%s%N)
survivor=198.18.0.1$(( ${primary#n} % 3 + 1 )):8558
elapsed() { local ms=$(( ($(date +%s%N) - start) / 1000000 )); printf "%d.%d" $((ms / 1000)) $(((ms % 1000) / 100)); }

step "Waiting for the survivors to detect the failure, down $primary and remove it"
while :; do
  unreachable=$(cmd $survivor --json cluster show | tr -d ' \n' | grep -o '"unreachable":\[[^]]*\]' || true)
  printf '  %5s s: %s\n' "$(elapsed)" "$unreachable"
  [ "$unreachable" = '"unreachable":[]' ] && ! cmd $survivor cluster show | grep -q "^$primary" && break
  sleep 1
done
echo "  $primary removed after $(elapsed) s"
wait $client || true
step "What the client saw (RESULT ok=1 means every reply was byte-exact, with no reset)"
tail -1 "$client_log"
step "The application after the switch (continuity-cmd app status kv)"
cmd $survivor app status kv
cmd $survivor cluster show

step "Reviving $primary: it rejoins the cluster"
$lab revive "$primary"
for _ in $(seq 1 60); do
  cmd $survivor cluster show | grep -qE "^$primary .* Up " && break
  sleep 1
done
cmd $survivor cluster show

step "Demo finished; removing the lab"
