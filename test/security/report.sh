#!/bin/bash
# make security-report: probes, hostile inputs and faults (the full
# kill -9 count), a fuzz pass, then test/security/REPORT.md, printed.
# Environment: FUZZTIME (default 60s per target), OTOK_SECURITY_TRIALS
# (default 100), OTOK_BIN (default: dist/otok, built by make build).
set -uo pipefail
cd "$(dirname "$0")/../.."
fuzztime=${FUZZTIME:-60s}
trials=${OTOK_SECURITY_TRIALS:-100}
out=$(mktemp -d /tmp/otok-security-XXXXXX)
trap 'rm -rf "$out"' EXIT
commit=$(git rev-parse HEAD)
if ! git diff --quiet HEAD -- . 2>/dev/null; then commit="$commit (working tree had uncommitted changes)"; fi
export OTOK_BIN=${OTOK_BIN:-$PWD/dist/otok}
echo "== security tests (trials: $trials, records in $out)"
OTOK_SECURITY_OUT=$out OTOK_SECURITY_TRIALS=$trials nice -n 5 go test -count=1 -p 1 -timeout 60m -v ./test/security/ 2>&1 |
  grep -v '^probe ' | tee "$out/test.log" | grep -E '^(=== RUN|--- |    [a-z_]+_test.go|PASS|FAIL|ok )' 
test_status=${PIPESTATUS[0]}
echo "== fuzz ($fuzztime per target)"
FUZZ_RESULTS=$out/fuzz.tsv bash test/fuzz.sh "$fuzztime" >"$out/fuzz.log" 2>&1
fuzz_status=$?
tail -1 "$out/fuzz.log"
go run ./test/security/report -in "$out" -out test/security/REPORT.md -commit "$commit" \
  -fuzztime "$fuzztime" -trials "$trials" -test-status "$test_status" -fuzz-status "$fuzz_status" \
  -date "$(date -u '+%Y-%m-%d %H:%M UTC')" || exit 1
cat test/security/REPORT.md
