#!/usr/bin/env bash
# Runs every `go test -fuzz` target in the module for a bounded time each
# and prints one summary line per target (executions, new corpus entries,
# result). A crash leaves its reproducer in the package's
# testdata/fuzz/<Target>/ and makes the script exit 1.
# Usage: scripts/fuzz.sh [DURATION]   (default 10s per target)
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-10s}
status=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
summary=()
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  targets=$(grep -hoE '^func (Fuzz[A-Za-z0-9_]+)\(' "$dir"/*_test.go 2>/dev/null | sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(/\1/' | sort -u || true)
  for t in $targets; do
    echo "== $pkg $t ($fuzztime)"
    result=ok
    if ! go test -run '^$' -fuzz "^${t}\$" -fuzztime "$fuzztime" "$pkg" >"$log" 2>&1; then
      result=FAIL
      status=1
      cat "$log"
    fi
    # The last progress line carries the totals.
    stats=$(grep -E '^fuzz: elapsed: .*execs: ' "$log" | tail -n 1 | sed -E 's/^fuzz: elapsed: ([^,]+), execs: ([0-9]+).*new interesting: ([0-9]+).*/\2 execs in \1, \3 new interesting/' || true)
    echo "   ${stats:-no fuzzing statistics}: $result"
    summary+=("$(printf '%-48s %-22s %s: %s' "${pkg#github.com/momgate/momgate/}" "$t" "${stats:-?}" "$result")")
  done
done
echo
echo "== fuzz summary ($fuzztime per target)"
printf '%s\n' "${summary[@]}"
exit $status
