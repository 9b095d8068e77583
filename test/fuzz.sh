#!/bin/bash
# Runs every Fuzz* target in the module for a bounded time each.
# Usage: test/fuzz.sh [DURATION]   (default 60s; CI uses a short pass)
#
# Environment:
#   FUZZ_RESULTS=FILE   append one tab-separated line per target:
#                       package, target, duration, execs, crashers, status
#                       (make security-report reads it)
#   FUZZ_PARALLEL=N     fuzzing workers per target (default 1: the machine
#                       is shared; go test's default is GOMAXPROCS)
#   FUZZ_MATCH=REGEXP   only targets whose "package target" matches
#
# A crasher is written by go test to <package>/testdata/fuzz/<Target>/ and
# from then on runs as a regression seed in every plain `go test`; commit
# it together with the fix.
set -uo pipefail
dur=${1:-60s}
par=${FUZZ_PARALLEL:-1}
fail=0
total=0
crashers=0
while read -r pkg; do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for fn in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    if [[ -n "${FUZZ_MATCH:-}" ]] && ! [[ "$pkg $fn" =~ $FUZZ_MATCH ]]; then
      continue
    fi
    total=$((total + 1))
    echo "== $pkg $fn ($dur)"
    log=$(mktemp)
    nice -n 10 go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$dur" -parallel "$par" "$pkg" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    # The last progress line carries the total: "fuzz: elapsed: 60s, execs: 123456 (2057/sec), …"
    execs=$(grep -o 'execs: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || true)
    n=0
    status=ok
    if [[ $rc -ne 0 ]]; then
      if grep -q 'Failing input written to' "$log"; then
        n=$(grep -c 'Failing input written to' "$log")
        status=crasher
        echo "FUZZ FAIL: $pkg $fn (crasher saved under $dir/testdata/fuzz/$fn; it is now a regression seed)"
      else
        status=error
        echo "FUZZ ERROR: $pkg $fn (exit $rc, no crasher: see the output above)"
      fi
      fail=1
    fi
    crashers=$((crashers + n))
    if [[ -n "${FUZZ_RESULTS:-}" ]]; then
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$pkg" "$fn" "$dur" "${execs:-0}" "$n" "$status" >>"$FUZZ_RESULTS"
    fi
    rm -f "$log"
  done
done < <(go list ./... | grep -v /test/)
echo "fuzz: $total targets, $crashers crashers"
exit $fail
