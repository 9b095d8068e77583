#!/bin/bash
# Runs every Fuzz* target in the module for a bounded time each.
# Usage: test/fuzz.sh [DURATION]   (default 60s; CI uses a short pass)
set -euo pipefail
dur=${1:-60s}
fail=0
while read -r pkg; do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for fn in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "== $pkg $fn ($dur)"
    if ! go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$dur" "$pkg"; then
      echo "FUZZ FAIL: $pkg $fn (crasher saved under $dir/testdata/fuzz/$fn)"; fail=1
    fi
  done
done < <(go list ./... | grep -v /test/)
exit $fail
