#!/usr/bin/env bash
# Builds Continuity: the solution (Release) and the test server programs.
# After it: bin/continuity-node, bin/continuity-cmd and bin/continuity-lab run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
command -v dotnet >/dev/null || { echo "[build] ERROR: dotnet not found: install the .NET 10 SDK (deploy/install-deps.sh checks it)" >&2; exit 1; }
echo "[build] restoring and building Continuity.Akka.sln (Release)"
dotnet build Continuity.Akka.sln -c Release -nologo -v quiet -clp:ErrorsOnly
echo "[build] building the test server (tests/testserver)"
bash tests/testserver/build.sh
# Node-to-node TLS is on by default (continuity.cluster-tls): give this machine a cluster certificate if it has none.
# Every node of one cluster needs the SAME file: copy this one to the others instead of building a new one there.
cert=${CONTINUITY_CLUSTER_CERT:-/etc/continuity/cluster.pfx}
if [ ! -e "$cert" ] && [ "$(id -u)" -eq 0 ]; then
  bin/continuity-node --create-cluster-cert "$cert" | sed 's/^/[build] /'
fi
echo "[build] done: bin/continuity-node, bin/continuity-cmd, bin/continuity-lab"
