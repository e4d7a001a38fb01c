#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test of Continuity, one test project at a
# time (the end-to-end projects create network namespaces and clusters; running them side by
# side on a small machine would make the failure detectors see pauses that are not failures).
#   sudo deploy/test.sh            # everything
#   sudo deploy/test.sh Lab        # only tests/Continuity.Lab.Tests (any project-name suffix)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[ "$(id -u)" -eq 0 ] || { echo "deploy/test.sh: run as root (sudo deploy/test.sh): the tests create network namespaces and run CRIU" >&2; exit 1; }

bash deploy/install-deps.sh || exit 1
bash deploy/build.sh || exit 1

projects=(Core Linux Node Cmd Lab)
[ $# -gt 0 ] && projects=("$@")
passed=0; failed=0; skipped=0; status=0
mkdir -p build/test-results
failures=build/test-results/failures.txt
: > "$failures"
for p in "${projects[@]}"; do
  proj="tests/Continuity.$p.Tests/Continuity.$p.Tests.csproj"
  [ -f "$proj" ] || { echo "deploy/test.sh: no test project $proj" >&2; exit 2; }
  echo "=== $proj"
  log="build/test-results/$p.log"
  dotnet test "$proj" -c Release --no-build -nologo --logger "console;verbosity=normal" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  # The summary block of 'dotnet test' at normal verbosity: "Total tests: N", then Passed/Failed/Skipped lines.
  summary=$(sed -n '/^Total tests:/,/Total time:/p' "$log")
  count() { sed -nE "s/^ *$1: +([0-9]+).*/\\1/p" <<<"$summary" | tail -1; }
  p_=$(count Passed); f=$(count Failed); s=$(count Skipped)
  passed=$((passed + ${p_:-0})); failed=$((failed + ${f:-0})); skipped=$((skipped + ${s:-0}))
  if [ "$rc" -ne 0 ]; then status=1; [ -z "$summary" ] && { echo "deploy/test.sh: $proj did not run to completion (exit $rc)"; failed=$((failed + 1)); }; fi
  # Keep each failed test's name and the head of its error message: CI shows only the end of
  # this output, and the per-project logs go with the clone.
  awk '/^  Failed /{ on=1; n=0; print; next }
       on && /^  (Passed|Skipped) |^\[xUnit|^Test Run|^Total tests/{ on=0 }
       on && n < 12 { print; n++ }' "$log" >> "$failures"
done
echo
if [ -s "$failures" ]; then
  echo "Failed tests (whole logs in build/test-results/):"
  cat "$failures"
  echo
fi
echo "$passed passed, $failed failed, $skipped skipped"
exit $status
