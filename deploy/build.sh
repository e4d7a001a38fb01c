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
echo "[build] done: bin/continuity-node, bin/continuity-cmd, bin/continuity-lab"
